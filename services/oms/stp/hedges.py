"""Hedge orders (ADR 0007, "Execution modes", STP): the row, and what an execution report does
to it (their SQL is `store/hedges.py`).

A hedge order is the net of one netting window, sent to a liquidity provider as one FIX order,
or the whole rest of one STP limit order (a limit or a triggered stop-limit), sent as a limit
order of its own (`stp/desk.py`); such an order may have several hedge orders over its life, one at
a time.
Its status follows the contract's HedgeOrderStatus: NEW (stored, not sent) -> SENT ->
WORKING (acknowledged) -> PARTIALLY_FILLED -> FILLED, or CANCELLED (the provider cancelled the
unfilled rest of the IOC) or REJECTED (the provider refused it, LP_REJECTED, or it could not be
sent, LP_UNAVAILABLE). `on_report` decides what a report changes, purely; a report that changes
nothing (an acknowledgement after a fill, anything after the end) gives None. Fills are
de-duplicated on the provider's ExecID by the unique `(hedge_order_id, lp_execution_id)` of
`oms.hedge_fills` (`store/hedges.record_fill`), so a report resent after a restart counts once;
a fill whose CumQty the hedge has already reached was counted before (`fill_counted`: through
an Order Status answer).

A hedge order the provider has not answered is chased (`chase`): with an OrderStatusRequest once
it has been quiet for `status_after` (the STP desk's setting, 10 s) since its last change or
the last request, and, once it is `unknown_after` (60 s) old without an end, it is reported as
of unknown fate (an error log and the `tradingmesh_oms_hedge_orders_unknown` gauge) for a human
to reconcile with the provider: the OMS never invents a fill or a rejection for it. The answer
(an ExecutionReport with ExecType I) is applied as the reports it stands for
(`status_steps`): a fill of what the provider's CumQty has beyond the hedge's (keyed
`status:<OrdStatus>:<CumQty>`, so twice the same answer fills once), then its end (cancelled,
rejected, or filled), or its acknowledgement. A provider that does not know the order (a
rejection with OrdRejReason 5) never received it: it is REJECTED / LP_UNAVAILABLE. A provider
that refuses our status requests (a Business Message Reject, `lp_messages`) makes the hedge of
unknown fate at once (`chase(..., status_refused=True)`).

An operator who reconciled a hedge of unknown fate with its provider settles it (`settlement`):
as the Order Status answer the provider would have given (FILLED with its CumQty and AvgPx, the
rest cancelled; or REJECTED), applied exactly like one, its fills keyed `operator:<id>`.

The window's client orders are linked to the hedge (`oms.hedge_order_orders`) with the markup of
their group's price when the hedge was created (migration 0011), so the allocation after the
hedge ends, even after a restart, prices every order as it was offered. A limit order's hedge
stores no limit of its own: it is the client's limit less that markup (`domain.netting.
raw_limit`), and the client's limit cannot change while the hedge is open (AmendOrder refuses).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_HALF_EVEN
from decimal import Decimal
from typing import Any
from typing import ClassVar
from typing import Final

from google.protobuf.message import Message

from services.oms.columns import from_columns
from services.oms.columns import to_columns
from services.oms.domain.positions import Side
from services.oms.model import reason_name
from services.oms.model import reason_value
from services.oms.store import events
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportKind
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import plain_decimal
from tradingmesh.oms.v1 import oms_events_pb2 as ev
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.money import average_price
from tradingmesh.trading.money import exact_sum

__all__ = [
    "Chase",
    "HedgeRow",
    "HedgeStatus",
    "SettlementError",
    "SettlementOutcome",
    "chase",
    "fill_counted",
    "hedge_event",
    "is_uuid",
    "on_report",
    "on_sent",
    "rejected",
    "settlement",
    "status_steps",
]

SCHEMA: Final = "oms"
_ZERO: Final = Decimal(0)
_R = ErrorReason
_UNKNOWN_ORDER: Final = "5"  # OrdRejReason: the provider does not know the order
_PRICE_PLACES: Final = Decimal("1e-12")  # as oms.hedge_fills.price keeps it


class HedgeStatus(enum.StrEnum):
    """oms/v1 HedgeOrderStatus, stored by name."""

    NEW = "NEW"
    SENT = "SENT"
    WORKING = "WORKING"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        return self in (HedgeStatus.FILLED, HedgeStatus.CANCELLED, HedgeStatus.REJECTED)

    def to_proto(self) -> oms_pb2.HedgeOrderStatus.ValueType:
        return oms_pb2.HedgeOrderStatus.Value(f"HEDGE_ORDER_STATUS_{self.value}")


@dataclass(frozen=True)
class HedgeRow:
    """A hedge order as stored in oms.hedge_orders."""

    id: str
    symbol: str
    side: Side
    quantity: Decimal
    gross_buy_quantity: Decimal
    gross_sell_quantity: Decimal
    liquidity_provider_id: str
    status: HedgeStatus
    created_at: datetime
    updated_at: datetime
    version: int
    raw_bid: Decimal | None = None
    raw_ask: Decimal | None = None
    filled_quantity: Decimal = _ZERO
    average_price: Decimal | None = None
    lp_order_id: str = ""
    status_reason: str = "UNSPECIFIED"
    status_message: str = ""

    COLUMNS: ClassVar[str] = (
        "id, symbol, side, quantity, gross_buy_quantity, gross_sell_quantity, filled_quantity,"
        " average_price, liquidity_provider_id, status, fix_client_order_id, lp_order_id,"
        " status_reason, status_message, raw_bid, raw_ask, created_at, updated_at, version"
    )

    @property
    def fix_client_order_id(self) -> str:
        """The ClOrdID sent to the provider: the hedge order's id (ADR 0007)."""
        return self.id

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> HedgeRow:
        return from_columns(cls, row)

    def params(self) -> dict[str, Any]:
        return to_columns(self, fix_client_order_id=self.fix_client_order_id)

    def to_proto(self, order_ids: Sequence[str]) -> oms_pb2.HedgeOrder:
        hedge = oms_pb2.HedgeOrder(
            id=self.id,
            symbol=self.symbol,
            side=self.side.to_proto(),
            quantity=plain_decimal(self.quantity),
            gross_buy_quantity=plain_decimal(self.gross_buy_quantity),
            gross_sell_quantity=plain_decimal(self.gross_sell_quantity),
            filled_quantity=plain_decimal(self.filled_quantity),
            liquidity_provider_id=self.liquidity_provider_id,
            status=self.status.to_proto(),
            order_ids=list(order_ids),
            fix_client_order_id=self.fix_client_order_id,
            lp_order_id=self.lp_order_id,
            status_reason=reason_value(self.status_reason),
            status_message=self.status_message,
            version=self.version,
        )
        if self.average_price is not None:
            hedge.average_price = plain_decimal(self.average_price)
        hedge.create_time.FromDatetime(self.created_at)
        hedge.update_time.FromDatetime(self.updated_at)
        return hedge


