import { Suspense, lazy, useCallback, useEffect, useMemo, useRef, useState } from "react";

import type { Instrument } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";
import type { Order, Position, Trade } from "@tradingmesh/sdk/gen/tradingmesh/oms/v1/oms_pb";
import type { AccountRisk } from "@tradingmesh/sdk/gen/tradingmesh/risk/v1/risk_pb";
import type { QuoteTick } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_service_pb";

import { tm } from "../api.js";
import { direction } from "../lib/format.js";
import { userError } from "../lib/reasons.js";
import type { QuoteView, Quotes } from "../types.js";
import { usePoll, useStream } from "../useStream.js";
import { AccountStrip } from "./AccountStrip.js";
import { Blotters } from "./Blotters.js";
import { ConnectionIndicator } from "./ConnectionIndicator.js";
import { History } from "./History.js";
import { Notifications } from "./Notifications.js";
import { OrderTicket } from "./OrderTicket.js";
import { Watchlist } from "./Watchlist.js";

// The chart library is the largest part of the page: loaded after the first render, so the
// watchlist's first price does not wait for it.
const CandleChart = lazy(() => import("./CandleChart.js").then((m) => ({ default: m.CandleChart })));

function mergeQuotes(previous: Quotes, ticks: readonly QuoteTick[], stale: readonly string[]): Quotes {
  const next = new Map(previous);
  for (const tick of ticks) {
    const before = previous.get(tick.symbol);
    next.set(tick.symbol, {
      bidUnits: tick.bidUnits,
      askUnits: tick.askUnits,
      scale: tick.priceScale,
      bidDirection:
        before === undefined || before.scale !== tick.priceScale
          ? "flat"
          : direction(before.bidUnits, tick.bidUnits) === "flat"
            ? before.bidDirection
            : direction(before.bidUnits, tick.bidUnits),
      askDirection:
        before === undefined || before.scale !== tick.priceScale
          ? "flat"
          : direction(before.askUnits, tick.askUnits) === "flat"
            ? before.askDirection
            : direction(before.askUnits, tick.askUnits),
      timeMs: Number(tick.timeUnixMs),
      stale: false,
    });
  }
  for (const symbol of stale) {
    const quote = next.get(symbol);
    if (quote !== undefined) next.set(symbol, { ...quote, stale: true });
  }
  return next;
}

