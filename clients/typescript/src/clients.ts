/**
 * Typed clients for every public tradingmesh service, over one gRPC-web transport through the
 * edge (Envoy), with the session's access token on every call.
 *
 *   const tm = createClients({ baseUrl: "https://trading.example.com" });
 *   await tm.signIn("demo", password);
 *   const { instruments } = await tm.pricing.listInstruments({ accountId });
 *   for await (const batch of tm.pricing.streamQuotes({ accountId, symbols: ["EURUSD"] })) { ... }
 */

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { Session, authInterceptor, tokensFrom, type RefreshFn, type Tokens } from "./auth.js";
import { AccountAdminService } from "./gen/tradingmesh/account/v1/account_admin_service_pb.js";
import { AccountService } from "./gen/tradingmesh/account/v1/account_service_pb.js";
import { AuthService } from "./gen/tradingmesh/account/v1/auth_service_pb.js";
import { WebhookService } from "./gen/tradingmesh/account/v1/webhook_service_pb.js";
import { NotificationService } from "./gen/tradingmesh/notification/v1/notification_service_pb.js";
import { OrderAdminService } from "./gen/tradingmesh/oms/v1/order_admin_service_pb.js";
import { OrderService } from "./gen/tradingmesh/oms/v1/order_service_pb.js";
import { PositionService } from "./gen/tradingmesh/oms/v1/position_service_pb.js";
import { PricingAdminService } from "./gen/tradingmesh/pricing/v1/pricing_admin_service_pb.js";
import { PricingService } from "./gen/tradingmesh/pricing/v1/pricing_service_pb.js";
import {
  ReportingAdminService,
} from "./gen/tradingmesh/reporting/v1/reporting_admin_service_pb.js";
import { ReportingService } from "./gen/tradingmesh/reporting/v1/reporting_service_pb.js";
import { RiskAdminService } from "./gen/tradingmesh/risk/v1/risk_admin_service_pb.js";
import { RiskService } from "./gen/tradingmesh/risk/v1/risk_service_pb.js";

/**
 * Every service the edge serves, by the name the clients object gives it. `*InternalService`s
 * are not here: they are called between services only and the edge does not route them.
 */
export const SERVICES = {
  auth: AuthService,
  account: AccountService,
  accountAdmin: AccountAdminService,
  webhooks: WebhookService,
  pricing: PricingService,
  pricingAdmin: PricingAdminService,
  orders: OrderService,
  positions: PositionService,
  orderAdmin: OrderAdminService,
  risk: RiskService,
  riskAdmin: RiskAdminService,
  reporting: ReportingService,
  reportingAdmin: ReportingAdminService,
  notifications: NotificationService,
} as const;

type Services = typeof SERVICES;

/** A typed client per service (`tm.orders.placeOrder(...)`), plus the session. */
export type TradingClients = { readonly [K in keyof Services]: Client<Services[K]> } & {
  /** The session's tokens and refresh (`tm.session.tokens`). */
  readonly session: Session;
  /** The transport every client uses (for `createClient` of your own). */
  readonly transport: Transport;
  /** Signs in (AuthService.Login) and starts the session; returns the user id. */
  signIn(username: string, password: string): Promise<string>;
  /** Signs out (AuthService.Logout) and ends the session locally, even if the call fails. */
  signOut(options?: { allSessions?: boolean }): Promise<void>;
};

export interface ClientsOptions {
  /** The edge's address, e.g. "https://trading.example.com" or "http://127.0.0.1:17010". */
  readonly baseUrl: string;
  /** Tokens from an earlier sign-in, to resume the session. */
  readonly tokens?: Tokens | undefined;
  /** Refresh the access token when less than this is left (default 60 s). */
  readonly refreshMarginMs?: number | undefined;
  /** Told of every new token pair and of the session's end (`undefined`). */
  readonly onTokens?: ((tokens: Tokens | undefined) => void) | undefined;
  /**
   * Wraps every refresh: called with the refresh token to spend and the function that spends it
   * (AuthService.RefreshToken), it returns the new tokens. A page whose tabs share one session
   * refreshes it once for all of them this way: under a lock the tabs share, it returns the
   * tokens another tab already got for the same refresh token instead of spending it again (a
   * spent refresh token presented twice ends the session). Default: spend it.
   */
  readonly refreshWith?: ((refreshToken: string, refresh: RefreshFn) => Promise<Tokens>) | undefined;
  /** Interceptors to run after the SDK's own (e.g. logging). */
  readonly interceptors?: readonly Interceptor[] | undefined;
  /** A fetch of your own (e.g. one that sets `credentials`); default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch | undefined;
  /** Timeout of every call in milliseconds unless a call sets `timeoutMs` (default: none). */
  readonly defaultTimeoutMs?: number | undefined;
  /** The clock (tests). */
  readonly now?: (() => number) | undefined;
}

/** Clients for every service over Connect's gRPC-web transport (binary), through the edge. */
export function createClients(options: ClientsOptions): TradingClients {
  return clientsOver(
    (interceptors) =>
      createGrpcWebTransport({
        baseUrl: options.baseUrl,
        interceptors,
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        ...(options.defaultTimeoutMs === undefined
          ? {}
          : { defaultTimeoutMs: options.defaultTimeoutMs }),
      }),
    options,
  );
}

/**
 * The same clients over a transport made by `makeTransport` with the SDK's interceptors (e.g.
 * Connect's `createRouterTransport` in tests, or `createGrpcTransport` from
 * `@connectrpc/connect-node` on a server).
 */
export function clientsOver(
  makeTransport: (interceptors: Interceptor[]) => Transport,
  options: Omit<ClientsOptions, "baseUrl" | "fetch" | "defaultTimeoutMs"> = {},
): TradingClients {
  const now = options.now ?? Date.now;
  // The session refreshes through the same transport; the interceptor leaves RefreshToken alone.
  const spend: RefreshFn = async (refreshToken) => {
    const started = now();
    return tokensFrom(await clients.auth.refreshToken({ refreshToken }), started);
  };
  const refreshWith = options.refreshWith;
  const session = new Session({
    refresh: refreshWith === undefined ? spend : (refreshToken) => refreshWith(refreshToken, spend),
    tokens: options.tokens,
    refreshMarginMs: options.refreshMarginMs,
    now,
    onChange: options.onTokens,
  });
  const transport = makeTransport([authInterceptor(session), ...(options.interceptors ?? [])]);
  const clients = Object.fromEntries(
    Object.entries(SERVICES).map(([name, service]) => [name, createClient(service, transport)]),
  ) as { [K in keyof Services]: Client<Services[K]> };

  return {
    ...clients,
    session,
    transport,
    async signIn(username, password) {
      const started = now();
      const response = await clients.auth.login({ username, password });
      session.set(tokensFrom(response, started));
      return response.userId;
    },
    async signOut(signOutOptions) {
      try {
        if (session.tokens !== undefined) {
          await clients.auth.logout({ allSessions: signOutOptions?.allSessions ?? false });
        }
      } finally {
        session.clear();
      }
    },
  };
}
