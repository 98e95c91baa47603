import assert from "node:assert/strict";
import { test } from "node:test";

import { BACKOFF_CAP_MS, backoffDelay, connectionText, worstState } from "../src/lib/backoff.js";

test("back-off doubles and is capped at 10 s", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 10, 100].map((a) => backoffDelay(a)),
    [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000],
  );
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const exp = backoffDelay(attempt);
    for (const r of [0, 0.3, 0.999]) {
      const d = backoffDelay(attempt, r);
      assert.ok(d >= exp / 2 && d <= exp && d <= BACKOFF_CAP_MS, `${attempt} ${r} ${d}`);
    }
  }
});

test("the indicator says what the streams do", () => {
  assert.equal(connectionText({ kind: "live" }, 0), "Live");
  assert.equal(connectionText({ kind: "retrying", retryAt: 4200, attempt: 3 }, 1000), "Reconnecting in 4 s…");
  assert.equal(connectionText({ kind: "retrying", retryAt: 1000, attempt: 3 }, 1000), "Reconnecting in 1 s…");
  assert.deepEqual(worstState([{ kind: "live" }, { kind: "live" }]), { kind: "live" });
  assert.deepEqual(worstState([{ kind: "live" }, { kind: "connecting" }]), { kind: "connecting" });
  assert.deepEqual(
    worstState([{ kind: "live" }, { kind: "retrying", retryAt: 5, attempt: 1 }, { kind: "retrying", retryAt: 9, attempt: 2 }]),
    { kind: "retrying", retryAt: 9, attempt: 2 },
  );
  assert.deepEqual(worstState([]), { kind: "idle" });
});
