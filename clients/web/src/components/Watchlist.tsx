import type { KeyboardEvent } from "react";

import type { Instrument } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";

import { DASH, arrow, priceText, spreadText } from "../lib/format.js";
import type { Quotes } from "../types.js";

export function Watchlist({
  instruments,
  quotes,
  selected,
  onSelect,
}: {
  instruments: readonly Instrument[];
  quotes: Quotes;
  selected: string | undefined;
  onSelect: (symbol: string) => void;
}) {
  function onKey(event: KeyboardEvent<HTMLTableRowElement>, symbol: string): void {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect(symbol);
    }
  }
  return (
    <div className="table-scroll">
      <table className="grid-table watchlist" aria-label="Watchlist">
        <thead>
          <tr>
            <th scope="col">Symbol</th>
            <th scope="col" className="num">Bid</th>
            <th scope="col" className="num">Ask</th>
            <th scope="col" className="num">Spread</th>
          </tr>
        </thead>
        <tbody>
          {instruments.map((instrument) => {
            const symbol = instrument.symbol;
            const quote = quotes.get(symbol);
            const isSelected = symbol === selected;
            return (
              <tr
                key={symbol}
                className={`${isSelected ? "selected" : ""} ${quote?.stale ? "stale" : ""}`}
                tabIndex={0}
                aria-current={isSelected ? "true" : undefined}
                onClick={() => onSelect(symbol)}
                onKeyDown={(e) => onKey(e, symbol)}
              >
                <th scope="row">
                  <span className="symbol">{symbol}</span>
                  <span className="desc">{instrument.description}</span>
                </th>
                <td className={`num price ${quote?.bidDirection ?? ""}`}>
                  <span data-testid={`bid-${symbol}`}>
                    {quote === undefined ? DASH : priceText(quote.bidUnits, quote.scale)}
                  </span>
                  <span className="arrow" aria-hidden="true">
                    {quote === undefined ? "" : arrow(quote.bidDirection)}
                  </span>
                  {quote !== undefined && quote.bidDirection !== "flat" && (
                    <span className="sr-only">{quote.bidDirection === "up" ? " rising" : " falling"}</span>
                  )}
                </td>
                <td className={`num price ${quote?.askDirection ?? ""}`}>
                  <span data-testid={`ask-${symbol}`}>
                    {quote === undefined ? DASH : priceText(quote.askUnits, quote.scale)}
                  </span>
                  <span className="arrow" aria-hidden="true">
                    {quote === undefined ? "" : arrow(quote.askDirection)}
                  </span>
                  {quote !== undefined && quote.askDirection !== "flat" && (
                    <span className="sr-only">{quote.askDirection === "up" ? " rising" : " falling"}</span>
                  )}
                </td>
                <td className="num muted">
                  {quote === undefined ? DASH : spreadText(quote.bidUnits, quote.askUnits, quote.scale)}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
