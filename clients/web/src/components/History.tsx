import { useState, type FormEvent } from "react";

import type { Statement, TradeRecord } from "@tradingmesh/sdk/gen/tradingmesh/reporting/v1/reporting_pb";

import { tm } from "../api.js";
import { moneyText, signClass } from "../lib/format.js";
import { dayRange, isoDay } from "../lib/dates.js";
import { userError } from "../lib/reasons.js";
import { TradeTable } from "./TradeTable.js";

/** Trade history and the statement for a date range (reporting), with a CSV download. */
export function History({ accountId }: { accountId: string }) {
  const today = isoDay(new Date());
  const weekAgo = isoDay(new Date(Date.now() - 7 * 86_400_000));
  const [from, setFrom] = useState(weekAgo);
  const [to, setTo] = useState(today);
  const [trades, setTrades] = useState<readonly TradeRecord[] | undefined>(undefined);
  const [statement, setStatement] = useState<Statement | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  function range() {
    const r = dayRange(from, to);
    return { startTime: { seconds: r.start, nanos: 0 }, endTime: { seconds: r.end, nanos: 0 } };
  }

  async function load(event: FormEvent): Promise<void> {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const timeRange = range();
      const [history, stmt] = await Promise.all([
        tm.reporting.listTradeHistory({ accountId, timeRange, pageSize: 200 }),
        tm.reporting.getStatement({ accountId, timeRange }).catch(() => undefined),
      ]);
      setTrades(history.trades);
      setStatement(stmt?.statement);
    } catch (e) {
      setError(userError(e).message);
    } finally {
      setBusy(false);
    }
  }

  async function download(): Promise<void> {
    setBusy(true);
    setError(undefined);
    try {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let contentType = "text/csv";
      for await (const message of tm.reporting.exportTrades({ accountId, timeRange: range() })) {
        const chunk = message.chunk;
        if (chunk === undefined) continue;
        if (chunk.contentType !== "") contentType = chunk.contentType;
        parts.push(new Uint8Array(chunk.data));
      }
      const url = URL.createObjectURL(new Blob(parts, { type: contentType }));
      const link = document.createElement("a");
      link.href = url;
      link.download = `trades-${from}-${to}.csv`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(userError(e).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="history">
      <form className="history-form" onSubmit={(e) => void load(e)} aria-label="History range">
        <div className="field">
          <label htmlFor="h-from">From</label>
          <input id="h-from" type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="h-to">To</label>
          <input id="h-to" type="date" value={to} min={from} onChange={(e) => setTo(e.target.value)} />
        </div>
        <button type="submit" className="small primary" disabled={busy}>Show history</button>
        <button type="button" className="small" disabled={busy} onClick={() => void download()}>
          Download CSV
        </button>
      </form>
      {error !== undefined && <p className="error" role="alert">{error}</p>}
      {statement !== undefined && (
        <dl className="statement" aria-label="Statement">
          <div><dt>Opening balance</dt><dd>{moneyText(statement.openingBalance)}</dd></div>
          <div><dt>Deposits</dt><dd>{moneyText(statement.deposits)}</dd></div>
          <div><dt>Withdrawals</dt><dd>{moneyText(statement.withdrawals)}</dd></div>
          <div><dt>Realized P&amp;L</dt><dd className={signClass(statement.realizedPnl)}>{moneyText(statement.realizedPnl)}</dd></div>
          <div><dt>Commissions</dt><dd>{moneyText(statement.commissions)}</dd></div>
          <div><dt>Closing balance</dt><dd>{moneyText(statement.closingBalance)}</dd></div>
        </dl>
      )}
      {trades !== undefined && (
        <TradeTable label="Trade history" trades={trades} idOf={(t) => t.tradeId} empty="No trades in this range" />
      )}
    </div>
  );
}
