"""The allocation of STP outcomes to client orders (ADR 0007, "Execution modes"; the desk's
module doc tells the whole flow).

`Allocation.apply` applies one execution report (or one step of an order status answer, or of
an operator's settlement) to a hedge order in the caller's transaction: its row and its
`oms.hedge_order.*` event, a fill de-duplicated on its ExecID, and the allocation when the
report ends the hedge; `Allocation.reject` ends one whose NewOrderSingle the provider refused.
`Allocation.allocate` shares an ended hedge order's fill out, in the transaction that ends it
(the provider's report, an operator's settlement, a restart's recovery): to the orders of its
window at their own prices (`domain.netting.allocate`), or to the one STP limit order it was
made for (`allocate_limit`: the client gets its limit; the broker keeps what the provider
filled beyond the order's rest). The accounts' and then the orders' rows are locked first, in
id order. `Allocation.settle` books settlements (this or any other: a window that netted to
zero, a limit order's refusal) one account at a time, each in a savepoint, so an account whose
orders cannot be booked has them rejected with the reason while the others fill.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.domain.netting import HedgeResult
from services.oms.domain.netting import RawPrices
from services.oms.domain.netting import WindowOrder
from services.oms.domain.netting import allocate
from services.oms.domain.netting import allocate_limit
from services.oms.domain.netting import raw_limit
from services.oms.domain.positions import Side
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.entry.fills import FillTerms
from services.oms.entry.fills import book_fill
from services.oms.entry.fills import converted_fill_terms
from services.oms.feeds.quotes import QuoteBook
from services.oms.model import OrderRow
from services.oms.store import hedges as hedge_store
from services.oms.store.changes import AccountChange
from services.oms.store.changes import AccountContext
from services.oms.store.changes import account_context
from services.oms.store.changes import reason_changes
from services.oms.stp import hedges
from services.oms.stp import lp_messages
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportKind
from services.oms.stp.rules import Settlement
from services.oms.stp.rules import refused
from services.oms.stp.rules import rest_event
from services.oms.stp.rules import settlements_of
from services.oms.stp.rules import window_order
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = ["Allocation", "LimitNote", "contexts_of", "digits_of"]

log = logging.getLogger(__name__)

_R = ErrorReason


@dataclass(frozen=True)
class LimitNote:
    """An STP limit order an allocation (or a try) settled: the desk tells its listeners after
    the commit. `filled`: what its hedge order filled, None when none ran."""

    order_id: str
    account_id: str
    filled: Decimal | None


class Allocation:
    """Allocates and settles in the caller's transaction; the live quotes convert a fill's
    P&L to the account currency."""

    def __init__(self, quotes: QuoteBook, clock: Callable[[], datetime]) -> None:
        self.quotes = quotes
        self.clock = clock

    async def reject(
        self,
        session: AsyncSession,
        lp: str,
        effect: lp_messages.RejectHedge,
        actor: Actor,
    ) -> tuple[str, list[LimitNote]]:
        """The provider refused a hedge order's NewOrderSingle: REJECTED / LP_REJECTED with its
        words, and the hedge's client orders allocated as for any rejected hedge, in the
        caller's transaction. What was done, and the limit orders the allocation settled."""
        hedge = None
        if hedges.is_uuid(effect.hedge_order_id):
            hedge = await hedge_store.get_hedge(session, effect.hedge_order_id, lock=True)
        if hedge is None:
            return f"refuses order {effect.hedge_order_id}, which is no hedge order", []
        ended = hedges.rejected(
            hedge,
            _R.ERROR_REASON_LP_REJECTED,
            f"{lp} refused the order: {effect.text}",
            self.clock(),
        )
        if ended is None:
            return f"refuses hedge order {hedge.id}, which had ended {hedge.status.value}", []
        await hedge_store.publish(session, hedge, ended, actor)
        notes = await self.allocate(session, ended, actor)
        return f"hedge order {hedge.id} REJECTED: {ended.status_message}", notes

    async def apply(
        self,
        session: AsyncSession,
        hedge: HedgeRow,
        report: ExecutionReport,
        actor: Actor,
        correlation_id: str = "",
    ) -> tuple[HedgeRow, list[LimitNote]]:
        """One report's change to the hedge order, in the caller's transaction: the row, its
        event, and the window's allocation when the report ends it. The hedge as it is after,
        and the limit orders the allocation settled. `actor` is who made the change (the desk;
        an operator settling the hedge by hand)."""
        if report.kind is ReportKind.FILL:
            if hedges.fill_counted(hedge, report):
                log.warning(
                    "a fill the hedge order has already counted (an order status answer)",
                    extra={"hedge_order_id": hedge.id, "execution_id": report.execution_id},
                )
                return hedge, []
            if not await hedge_store.record_fill(session, hedge.id, report):
                return hedge, []  # this ExecID was applied before (a resend)
        try:
            after = hedges.on_report(hedge, report, self.clock())
        except ValueError as error:
            log.error(
                "an execution report the hedge order cannot take",
                extra={"hedge_order_id": hedge.id, "error": str(error)},
            )
            return hedge, []
        if after is None:
            return hedge, []
        if hedge.status.terminal:
            log.error(
                "a fill for a hedge order that had ended: the broker holds it unallocated",
                extra={"hedge_order_id": hedge.id, "execution_id": report.execution_id},
            )
        await hedge_store.publish(session, hedge, after, actor, report)
        notes: list[LimitNote] = []
        if after.status.terminal and not hedge.status.terminal:
            notes = await self.allocate(session, after, actor, correlation_id)
        return after, notes

    async def allocate(
        self,
        session: AsyncSession,
        hedge: HedgeRow,
        actor: Actor,
        correlation_id: str = "",
    ) -> list[LimitNote]:
        """Shares an ended hedge order's window out (ADR 0007), in the caller's transaction;
        a limit order's own hedge goes to that order (`allocate_limit`). The limit orders it
        settled, for the desk to tell its listeners after the commit. `actor` (and
        `correlation_id`) go to the accounts' audit records: the desk, or the operator who
        settled the hedge."""
        links = await hedge_store.links_of(session, hedge.id)
        await hedge_store.lock_accounts(session, [link.account_id for link in links])
        orders = await hedge_store.lock_orders(session, [link.order_id for link in links])
        contexts = await contexts_of(session, {link.account_id for link in links}, hedge.symbol)
        window_orders = [
            window_order(orders[link.order_id], link.bid_markup, link.ask_markup)
            for link in links
            if link.order_id in orders
        ]
        assert hedge.raw_bid is not None, "stored when the hedge was created"
        assert hedge.raw_ask is not None, "stored when the hedge was created"
        filled = hedge.filled_quantity
        result = HedgeResult(filled, hedge.average_price if filled > 0 else None)
        digits = digits_of(contexts)
        notes: list[LimitNote] = []
        if len(links) == 1 and len(window_orders) == 1 and window_orders[0].limit is not None:
            (limit_order,) = window_orders
            if await hedge_store.in_flight(session, limit_order.order_id):
                # An older hedge allocated again after a restart while a newer one is at the
                # provider: the newer one decides.
                log.warning(
                    "STP: a limit order's ended hedge order is not allocated: another is open",
                    extra={"hedge_order_id": hedge.id, "order_id": limit_order.order_id},
                )
                return notes
            result = _limit_result(hedge, limit_order, result, digits)
            allocations = [allocate_limit(limit_order, result, digits)]
            notes.append(LimitNote(links[0].order_id, links[0].account_id, filled))
        else:
            allocations = allocate(
                window_orders, result, RawPrices(hedge.raw_bid, hedge.raw_ask), digits
            )
        settlements = settlements_of(allocations, window_orders, hedge)
        await self.settle(
            session,
            hedge.symbol,
            hedge.id,
            orders,
            settlements,
            contexts,
            self.clock(),
            actor=actor,
            correlation_id=correlation_id,
        )
        log.info(
            "STP hedge order allocated",
            extra={
                "hedge_order_id": hedge.id,
                "status": hedge.status.value,
                "filled": str(filled),
                "orders": len(settlements),
            },
        )
        return notes

    async def settle(
        self,
        session: AsyncSession,
        symbol: str,
        hedge_id: str | None,
        orders: Mapping[str, OrderRow],
        settlements: Sequence[Settlement],
        contexts: Mapping[str, AccountContext],
        now: datetime,
        *,
        actor: Actor,
        correlation_id: str = "",
    ) -> None:
        """Applies the settlements, one account at a time (their rows are locked, in id order,
        by the caller), each in a savepoint: an account whose orders cannot be booked has them
        rejected with the reason, and the others still fill. `actor` and `correlation_id` as
        in `allocate`."""
        by_account: dict[str, list[Settlement]] = defaultdict(list)
        for settlement in settlements:
            by_account[orders[settlement.order_id].account_id].append(settlement)
        for account_id in sorted(by_account):
            context = contexts[account_id]
            try:
                async with (
                    session.begin_nested(),
                    AccountChange.opened(
                        session, context.account, actor, now, correlation_id
                    ) as change,
                ):
                    terms = await self._fill_terms(session, context, by_account[account_id])
                    for settlement in by_account[account_id]:
                        await _settle_order(
                            change, orders[settlement.order_id], settlement, terms, hedge_id
                        )
            except DomainError as error:
                log.error(
                    "STP: an account's orders could not be filled; they are rejected",
                    extra={"account_id": account_id, "symbol": symbol, "error": error.message},
                )
                async with (
                    session.begin_nested(),
                    AccountChange.opened(
                        session, context.account, actor, now, correlation_id
                    ) as change,
                ):
                    for settlement in by_account[account_id]:
                        failed = refused(settlement.order_id, error.reason, error.message)
                        await _settle_order(
                            change, orders[settlement.order_id], failed, None, hedge_id
                        )

    async def _fill_terms(
        self, session: AsyncSession, context: AccountContext, settlements: Sequence[Settlement]
    ) -> FillTerms | None:
        """The account's fill terms; None when none of its orders fills. PRICE_UNAVAILABLE
        when a fill needs a conversion to the account currency and no price gives it."""
        if all(s.quantity <= 0 for s in settlements):
            return None
        instrument, terms, account = context.instrument, context.terms, context.account
        if instrument is None or terms is None:
            raise DomainError(
                _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
                "the instrument is not offered to the account's group",
            )
        fill_terms = await converted_fill_terms(
            session, instrument, terms, account.currency, self.quotes.live
        )
        if fill_terms is None:
            raise DomainError(
                _R.ERROR_REASON_PRICE_UNAVAILABLE,
                f"no live price converts {instrument.quote_currency} to {account.currency}",
            )
        return fill_terms


