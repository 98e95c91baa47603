import type { AccountRisk } from "@tradingmesh/sdk/gen/tradingmesh/risk/v1/risk_pb";
import { AccountRiskStatus } from "@tradingmesh/sdk/gen/tradingmesh/risk/v1/risk_pb";

import { DASH, moneyText } from "../lib/format.js";

function stateText(status: AccountRiskStatus | undefined): { text: string; className: string } {
  switch (status) {
    case AccountRiskStatus.OK:
      return { text: "OK", className: "ok" };
    case AccountRiskStatus.MARGIN_CALL:
      return { text: "MARGIN CALL", className: "warn" };
    case AccountRiskStatus.STOP_OUT:
      return { text: "STOP OUT", className: "danger" };
    default:
      return { text: DASH, className: "" };
  }
}

export function AccountStrip({ risk }: { risk: AccountRisk | undefined }) {
  const state = stateText(risk?.status);
  const items: [string, string, string][] = [
    ["Balance", "balance", moneyText(risk?.balance)],
    ["Equity", "equity", moneyText(risk?.equity)],
    ["Used margin", "used-margin", moneyText(risk?.usedMargin)],
    ["Free margin", "free-margin", moneyText(risk?.freeMargin)],
    [
      "Margin level",
      "margin-level",
      risk === undefined || risk.marginLevel === "" ? DASH : `${moneyText(risk.marginLevel)} %`,
    ],
  ];
  return (
    <section className={`account-strip ${state.className}`} aria-label="Account">
      <dl>
        {items.map(([label, testId, value]) => (
          <div key={testId}>
            <dt>{label}</dt>
            <dd data-testid={testId}>{value}</dd>
          </div>
        ))}
        <div>
          <dt>Margin state</dt>
          <dd data-testid="margin-state" className={`badge ${state.className}`}>
            {state.text}
          </dd>
        </div>
      </dl>
      {risk !== undefined && risk.status !== AccountRiskStatus.OK && risk.status !== AccountRiskStatus.UNSPECIFIED && (
        <p className="risk-alert" role="alert">
          {risk.status === AccountRiskStatus.STOP_OUT
            ? `Stop out: margin level below ${risk.stopOutLevel} %. Positions are being closed.`
            : `Margin call: margin level below ${risk.marginCallLevel} %. Add funds or reduce positions.`}
        </p>
      )}
    </section>
  );
}
