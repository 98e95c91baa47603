import { useEffect, useState, type FormEvent, type MutableRefObject } from "react";

import { Side } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/types_pb";
import { OrderType, TimeInForce } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/trading_pb";
import type { Instrument } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";

import { newClientOrderId, tm } from "../api.js";
import { DASH, cleanDecimalInput, priceText } from "../lib/format.js";
import { describeOrder, type Outcome } from "../lib/orders.js";
import { DecimalField } from "./DecimalInput.js";
import { userError } from "../lib/reasons.js";
import type { QuoteView, Quotes } from "../types.js";

const TYPES: [OrderType, string][] = [
  [OrderType.MARKET, "Market"],
  [OrderType.LIMIT, "Limit"],
  [OrderType.STOP, "Stop"],
  [OrderType.STOP_LIMIT, "Stop limit"],
];

/** The times in force each order type accepts (the contract's rules). */
const TIFS: Record<number, TimeInForce[]> = {
  [OrderType.MARKET]: [TimeInForce.IOC, TimeInForce.FOK],
  [OrderType.LIMIT]: [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY],
  [OrderType.STOP]: [TimeInForce.GTC, TimeInForce.DAY],
  [OrderType.STOP_LIMIT]: [TimeInForce.GTC, TimeInForce.DAY],
};

const needsPrice = (t: OrderType) => t === OrderType.LIMIT || t === OrderType.STOP_LIMIT;
const needsStop = (t: OrderType) => t === OrderType.STOP || t === OrderType.STOP_LIMIT;

