// Two tabs holding one session refresh it once (src/lib/sharedRefresh.ts), with an in-memory
// lock, channel and ledger in place of Web Locks, a BroadcastChannel and IndexedDB.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { Tokens } from "@tradingmesh/sdk";

import {
  sharedRefresh,
  type Refreshed,
  type TabChannel,
  type TabLedger,
  type TabLock,
} from "../src/lib/sharedRefresh.js";

/** The channel delivers `lateMs` after a post (the browser orders it with nothing else). */
function browser({ lateMs = 0 }: { lateMs?: number } = {}) {
  let held: Promise<unknown> = Promise.resolve();
  const lock: TabLock = (work) => {
    const run = held.then(work);
    held = run.catch(() => undefined);
    return run;
  };
  const tabs: ((message: Refreshed) => void)[] = [];
  const channel = (): TabChannel => {
    let mine: ((message: Refreshed) => void) | undefined;
    return {
      post: (message) =>
        tabs
          .filter((t) => t !== mine)
          .forEach((t) => (lateMs === 0 ? t(message) : setTimeout(() => t(message), lateMs))),
      listen: (listener) => {
        mine = listener;
        tabs.push(listener);
      },
    };
  };
  const recorded = new Map<string, Tokens>();
  const ledger: TabLedger = {
    get: async (refreshToken) => recorded.get(refreshToken),
    put: async ({ spent, tokens }) => void recorded.set(spent, tokens),
  };
  const spent: string[] = [];
  const server = async (refreshToken: string): Promise<Tokens> => {
    spent.push(refreshToken);
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { accessToken: `a-${spent.length}`, refreshToken: `r-${spent.length}`, accessTokenExpiresAt: 0 };
  };
  return { lock, channel, ledger, spent, server };
}

describe("a session shared by two tabs", () => {
  test("is refreshed once when both find it due together", async () => {
    const { lock, channel, ledger, spent, server } = browser();
    const adopted: Refreshed[] = [];
    const first = sharedRefresh(lock, channel(), ledger, (m) => adopted.push(m));
    const second = sharedRefresh(lock, channel(), ledger, (m) => adopted.push(m));

    const [a, b] = await Promise.all([first("r-0", server), second("r-0", server)]);

    assert.deepEqual(spent, ["r-0"]);
    assert.deepEqual(a, b);
    assert.deepEqual(adopted, [{ spent: "r-0", tokens: a }]); // the other tab heard of it
  });

  test("a tab that refreshes later with a token another tab spent gets that tab's tokens", async () => {
    const { lock, channel, ledger, spent, server } = browser();
    const first = sharedRefresh(lock, channel(), ledger, () => undefined);
    const second = sharedRefresh(lock, channel(), ledger, () => undefined);

    const bought = await first("r-0", server);
    const later = await second("r-0", server);

    assert.deepEqual(later, bought);
    assert.deepEqual(spent, ["r-0"]);
    assert.deepEqual(await second(bought.refreshToken, server), {
      accessToken: "a-2",
      refreshToken: "r-2",
      accessTokenExpiresAt: 0,
    });
  });

  test("a tab given the lock before the other tab's message reaches it does not spend the token again", async () => {
    // Spending it again would end the session: the server revokes it on reuse.
    const { lock, channel, ledger, spent, server } = browser({ lateMs: 50 });
    const adopted: Refreshed[] = [];
    const first = sharedRefresh(lock, channel(), ledger, (m) => adopted.push(m));
    const second = sharedRefresh(lock, channel(), ledger, (m) => adopted.push(m));

    const [a, b] = await Promise.all([first("r-0", server), second("r-0", server)]);

    assert.deepEqual(spent, ["r-0"]);
    assert.deepEqual(a, b);
    await new Promise((resolve) => setTimeout(resolve, 60)); // the message still arrives
    assert.deepEqual(adopted, [{ spent: "r-0", tokens: a }]);
  });

  test("without storage the tabs still refresh, over the channel alone", async () => {
    const { lock, channel, spent, server } = browser();
    const broken: TabLedger = {
      get: () => Promise.reject(new Error("no IndexedDB")),
      put: () => Promise.reject(new Error("no IndexedDB")),
    };
    const first = sharedRefresh(lock, channel(), broken, () => undefined);
    const second = sharedRefresh(lock, channel(), broken, () => undefined);

    const [a, b] = await Promise.all([first("r-0", server), second("r-0", server)]);

    assert.deepEqual(spent, ["r-0"]);
    assert.deepEqual(a, b);
  });
});
