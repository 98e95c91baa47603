// The session's refresh, against a fake AuthService in process (Connect's router transport): the
// bearer header, refresh before expiry, one shared refresh for concurrent calls, rotation, the end
// of a session, and one retry when the edge refuses a token the client's clock thought valid.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Code, ConnectError, createRouterTransport, type Interceptor } from "@connectrpc/connect";

import { Session, type Tokens } from "../dist/auth.js";
import { clientsOver, type TradingClients } from "../dist/clients.js";
import { detailsOf } from "../dist/errors.js";
import { ErrorInfoSchema } from "../dist/gen/google/rpc/error_details_pb.js";
import { AuthService } from "../dist/gen/tradingmesh/account/v1/auth_service_pb.js";
import { ErrorReason } from "../dist/gen/tradingmesh/common/v1/errors_pb.js";
import { PricingService } from "../dist/gen/tradingmesh/pricing/v1/pricing_service_pb.js";

const MINUTE = 60_000;
const TOKEN_LIFETIME_S = 900n;

function refused(code: Code, reason: string): ConnectError {
  return new ConnectError(reason.toLowerCase(), code, undefined, [
    { desc: ErrorInfoSchema, value: { domain: "tradingmesh", reason } },
  ]);
}

/** The server side: issues rotating tokens, refuses spent refresh tokens and dead access tokens. */
class FakeEdge {
  issued = 0;
  refreshCalls = 0;
  readonly spentRefreshTokens = new Set<string>();
  readonly liveAccessTokens = new Set<string>();
  readonly seenAuthorization: (string | null)[] = [];
  /** When set, RefreshToken waits for it (to hold many calls behind one refresh). */
  gate: Promise<void> | undefined;
  refreshFailure: ConnectError | undefined;

  issue(): { accessToken: string; refreshToken: string; expiresIn: { seconds: bigint } } {
    this.issued += 1;
    const accessToken = `access-${this.issued}`;
    this.liveAccessTokens.add(accessToken);
    const refreshToken = `refresh-${this.issued}`;
    return { accessToken, refreshToken, expiresIn: { seconds: TOKEN_LIFETIME_S } };
  }

  transport(interceptors: Interceptor[]) {
    return createRouterTransport((router) => {
      router.service(AuthService, {
        login: (request, context) => {
          this.seenAuthorization.push(context.requestHeader.get("authorization"));
          if (request.password !== "right") {
            throw refused(Code.Unauthenticated, "INVALID_CREDENTIALS");
          }
          return { ...this.issue(), tokenType: "Bearer", userId: "user-1" };
        },
        refreshToken: async (request, context) => {
          this.refreshCalls += 1;
          this.seenAuthorization.push(context.requestHeader.get("authorization"));
          await this.gate;
          if (this.refreshFailure) throw this.refreshFailure;
          if (this.spentRefreshTokens.has(request.refreshToken)) {
            throw refused(Code.Unauthenticated, "REFRESH_TOKEN_REUSED");
          }
          this.spentRefreshTokens.add(request.refreshToken);
          return { ...this.issue(), tokenType: "Bearer" };
        },
        logout: () => {
          throw new ConnectError("down", Code.Unavailable);
        },
      });
      router.service(PricingService, {
        getQuote: (request, context) => {
          const authorization = context.requestHeader.get("authorization");
          this.seenAuthorization.push(authorization);
          const token = authorization?.replace(/^Bearer /, "") ?? "";
          if (!this.liveAccessTokens.has(token)) {
            throw refused(Code.Unauthenticated, "UNAUTHENTICATED");
          }
          return { quote: { symbol: request.symbol, bid: "1.08512", ask: "1.08524" } };
        },
      });
    }, { transport: { interceptors } });
  }
}

function setUp(options: { tokens?: Tokens } = {}) {
  const edge = new FakeEdge();
  const clock = { now: 1_000_000 };
  const changes: (Tokens | undefined)[] = [];
  const tm: TradingClients = clientsOver(
    (interceptors) => edge.transport(interceptors),
    { now: () => clock.now, onTokens: (tokens) => changes.push(tokens), tokens: options.tokens },
  );
  return { edge, clock, changes, tm };
}

async function signedIn() {
  const world = setUp();
  await world.tm.signIn("demo", "right");
  world.edge.seenAuthorization.length = 0;
  return world;
}

