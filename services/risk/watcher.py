"""The margin watcher (ADR 0007): margin calls and stop-outs from live prices.

One instance of the service leads, holding a PostgreSQL advisory lock on a connection of its own
for as long as it runs; the others wait for the lock and meanwhile re-read the margin statuses
(the pre-trade check refuses new exposure in stop-out), so a failover needs no coordination.

The leader makes a pass over every account with open positions (or a margin episode open) every
`pass_interval`, and at once over the accounts holding an instrument whose raw mid moved more
than `move_threshold` (0.5 %) since the last pass over it. For each account it values the
positions, compares the exact level with the group's levels, and writes the margin events
`episodes` decides, each with the account's new margin state and its outbox row in one
transaction. The status comes from `pass_valuation` (the figures of `valuation.value_account`,
digit for digit, at a fraction of the cost); only an account with events to write is valued in
full, for the figures they carry. A pass gives the event loop a turn every couple of
milliseconds, so the pre-trade checks it serves are not held up. An account whose figures the
margin arithmetic refuses (an arithmetic error) is left out of the pass and logged, rather than
stopping the pass for every other account.

Below the stop-out level, a stop-out task for the account closes positions one at a time with
OmsInternalService.ForceClosePosition (origin STOP_OUT), largest loss first
(`margin.next_to_close`), among the positions with a live price. Each attempt's client_order_id
(`tm:so:<uuid>`) is committed before the call, so a retry after a timeout, or after a restart,
reuses it and the OMS returns the same order. After each answer the task waits until the OMS's
events for it (the position, the trade) have reached the copies, then re-evaluates. It ends when
the level is back at or above the stop-out level or no position is left (STOP_OUT_COMPLETED, with
the realized P&L of the closing trades and how far the balance is below zero); when positions are
left but none can be closed now (no live price, the market closed, the OMS refused), it stays in
stop-out and the next pass tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Final
from typing import Protocol

import grpc
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.db import Database
from services.platform.enums import enum_name
from services.platform.leader import LeaderFlag
from services.platform.metrics import REGISTRY
from services.platform.tasks import cancel_and_wait
from services.risk import convert
from services.risk import store
from services.risk.copies import position_of
from services.risk.episodes import Episode
from services.risk.episodes import EventType
from services.risk.episodes import StopOutStep
from services.risk.episodes import apply_event
from services.risk.episodes import events_after_stop_out
from services.risk.episodes import events_for
from services.risk.episodes import negative_balance
from services.risk.episodes import stop_out_step
from services.risk.events import ACTOR
from services.risk.events import StopOutResult
from services.risk.events import margin_event_message
from services.risk.events import write_event
from services.risk.model import Account
from services.risk.model import Quote
from services.risk.pass_valuation import PassValuer
from services.risk.state import RiskState
from services.risk.valuation import AccountValuation
from services.risk.valuation import effective_balance
from services.risk.valuation import value_account
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_internal_service_pb2 as oms_internal
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.trading.margin import RiskStatus

__all__ = ["Closer", "MarginWatcher", "WatcherConfig"]

log = logging.getLogger(__name__)

MARGIN_EVENTS = Counter(
    "tradingmesh_risk_margin_events",
    "Margin events decided: MARGIN_CALL, MARGIN_CALL_RESOLVED, STOP_OUT_TRIGGERED, ...",
    ["type"],
    registry=REGISTRY,
)
for _type in EventType:  # every type from the start: a rate over none is 0, not nothing
    MARGIN_EVENTS.labels(_type.value)

LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"tradingmesh.risk.margin-watcher").digest()[:8], "big", signed=True
)
# A pass gives the event loop a turn after holding it this long (a CheckOrder waits at most
# about this), looking at the clock every _CLOCK_EVERY accounts.
_HOLD_SECONDS: Final = 0.002
_CLOCK_EVERY: Final = 32
_NO_EPISODE: Final = Episode()
_RETRY_SECONDS: Final = 2.0
_CALL_ATTEMPTS: Final = 3
_POLL_SECONDS: Final = 0.02
_GIVE_UP: Final = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


class Closer(Protocol):
    """OmsInternalService.ForceClosePosition, as the watcher calls it."""

    async def force_close(
        self, request: oms_internal.ForceClosePositionRequest, timeout: float
    ) -> oms_internal.ForceClosePositionResponse: ...


@dataclass(frozen=True)
class WatcherConfig:
    pass_interval: float = 2.0
    max_quote_age: timedelta | None = None
    move_threshold: Decimal = Decimal("0.005")
    call_timeout: float = 5.0
    catch_up_timeout: float = 5.0


class MarginWatcher:
    leading = LeaderFlag("risk-margin-watch")  # set in `_lead`, once the episodes are read

    def __init__(
        self,
        db: Database,
        state: RiskState,
        closer: Closer,
        config: WatcherConfig,
    ) -> None:
        self.db = db
        self.state = state
        self.closer = closer
        self.config = config
        self.leading = False
        self.episodes: dict[str, Episode] = {}
        self.last_pass: dict[str, datetime] = {}
        self._reference_mids: dict[str, Decimal] = {}
        self._moved: set[str] = set()
        self._wake = asyncio.Event()
        self._stop_outs: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._valuer = PassValuer(state)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="risk-margin-watcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._stop_outs.values()) if t is not None]
        await cancel_and_wait(*tasks)
        self._task = None
        self._stop_outs.clear()

    def on_price(self, symbol: str, quote: Quote) -> None:
        """A new price (QuoteFeed): wake a pass at once over the holders of `symbol` if its mid
        moved more than the threshold since the last pass over it."""
        reference = self._reference_mids.get(symbol)
        if reference is None or symbol in self._moved or not self.leading:
            return
        if abs(quote.raw_mid - reference) > reference * self.config.move_threshold:
            self._moved.add(symbol)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                async with self.db.leadership(LOCK_KEY) as lock:
                    if lock is None:
                        await self._follow()
                        continue
                    try:
                        await self._lead(lock)
                    finally:
                        await self._stop_stop_outs()
            except Exception:
                log.exception("the margin watcher failed; starting again")
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                self.leading = False

    async def _follow(self) -> None:
        """Not leading: keep the statuses the check uses current, and try again later."""
        async with self.db.read_session() as session:
            self.state.statuses = await store.load_statuses(session)
        await asyncio.sleep(self.config.pass_interval)

    async def _stop_stop_outs(self) -> None:
        tasks = list(self._stop_outs.values())
        await cancel_and_wait(*tasks)
        self._stop_outs.clear()

    # -- leading -------------------------------------------------------------------------------

    async def _lead(self, lock: AsyncConnection) -> None:
        async with self.db.read_session() as session:
            self.episodes = await store.read_episodes(session)
        self.state.statuses = {
            account: episode.status
            for account, episode in self.episodes.items()
            if episode.status is not RiskStatus.OK
        }
        self.leading = True
        log.info("leading the margin watch", extra={"episodes": len(self.episodes)})
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - loop.time()))
            self._wake.clear()
            await lock.execute(text("SELECT 1"))  # still holding the lock, or step down
            if loop.time() >= next_full:
                self._moved.clear()
                await self.run_pass(self._watched())
                self._reference_mids = {s: q.raw_mid for s, q in self.state.raw_quotes.items()}
                next_full = loop.time() + self.config.pass_interval
            else:
                moved, self._moved = self._moved, set()
                holders = set().union(*(self.state.holders_of(s) for s in moved))
                await self.run_pass(holders)
                for symbol in moved:
                    if (quote := self.state.raw_quotes.get(symbol)) is not None:
                        self._reference_mids[symbol] = quote.raw_mid

    def _watched(self) -> list[str]:
        """Every account with positions, and those without but with a margin episode open."""
        state = self.state
        open_episodes = (
            a
            for a, e in self.episodes.items()
            if e.status is not RiskStatus.OK and not state.holds_positions(a)
        )
        return [*state.accounts_with_positions(), *open_episodes]

    async def run_pass(self, account_ids: Iterable[str]) -> None:
        """Values each account, in the order given, and acts on its margin status.

        The status comes from `PassValuer` (the same figures as `value_account`, computed
        without its overhead); only an account whose status calls for events is valued in
        full, for the figures the events carry. The loop gives the event loop a turn once it
        held it `_HOLD_SECONDS` (checked every `_CLOCK_EVERY` accounts), so that checks are not
        held up; after any await the valuer is refreshed, since prices may have changed."""
        valuer = self._valuer
        valuer.refresh()
        episodes, accounts = self.episodes, self.state.accounts
        ok, stop_out = RiskStatus.OK, RiskStatus.STOP_OUT
        refused: list[str] = []
        now = datetime.now(UTC)
        due = time.perf_counter() + _HOLD_SECONDS
        for count, account_id in enumerate(list(account_ids), start=1):
            if count % _CLOCK_EVERY == 0 and time.perf_counter() >= due:
                await asyncio.sleep(0)
                valuer.refresh()
                now = datetime.now(UTC)
                due = time.perf_counter() + _HOLD_SECONDS
            episode = episodes.get(account_id, _NO_EPISODE)
            if episode.status is stop_out:
                self._ensure_stop_out(account_id)
                continue
            account = accounts.get(account_id)
            if account is None:
                continue
            try:
                status = valuer.status(account)
            except (ArithmeticError, ValueError):
                refused.append(account_id)
                continue
            if status is None:
                continue  # not every position has a price: decide nothing on partial figures
            self.last_pass[account_id] = now
            if status is ok and episode.margin_call_event_id is None:
                continue  # most accounts: OK, and no margin call to resolve (`events_for`)
            if events_for(episode, status):
                await self._act(account, episode, now)
                valuer.refresh()
        if refused:
            log.error(
                "accounts the margin arithmetic cannot value were left out of the pass",
                extra={"accounts": len(refused), "first": refused[0]},
            )

    async def _act(self, account: Account, episode: Episode, now: datetime) -> None:
        """Records the events the account's status calls for, with its full figures."""
        try:
            valuation = value_account(self.state, account, now, self.config.max_quote_age)
        except (ArithmeticError, ValueError):
            log.exception(
                "the margin arithmetic cannot value an account", extra={"account_id": account.id}
            )
            return
        if valuation is None or not valuation.complete:
            return
        status = valuation.status
        decided = events_for(episode, status)
        if decided:
            await self._record(valuation, decided, status, StopOutResult(), now)
        if EventType.STOP_OUT_TRIGGERED in decided:
            self._ensure_stop_out(account.id)

    async def _record(
        self,
        valuation: AccountValuation,
        decided: list[EventType],
        status: RiskStatus,
        result: StopOutResult,
        now: datetime,
    ) -> None:
        """Writes the events, the account's new margin state and their outbox rows in one
        transaction; then takes the new state."""
        account_id = valuation.account.id
        episode = self.episodes.get(account_id, Episode())
        async with self.db.transaction() as session:
            for kind in decided:
                event_id = str(uuid.uuid4())
                episode, related = apply_event(episode, kind, event_id, status)
                message = margin_event_message(
                    event_id=event_id,
                    account_id=account_id,
                    type=kind,
                    account_risk=convert.account_risk(valuation, episode.status, now),
                    related=related,
                    result=result if kind is EventType.STOP_OUT_COMPLETED else StopOutResult(),
                    created=now,
                )
                await write_event(
                    session,
                    group_id=valuation.group.id,
                    episode=episode,
                    margin_event=message,
                    type=kind,
                )
            await store.write_episode(session, account_id, episode)
        self.episodes[account_id] = episode
        for kind in decided:
            MARGIN_EVENTS.labels(kind.value).inc()
        if episode.status is RiskStatus.OK:
            self.state.statuses.pop(account_id, None)
        else:
            self.state.statuses[account_id] = episode.status
        log.info(
            "margin events",
            extra={"account_id": account_id, "events": [e.value for e in decided]},
        )

    # -- stop-out ------------------------------------------------------------------------------

    def _ensure_stop_out(self, account_id: str) -> None:
        running = self._stop_outs.get(account_id)
        if running is not None and not running.done():
            return
        self._stop_outs[account_id] = asyncio.create_task(
            self._stop_out(account_id), name=f"stop-out {account_id}"
        )

    async def _stop_out(self, account_id: str) -> None:
        try:
            await self._run_stop_out(account_id)
        except Exception:
            log.exception(
                "a stop-out failed; the next pass resumes it", extra={"account_id": account_id}
            )

    async def _run_stop_out(self, account_id: str) -> None:
        trigger = self.episodes[account_id].stop_out_event_id
        assert trigger is not None
        async with self.db.read_session() as session:
            unanswered = [r for r in await store.closes_of(session, trigger) if not r["answered"]]
        for attempt in unanswered:  # a restart or an outage left these: ask with the same id
            await self._close(
                account_id, trigger, attempt["position_id"], attempt["client_order_id"]
            )
        skipped: set[str] = set()
        while True:
            now = datetime.now(UTC)
            account = self.state.accounts.get(account_id)
            valuation = (
                value_account(self.state, account, now, self.config.max_quote_age)
                if account is not None
                else None
            )
            if valuation is None or not valuation.complete:
                return  # figures unknown: the next pass tries again
            status = valuation.status
            step, chosen = stop_out_step(
                status, len(valuation.positions), valuation.stop_out_candidates(), skipped
            )
            if step is StopOutStep.CLOSE:
                assert chosen is not None
                if not await self._close(account_id, trigger, chosen.position_id, None):
                    skipped.add(chosen.position_id)
                continue
            if step is StopOutStep.STUCK:
                log.warning(
                    "a stop-out cannot close anything now", extra={"account_id": account_id}
                )
                return
            await self._complete(valuation, trigger, status, now)
            return

    async def _close(
        self, account_id: str, trigger: str, position_id: str, client_order_id: str | None
    ) -> bool:
        """One ForceClosePosition; True if it filled something (the figures changed)."""
        if client_order_id is None:
            client_order_id = f"tm:so:{uuid.uuid4()}"
            async with self.db.transaction() as session:
                await store.start_close(session, client_order_id, trigger, account_id, position_id)
        request = oms_internal.ForceClosePositionRequest(
            account_id=account_id,
            position_id=position_id,
            origin=trading_pb2.ORDER_ORIGIN_STOP_OUT,
            client_order_id=client_order_id,
            actor=types_pb2.Actor(kind=types_pb2.ACTOR_KIND_SYSTEM, id=ACTOR),
            margin_event_id=trigger,
        )
        response = None
        for attempt in range(1, _CALL_ATTEMPTS + 1):
            try:
                response = await self.closer.force_close(request, self.config.call_timeout)
                break
            except grpc.aio.AioRpcError as error:
                extra = {"position_id": position_id, "code": error.code().name}
                if error.code() in _GIVE_UP:
                    log.warning(
                        "a stop-out close was refused", extra={**extra, "why": error.details()}
                    )
                    async with self.db.transaction() as session:
                        await store.finish_close(
                            session, client_order_id, None, error.code().name, Decimal(0)
                        )
                    return False
                if attempt == _CALL_ATTEMPTS:
                    # Unanswered: the OMS may hold the order. Left open, so that the next try
                    # asks with the same client_order_id.
                    log.warning("a stop-out close got no answer", extra=extra)
                    return False
                await asyncio.sleep(0.5)
        assert response is not None
        order = response.order
        filled = Decimal(order.filled_quantity or "0")
        async with self.db.transaction() as session:
            await store.finish_close(
                session,
                client_order_id,
                order.id,
                enum_name(trading_pb2.OrderStatus, order.status),
                filled,
            )
        if filled <= 0:
            return False
        await self._catch_up(order.id, filled, response.position)
        return True

    async def _catch_up(self, order_id: str, filled: Decimal, position: oms_pb2.Position) -> None:
        """Waits until the copies hold what the close changed: the position's version and the
        order's trades (their realized P&L); else takes the answer's position itself."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.catch_up_timeout
        while loop.time() < deadline:
            held = self.state.positions.get(position.id)
            position_seen = held is None or held.version >= position.version
            if position_seen:
                async with self.db.read_session() as session:
                    if await store.filled_by_trades(session, order_id) >= filled:
                        return
            await asyncio.sleep(_POLL_SECONDS)
        log.warning("the OMS's events of a stop-out close are late", extra={"order_id": order_id})
        answered = position_of(position)
        async with self.db.transaction() as session:
            stored = await store.save_position(session, answered)
        if stored:
            self.state.put_position(answered)

    async def _complete(
        self, valuation: AccountValuation, trigger: str, status: RiskStatus, now: datetime
    ) -> None:
        async with self.db.read_session() as session:
            closes = [r for r in await store.closes_of(session, trigger) if r["filled_quantity"]]
            orders = [r["order_id"] for r in closes]
            realized = await store.realized_of_orders(session, orders)
        positions = list(dict.fromkeys(r["position_id"] for r in closes))
        balance = effective_balance(self.state, valuation.account)
        result = StopOutResult(
            closed_position_ids=positions,
            closing_order_ids=orders,
            realized_pnl=realized,
            negative_balance=negative_balance(balance),
        )
        episode = self.episodes[valuation.account.id]
        await self._record(valuation, events_after_stop_out(episode, status), status, result, now)
