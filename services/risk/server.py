# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""gRPC servicers of the risk service: map request -> domain -> response.

The check and the margin figures are answered from memory (`RiskState`); margin events and
limits are read from PostgreSQL. Clients see only their own accounts (`require_account` with the
owner from risk's copy of the accounts: NOT_FOUND otherwise); staff read everything and admins
and dealers set limits.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any
from typing import Final

import grpc.aio

from services.platform.access import ADMIN
from services.platform.access import BACKOFFICE
from services.platform.access import DEALER
from services.platform.access import account_not_found
from services.platform.access import require_account
from services.platform.access import require_roles
from services.platform.db import Database
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from services.platform.paging import next_offset_token
from services.platform.paging import offset_page
from services.platform.runtime import Ready
from services.risk import convert
from services.risk import store
from services.risk.check import OrderCheck
from services.risk.check import Purpose
from services.risk.check import check_order
from services.risk.events import message_of_row
from services.risk.exposure import exposures
from services.risk.model import AccountLimits
from services.risk.model import Side
from services.risk.recorder import DecisionRecorder
from services.risk.state import RiskState
from services.risk.valuation import AccountValuation
from services.risk.valuation import value_account
from services.risk.withdrawals import decide_withdrawal
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import parse_decimal
from tradingmesh.risk.v1 import risk_admin_service_pb2 as admin_pb
from tradingmesh.risk.v1 import risk_admin_service_pb2_grpc
from tradingmesh.risk.v1 import risk_internal_service_pb2 as internal_pb
from tradingmesh.risk.v1 import risk_internal_service_pb2_grpc
from tradingmesh.risk.v1 import risk_pb2
from tradingmesh.risk.v1 import risk_service_pb2 as api_pb
from tradingmesh.risk.v1 import risk_service_pb2_grpc

__all__ = ["RiskAdminService", "RiskInternalService", "RiskParts", "RiskService"]

_R = ErrorReason
Context = grpc.aio.ServicerContext[Any, Any]
READ_ROLES: Final = (ADMIN, DEALER, BACKOFFICE)
LIMIT_ROLES: Final = (ADMIN, DEALER)
_LIMIT_FIELDS: Final = ("max_open_positions", "max_open_orders", "max_gross_notional")
LEDGER_WAIT_SECONDS: Final = 1.0


class RiskParts:
    """What the servicers share, set when the service opens (main.py)."""

    db = Ready[Database]()
    state = Ready[RiskState]()
    recorder = Ready[DecisionRecorder]()

    def __init__(
        self, max_quote_age: timedelta | None = None, reporting_currency: str = "USD"
    ) -> None:
        self.max_quote_age = max_quote_age
        self.reporting_currency = reporting_currency


def _now() -> datetime:
    return datetime.now(UTC)


def _valuation(parts: RiskParts, account_id: str) -> AccountValuation:
    state = parts.state
    account = state.accounts.get(account_id)
    if account is None:
        raise account_not_found(account_id)
    valuation = value_account(state, account, _now(), parts.max_quote_age)
    if valuation is None:
        raise DomainError(
            _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            f"the client group of account {account_id} is not known to the risk service yet",
            retry_after=timedelta(seconds=1),
        )
    return valuation


async def _ledger_reached(
    state: RiskState, account_id: str, sequence: int, context: Context
) -> None:
    """Returns once the copy of the account's ledger has reached entry `sequence` (the
    caller's read of its own write), or after LEDGER_WAIT_SECONDS (less when the caller's
    deadline is nearer): then the answer is from what the copies hold."""
    remaining = context.time_remaining()
    timeout = LEDGER_WAIT_SECONDS if remaining is None else min(LEDGER_WAIT_SECONDS, remaining / 2)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (held := state.accounts.get(account_id)) is None or held.ledger_sequence < sequence:
        if loop.time() >= deadline:
            return
        await asyncio.sleep(0.005)


def _account_risk(parts: RiskParts, valuation: AccountValuation) -> risk_pb2.AccountRisk:
    state = parts.state
    status = state.status_of(valuation.account.id)
    return convert.account_risk(valuation, status, _now())


async def _margin_events(
    db: Database,
    request: api_pb.ListMarginEventsRequest | admin_pb.ListAllMarginEventsRequest,
    *,
    group_id: str = "",
) -> tuple[list[risk_pb2.MarginEvent], str]:
    """One page of margin events, newest first, filtered as the request says (both lists share
    the fields; only the staff's may name a group)."""
    limit, offset = offset_page(request.page_size, request.page_token)
    span = request.time_range if request.HasField("time_range") else None
    async with db.read_session() as session:
        rows = await store.margin_events(
            session,
            account_id=request.account_id,
            group_id=group_id,
            types=[enum_name(risk_pb2.MarginEventType, t) for t in request.types],
            start=span.start_time.ToDatetime(tzinfo=UTC)
            if span is not None and span.HasField("start_time")
            else None,
            end=span.end_time.ToDatetime(tzinfo=UTC)
            if span is not None and span.HasField("end_time")
            else None,
            limit=limit + 1,
            offset=offset,
        )
    events = [message_of_row(row) for row in rows[:limit]]
    return events, next_offset_token(offset, limit, len(rows) > limit)


# ---------------------------------------------------------------------------------------------
# RiskService: the caller's own accounts
# ---------------------------------------------------------------------------------------------


class RiskService(risk_service_pb2_grpc.RiskServiceServicer):
    """tradingmesh.risk.v1.RiskService."""

    def __init__(self, parts: RiskParts) -> None:
        self.parts = parts

    def _own(self, account_id: str) -> None:
        state = self.parts.state
        account = state.accounts.get(account_id)
        require_account(account_id, account.user_id if account is not None else None)

    async def GetAccountRisk(
        self, request: api_pb.GetAccountRiskRequest, context: Context
    ) -> api_pb.GetAccountRiskResponse:
        self._own(request.account_id)
        valuation = _valuation(self.parts, request.account_id)
        return api_pb.GetAccountRiskResponse(account_risk=_account_risk(self.parts, valuation))

    async def ListMarginEvents(
        self, request: api_pb.ListMarginEventsRequest, context: Context
    ) -> api_pb.ListMarginEventsResponse:
        self._own(request.account_id)
        db = self.parts.db
        events, token = await _margin_events(db, request)
        return api_pb.ListMarginEventsResponse(margin_events=events, next_page_token=token)


# ---------------------------------------------------------------------------------------------
# RiskAdminService: staff
# ---------------------------------------------------------------------------------------------


class RiskAdminService(risk_admin_service_pb2_grpc.RiskAdminServiceServicer):
    """tradingmesh.risk.v1.RiskAdminService."""

    def __init__(self, parts: RiskParts) -> None:
        self.parts = parts

    async def GetExposure(
        self, request: admin_pb.GetExposureRequest, context: Context
    ) -> admin_pb.GetExposureResponse:
        require_roles(READ_ROLES)
        state = self.parts.state
        reporting = self.parts.reporting_currency
        found = exposures(state, reporting, symbol=request.symbol, group_id=request.group_id)
        response = admin_pb.GetExposureResponse(
            exposures=[convert.exposure_message(e, reporting) for e in found]
        )
        response.computed_time.FromDatetime(_now())
        return response

    async def ListAccountRisks(
        self, request: admin_pb.ListAccountRisksRequest, context: Context
    ) -> admin_pb.ListAccountRisksResponse:
        require_roles(READ_ROLES)
        state = self.parts.state
        limit, offset = offset_page(request.page_size, request.page_token)
        wanted_statuses = {convert.status_name(s) for s in request.statuses}
        only = set(request.account_ids)
        now = _now()
        risks: list[risk_pb2.AccountRisk] = []
        for account_id in state.accounts_with_positions():
            account = state.accounts.get(account_id)
            if account is None or (only and account_id not in only):
                continue
            if request.group_id and account.group_id != request.group_id:
                continue
            status = state.status_of(account_id)
            if wanted_statuses and status not in wanted_statuses:
                continue
            valuation = value_account(state, account, now, self.parts.max_quote_age)
            if valuation is not None:
                risks.append(convert.account_risk(valuation, status, now))
        # Closest to stop-out first; accounts without used margin (no level) last.
        risks.sort(
            key=lambda r: (
                r.margin_level == "",
                Decimal(r.margin_level or "0"),
                r.account_id,
            )
        )
        page = risks[offset : offset + limit]
        return admin_pb.ListAccountRisksResponse(
            account_risks=page,
            next_page_token=next_offset_token(offset, limit, len(risks) > offset + limit),
        )

    async def ListAllMarginEvents(
        self, request: admin_pb.ListAllMarginEventsRequest, context: Context
    ) -> admin_pb.ListAllMarginEventsResponse:
        require_roles(READ_ROLES)
        db = self.parts.db
        events, token = await _margin_events(db, request, group_id=request.group_id)
        return admin_pb.ListAllMarginEventsResponse(margin_events=events, next_page_token=token)

    def _known(self, account_id: str) -> None:
        state = self.parts.state
        if account_id not in state.accounts:
            raise account_not_found(account_id)

    async def GetAccountRiskLimits(
        self, request: admin_pb.GetAccountRiskLimitsRequest, context: Context
    ) -> admin_pb.GetAccountRiskLimitsResponse:
        require_roles(READ_ROLES)
        self._known(request.account_id)
        db = self.parts.db
        async with db.read_session() as session:
            stored = await store.read_limits(session, request.account_id)
        limits, updated = stored if stored is not None else (AccountLimits(), None)
        return admin_pb.GetAccountRiskLimitsResponse(
            limits=convert.limits_message(request.account_id, limits, updated)
        )

    async def UpdateAccountRiskLimits(
        self, request: admin_pb.UpdateAccountRiskLimitsRequest, context: Context
    ) -> admin_pb.UpdateAccountRiskLimitsResponse:
        caller = require_roles(LIMIT_ROLES)
        self._known(request.account_id)
        db, state = self.parts.db, self.parts.state
        given = request.limits
        async with db.transaction() as session:
            stored = await store.read_limits(session, request.account_id, lock=True)
            before = stored[0] if stored is not None else None
            limits = before or AccountLimits()
            for path in dict.fromkeys(request.update_mask.paths):
                if path == "max_open_positions":
                    limits = _replace(limits, max_open_positions=given.max_open_positions)
                elif path == "max_open_orders":
                    limits = _replace(limits, max_open_orders=given.max_open_orders)
                elif path == "max_gross_notional":
                    notional = given.max_gross_notional
                    limits = _replace(
                        limits, max_gross_notional=parse_decimal(notional) if notional else None
                    )
            updated = await store.write_limits(
                session,
                request.account_id,
                limits,
                before=before,
                actor_kind="OPERATOR",
                actor_id=caller.subject,
                request_id=caller.request_id,
            )
        state.limits[request.account_id] = limits
        return admin_pb.UpdateAccountRiskLimitsResponse(
            limits=convert.limits_message(request.account_id, limits, updated)
        )


def _replace(limits: AccountLimits, **changes: Any) -> AccountLimits:
    values = {name: getattr(limits, name) for name in _LIMIT_FIELDS}
    values.update(changes)
    return AccountLimits(**values)


# ---------------------------------------------------------------------------------------------
# RiskInternalService: the OMS's pre-trade check
# ---------------------------------------------------------------------------------------------

_PURPOSES: Final = {
    internal_pb.CHECK_PURPOSE_PLACE: Purpose.PLACE,
    internal_pb.CHECK_PURPOSE_AMEND: Purpose.AMEND,
    internal_pb.CHECK_PURPOSE_TRIGGER: Purpose.TRIGGER,
}


class RiskInternalService(risk_internal_service_pb2_grpc.RiskInternalServiceServicer):
    """tradingmesh.risk.v1.RiskInternalService."""

    def __init__(self, parts: RiskParts) -> None:
        self.parts = parts

    async def CheckOrder(
        self, request: internal_pb.CheckOrderRequest, context: Context
    ) -> internal_pb.CheckOrderResponse:
        state = self.parts.state
        now = _now()
        order = OrderCheck(
            account_id=request.account_id,
            order_id=request.order_id,
            purpose=_PURPOSES[request.purpose],
            symbol=request.symbol,
            side=Side.from_proto(request.side),
            quantity=parse_decimal(request.quantity),
            remaining_quantity=parse_decimal(request.remaining_quantity),
            price=parse_decimal(request.price) if request.HasField("price") else None,
            position_id=request.position_id if request.HasField("position_id") else None,
            open_order_count=request.open_order_count,
        )
        decision = check_order(state, order, now, self.parts.max_quote_age)
        check_id = str(uuid.uuid4())
        self.parts.recorder.record(
            {
                "check_id": check_id,
                "account_id": order.account_id,
                "order_id": order.order_id,
                "purpose": order.purpose.value,
                "symbol": order.symbol,
                "side": order.side.value,
                "quantity": order.quantity,
                "remaining_quantity": order.remaining_quantity,
                "price": order.price,
                "position_id": order.position_id,
                "open_order_count": order.open_order_count,
                "approved": decision.approved,
                "reject_reason": (
                    None if decision.approved else enum_name(ErrorReason, decision.reason)
                ),
                "reject_message": decision.message,
                "required_margin": decision.required_margin,
                "free_margin": decision.free_margin,
                "free_margin_after": decision.free_margin_after,
                "margin_level_after": decision.margin_level_after,
                "valuation_price": decision.valuation_price,
                "currency": decision.currency,
                "checked_at": now,
            }
        )
        if decision.approved and request.reserve_margin:
            # Spent until the order's trades (or its end) reach the copies (holds.py).
            state.holds.hold_order(
                order.account_id,
                order.order_id,
                decision.required_margin,
                order.remaining_quantity,
                now,
            )
        return convert.check_response(decision, check_id)

    async def ReserveWithdrawal(
        self, request: internal_pb.ReserveWithdrawalRequest, context: Context
    ) -> internal_pb.ReserveWithdrawalResponse:
        state = self.parts.state
        await _ledger_reached(state, request.account_id, request.min_ledger_sequence, context)
        now = _now()
        amount = parse_decimal(request.amount)
        decision = decide_withdrawal(
            state,
            request.account_id,
            request.withdrawal_id,
            amount,
            now,
            self.parts.max_quote_age,
        )
        if decision.approved:
            state.holds.hold_withdrawal(request.account_id, request.withdrawal_id, amount, now)
        return convert.withdrawal_response(decision, _account_risk(self.parts, decision.valuation))

    async def GetAccountFigures(
        self, request: internal_pb.GetAccountFiguresRequest, context: Context
    ) -> internal_pb.GetAccountFiguresResponse:
        state = self.parts.state
        await _ledger_reached(state, request.account_id, request.min_ledger_sequence, context)
        valuation = _valuation(self.parts, request.account_id)
        return internal_pb.GetAccountFiguresResponse(
            account_risk=_account_risk(self.parts, valuation)
        )
