/**
 * One session refreshed once for every tab that holds it.
 *
 * Tokens live in sessionStorage, which a duplicated tab copies: two tabs then hold the same
 * refresh token, and refresh tokens rotate and are single-use (ADR 0005): a token presented twice
 * ends the whole session, signing both tabs out. So the tabs refresh under one lock (Web Locks),
 * and each refresh tells the others what it bought (a BroadcastChannel): a tab that hears of a
 * refresh of its own token adopts the new tokens at once. The browser does not order the channel
 * against the lock, so a waiting tab may be granted the lock before the message of the refresh it
 * waited for has reached it; spending the token then would end the session (the server revokes
 * it on reuse). So each refresh is also recorded where the next holder of the lock reads it (a
 * TabLedger, IndexedDB in a browser: tabLedger.ts) before the lock is released: a tab whose
 * refresh token another tab has spent takes that tab's new tokens instead of spending it again.
 */

import type { RefreshFn, Tokens } from "@tradingmesh/sdk";

/** A lock held across the tabs of one origin (navigator.locks in a browser). */
export type TabLock = <T>(work: () => Promise<T>) => Promise<T>;

/** What a tab tells the others after a refresh: the refresh token it spent and what it got. */
export type Refreshed = { readonly spent: string; readonly tokens: Tokens };

/** Messages to and from the other tabs (a BroadcastChannel in a browser). */
export interface TabChannel {
  post(message: Refreshed): void;
  listen(listener: (message: Refreshed) => void): void;
}

/**
 * Refreshes recorded across tabs: what a `put` records, a `get` in any tab that starts after the
 * `put` settled reads (IndexedDB's transactions in a browser). Either may fail (no storage): the
 * channel alone is then all the tabs have.
 */
export interface TabLedger {
  get(spent: string): Promise<Tokens | undefined>;
  put(message: Refreshed): Promise<void>;
}

const REMEMBERED = 8; // spent refresh tokens kept: a few rotations of every tab's session

/**
 * The SDK's `refreshWith` for a session shared by tabs. `adopt` is told of tokens another tab
 * bought by spending `spent` (set them if this tab's refresh token is `spent`).
 */
export function sharedRefresh(
  lock: TabLock,
  channel: TabChannel,
  ledger: TabLedger,
  adopt: (message: Refreshed) => void,
): (refreshToken: string, refresh: RefreshFn) => Promise<Tokens> {
  const bought = new Map<string, Tokens>();
  const remember = ({ spent, tokens }: Refreshed) => {
    bought.set(spent, tokens);
    for (const oldest of bought.keys()) {
      if (bought.size <= REMEMBERED) break;
      bought.delete(oldest);
    }
  };
  channel.listen((message) => {
    remember(message);
    adopt(message);
  });
  return (refreshToken, refresh) =>
    lock(async () => {
      // Another tab spent it while this one waited (its message may not have arrived yet).
      const known =
        bought.get(refreshToken) ?? (await ledger.get(refreshToken).catch(() => undefined));
      if (known !== undefined) return known;
      const tokens = await refresh(refreshToken);
      const refreshed = { spent: refreshToken, tokens };
      remember(refreshed);
      // Recorded before the lock passes on; without storage, the message is all there is.
      await ledger.put(refreshed).catch(() => undefined);
      channel.post(refreshed);
      return tokens;
    });
}

/** The browser's lock and channel for `sharedRefresh` (without Web Locks, no lock: one tab). */
export function browserTabs(name: string): { lock: TabLock; channel: TabChannel } {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  const broadcast =
    typeof BroadcastChannel === "undefined" ? undefined : new BroadcastChannel(name);
  return {
    lock: (work) => (locks === undefined ? work() : locks.request(name, work)),
    channel: {
      post: (message) => broadcast?.postMessage(message),
      listen: (listener) => {
        if (broadcast !== undefined) {
          broadcast.onmessage = (event: { data: unknown }) => listener(event.data as Refreshed);
        }
      },
    },
  };
}

type LockManagerLike = { request<T>(name: string, work: () => Promise<T>): Promise<T> };