# -- what happens to a hedge order (pure) ----------------------------------------------------------


def _changed(hedge: HedgeRow, now: datetime, **changes: Any) -> HedgeRow:
    return replace(hedge, **changes, updated_at=now, version=hedge.version + 1)


def on_sent(hedge: HedgeRow, now: datetime) -> HedgeRow | None:
    """The NewOrderSingle left: NEW -> SENT (a report that came first already moved it on)."""
    if hedge.status is not HedgeStatus.NEW:
        return None
    return _changed(hedge, now, status=HedgeStatus.SENT)


def rejected(
    hedge: HedgeRow, reason: ErrorReason.ValueType, message: str, now: datetime
) -> HedgeRow | None:
    """The hedge ends REJECTED with `reason` (LP_REJECTED or LP_UNAVAILABLE); None once ended."""
    if hedge.status.terminal:
        return None
    return _changed(
        hedge,
        now,
        status=HedgeStatus.REJECTED,
        status_reason=reason_name(reason),
        status_message=message[:500],
    )


def on_report(hedge: HedgeRow, report: ExecutionReport, now: datetime) -> HedgeRow | None:
    """The hedge after `report`, or None when the report changes nothing. A fill is applied
    even after the hedge ended (the provider's word on what it traded wins; the caller logs
    it), but never beyond the hedge's quantity (ValueError)."""
    lp_order_id = report.lp_order_id or hedge.lp_order_id
    if report.kind is ReportKind.FILL:
        assert report.last_price is not None, "a parsed fill has a price"
        filled = exact_sum(hedge.filled_quantity, report.last_quantity)
        if filled > hedge.quantity:
            raise ValueError(
                f"hedge {hedge.id}: a fill of {report.last_quantity} exceeds its quantity"
                f" {hedge.quantity} ({hedge.filled_quantity} filled)"
            )
        average = (
            report.last_price
            if hedge.average_price is None
            else average_price(
                hedge.filled_quantity, hedge.average_price, report.last_quantity, report.last_price
            )
        )
        status = hedge.status
        if not status.terminal:
            status = (
                HedgeStatus.FILLED if filled == hedge.quantity else HedgeStatus.PARTIALLY_FILLED
            )
        return _changed(
            hedge,
            now,
            status=status,
            filled_quantity=filled,
            average_price=average,
            lp_order_id=lp_order_id,
        )
    if hedge.status.terminal:
        return None
    if report.kind is ReportKind.ACKNOWLEDGED:
        if hedge.status not in (HedgeStatus.NEW, HedgeStatus.SENT):
            return None
        return _changed(hedge, now, status=HedgeStatus.WORKING, lp_order_id=lp_order_id)
    if report.kind is ReportKind.CANCELLED:
        return _changed(
            hedge,
            now,
            status=HedgeStatus.CANCELLED,
            lp_order_id=lp_order_id,
            status_message=(report.text or "the provider cancelled the unfilled rest")[:500],
        )
    if report.kind is ReportKind.REJECTED:
        if report.reject_reason == _UNKNOWN_ORDER:
            changed = rejected(
                hedge,
                _R.ERROR_REASON_LP_UNAVAILABLE,
                "the provider does not know the order: it never received it"
                + (f" ({report.text})" if report.text else ""),
                now,
            )
        else:
            changed = rejected(
                hedge, _R.ERROR_REASON_LP_REJECTED, report.text or "rejected by the provider", now
            )
        return None if changed is None else replace(changed, lp_order_id=lp_order_id)
    return None


