/** What the terminal keeps of a symbol's live quote. */
export interface QuoteView {
  readonly bidUnits: bigint;
  readonly askUnits: bigint;
  readonly scale: number;
  readonly bidDirection: "up" | "down" | "flat";
  readonly askDirection: "up" | "down" | "flat";
  readonly timeMs: number;
  readonly stale: boolean;
}

export type Quotes = ReadonlyMap<string, QuoteView>;