describe("the bearer token", () => {
  test("is sent on every call but the public sign-in ones", async () => {
    const { tm, edge } = setUp();

    await tm.signIn("demo", "right");
    await tm.pricing.getQuote({ symbol: "EURUSD", accountId: "acc-1" });

    assert.deepEqual(edge.seenAuthorization, [null, "Bearer access-1"]);
    assert.equal(edge.refreshCalls, 0);
  });

  test("sign-in keeps the tokens with their expiry on the client's clock", async () => {
    const { tm, clock, changes } = setUp();

    const userId = await tm.signIn("demo", "right");

    assert.equal(userId, "user-1");
    assert.deepEqual(tm.session.tokens, {
      accessToken: "access-1",
      refreshToken: "refresh-1",
      accessTokenExpiresAt: clock.now + 15 * MINUTE,
    });
    assert.deepEqual(changes, [tm.session.tokens]);
  });

  test("a wrong password is refused with its reason and starts no session", async () => {
    const { tm } = setUp();

    await assert.rejects(tm.signIn("demo", "wrong"), (error) => {
      assert.equal(detailsOf(error).reason, ErrorReason.INVALID_CREDENTIALS);
      return true;
    });
    assert.equal(tm.session.tokens, undefined);
  });

  test("is not sent when signed out", async () => {
    const { tm, edge } = setUp();

    await assert.rejects(tm.pricing.getQuote({ symbol: "EURUSD" }));

    assert.deepEqual(edge.seenAuthorization, [null]);
  });
});

describe("refresh", () => {
  test("happens before a call once the token has under a minute left, and rotates", async () => {
    const { tm, edge, clock, changes } = await signedIn();
    clock.now += 14 * MINUTE + 1;

    await tm.pricing.getQuote({ symbol: "EURUSD" });

    assert.equal(edge.refreshCalls, 1);
    assert.deepEqual(edge.seenAuthorization, [null, "Bearer access-2"]);
    assert.equal(tm.session.tokens?.refreshToken, "refresh-2");
    assert.equal(tm.session.tokens?.accessTokenExpiresAt, clock.now + 15 * MINUTE);
    assert.equal(changes.length, 2);
  });

  test("does not happen while the token has more than the margin left", async () => {
    const { tm, edge, clock } = await signedIn();
    clock.now += 14 * MINUTE - 1;

    await tm.pricing.getQuote({ symbol: "EURUSD" });

    assert.equal(edge.refreshCalls, 0);
  });

  test("is shared by concurrent calls: one refresh, every call with the new token", async () => {
    const { tm, edge, clock } = await signedIn();
    let open!: () => void;
    edge.gate = new Promise((resolve) => (open = resolve));
    clock.now += 15 * MINUTE;

    const calls = Array.from({ length: 5 }, () => tm.pricing.getQuote({ symbol: "EURUSD" }));
    await new Promise((resolve) => setTimeout(resolve, 10));
    open();
    await Promise.all(calls);

    assert.equal(edge.refreshCalls, 1);
    assert.deepEqual(
      edge.seenAuthorization.filter((h) => h !== null),
      Array(5).fill("Bearer access-2"),
    );
  });

  test("uses each refresh token once: a long session never presents a spent one", async () => {
    const { tm, edge, clock } = await signedIn();

    for (let round = 0; round < 3; round += 1) {
      clock.now += 15 * MINUTE;
      await tm.pricing.getQuote({ symbol: "EURUSD" });
    }

    assert.equal(edge.refreshCalls, 3);
    assert.deepEqual([...edge.spentRefreshTokens], ["refresh-1", "refresh-2", "refresh-3"]);
    assert.equal(tm.session.tokens?.refreshToken, "refresh-4");
  });

  test("refused as reused ends the session and fails the call with that reason", async () => {
    const { tm, edge, clock, changes } = await signedIn();
    edge.spentRefreshTokens.add("refresh-1"); // e.g. another tab refreshed with it
    clock.now += 15 * MINUTE;

    await assert.rejects(tm.pricing.getQuote({ symbol: "EURUSD" }), (error) => {
      assert.equal(detailsOf(error).reason, ErrorReason.REFRESH_TOKEN_REUSED);
      return true;
    });
    assert.equal(tm.session.tokens, undefined);
    assert.equal(changes.at(-1), undefined);
    assert.equal(changes.length, 2);
  });

  test("that fails for a passing reason keeps the session for the next try", async () => {
    const { tm, edge, clock } = await signedIn();
    edge.refreshFailure = new ConnectError("unavailable", Code.Unavailable);
    clock.now += 15 * MINUTE;

    await assert.rejects(tm.pricing.getQuote({ symbol: "EURUSD" }), (error) => {
      assert.equal(detailsOf(error).code, Code.Unavailable);
      return true;
    });
    assert.equal(tm.session.tokens?.refreshToken, "refresh-1");

    edge.refreshFailure = undefined;
    await tm.pricing.getQuote({ symbol: "EURUSD" });
    assert.equal(tm.session.tokens?.refreshToken, "refresh-2");
  });

  test("happens once, and the call is retried, when the edge refuses a token", async () => {
    const { tm, edge } = await signedIn();
    edge.liveAccessTokens.delete("access-1"); // expired at the edge: this client's clock is behind

    const response = await tm.pricing.getQuote({ symbol: "EURUSD" });

    assert.equal(response.quote?.bid, "1.08512");
    assert.equal(edge.refreshCalls, 1);
    assert.deepEqual(edge.seenAuthorization, ["Bearer access-1", null, "Bearer access-2"]);
  });

  test("a second refusal after the retry is the caller's error, with no refresh loop", async () => {
    const { tm, edge } = await signedIn();
    edge.liveAccessTokens.clear();
    const issue = edge.issue.bind(edge);
    edge.issue = () => {
      const tokens = issue();
      edge.liveAccessTokens.delete(tokens.accessToken);
      return tokens;
    };

    await assert.rejects(tm.pricing.getQuote({ symbol: "EURUSD" }), (error) => {
      assert.equal(detailsOf(error).reason, ErrorReason.UNAUTHENTICATED);
      return true;
    });
    assert.equal(edge.refreshCalls, 1);
  });
});