def never_received(hedge: HedgeRow, report: ExecutionReport) -> bool:
    """Whether `report` says the provider does not know an order of ours that it has not
    acknowledged (NEW: maybe sent before a restart; SENT) and that has nothing filled: an
    "unknown order" rejection (OrdRejReason 5), as a report or as an Order Status answer. FIX
    delivers in order, so the NewOrderSingle never arrived and the hedge can still be sent
    under the same ClOrdID (the desk does, once; a provider that had it would refuse the
    duplicate ClOrdID). This reading holds only because providers keep their orders across
    their own restarts (a real LP's book does; so do the simulators', simulators/lp)."""
    if hedge.status not in (HedgeStatus.NEW, HedgeStatus.SENT) or hedge.filled_quantity:
        return False
    if report.reject_reason != _UNKNOWN_ORDER:
        return False
    return report.kind is ReportKind.REJECTED or (
        report.kind is ReportKind.STATUS and report.order_status == _STATUS_REJECTED
    )


def fill_counted(hedge: HedgeRow, report: ExecutionReport) -> bool:
    """Whether a fill report is already in the hedge's filled quantity although its ExecID is
    new: its CumQty (the provider's total with it) is not beyond what the hedge has, because an
    Order Status answer brought the hedge there first."""
    return (
        report.kind is ReportKind.FILL
        and report.cumulative_quantity > 0
        and report.cumulative_quantity <= hedge.filled_quantity
    )


# OrdStatus (39) of an Order Status answer, as the report it stands for.
_STATUS_ENDED: Final = {
    "4": "cancelled",  # Canceled
    "C": "expired",  # Expired
    "3": "done for the day",  # Done for day
}
_STATUS_REJECTED: Final = "8"
_STATUS_FILLED: Final = "2"


