"""The risk service's values as contract messages (risk/v1), and back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.platform.enums import enum_name
from services.risk.check import Decision
from services.risk.exposure import InstrumentExposure
from services.risk.model import AccountLimits
from services.risk.valuation import AccountValuation
from services.risk.withdrawals import WithdrawalDecision
from tradingmesh.common.v1 import types_pb2
from tradingmesh.exact import plain_decimal
from tradingmesh.risk.v1 import risk_internal_service_pb2
from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.trading.margin import RiskStatus
from tradingmesh.trading.money import money_text

__all__ = [
    "account_risk",
    "check_response",
    "exposure_message",
    "limits_message",
    "status_name",
]


def account_risk(
    valuation: AccountValuation, status: RiskStatus, computed: datetime
) -> risk_pb2.AccountRisk:
    """AccountRisk of a valuation: amounts with the currency's decimals, the level rounded down
    to 2 decimals (empty without used margin), the group's levels and leverage."""
    figures, account, group = valuation.figures, valuation.account, valuation.group
    currency = account.currency
    message = risk_pb2.AccountRisk(
        account_id=account.id,
        currency=currency,
        balance=money_text(figures.balance, currency),
        unrealized_pnl=money_text(figures.unrealized_pnl, currency),
        equity=money_text(figures.equity, currency),
        used_margin=money_text(figures.used_margin, currency),
        free_margin=money_text(figures.free_margin, currency),
        margin_level=format(figures.margin_level, "f") if figures.margin_level is not None else "",
        margin_call_level=plain_decimal(group.margin_call_level),
        stop_out_level=plain_decimal(group.stop_out_level),
        status=status.to_proto(),
        leverage=group.leverage,
        open_position_count=len(valuation.positions),
        withdrawable=money_text(figures.withdrawable, currency),
    )
    message.computed_time.FromDatetime(computed)
    return message


def check_response(
    decision: Decision, check_id: str
) -> risk_internal_service_pb2.CheckOrderResponse:
    currency = decision.currency
    return risk_internal_service_pb2.CheckOrderResponse(
        approved=decision.approved,
        reject_reason=decision.reason,
        reject_message=decision.message[:500],
        required_margin=money_text(decision.required_margin, currency),
        free_margin=money_text(decision.free_margin, currency),
        free_margin_after=money_text(decision.free_margin_after, currency),
        margin_level_after=(
            format(decision.margin_level_after, "f")
            if decision.margin_level_after is not None
            else ""
        ),
        # As quoted ("1.10020"), or as the OMS sent it.
        valuation_price=(
            format(decision.valuation_price, "f") if decision.valuation_price is not None else ""
        ),
        currency=currency,
        check_id=check_id,
    )


def withdrawal_response(
    decision: WithdrawalDecision, figures: risk_pb2.AccountRisk
) -> risk_internal_service_pb2.ReserveWithdrawalResponse:
    return risk_internal_service_pb2.ReserveWithdrawalResponse(
        approved=decision.approved,
        reject_reason=decision.reason,
        reject_message=decision.message[:500],
        withdrawable=money_text(decision.withdrawable, figures.currency),
        account_risk=figures,
    )


def limits_message(
    account_id: str, limits: AccountLimits, updated: datetime | None
) -> risk_pb2.AccountRiskLimits:
    message = risk_pb2.AccountRiskLimits(
        account_id=account_id,
        max_open_positions=limits.max_open_positions,
        max_open_orders=limits.max_open_orders,
        max_gross_notional=(
            plain_decimal(limits.max_gross_notional)
            if limits.max_gross_notional is not None
            else ""
        ),
    )
    if updated is not None:
        message.update_time.FromDatetime(updated)
    return message


def _money(amount: Decimal | None, currency: str) -> types_pb2.Money | None:
    if amount is None:
        return None
    return types_pb2.Money(amount=money_text(amount, currency), currency=currency)


def exposure_message(exposure: InstrumentExposure, reporting: str) -> risk_pb2.InstrumentExposure:
    return risk_pb2.InstrumentExposure(
        symbol=exposure.symbol,
        client_long_quantity=plain_decimal(exposure.client_long),
        client_short_quantity=plain_decimal(exposure.client_short),
        client_net_quantity=plain_decimal(exposure.client_net),
        coverage_net_quantity=plain_decimal(exposure.coverage_net),
        broker_net_quantity=plain_decimal(exposure.broker_net),
        client_net_notional=_money(exposure.client_net_notional, reporting),
        broker_net_notional=_money(exposure.broker_net_notional, reporting),
        client_unrealized_pnl=_money(exposure.client_unrealized_pnl, reporting),
        mid_price=plain_decimal(exposure.mid_price) if exposure.mid_price is not None else "",
    )


def status_name(value: risk_pb2.AccountRiskStatus.ValueType) -> RiskStatus:
    return RiskStatus(enum_name(risk_pb2.AccountRiskStatus, value))
