import { useState, type FormEvent, type KeyboardEvent, type MutableRefObject } from "react";

import { ErrorReason } from "@tradingmesh/sdk";
import { Side } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/types_pb";
import { OrderStatus, OrderType } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/trading_pb";
import type { Order, Position, Trade } from "@tradingmesh/sdk/gen/tradingmesh/oms/v1/oms_pb";
import type { Instrument } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";

import { newClientOrderId, tm } from "../api.js";
import { DASH, decimalText, moneyText, priceText, signClass } from "../lib/format.js";
import { orderReasonText, userError } from "../lib/reasons.js";
import type { Quotes } from "../types.js";
import { DecimalInput, SaveOrDiscard } from "./DecimalInput.js";
import { TradeTable, sideText } from "./TradeTable.js";

const typeText = (type: OrderType) =>
  ({ [OrderType.MARKET]: "Market", [OrderType.LIMIT]: "Limit", [OrderType.STOP]: "Stop", [OrderType.STOP_LIMIT]: "Stop limit" })[
    type as 1 | 2 | 3 | 4
  ] ?? DASH;
const shortId = (id: string) => id.slice(0, 8);

interface Props {
  accountId: string;
  instruments: readonly Instrument[];
  orders: readonly Order[];
  positions: readonly Position[];
  trades: readonly Trade[];
  quotesRef: MutableRefObject<Quotes>;
  onChanged: () => void;
}

type Tab = "positions" | "orders" | "trades";

export function Blotters(props: Props) {
  const [tab, setTab] = useState<Tab>("positions");
  const [message, setMessage] = useState<{ text: string; error: boolean } | undefined>(undefined);
  const tabs: [Tab, string, number][] = [
    ["positions", "Positions", props.positions.length],
    ["orders", "Working orders", props.orders.length],
    ["trades", "Trades", props.trades.length],
  ];
  const report = (text: string, error = false) => setMessage({ text, error });
  // Arrow keys move between the tabs (the WAI-ARIA tabs pattern); Tab moves into the panel.
  function onTabKey(event: KeyboardEvent<HTMLDivElement>): void {
    const index = tabs.findIndex(([id]) => id === tab);
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (step === 0) return;
    event.preventDefault();
    const next = tabs[(index + step + tabs.length) % tabs.length];
    if (next === undefined) return;
    setTab(next[0]);
    document.getElementById(`tab-${next[0]}`)?.focus();
  }
  return (
    <div className="blotters">
      <div className="tabs" role="tablist" aria-label="Blotters" onKeyDown={onTabKey}>
        {tabs.map(([id, label, count]) => (
          <button
            key={id}
            type="button"
            role="tab"
            id={`tab-${id}`}
            aria-selected={tab === id}
            tabIndex={tab === id ? 0 : -1}
            aria-controls={`tabpanel-${id}`}
            className={tab === id ? "on" : ""}
            onClick={() => setTab(id)}
          >
            {label} <span className="count">{count}</span>
          </button>
        ))}
      </div>
      {message !== undefined && (
        <p className={message.error ? "error" : "info"} role={message.error ? "alert" : "status"}>
          {message.text}
        </p>
      )}
      <div role="tabpanel" id="tabpanel-positions" aria-labelledby="tab-positions" hidden={tab !== "positions"}>
        <Positions {...props} report={report} />
      </div>
      <div role="tabpanel" id="tabpanel-orders" aria-labelledby="tab-orders" hidden={tab !== "orders"}>
        <WorkingOrders {...props} report={report} />
      </div>
      <div role="tabpanel" id="tabpanel-trades" aria-labelledby="tab-trades" hidden={tab !== "trades"}>
        <TradeTable label="Trades" trades={props.trades} idOf={(t) => t.id} empty="No trades yet" />
      </div>
    </div>
  );
}

type Report = (text: string, error?: boolean) => void;