async def contexts_of(
    session: AsyncSession, account_ids: set[str], symbol: str
) -> dict[str, AccountContext]:
    """Each account's context for `symbol` (its terms, the instrument as its group is offered
    it), read in id order; an account not copied here is left out."""
    found = {}
    for account_id in sorted(account_ids):
        context = await account_context(session, account_id, symbol)
        if context is not None:
            found[account_id] = context
    return found


def _limit_result(
    hedge: HedgeRow, order: WindowOrder, result: HedgeResult, digits: int
) -> HedgeResult:
    """The hedge's result as the limit order can take it; logs what the broker holds when the
    provider filled worse than the raw limit (the client still gets its limit) or more than
    the order's rest (the broker keeps the excess)."""
    if result.average_price is not None:
        raw = raw_limit(order, digits)
        worse = result.average_price > raw if order.side is Side.BUY else result.average_price < raw
        if worse:
            log.error(
                "STP: the provider filled a limit hedge worse than its limit; the client gets"
                " its limit",
                extra={
                    "hedge_order_id": hedge.id,
                    "average_price": str(result.average_price),
                    "limit": str(raw),
                },
            )
    if result.filled > order.quantity:
        log.error(
            "STP: a limit hedge filled more than its order's rest; the broker holds the excess",
            extra={"hedge_order_id": hedge.id, "filled": str(result.filled)},
        )
        return HedgeResult(order.quantity, result.average_price)
    return result


