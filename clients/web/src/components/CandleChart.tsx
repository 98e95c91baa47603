import { useEffect, useRef, useState } from "react";
import {
  CandlestickSeries,
  ColorType,
  createChart,
  type CandlestickData,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from "lightweight-charts";

import { Decimal } from "@tradingmesh/sdk";
import type { Instrument } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";
import { Timeframe } from "@tradingmesh/sdk/gen/tradingmesh/pricing/v1/pricing_pb";

import { tm } from "../api.js";
import { chartPriceText, chartUnits } from "../lib/format.js";
import { userError } from "../lib/reasons.js";
import { nextBar, type Bar } from "../lib/candles.js";
import type { QuoteView } from "../types.js";

const TIMEFRAMES: [Timeframe, string, number][] = [
  [Timeframe.M1, "1m", 60],
  [Timeframe.M5, "5m", 300],
  [Timeframe.H1, "1h", 3600],
];

/**
 * Candles from GetCandles plus the open candle updated from the live quotes (bid). The chart is
 * fed INTEGER units (price × 10^digits, exact in a double) and prints them back through the
 * SDK's Decimal: no price string is ever parsed into a JavaScript number.
 */
export function CandleChart({
  accountId,
  instrument,
  quote,
}: {
  accountId: string;
  instrument: Instrument;
  quote: QuoteView | undefined;
}) {
  const container = useRef<HTMLDivElement | null>(null);
  const chart = useRef<IChartApi | undefined>(undefined);
  const series = useRef<ISeriesApi<"Candlestick"> | undefined>(undefined);
  const last = useRef<Bar | undefined>(undefined);
  const [timeframe, setTimeframe] = useState<Timeframe>(Timeframe.M1);
  const [error, setError] = useState<string | undefined>(undefined);
  const digits = instrument.digits;
  const seconds = TIMEFRAMES.find(([t]) => t === timeframe)?.[2] ?? 60;

  useEffect(() => {
    const element = container.current;
    if (element === null) return undefined;
    const created = createChart(element, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: "transparent" },
        textColor: "#9aa7b8",
        fontFamily: "Inter, system-ui, sans-serif",
      },
      grid: { vertLines: { color: "#1c2533" }, horzLines: { color: "#1c2533" } },
      rightPriceScale: { borderColor: "#263041" },
      timeScale: { borderColor: "#263041", timeVisible: true, secondsVisible: false, barSpacing: 9, rightOffset: 4 },
      crosshair: { mode: 0 },
      localization: { priceFormatter: (value: number) => chartPriceText(value, digits) },
    });
    const candles = created.addSeries(CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
      priceFormat: { type: "custom", minMove: 1, formatter: (value: number) => chartPriceText(value, digits) },
    });
    chart.current = created;
    series.current = candles;
    return () => {
      created.remove();
      chart.current = undefined;
      series.current = undefined;
      last.current = undefined;
    };
  }, [digits, instrument.symbol]);

  useEffect(() => {
    let cancelled = false;
    const end = BigInt(Math.floor(Date.now() / 1000));
    const start = end - BigInt(seconds * 150);
    setError(undefined);
    void (async () => {
      try {
        const { candles } = await tm.pricing.getCandles({
          accountId,
          symbol: instrument.symbol,
          timeframe,
          timeRange: { startTime: { seconds: start, nanos: 0 }, endTime: { seconds: end + 60n, nanos: 0 } },
          pageSize: 500,
        });
        if (cancelled || series.current === undefined) return;
        const bars: CandlestickData<UTCTimestamp>[] = candles
          .filter((c) => c.openTime !== undefined)
          .map((c) => ({
            time: Number(c.openTime?.seconds ?? 0n) as UTCTimestamp,
            open: chartUnits(c.open, digits),
            high: chartUnits(c.high, digits),
            low: chartUnits(c.low, digits),
            close: chartUnits(c.close, digits),
          }))
          .sort((a, b) => a.time - b.time);
        series.current.setData(bars);
        const tail = bars[bars.length - 1];
        last.current = tail === undefined ? undefined : { ...tail, time: tail.time };
        chart.current?.timeScale().scrollToRealTime();
      } catch (e) {
        if (!cancelled) setError(userError(e).message);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [accountId, instrument.symbol, timeframe, seconds, digits]);

  useEffect(() => {
    if (quote === undefined || series.current === undefined) return;
    let units: number;
    try {
      units = chartUnits(Decimal.fromUnits(quote.bidUnits, quote.scale), digits);
    } catch {
      return; // A price finer than the instrument's digits (or too large): not charted.
    }
    const bar = nextBar(last.current, units, Math.floor(quote.timeMs / 1000), seconds);
    if (bar === undefined) return;
    last.current = bar;
    series.current.update({ ...bar, time: bar.time as UTCTimestamp });
  }, [quote, digits, seconds]);

  return (
    <div className="chart-wrap">
      <div className="chart-toolbar" role="group" aria-label="Timeframe">
        {TIMEFRAMES.map(([value, label]) => (
          <button
            key={value}
            type="button"
            className={`small ${timeframe === value ? "on" : ""}`}
            aria-pressed={timeframe === value}
            onClick={() => setTimeframe(value)}
          >
            {label}
          </button>
        ))}
        <span className="muted chart-note">bid · {instrument.description}</span>
      </div>
      {error !== undefined && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="chart" ref={container} role="img" aria-label={`${instrument.symbol} candle chart`} />
    </div>
  );
}