export function OrderTicket({
  accountId,
  instruments,
  symbol,
  onSymbol,
  quote,
  quotesRef,
  onPlaced,
}: {
  accountId: string;
  instruments: readonly Instrument[];
  symbol: string | undefined;
  onSymbol: (symbol: string) => void;
  quote: QuoteView | undefined;
  quotesRef: MutableRefObject<Quotes>;
  onPlaced: () => void;
}) {
  const instrument = instruments.find((i) => i.symbol === symbol);
  const [side, setSide] = useState<Side>(Side.BUY);
  const [type, setType] = useState<OrderType>(OrderType.MARKET);
  const [quantity, setQuantity] = useState("");
  const [price, setPrice] = useState("");
  const [stopPrice, setStopPrice] = useState("");
  const [tif, setTif] = useState<TimeInForce>(TimeInForce.IOC);
  const [stopLoss, setStopLoss] = useState("");
  const [takeProfit, setTakeProfit] = useState("");
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | undefined>(undefined);
  const [fields, setFields] = useState<Readonly<Record<string, string>>>({});

  useEffect(() => {
    if (instrument !== undefined) setQuantity(instrument.minLot);
  }, [instrument?.symbol]); // eslint-disable-line react-hooks/exhaustive-deps

  function changeType(next: OrderType): void {
    setType(next);
    const allowed = TIFS[next] ?? [];
    if (!allowed.includes(tif)) setTif(allowed[0] ?? TimeInForce.GTC);
  }

  async function place(requestedOverride?: string): Promise<void> {
    if (symbol === undefined) return;
    setBusy(true);
    setFields({});
    const live = quotesRef.current.get(symbol);
    // Instant execution: the price the client saw (ask to buy, bid to sell), or an accepted requote.
    const seen =
      requestedOverride ??
      (live === undefined
        ? undefined
        : priceText(side === Side.BUY ? live.askUnits : live.bidUnits, live.scale));
    try {
      const { order } = await tm.orders.placeOrder({
        accountId,
        clientOrderId: newClientOrderId(),
        symbol,
        side,
        type,
        timeInForce: tif,
        quantity: cleanDecimalInput(quantity),
        ...(needsPrice(type) ? { price: cleanDecimalInput(price) } : {}),
        ...(needsStop(type) ? { stopPrice: cleanDecimalInput(stopPrice) } : {}),
        ...(type === OrderType.MARKET && seen !== undefined ? { requestedPrice: seen } : {}),
        ...(stopLoss.trim() !== "" ? { stopLoss: cleanDecimalInput(stopLoss) } : {}),
        ...(takeProfit.trim() !== "" ? { takeProfit: cleanDecimalInput(takeProfit) } : {}),
      });
      setOutcome(order === undefined ? { kind: "error", text: "No order returned." } : describeOrder(order));
      onPlaced();
    } catch (e) {
      const failure = userError(e);
      setFields(failure.fields);
      setOutcome({ kind: "error", text: failure.message });
    } finally {
      setBusy(false);
    }
  }

  function submit(event: FormEvent): void {
    event.preventDefault();
    void place();
  }

  const fieldError = (name: string, id: string) =>
    fields[name] === undefined ? null : (
      <span className="field-error" id={id}>
        {fields[name]}
      </span>
    );

  const bid = quote === undefined ? DASH : priceText(quote.bidUnits, quote.scale);
  const ask = quote === undefined ? DASH : priceText(quote.askUnits, quote.scale);

  return (
    <form className="ticket" aria-label="Order ticket" onSubmit={submit} noValidate>
      <div className="field">
        <label htmlFor="t-symbol">Symbol</label>
        <select id="t-symbol" value={symbol ?? ""} onChange={(e) => onSymbol(e.target.value)}>
          {instruments.map((i) => (
            <option key={i.symbol} value={i.symbol}>
              {i.symbol}
            </option>
          ))}
        </select>
        {fieldError("symbol", "t-symbol-err")}
      </div>
      <fieldset className="side-toggle">
        <legend>Side</legend>
        <label className={`side sell ${side === Side.SELL ? "on" : ""}`}>
          <input
            type="radio"
            name="side"
            value="sell"
            aria-describedby="t-sell-price"
            checked={side === Side.SELL}
            onChange={() => setSide(Side.SELL)}
          />
          <span>Sell</span>
          <span className="side-price" id="t-sell-price" aria-hidden="true">
            {bid}
          </span>
        </label>
        <label className={`side buy ${side === Side.BUY ? "on" : ""}`}>
          <input
            type="radio"
            name="side"
            value="buy"
            aria-describedby="t-buy-price"
            checked={side === Side.BUY}
            onChange={() => setSide(Side.BUY)}
          />
          <span>Buy</span>
          <span className="side-price" id="t-buy-price" aria-hidden="true">
            {ask}
          </span>
        </label>
      </fieldset>
      <div className="field-row">
        <div className="field">
          <label htmlFor="t-type">Order type</label>
          <select id="t-type" value={type} onChange={(e) => changeType(Number(e.target.value) as OrderType)}>
            {TYPES.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="t-tif">Time in force</label>
          <select id="t-tif" value={tif} onChange={(e) => setTif(Number(e.target.value) as TimeInForce)}>
            {(TIFS[type] ?? []).map((value) => (
              <option key={value} value={value}>
                {TimeInForce[value]}
              </option>
            ))}
          </select>
          {fieldError("time_in_force", "t-tif-err")}
        </div>
      </div>
      <DecimalField id="t-qty" label="Quantity" value={quantity} onChange={setQuantity} error={fields["quantity"]} />
      <div className="field-row">
        <DecimalField
          id="t-price"
          label="Limit price"
          value={price}
          onChange={setPrice}
          error={fields["price"]}
          disabled={!needsPrice(type)}
          placeholder={needsPrice(type) ? "" : "n/a"}
        />
        <DecimalField
          id="t-stop"
          label="Stop price"
          value={stopPrice}
          onChange={setStopPrice}
          error={fields["stop_price"]}
          disabled={!needsStop(type)}
          placeholder={needsStop(type) ? "" : "n/a"}
        />
      </div>
      <div className="field-row">
        <DecimalField
          id="t-sl"
          label="Stop loss"
          value={stopLoss}
          onChange={setStopLoss}
          error={fields["stop_loss"]}
          placeholder="optional"
        />
        <DecimalField
          id="t-tp"
          label="Take profit"
          value={takeProfit}
          onChange={setTakeProfit}
          error={fields["take_profit"]}
          placeholder="optional"
        />
      </div>
      <button type="submit" className={`primary place ${side === Side.BUY ? "buy" : "sell"}`} disabled={busy || symbol === undefined}>
        Place order
      </button>
      <p className="ticket-hint muted">
        {side === Side.BUY ? "Buy" : "Sell"} {quantity || DASH} {symbol ?? ""}
        {instrument !== undefined ? ` · lot ${instrument.minLot}–${instrument.maxLot}` : ""}
      </p>
      {outcome !== undefined &&
        (outcome.kind === "error" ? (
          <p className="outcome error" role="alert">
            {outcome.text}
          </p>
        ) : (
          <div className={`outcome ${outcome.kind}`} role="status">
            <p>{outcome.text}</p>
            {outcome.kind === "requote" && outcome.requotePrice !== undefined && (
              <div className="requote-actions">
                <button type="button" className="primary" disabled={busy} onClick={() => void place(outcome.requotePrice)}>
                  Accept {outcome.requotePrice}
                </button>
                <button type="button" className="ghost" onClick={() => setOutcome(undefined)}>
                  Dismiss
                </button>
              </div>
            )}
          </div>
        ))}
    </form>
  );
}