describe("refreshWith: one session shared by two tabs", () => {
  /** Two clients on one edge holding the same tokens, as a duplicated browser tab does, whose
   * refreshes go through `refreshWith` under one lock, sharing what each refresh bought. */
  function twoTabs(share: boolean) {
    const edge = new FakeEdge();
    const clock = { now: 1_000_000 };
    const bought = new Map<string, Tokens>(); // spent refresh token -> the tokens it bought
    let lock: Promise<unknown> = Promise.resolve();
    const refreshWith = (refreshToken: string, refresh: (token: string) => Promise<Tokens>) => {
      const run = lock.then(async () => {
        const known = bought.get(refreshToken);
        if (known !== undefined) return known;
        const tokens = await refresh(refreshToken);
        bought.set(refreshToken, tokens);
        return tokens;
      });
      lock = run.catch(() => undefined);
      return run;
    };
    const tab = () =>
      clientsOver((interceptors) => edge.transport(interceptors), {
        now: () => clock.now,
        ...(share ? { refreshWith } : {}),
      });
    return { edge, clock, first: tab(), second: tab() };
  }

  test("refresh the session once, and both tabs go on with the new tokens", async () => {
    const { edge, clock, first, second } = twoTabs(true);
    await first.signIn("demo", "right");
    second.session.set(first.session.tokens!);
    clock.now += 16 * MINUTE;

    await Promise.all([
      first.pricing.getQuote({ symbol: "EURUSD", accountId: "acc-1" }),
      second.pricing.getQuote({ symbol: "EURUSD", accountId: "acc-1" }),
    ]);

    assert.equal(edge.refreshCalls, 1);
    assert.deepEqual(second.session.tokens, first.session.tokens);
    assert.equal(first.session.tokens?.refreshToken, "refresh-2");
  });

  test("without it, the second tab presents a spent refresh token and its session ends", async () => {
    const { edge, clock, first, second } = twoTabs(false);
    await first.signIn("demo", "right");
    second.session.set(first.session.tokens!);
    clock.now += 16 * MINUTE;

    await first.pricing.getQuote({ symbol: "EURUSD", accountId: "acc-1" });
    await assert.rejects(second.pricing.getQuote({ symbol: "EURUSD", accountId: "acc-1" }));

    assert.equal(edge.refreshCalls, 2);
    assert.equal(second.session.tokens, undefined);
  });
});

describe("sign-out", () => {
  test("ends the session locally even when the Logout call fails", async () => {
    const { tm, changes } = await signedIn();

    await assert.rejects(tm.signOut());

    assert.equal(tm.session.tokens, undefined);
    assert.equal(changes.at(-1), undefined);
  });

  test("during a refresh drops what the refresh returns", async () => {
    const { tm, edge, clock } = await signedIn();
    let open!: () => void;
    edge.gate = new Promise((resolve) => (open = resolve));
    clock.now += 15 * MINUTE;

    const refreshing = tm.session.refresh();
    await new Promise((resolve) => setTimeout(resolve, 10));
    tm.session.clear();
    open();
    await refreshing;

    assert.equal(tm.session.tokens, undefined);
  });
});

describe("Session", () => {
  test("refuses to refresh when signed out", async () => {
    const session = new Session({ refresh: () => assert.fail("no refresh without tokens") });

    await assert.rejects(session.refresh(), (error) => {
      assert.equal(detailsOf(error).code, Code.Unauthenticated);
      return true;
    });
    assert.equal(await session.accessToken(), undefined);
  });

  test("resumes from stored tokens", async () => {
    const stored = { accessToken: "a", refreshToken: "r", accessTokenExpiresAt: 10 * MINUTE };
    const session = new Session({
      refresh: () => assert.fail("not due"),
      tokens: stored,
      now: () => 0,
    });

    assert.equal(await session.accessToken(), "a");
  });
});
