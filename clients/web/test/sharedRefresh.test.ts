// Two tabs holding one session refresh it once (src/lib/sharedRefresh.ts), with an in-memory
// lock and channel in place of Web Locks and a BroadcastChannel.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import type { Tokens } from "@tradingmesh/sdk";

import { sharedRefresh, type Refreshed, type TabChannel, type TabLock } from "../src/lib/sharedRefresh.js";

function browser() {
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
      post: (message) => tabs.filter((t) => t !== mine).forEach((t) => t(message)),
      listen: (listener) => {
        mine = listener;
        tabs.push(listener);
      },
    };
  };
  const spent: string[] = [];
  const server = async (refreshToken: string): Promise<Tokens> => {
    spent.push(refreshToken);
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { accessToken: `a-${spent.length}`, refreshToken: `r-${spent.length}`, accessTokenExpiresAt: 0 };
  };
  return { lock, channel, spent, server };
}

describe("a session shared by two tabs", () => {
  test("is refreshed once when both find it due together", async () => {
    const { lock, channel, spent, server } = browser();
    const adopted: Refreshed[] = [];
    const first = sharedRefresh(lock, channel(), (m) => adopted.push(m));
    const second = sharedRefresh(lock, channel(), (m) => adopted.push(m));

    const [a, b] = await Promise.all([first("r-0", server), second("r-0", server)]);

    assert.deepEqual(spent, ["r-0"]);
    assert.deepEqual(a, b);
    assert.deepEqual(adopted, [{ spent: "r-0", tokens: a }]); // the other tab heard of it
  });

  test("a tab that refreshes later with a token another tab spent gets that tab's tokens", async () => {
    const { lock, channel, spent, server } = browser();
    const first = sharedRefresh(lock, channel(), () => undefined);
    const second = sharedRefresh(lock, channel(), () => undefined);

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
});
