/** The streams' connection states, for the one indicator in the header. */

import { useSyncExternalStore } from "react";

import { worstState, type ConnectionState } from "./lib/backoff.js";

const states = new Map<string, ConnectionState>();
const listeners = new Set<() => void>();
let snapshot: ConnectionState = { kind: "idle" };

function publish(): void {
  snapshot = worstState([...states.values()]);
  for (const listener of listeners) listener();
}

export function setConnection(key: string, state: ConnectionState | undefined): void {
  if (state === undefined) states.delete(key);
  else states.set(key, state);
  publish();
}

export function useConnection(): ConnectionState {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => snapshot,
  );
}