def status_steps(hedge: HedgeRow, report: ExecutionReport) -> list[ExecutionReport]:
    """The reports an Order Status answer stands for, in order: a fill of what its CumQty has
    beyond the hedge's filled quantity (at the price that makes the hedge's average the
    provider's AvgPx; ValueError without an AvgPx), then a cancel (OrdStatus canceled,
    expired, done for day) or a rejection (rejected), or an acknowledgement (any open
    status). A filled answer needs nothing after the fill. Applied one by one with
    `on_report`."""
    if report.kind is not ReportKind.STATUS:
        raise ValueError(f"not an Order Status report: {report.kind}")
    steps: list[ExecutionReport] = []
    missing = report.cumulative_quantity - hedge.filled_quantity
    if missing > 0:
        steps.append(
            replace(
                report,
                kind=ReportKind.FILL,
                execution_id=report.key,
                last_quantity=missing,
                last_price=_price_of_the_rest(hedge, report, missing),
            )
        )
    status = report.order_status
    if status == _STATUS_REJECTED:
        steps.append(replace(report, kind=ReportKind.REJECTED))
    elif status in _STATUS_ENDED:
        steps.append(
            replace(
                report,
                kind=ReportKind.CANCELLED,
                text=report.text or f"the provider reports the order {_STATUS_ENDED[status]}",
            )
        )
    elif status != _STATUS_FILLED:
        steps.append(replace(report, kind=ReportKind.ACKNOWLEDGED))
    return steps


def _price_of_the_rest(hedge: HedgeRow, report: ExecutionReport, missing: Decimal) -> Decimal:
    """The average price of the fills the hedge missed: the provider's AvgPx over its CumQty,
    less what the hedge already has, rounded half-even to 12 decimals."""
    if report.average_price is None:
        raise ValueError(
            f"hedge {hedge.id}: the provider reports {report.cumulative_quantity} filled"
            " without an average price"
        )
    if hedge.filled_quantity == 0 or hedge.average_price is None:
        return report.average_price
    notional = report.average_price * report.cumulative_quantity - (
        hedge.average_price * hedge.filled_quantity
    )
    price = (notional / missing).quantize(_PRICE_PLACES, rounding=ROUND_HALF_EVEN)
    if price <= 0:
        raise ValueError(
            f"hedge {hedge.id}: the provider's average {report.average_price} over"
            f" {report.cumulative_quantity} leaves no positive price for the missing {missing}"
        )
    return price


@dataclass(frozen=True)
class Chase:
    """What to do about an open hedge order the provider may not have answered."""

    ask: bool  # send an OrderStatusRequest now
    unknown: bool  # no end `unknown_after` after it was made: its fate is unknown


_CHASED: Final = frozenset({HedgeStatus.SENT, HedgeStatus.WORKING, HedgeStatus.PARTIALLY_FILLED})


def chase(
    hedge: HedgeRow,
    asked_at: datetime | None,
    now: datetime,
    status_after: timedelta,
    unknown_after: timedelta,
    *,
    status_refused: bool = False,
    maybe_sent: bool = False,
) -> Chase:
    """A hedge at the provider (SENT, WORKING, PARTIALLY_FILLED; LPs never rest ours) is asked
    about when nothing changed it, and it was not asked about, for `status_after`; it is of
    unknown fate once it is `unknown_after` old, or at once when its provider refused to say
    (`status_refused`: a Reject of our OrderStatusRequest). NEW ones were never known to be
    sent and need nothing, unless they were made before a restart (`maybe_sent`: the process
    that sent them may have died before it recorded SENT), which are chased like SENT ones;
    ended ones need nothing."""
    if hedge.status not in _CHASED and not (maybe_sent and hedge.status is HedgeStatus.NEW):
        return Chase(ask=False, unknown=False)
    quiet_since = hedge.updated_at if asked_at is None else max(hedge.updated_at, asked_at)
    return Chase(
        ask=now - quiet_since >= status_after,
        unknown=status_refused or now - hedge.created_at >= unknown_after,
    )


class SettlementOutcome(enum.StrEnum):
    """What an operator found the provider did with a hedge order (`settlement`)."""

    FILLED = "FILLED"  # filled this much at this average price; the rest, if any, cancelled
    REJECTED = "REJECTED"  # refused what the hedge had not filled