def digits_of(contexts: Mapping[str, AccountContext]) -> int:
    """The digits of the instrument the contexts share; UNKNOWN_INSTRUMENT when none has it."""
    for context in contexts.values():
        if context.instrument is not None:
            return context.instrument.digits
    raise DomainError(_R.ERROR_REASON_UNKNOWN_INSTRUMENT, "the window's instrument is unknown")


async def _settle_order(
    change: AccountChange,
    order: OrderRow,
    settlement: Settlement,
    terms: FillTerms | None,
    hedge_id: str | None,
) -> None:
    if not order.is_open:
        log.warning(
            "STP: an order of the window ended before its allocation",
            extra={"order_id": order.id, "status": order.status.value},
        )
        return
    if settlement.quantity > 0:
        assert terms is not None, "an account with a fill has its terms"
        assert settlement.price is not None, "a fill has a price"
        booked = await book_fill(
            change, order, settlement.quantity, settlement.price, terms, hedge_order_id=hedge_id
        )
        order = booked.order
    if not order.is_open:
        return
    if settlement.rest is None:
        if order.status is OrderStatus.PENDING_CANCEL:  # a resting limit order's rest
            await change.apply(
                order, OrderEvent.CANCELLED, "cancelled while its hedge order was at the provider"
            )
        return
    event = rest_event(order.status, settlement.rest)
    if order.status is OrderStatus.PENDING_CANCEL:
        await change.apply(order, event, "cancelled while its hedge order was at the provider")
        return
    await change.apply(
        order,
        event,
        settlement.message,
        changes=reason_changes(settlement.reason, settlement.message),
    )