function WorkingOrders({ accountId, orders, onChanged, report }: Props & { report: Report }) {
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const [price, setPrice] = useState("");
  const [quantity, setQuantity] = useState("");
  const [fields, setFields] = useState<Readonly<Record<string, string>>>({});

  function startAmend(order: Order): void {
    setEditing(order.id);
    setPrice(order.type === OrderType.STOP ? order.stopPrice : order.price);
    setQuantity(order.remainingQuantity || order.quantity);
    setFields({});
  }

  async function amend(event: FormEvent, order: Order): Promise<void> {
    event.preventDefault();
    const priceField = order.type === OrderType.STOP ? "stopPrice" : "price";
    try {
      const { order: amended } = await tm.orders.amendOrder({
        accountId,
        orderId: order.id,
        ...(price.trim() !== "" && price.trim() !== (order.type === OrderType.STOP ? order.stopPrice : order.price)
          ? { [priceField]: price.trim() }
          : {}),
        ...(quantity.trim() !== "" && quantity.trim() !== (order.remainingQuantity || order.quantity)
          ? { quantity: quantity.trim() }
          : {}),
        expectedVersion: order.version,
      });
      setEditing(undefined);
      report(
        amended?.status === OrderStatus.REJECTED
          ? `Amend rejected: ${orderReasonText(amended.statusReason)}`
          : `Order ${shortId(order.id)} amended.`,
        amended?.status === OrderStatus.REJECTED,
      );
      onChanged();
    } catch (e) {
      const failure = userError(e);
      setFields(failure.fields);
      report(failure.message, true);
    }
  }

  async function cancel(order: Order): Promise<void> {
    try {
      await tm.orders.cancelOrder({ accountId, orderId: order.id });
      report(`Order ${shortId(order.id)} cancelled.`);
      onChanged();
    } catch (e) {
      report(userError(e).message, true);
    }
  }

  return (
    <div className="table-scroll">
      <table className="grid-table" aria-label="Working orders">
        <thead>
          <tr>
            <th scope="col">Order</th>
            <th scope="col">Symbol</th>
            <th scope="col">Side</th>
            <th scope="col">Type</th>
            <th scope="col" className="num">Quantity</th>
            <th scope="col" className="num">Price</th>
            <th scope="col" className="num">Stop</th>
            <th scope="col">TIF</th>
            <th scope="col">Status</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {orders.length === 0 && (
            <tr>
              <td colSpan={10} className="empty">No working orders</td>
            </tr>
          )}
          {orders.map((order) => (
            <tr key={order.id} data-order-id={order.id}>
              <th scope="row" className="mono">{shortId(order.id)}</th>
              <td>{order.symbol}</td>
              <td className={order.side === Side.BUY ? "buy" : "sell"}>{sideText(order.side)}</td>
              <td>{typeText(order.type)}</td>
              <td className="num" data-testid={`qty-${order.id}`}>{decimalText(order.remainingQuantity || order.quantity)}</td>
              <td className="num" data-testid={`price-${order.id}`}>{decimalText(order.price)}</td>
              <td className="num" data-testid={`stop-${order.id}`}>{decimalText(order.stopPrice)}</td>
              <td>{["", "GTC", "IOC", "FOK", "DAY"][order.timeInForce] ?? DASH}</td>
              <td>{OrderStatus[order.status]}</td>
              <td className="actions">
                {editing === order.id ? (
                  <form className="inline-edit" onSubmit={(e) => void amend(e, order)} aria-label={`Amend order ${shortId(order.id)}`}>
                    <DecimalInput
                      label="New price"
                      value={price}
                      onChange={setPrice}
                      error={fields["price"] ?? fields["stop_price"]}
                    />
                    <DecimalInput label="New quantity" value={quantity} onChange={setQuantity} error={fields["quantity"]} />
                    <SaveOrDiscard onDiscard={() => setEditing(undefined)} />
                  </form>
                ) : (
                  <>
                    <button type="button" className="small" onClick={() => startAmend(order)}>Amend</button>
                    <button type="button" className="small danger" onClick={() => void cancel(order)}>Cancel</button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Positions({ accountId, positions, quotesRef, onChanged, report }: Props & { report: Report }) {
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const [stopLoss, setStopLoss] = useState("");
  const [takeProfit, setTakeProfit] = useState("");
  const [fields, setFields] = useState<Readonly<Record<string, string>>>({});

  function startModify(position: Position): void {
    setEditing(position.id);
    setStopLoss(position.stopLoss);
    setTakeProfit(position.takeProfit);
    setFields({});
  }

  async function modify(event: FormEvent, position: Position): Promise<void> {
    event.preventDefault();
    const sl = stopLoss.trim();
    const tp = takeProfit.trim();
    try {
      await tm.positions.modifyPosition({
        accountId,
        positionId: position.id,
        ...(sl === "" ? { clearStopLoss: position.stopLoss !== "" } : { stopLoss: sl }),
        ...(tp === "" ? { clearTakeProfit: position.takeProfit !== "" } : { takeProfit: tp }),
        expectedVersion: position.version,
      });
      setEditing(undefined);
      report(`Position ${shortId(position.id)} modified.`);
      onChanged();
    } catch (e) {
      const failure = userError(e);
      setFields(failure.fields);
      report(failure.message, true);
    }
  }

  async function close(position: Position): Promise<void> {
    const live = quotesRef.current.get(position.symbol);
    // Closing a buy sells at the bid; closing a sell buys at the ask.
    const seen =
      live === undefined
        ? undefined
        : priceText(position.side === Side.BUY ? live.bidUnits : live.askUnits, live.scale);
    try {
      const { order } = await tm.positions.closePosition({
        accountId,
        positionId: position.id,
        clientOrderId: newClientOrderId(),
        ...(seen === undefined ? {} : { requestedPrice: seen }),
      });
      if (order?.status === OrderStatus.REJECTED) {
        if (order.statusReason === ErrorReason.REQUOTE && order.requotePrice !== "") {
          report(`Requote: the price moved to ${order.requotePrice}. Press Close again to close at the live price.`, true);
          onChanged();
          return;
        }
        report(`Close rejected: ${orderReasonText(order.statusReason) || order.statusMessage}`, true);
      } else {
        report(`Position ${shortId(position.id)} closed (${order === undefined ? "" : OrderStatus[order.status]}).`);
      }
      onChanged();
    } catch (e) {
      report(userError(e).message, true);
    }
  }

  return (
    <div className="table-scroll">
      <table className="grid-table" aria-label="Positions">
        <thead>
          <tr>
            <th scope="col">Position</th>
            <th scope="col">Symbol</th>
            <th scope="col">Side</th>
            <th scope="col" className="num">Quantity</th>
            <th scope="col" className="num">Open price</th>
            <th scope="col" className="num">Current</th>
            <th scope="col" className="num">Stop loss</th>
            <th scope="col" className="num">Take profit</th>
            <th scope="col" className="num">Swap</th>
            <th scope="col" className="num">P&amp;L</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {positions.length === 0 && (
            <tr>
              <td colSpan={11} className="empty">No open positions</td>
            </tr>
          )}
          {positions.map((position) => (
            <tr key={position.id} data-position-id={position.id}>
              <th scope="row" className="mono">{shortId(position.id)}</th>
              <td>{position.symbol}</td>
              <td className={position.side === Side.BUY ? "buy" : "sell"}>{sideText(position.side)}</td>
              <td className="num">{decimalText(position.quantity)}</td>
              <td className="num">{decimalText(position.openPrice)}</td>
              <td className="num">{decimalText(position.currentPrice)}</td>
              <td className="num">{decimalText(position.stopLoss)}</td>
              <td className="num">{decimalText(position.takeProfit)}</td>
              <td className="num">{moneyText(position.swap)}</td>
              <td className={`num pnl ${signClass(position.unrealizedPnl)}`} data-testid={`pnl-${position.id}`}>
                {moneyText(position.unrealizedPnl)}
              </td>
              <td className="actions">
                {editing === position.id ? (
                  <form className="inline-edit" onSubmit={(e) => void modify(e, position)} aria-label={`Modify position ${shortId(position.id)}`}>
                    <DecimalInput
                      label="New stop loss"
                      placeholder="SL"
                      value={stopLoss}
                      onChange={setStopLoss}
                      error={fields["stop_loss"]}
                    />
                    <DecimalInput
                      label="New take profit"
                      placeholder="TP"
                      value={takeProfit}
                      onChange={setTakeProfit}
                      error={fields["take_profit"]}
                    />
                    <SaveOrDiscard onDiscard={() => setEditing(undefined)} />
                  </form>
                ) : (
                  <>
                    <button type="button" className="small" onClick={() => startModify(position)}>Modify</button>
                    <button type="button" className="small danger" onClick={() => void close(position)}>Close</button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
