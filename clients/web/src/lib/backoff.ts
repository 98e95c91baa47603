/** Reconnect delays for the streams: exponential with full jitter's upper bound, capped. */

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10_000;

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): base × 2^attempt,
 * capped at `cap`; with `random` (0 ≤ r < 1) it is jittered down to between half and all of it.
 */
export function backoffDelay(
  attempt: number,
  random?: number,
  base: number = BACKOFF_BASE_MS,
  cap: number = BACKOFF_CAP_MS,
): number {
  const exp = Math.min(cap, base * 2 ** Math.max(0, Math.min(attempt, 30)));
  if (random === undefined) return exp;
  return Math.round(exp / 2 + (exp / 2) * random);
}

/** The connection indicator's text for a stream's state. */
export function connectionText(state: ConnectionState, now: number): string {
  switch (state.kind) {
    case "connecting":
      return "Connecting…";
    case "live":
      return "Live";
    case "retrying":
      return `Reconnecting in ${Math.max(1, Math.ceil((state.retryAt - now) / 1000))} s…`;
    case "idle":
      return "Offline";
  }
}

export type ConnectionState =
  | { kind: "idle" }
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "retrying"; retryAt: number; attempt: number };

/** The worst of several streams' states (what the one indicator shows). */
export function worstState(states: readonly ConnectionState[]): ConnectionState {
  const retrying = states.filter((s) => s.kind === "retrying");
  if (retrying.length > 0) {
    return retrying.reduce((a, b) =>
      a.kind === "retrying" && b.kind === "retrying" && b.retryAt > a.retryAt ? b : a,
    );
  }
  if (states.some((s) => s.kind === "connecting")) return { kind: "connecting" };
  if (states.length > 0 && states.every((s) => s.kind === "live")) return { kind: "live" };
  return { kind: "idle" };
}
