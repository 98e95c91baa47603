"""A client's amend of a working order (OrderService.AmendOrder): `Amendment.amend` reads the
order, works out what the request changes (`amended_order`), checks the new values against the
instrument's rules and, when the quantity or a price changes, with the risk service's pre-trade
check (no transaction open), then applies AMENDED in the account's change if the order is still
the version it read (else ABORTED, concurrent modification).

Only a working limit, stop or stop-limit order is amended (a market order never is); an STP
limit order whose hedge order is at a liquidity provider cannot be amended until its hedge
order is back: INVALID_ORDER_STATE.

An open position's stop-loss and take-profit (PositionService.ModifyPosition):
`Amendment.modify_position` checks the new levels against the instrument's digits and ticks and
against the live price (a stop-loss on the losing side of it, a take-profit on the winning
side), then changes them in one transaction with the position's audit row and a
PositionChanged (STOPS_MODIFIED) event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Final

from services.oms.domain.positions import close_price
from services.oms.domain.state import WORKING_STATUSES
from services.oms.domain.state import OrderEvent
from services.oms.domain.validation import check_price
from services.oms.domain.validation import check_quantity
from services.oms.domain.validation import check_stops
from services.oms.entry.placement import Authorize
from services.oms.entry.placement import check_request
from services.oms.feeds.quotes import QuoteBook
from services.oms.feeds.risk import RiskClient
from services.oms.model import Account
from services.oms.model import Instrument
from services.oms.model import OrderRow
from services.oms.model import OrderType
from services.oms.model import PositionRow
from services.oms.store import hedges as hedge_store
from services.oms.store.changes import AccountChange
from services.oms.store.changes import account_context
from services.oms.store.changes import concurrent_modification
from services.oms.store.changes import count_open_orders
from services.oms.store.changes import get_order
from services.oms.store.changes import load_account
from services.oms.store.changes import order_of
from services.oms.store.changes import position_of
from services.oms.store.reference import load_instruments
from services.platform.errors import DomainError
from services.platform.errors import field_error
from services.platform.identity import Caller
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import oms_events_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.risk.v1 import risk_internal_service_pb2 as risk_pb

__all__ = ["Amendment", "ModifiedPosition", "amended_order"]

_R = ErrorReason
# What the pre-trade check looks at again when it changes.
_CHECKED: Final = frozenset({"quantity", "price", "stop_price"})


@dataclass(frozen=True)
class ModifiedPosition:
    """A position as ModifyPosition left it, with what its valuation needs."""

    account: Account
    position: PositionRow
    instruments: dict[str, Instrument]


class Amendment:
    """AmendOrder's and ModifyPosition's flows (see the module doc); `risk` is the pre-trade
    check (None: not configured, and an amend it must see is refused), `quotes` the live
    prices a position's new levels are checked against."""

    def __init__(
        self,
        resources: Resources,
        quotes: QuoteBook,
        risk: RiskClient | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.resources = resources
        self.quotes = quotes
        self.risk = risk
        self.clock = clock

    async def amend(
        self, request: order_service_pb2.AmendOrderRequest, caller: Caller, authorize: Authorize
    ) -> tuple[OrderRow, Account]:
        """The order as amended (unchanged when the request changes nothing) and its account."""
        db = self.resources.db
        async with db.read_session() as session:
            account = authorize(await load_account(session, request.account_id))
            order = await order_of(session, account.account_id, request.order_id)
            context = await account_context(session, account.account_id, order.symbol)
            open_orders = await count_open_orders(session, account.account_id)
        _check_version(order, request)
        amended, changed = amended_order(order, request)
        if not changed:
            return order, account
        if context is not None and context.instrument is not None:
            _check_amend_rules(amended, request, context.instrument.rules)
        if _CHECKED & set(changed):
            await self._check(amended, open_orders)
        async with (
            db.transaction() as session,
            AccountChange.for_caller(session, account, caller, self.clock()) as change,
        ):
            current = await get_order(session, account.account_id, order.id, lock=True)
            if current is None or current.version != order.version:
                raise concurrent_modification("order", order.id)
            if await hedge_store.in_flight(session, order.id):  # an STP limit's hedge is at the LP
                raise DomainError(
                    _R.ERROR_REASON_INVALID_ORDER_STATE,
                    f"order {order.id} is at the liquidity provider; amend it once it is back",
                    metadata={"order_id": order.id, "status": current.status.value},
                )
            result = await change.apply(
                order,
                OrderEvent.AMENDED,
                "amended by the client",
                changes={name: getattr(amended, name) for name in changed},
                changed_fields=changed,
            )
        return result, account

    async def modify_position(
        self,
        request: position_service_pb2.ModifyPositionRequest,
        caller: Caller,
        authorize: Authorize,
    ) -> ModifiedPosition:
        """The position with the request's stop-loss and take-profit, changed (when they
        change) in one transaction with its audit row and a PositionChanged (STOPS_MODIFIED)
        event."""
        now = self.clock()
        async with self.resources.db.transaction() as session:
            account = authorize(await load_account(session, request.account_id))
            async with AccountChange.for_caller(session, account, caller, now) as change:
                position = await position_of(
                    session, account.account_id, request.position_id, lock=True
                )
                if not position.is_open:
                    raise DomainError(
                        _R.ERROR_REASON_INVALID_ORDER_STATE,
                        f"position {position.id} is closed",
                        metadata={"position_id": position.id},
                    )
                if (
                    request.HasField("expected_version")
                    and request.expected_version != position.version
                ):
                    raise concurrent_modification("position", position.id)
                stop_loss = _level(request, "stop_loss", position.stop_loss)
                take_profit = _level(request, "take_profit", position.take_profit)
                instruments = await load_instruments(session)
                if (stop_loss, take_profit) != (position.stop_loss, position.take_profit):
                    self._check_levels(
                        account.group_id, position, stop_loss, take_profit, instruments
                    )
                    modified = await change.change_position(
                        position,
                        "STOPS_MODIFIED",
                        "modified by the client",
                        stop_loss=stop_loss,
                        take_profit=take_profit,
                    )
                    await change.emit(
                        "oms.position.changed",
                        oms_events_pb2.PositionChanged(
                            metadata=change.metadata(modified.version),
                            position=modified.to_proto(account.currency),
                            change_type=oms_events_pb2.POSITION_CHANGE_TYPE_STOPS_MODIFIED,
                        ),
                    )
                    position = modified
        return ModifiedPosition(account, position, instruments)

    def _check_levels(
        self,
        group_id: str,
        position: PositionRow,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        instruments: dict[str, Instrument],
    ) -> None:
        instrument = instruments.get(position.symbol)
        if instrument is not None:
            for name, value in (("stop_loss", stop_loss), ("take_profit", take_profit)):
                if value is not None:
                    check_price(value, instrument.rules, name)
        if stop_loss is None and take_profit is None:
            return
        quote = self.quotes.live(group_id, position.symbol)
        if quote is None:
            raise DomainError(
                _R.ERROR_REASON_PRICE_UNAVAILABLE,
                f"no live price for {position.symbol} to check the levels against",
                metadata={"symbol": position.symbol},
            )
        reference = close_price(position.side, quote.bid, quote.ask)
        check_stops(position.side, reference, stop_loss, take_profit)

    async def _check(self, amended: OrderRow, open_orders: int) -> None:
        request = check_request(
            amended,
            risk_pb.CHECK_PURPOSE_AMEND,
            amended.execution_mode,
            max(open_orders - 1, 0),  # the others: the amended order is checked as it would be
        )
        if self.risk is None:
            raise DomainError(
                _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, "the pre-trade check is not configured"
            )
        verdict = await self.risk.check(request)
        if not verdict.approved:
            raise DomainError(verdict.reason, verdict.message or "the amended order was refused")


def _check_version(order: OrderRow, request: order_service_pb2.AmendOrderRequest) -> None:
    if request.HasField("expected_version") and request.expected_version != order.version:
        raise concurrent_modification("order", order.id)


def _invalid_fields(message: str, field: str, problem: str) -> DomainError:
    return field_error(_R.ERROR_REASON_INVALID_ORDER_FIELDS, field, problem, message)


def amended_order(
    order: OrderRow, request: order_service_pb2.AmendOrderRequest
) -> tuple[OrderRow, list[str]]:
    """The order with the request's values, and the names of the fields that change; refuses
    an amend the order's state or type does not allow."""
    if order.status not in WORKING_STATUSES:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            f"order {order.id} is {order.status.value.lower()}: only a working order is amended",
            metadata={"order_id": order.id, "status": order.status.value},
        )
    if order.type is OrderType.MARKET:
        raise DomainError(
            _R.ERROR_REASON_INVALID_ORDER_STATE,
            "a market order cannot be amended",
            metadata={"order_id": order.id},
        )
    values: dict[str, Any] = {}
    if request.HasField("price"):
        if order.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise _invalid_fields("a stop order has no price", "price", "not for a stop order")
        values["price"] = Decimal(request.price)
    if request.HasField("stop_price"):
        if order.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise _invalid_fields(
                "a limit order has no stop_price", "stop_price", "not for a limit order"
            )
        if order.type is OrderType.STOP_LIMIT and order.trigger_time is not None:
            raise DomainError(
                _R.ERROR_REASON_INVALID_ORDER_STATE,
                "the stop-limit order already triggered: its stop_price cannot change",
                metadata={"order_id": order.id},
            )
        values["stop_price"] = Decimal(request.stop_price)
    if request.HasField("quantity"):
        quantity = Decimal(request.quantity)
        if quantity <= order.filled_quantity:
            raise _invalid_fields(
                f"quantity {quantity} is not above the filled {order.filled_quantity}",
                "quantity",
                "must be above filled_quantity",
            )
        values["quantity"] = quantity
    if request.HasField("stop_loss"):
        values["stop_loss"] = Decimal(request.stop_loss)
    elif request.clear_stop_loss:
        values["stop_loss"] = None
    if request.HasField("take_profit"):
        values["take_profit"] = Decimal(request.take_profit)
    elif request.clear_take_profit:
        values["take_profit"] = None
    changed = [name for name, value in values.items() if getattr(order, name) != value]
    amended = replace(order, **{name: values[name] for name in changed})
    return amended, changed


def _check_amend_rules(
    amended: OrderRow, request: order_service_pb2.AmendOrderRequest, rules: Any
) -> None:
    if request.HasField("quantity"):
        check_quantity(amended.quantity, rules)
    for name in ("price", "stop_price", "stop_loss", "take_profit"):
        if request.HasField(name):
            check_price(Decimal(getattr(request, name)), rules, name)
    reference = amended.price or amended.stop_price
    if reference is not None and (amended.stop_loss or amended.take_profit):
        check_stops(amended.side, reference, amended.stop_loss, amended.take_profit)


def _level(request: Any, name: str, current: Decimal | None) -> Decimal | None:
    if request.HasField(name):
        return Decimal(getattr(request, name))
    if getattr(request, f"clear_{name}"):
        return None
    return current
