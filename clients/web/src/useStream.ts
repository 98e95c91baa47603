/**
 * A server stream that reconnects: opens it, hands every message to `onMessage`, and when it
 * fails or ends, waits with exponential back-off (capped at 10 s) and opens it again, telling
 * the connection indicator what it is doing.
 */

import { useEffect, useRef, type DependencyList } from "react";

import { setConnection } from "./connection.js";
import { backoffDelay } from "./lib/backoff.js";

/** How long an open stream without a message counts as live (some streams are quiet). */
const LIVE_AFTER_MS = 1500;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export function useStream<T>(
  key: string,
  enabled: boolean,
  open: (signal: AbortSignal) => AsyncIterable<T>,
  onMessage: (message: T) => void,
  deps: DependencyList,
  onError?: (error: unknown) => void,
): void {
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const errorHandler = useRef(onError);
  errorHandler.current = onError;
  const opener = useRef(open);
  opener.current = open;

  useEffect(() => {
    if (!enabled) return undefined;
    const controller = new AbortController();
    const { signal } = controller;
    let attempt = 0;

    void (async () => {
      while (!signal.aborted) {
        setConnection(key, { kind: "connecting" });
        const liveTimer = setTimeout(() => {
          if (!signal.aborted) setConnection(key, { kind: "live" });
        }, LIVE_AFTER_MS);
        let gotMessage = false;
        try {
          for await (const message of opener.current(signal)) {
            if (signal.aborted) break;
            if (!gotMessage) {
              gotMessage = true;
              attempt = 0;
              clearTimeout(liveTimer);
              setConnection(key, { kind: "live" });
            }
            handler.current(message);
          }
        } catch (error) {
          // Reconnect after a delay (below); the caller may adjust what it reopens.
          if (!signal.aborted) errorHandler.current?.(error);
        } finally {
          clearTimeout(liveTimer);
        }
        if (signal.aborted) break;
        const delay = backoffDelay(attempt, Math.random());
        attempt += 1;
        setConnection(key, { kind: "retrying", retryAt: Date.now() + delay, attempt });
        await sleep(delay, signal);
      }
    })();

    return () => {
      controller.abort();
      setConnection(key, undefined);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [enabled, key, ...deps]);
}

/** Runs `tick` now and every `ms` while enabled (polling the server's figures). */
export function usePoll(enabled: boolean, ms: number, tick: () => void, deps: DependencyList): void {
  const ref = useRef(tick);
  ref.current = tick;
  useEffect(() => {
    if (!enabled) return undefined;
    ref.current();
    const timer = setInterval(() => ref.current(), ms);
    return () => clearInterval(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [enabled, ms, ...deps]);
}
