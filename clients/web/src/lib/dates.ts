/** Date-range helpers for the history form (local calendar days). */

/** "YYYY-MM-DD" of a date in local time. */
export function isoDay(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * The [start, end) of local days `from` .. `to` inclusive, in epoch seconds: the end is the
 * midnight after `to`.
 */
export function dayRange(from: string, to: string): { start: bigint; end: bigint } {
  const [fy = 1970, fm = 1, fd = 1] = from.split("-").map((p) => Number.parseInt(p, 10));
  const [ty = 1970, tm = 1, td = 1] = to.split("-").map((p) => Number.parseInt(p, 10));
  const start = new Date(fy, fm - 1, fd).getTime() / 1000;
  const end = new Date(ty, tm - 1, td + 1).getTime() / 1000;
  return { start: BigInt(Math.floor(start)), end: BigInt(Math.floor(end)) };
}
