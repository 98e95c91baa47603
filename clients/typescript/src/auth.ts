/**
 * The signed-in session: access token on every call, refreshed shortly before it expires.
 *
 * Access tokens live 15 minutes; refresh tokens rotate (AuthService.RefreshToken spends the one it
 * is given and returns the next), and presenting a spent one revokes the whole session
 * (REFRESH_TOKEN_REUSED). So a session must never refresh twice with the same token: every call
 * that finds the access token due waits on one shared refresh, and the new refresh token replaces
 * the old before any other refresh can start. See docs/adr/0013-typescript-sdk.md.
 */

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";

import { detailsOf } from "./errors.js";
import { AuthService } from "./gen/tradingmesh/account/v1/auth_service_pb.js";
import { ErrorReason } from "./gen/tradingmesh/common/v1/errors_pb.js";

/** What a session holds. Keep `refreshToken` secret; it works once. */
export interface Tokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** When the access token expires, in milliseconds since the epoch, on this client's clock. */
  readonly accessTokenExpiresAt: number;
}

/** The fields of a LoginResponse or RefreshTokenResponse that make `Tokens`. */
export interface TokenResponse {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresIn?: Duration | undefined;
}

/** Exchanges a refresh token for new tokens (AuthService.RefreshToken). */
export type RefreshFn = (refreshToken: string) => Promise<Tokens>;

export interface SessionOptions {
  /** Calls RefreshToken; `createClients` supplies one over its own transport. */
  readonly refresh: RefreshFn;
  /** Tokens from an earlier sign-in (e.g. kept in the page's storage). */
  readonly tokens?: Tokens | undefined;
  /** Refresh when the access token has less than this left (default 60 s). */
  readonly refreshMarginMs?: number | undefined;
  /** The clock, in milliseconds since the epoch (default `Date.now`; tests pass their own). */
  readonly now?: (() => number) | undefined;
  /**
   * Told of every change: new tokens after sign-in or refresh (persist them if you keep them),
   * `undefined` after sign-out or when the session ended (the refresh token was refused).
   */
  readonly onChange?: ((tokens: Tokens | undefined) => void) | undefined;
}

/** Tokens from a Login or RefreshToken response; the expiry is `expires_in` on this clock. */
export function tokensFrom(response: TokenResponse, now: number = Date.now()): Tokens {
  const expiresIn = response.expiresIn;
  if (expiresIn === undefined) {
    throw new Error("the token response has no expires_in");
  }
  return {
    accessToken: response.accessToken,
    refreshToken: response.refreshToken,
    accessTokenExpiresAt:
      now + Number(expiresIn.seconds) * 1000 + Math.floor(expiresIn.nanos / 1_000_000),
  };
}

/** The reasons of a refresh that mean the session is over: sign in again. */
const SESSION_ENDED = new Set([
  ErrorReason.REFRESH_TOKEN_REUSED,
  ErrorReason.UNAUTHENTICATED,
  ErrorReason.INVALID_CREDENTIALS,
  ErrorReason.ACCOUNT_DISABLED,
]);

/** One signed-in session's tokens, with at most one refresh in flight. */
export class Session {
  private current: Tokens | undefined;
  private inFlight: Promise<Tokens> | undefined;
  private readonly refreshFn: RefreshFn;
  private readonly marginMs: number;
  private readonly now: () => number;
  private readonly onChange: ((tokens: Tokens | undefined) => void) | undefined;

  constructor(options: SessionOptions) {
    this.refreshFn = options.refresh;
    this.current = options.tokens;
    this.marginMs = options.refreshMarginMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.onChange = options.onChange;
  }

  /** The current tokens, if signed in. */
  get tokens(): Tokens | undefined {
    return this.current;
  }

  /** Starts or replaces the session (after Login). */
  set(tokens: Tokens): void {
    this.current = tokens;
    this.inFlight = undefined;
    this.onChange?.(tokens);
  }

  /** Ends the session locally (after Logout, or when the server refused it). */
  clear(): void {
    const hadTokens = this.current !== undefined;
    this.current = undefined;
    this.inFlight = undefined;
    if (hadTokens) this.onChange?.(undefined);
  }

  /**
   * The access token to send now: the current one, or, when it expires within the margin, the
   * one a refresh returns (shared by every caller that asks meanwhile). `undefined` when signed
   * out.
   */
  async accessToken(): Promise<string | undefined> {
    const tokens = this.current;
    if (tokens === undefined) return undefined;
    if (this.now() < tokens.accessTokenExpiresAt - this.marginMs) return tokens.accessToken;
    return (await this.refresh()).accessToken;
  }

  /**
   * Refreshes now (or joins the refresh in flight). The new refresh token replaces the spent one
   * before the promise settles. If the server refuses the refresh token, the session ends
   * (`onChange(undefined)`) and the error is rethrown; on other failures (network, unavailable)
   * the tokens are kept so a later call can try again.
   */
  refresh(): Promise<Tokens> {
    if (this.inFlight !== undefined) return this.inFlight;
    const tokens = this.current;
    if (tokens === undefined) {
      return Promise.reject(new ConnectError("not signed in", Code.Unauthenticated));
    }
    const attempt = this.refreshFn(tokens.refreshToken).then(
      (fresh) => {
        if (this.inFlight === attempt) {
          this.inFlight = undefined;
          this.current = fresh;
          this.onChange?.(fresh);
        }
        return fresh;
      },
      (error: unknown) => {
        if (this.inFlight === attempt) {
          this.inFlight = undefined;
          if (SESSION_ENDED.has(detailsOf(error).reason)) this.clear();
        }
        throw error;
      },
    );
    this.inFlight = attempt;
    return attempt;
  }

  /** Whether this token is still the session's (not yet replaced by a refresh). */
  isCurrent(accessToken: string): boolean {
    return this.current?.accessToken === accessToken;
  }
}

/** AuthService methods called without an access token (public routes at the edge). */
const PUBLIC_METHODS = new Set(["Login", "RefreshToken", "GetJwks", "ExchangeApiKey"]);

function isPublic(service: { typeName: string }, method: { name: string }): boolean {
  return service.typeName === AuthService.typeName && PUBLIC_METHODS.has(method.name);
}

/**
 * Adds `authorization: Bearer <access token>` to every call but the public sign-in ones,
 * refreshing the token first when it is due. If the edge still answers UNAUTHENTICATED to a
 * unary call (e.g. this client's clock is behind), it refreshes once and retries that call: the
 * edge refused it before any service saw it, so the retry cannot do anything twice. A stream is
 * not retried (its request cannot be replayed); the caller reopens it.
 */
export function authInterceptor(session: Session): Interceptor {
  return (next) => async (request) => {
    if (isPublic(request.service, request.method)) return next(request);
    const token = await session.accessToken();
    if (token === undefined) return next(request);
    request.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(request);
    } catch (error) {
      if (request.stream || !isExpiredAtTheEdge(error)) throw error;
      const retryToken = session.isCurrent(token)
        ? (await session.refresh()).accessToken
        : await session.accessToken();
      if (retryToken === undefined) throw error;
      request.header.set("authorization", `Bearer ${retryToken}`);
      return next(request);
    }
  };
}

function isExpiredAtTheEdge(error: unknown): boolean {
  const details = detailsOf(error);
  return details.code === Code.Unauthenticated && details.reason === ErrorReason.UNAUTHENTICATED;
}