class SettlementError(ValueError):
    """A settlement the hedge order cannot take; `field` is the request's field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_STORED_PLACES: Final = 12  # oms.hedge_fills and oms.hedge_orders keep 12 decimals


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def settlement(
    hedge: HedgeRow,
    outcome: SettlementOutcome,
    filled: Decimal | None,
    average: Decimal | None,
    text: str,
    key: str,
    now: datetime,
) -> list[ExecutionReport]:
    """An operator's settlement of an open hedge order, as the reports its provider would
    have sent (applied one by one with `on_report`, exactly as an Order Status answer):
    FILLED, `filled` in all (the provider's CumQty, not less than the hedge has) at the
    average `average` (its AvgPx over all of it): a fill of what the hedge lacks, then a
    cancel of the rest if `filled` is short of the quantity; REJECTED: the rest refused,
    LP_REJECTED with `text`. Fills carry `key` as their ExecID. SettlementError (with the
    field) for a settlement the hedge cannot take; ValueError for an ended hedge."""
    if hedge.status.terminal:
        raise ValueError(f"hedge order {hedge.id} has ended ({hedge.status.value})")
    cumulative, price = hedge.filled_quantity, hedge.average_price
    status = _STATUS_REJECTED
    if outcome is SettlementOutcome.FILLED:
        if filled is None or average is None:
            raise SettlementError(
                "filled_quantity", "a FILLED settlement needs filled_quantity and average_price"
            )
        if not (filled.is_finite() and filled > 0) or _places(filled) > _STORED_PLACES:
            raise SettlementError("filled_quantity", f"{filled} is not a quantity to store")
        if not (average.is_finite() and average > 0) or _places(average) > _STORED_PLACES:
            raise SettlementError("average_price", f"{average} is not a price to store")
        if filled > hedge.quantity:
            raise SettlementError(
                "filled_quantity",
                f"{plain_decimal(filled)} is more than the hedge order's quantity"
                f" {plain_decimal(hedge.quantity)}",
            )
        if filled < hedge.filled_quantity:
            raise SettlementError(
                "filled_quantity",
                f"{plain_decimal(filled)} is less than the {plain_decimal(hedge.filled_quantity)}"
                " the hedge order has filled already",
            )
        if filled == hedge.filled_quantity and price is not None and average != price:
            raise SettlementError(
                "average_price",
                f"nothing more filled: the average stays the hedge order's {plain_decimal(price)}",
            )
        cumulative, price = filled, average
        status = _STATUS_FILLED if filled == hedge.quantity else "4"
    elif filled is not None or average is not None:
        raise SettlementError(
            "filled_quantity", "a REJECTED settlement takes no filled_quantity or average_price"
        )
    answer = ExecutionReport(
        lp=hedge.liquidity_provider_id,
        hedge_order_id=hedge.id,
        lp_order_id=hedge.lp_order_id,
        execution_id=key,
        kind=ReportKind.STATUS,
        last_quantity=_ZERO,
        last_price=None,
        cumulative_quantity=cumulative,
        text=text,
        received_at=now,
        order_status=status,
        average_price=price,
    )
    try:
        steps = status_steps(hedge, answer)
    except ValueError as error:
        raise SettlementError("average_price", str(error)) from error
    return [
        replace(step, execution_id=key) if step.kind is ReportKind.FILL else step for step in steps
    ]


_SUBJECTS: Final = {
    HedgeStatus.SENT: "oms.hedge_order.sent",
    HedgeStatus.CANCELLED: "oms.hedge_order.cancelled",
    HedgeStatus.REJECTED: "oms.hedge_order.rejected",
}


def hedge_event(
    before: HedgeRow,
    after: HedgeRow,
    order_ids: Sequence[str],
    actor: Actor,
    report: ExecutionReport | None = None,
) -> tuple[str, Message] | None:
    """The event a change publishes (oms_events.proto): `oms.hedge_order.filled` for every
    fill, `.sent`, `.cancelled` or `.rejected` when the status becomes that; None for a change
    the contract has no event for (the acknowledgement)."""
    meta = events.metadata(actor, after.version, after.updated_at)
    message = after.to_proto(order_ids)
    if report is not None and report.kind is ReportKind.FILL:
        assert report.last_price is not None
        filled = ev.HedgeOrderFilled(
            metadata=meta,
            hedge_order=message,
            fill_quantity=plain_decimal(report.last_quantity),
            fill_price=plain_decimal(report.last_price),
            lp_execution_id=report.execution_id,
        )
        filled.fill_time.FromDatetime(report.received_at)
        return "oms.hedge_order.filled", filled
    if after.status is before.status:
        return None
    subject = _SUBJECTS.get(after.status)
    if subject is None:
        return None
    kinds: dict[HedgeStatus, Any] = {
        HedgeStatus.SENT: ev.HedgeOrderSent,
        HedgeStatus.CANCELLED: ev.HedgeOrderCancelled,
        HedgeStatus.REJECTED: ev.HedgeOrderRejected,
    }
    return subject, kinds[after.status](metadata=meta, hedge_order=message)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