export function Terminal({ onSignOut }: { onSignOut: () => void }) {
  const [accountId, setAccountId] = useState<string | undefined>(undefined);
  const [accountNumber, setAccountNumber] = useState("");
  const [instruments, setInstruments] = useState<readonly Instrument[]>([]);
  const [quotes, setQuotes] = useState<Quotes>(new Map());
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [risk, setRisk] = useState<AccountRisk | undefined>(undefined);
  const [orders, setOrders] = useState<readonly Order[]>([]);
  const [positions, setPositions] = useState<readonly Position[]>([]);
  const [trades, setTrades] = useState<readonly Trade[]>([]);
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  const quotesRef = useRef<Quotes>(quotes);
  quotesRef.current = quotes;

  useEffect(() => {
    let cancelled = false;
    void (async () => {
      try {
        const { accounts } = await tm.account.listAccounts({});
        const account = accounts[0];
        if (account === undefined) throw new Error("no trading account");
        const { instruments: list } = await tm.pricing.listInstruments({
          accountId: account.id,
          pageSize: 200,
        });
        if (cancelled) return;
        setAccountId(account.id);
        setAccountNumber(account.accountNumber);
        setInstruments(list);
        setSelected((s) => s ?? list[0]?.symbol);
      } catch (e) {
        if (!cancelled) setLoadError(userError(e).message);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, []);

  const symbols = useMemo(() => instruments.map((i) => i.symbol), [instruments]);
  const ready = accountId !== undefined && symbols.length > 0;

  useStream(
    "quotes",
    ready,
    (signal) => tm.pricing.streamQuotes({ accountId: accountId ?? "", symbols }, { signal }),
    (batch) => setQuotes((previous) => mergeQuotes(previous, batch.quotes, batch.staleSymbols)),
    [accountId, symbols.join(",")],
  );

  // The benchmark's hook: when the first quote is on screen after sign-in.
  useEffect(() => {
    if (quotes.size > 0 && document.body.dataset["firstPriceAt"] === undefined) {
      document.body.dataset["firstPriceAt"] = String(performance.now());
    }
  }, [quotes]);

  // Prices first: the other panels start loading once the first quote is in (or after a short
  // while without one), so they do not compete with the quote stream for the connection.
  const [warm, setWarm] = useState(false);
  useEffect(() => {
    if (warm || accountId === undefined) return undefined;
    if (quotes.size > 0) {
      setWarm(true);
      return undefined;
    }
    const timer = setTimeout(() => setWarm(true), 600);
    return () => clearTimeout(timer);
  }, [warm, accountId, quotes.size > 0]); // eslint-disable-line react-hooks/exhaustive-deps
  const live = warm && accountId !== undefined;

  const refreshRisk = useCallback(async () => {
    if (accountId === undefined) return;
    try {
      const { accountRisk } = await tm.risk.getAccountRisk({ accountId });
      setRisk(accountRisk);
    } catch {
      // Kept as it was; the next poll tries again.
    }
  }, [accountId]);

  const refreshPositions = useCallback(async () => {
    if (accountId === undefined) return;
    try {
      const { positions: list } = await tm.positions.listPositions({ accountId, pageSize: 200 });
      setPositions(list);
    } catch {
      // Next poll.
    }
  }, [accountId]);

  const refreshOrders = useCallback(async () => {
    if (accountId === undefined) return;
    try {
      const [open, done] = await Promise.all([
        tm.orders.listOrders({ accountId, openOnly: true, pageSize: 200 }),
        tm.orders.listTrades({ accountId, pageSize: 50 }),
      ]);
      setOrders(open.orders);
      setTrades(done.trades);
    } catch {
      // Next event or poll.
    }
  }, [accountId]);

  const refreshAll = useCallback(() => {
    void refreshOrders();
    void refreshPositions();
    void refreshRisk();
  }, [refreshOrders, refreshPositions, refreshRisk]);

  usePoll(live, 1500, () => void refreshRisk(), [refreshRisk]);
  usePoll(live, 2000, () => void refreshPositions(), [refreshPositions]);
  usePoll(live, 10000, () => void refreshOrders(), [refreshOrders]);

  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useStream(
    "orders",
    live,
    (signal) =>
      tm.orders.streamOrderUpdates({ accountId: accountId ?? "", sendOpenOrders: true }, { signal }),
    () => {
      // Coalesce a burst of events (accepted, filled, ...) into one refresh.
      if (pending.current !== undefined) return;
      pending.current = setTimeout(() => {
        pending.current = undefined;
        refreshAll();
      }, 150);
    },
    [accountId, refreshAll],
  );

  const instrument = instruments.find((i) => i.symbol === selected);

  return (
    <div className="terminal">
      <header className="topbar">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">◆</span> tradingmesh
          {accountNumber !== "" && (
            <span className="account-no">
              #{accountNumber}
              {risk?.currency ? ` · ${risk.currency}` : ""}
            </span>
          )}
        </div>
        <AccountStrip risk={risk} />
        <div className="topbar-tools">
          <ConnectionIndicator />
          <Notifications enabled={live} />
          <button type="button" className="ghost" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      {loadError !== undefined && (
        <p className="error banner" role="alert">
          {loadError}
        </p>
      )}
      <main className="layout">
        <section className="panel watch-panel" aria-labelledby="watch-h">
          <h2 id="watch-h">Markets</h2>
          <Watchlist
            instruments={instruments}
            quotes={quotes}
            selected={selected}
            onSelect={setSelected}
          />
        </section>
        <section className="panel chart-panel" aria-labelledby="chart-h">
          <h2 id="chart-h">{selected ?? "Chart"}</h2>
          {instrument !== undefined && accountId !== undefined && warm && (
            <Suspense fallback={<p className="muted">Loading chart…</p>}>
              <CandleChart
                accountId={accountId}
                instrument={instrument}
                quote={quotes.get(instrument.symbol)}
              />
            </Suspense>
          )}
        </section>
        <section className="panel ticket-panel" aria-labelledby="ticket-h">
          <h2 id="ticket-h">New order</h2>
          {accountId !== undefined && (
            <OrderTicket
              accountId={accountId}
              instruments={instruments}
              symbol={selected}
              onSymbol={setSelected}
              quotesRef={quotesRef}
              quote={selected === undefined ? undefined : quotes.get(selected)}
              onPlaced={refreshAll}
            />
          )}
        </section>
        <section className="panel blotter-panel" aria-label="Blotters">
          {accountId !== undefined && (
            <Blotters
              accountId={accountId}
              instruments={instruments}
              orders={orders}
              positions={positions}
              trades={trades}
              quotesRef={quotesRef}
              onChanged={refreshAll}
            />
          )}
        </section>
        <section className="panel history-panel" aria-labelledby="history-h">
          <h2 id="history-h">History</h2>
          {accountId !== undefined && <History accountId={accountId} />}
        </section>
      </main>
    </div>
  );
}

export type { QuoteView };
