/**
 * The one set of SDK clients of the page: the API is on the page's own origin (Envoy serves the
 * terminal and the API together; Vite's dev server proxies). Tokens are kept in sessionStorage,
 * so a reload keeps the user signed in (this tab only); the SDK's Session refreshes the access
 * token shortly before it expires, once for all the tabs that hold the session (a duplicated tab
 * copies sessionStorage: lib/sharedRefresh.ts, with tabLedger.ts).
 */

import { createClients, type Tokens, type TradingClients } from "@tradingmesh/sdk";

import { browserTabs, sharedRefresh } from "./lib/sharedRefresh.js";
import { indexedDbLedger } from "./tabLedger.js";

const STORAGE_KEY = "tradingmesh.tokens";

function loadTokens(): Tokens | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (raw === null) return undefined;
    const parsed = JSON.parse(raw) as Partial<Tokens>;
    if (
      typeof parsed.accessToken === "string" &&
      typeof parsed.refreshToken === "string" &&
      typeof parsed.accessTokenExpiresAt === "number"
    ) {
      return {
        accessToken: parsed.accessToken,
        refreshToken: parsed.refreshToken,
        accessTokenExpiresAt: parsed.accessTokenExpiresAt,
      };
    }
  } catch {
    // Unreadable storage: start signed out.
  }
  return undefined;
}

function saveTokens(tokens: Tokens | undefined): void {
  try {
    if (tokens === undefined) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
  } catch {
    // Storage full or disabled: the session still works until the page is closed.
  }
}

type Listener = (signedIn: boolean) => void;
const listeners = new Set<Listener>();

/** Called when the session starts or ends (e.g. a refused refresh token). */
export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const tabs = browserTabs("tradingmesh.session");
const ledger = indexedDbLedger("tradingmesh.session");

export const tm: TradingClients = createClients({
  baseUrl: window.location.origin,
  tokens: loadTokens(),
  // Another tab refreshed the session this tab holds: go on with its tokens.
  refreshWith: sharedRefresh(tabs.lock, tabs.channel, ledger, ({ spent, tokens }) => {
    if (tm.session.tokens?.refreshToken === spent) tm.session.set(tokens);
  }),
  onTokens: (tokens) => {
    saveTokens(tokens);
    for (const listener of listeners) listener(tokens !== undefined);
  },
});

/** A fresh client order id (idempotency of PlaceOrder). */
export function newClientOrderId(): string {
  return `web-${crypto.randomUUID()}`;
}
