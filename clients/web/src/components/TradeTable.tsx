import { Side } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/types_pb";

import { DASH, decimalText, moneyText, signClass, timeText } from "../lib/format.js";

/** What a row shows: the OMS's trades and reporting's trade history both have it. */
export type TradeRow = {
  readonly fillTime?: { seconds: bigint; nanos: number } | undefined;
  readonly symbol: string;
  readonly side: Side;
  readonly quantity: string;
  readonly price: string;
  readonly commission: string;
  readonly realizedPnl: string;
};

export const sideText = (side: Side) => (side === Side.BUY ? "Buy" : side === Side.SELL ? "Sell" : DASH);

/** A table of trades (fills): the blotter's recent ones and the history of a date range. */
export function TradeTable<T extends TradeRow>({
  label,
  trades,
  idOf,
  empty,
}: {
  label: string;
  trades: readonly T[];
  idOf: (trade: T) => string;
  empty: string;
}) {
  return (
    <div className="table-scroll">
      <table className="grid-table" aria-label={label}>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Symbol</th>
            <th scope="col">Side</th>
            <th scope="col" className="num">Quantity</th>
            <th scope="col" className="num">Price</th>
            <th scope="col" className="num">Commission</th>
            <th scope="col" className="num">Realized P&amp;L</th>
          </tr>
        </thead>
        <tbody>
          {trades.length === 0 && (
            <tr>
              <td colSpan={7} className="empty">{empty}</td>
            </tr>
          )}
          {trades.map((trade) => (
            <tr key={idOf(trade)} data-trade-id={idOf(trade)}>
              <th scope="row">{timeText(trade.fillTime)}</th>
              <td>{trade.symbol}</td>
              <td className={trade.side === Side.BUY ? "buy" : "sell"}>{sideText(trade.side)}</td>
              <td className="num">{decimalText(trade.quantity)}</td>
              <td className="num">{decimalText(trade.price)}</td>
              <td className="num">{moneyText(trade.commission)}</td>
              <td className={`num ${signClass(trade.realizedPnl)}`}>{moneyText(trade.realizedPnl)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
