/** The open candle's live update from quotes, in integer price units (exact). */

export interface Bar {
  readonly time: number;
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
}

/**
 * The bar to show after a tick at `timeSec` with price `units`: the last bar widened and
 * closed at the price if the tick falls in it, a new bar if it starts a later period, or
 * undefined for a tick older than the last bar (the chart cannot go back).
 */
export function nextBar(last: Bar | undefined, units: number, timeSec: number, periodSec: number): Bar | undefined {
  const start = Math.floor(timeSec / periodSec) * periodSec;
  if (last === undefined || start > last.time) {
    return { time: start, open: units, high: units, low: units, close: units };
  }
  if (start < last.time) return undefined;
  return {
    time: last.time,
    open: last.open,
    high: Math.max(last.high, units),
    low: Math.min(last.low, units),
    close: units,
  };
}
