"""The hedge orders their provider has not answered (ADR 0007, issue 13): the STP desk's chase.

Every fifth of `status_after` (`StpConfig.chase_every`) the chase joins the desk's worker
queue (`run`): a hedge order at its provider that has heard nothing for `status_after` is asked
about with an OrderStatusRequest, again every as long while nothing changes (`hedges.chase`
decides), and so is one the desk was told to ask about now (an LP's answer, `ask_soon`). One
still open `unknown_after` after it was made, or whose provider refuses to say (`refused`), is
of unknown fate: an error is logged once, the gauge `tradingmesh_oms_hedge_orders_unknown`
counts it until it ends, and nothing is invented: a human reconciles it with the provider and
settles it (`settled`). NEW hedge orders made before this process's logon at their provider and
not sent by it may have left before the process that made them died: they are asked about
after the logon (`ask_unsent`) and chased like SENT ones until answered (`sent_again` ends
that). Each request's MsgSeqNum is recorded (`report_journal.record_sent`), so a Reject finds
it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from collections.abc import Set
from datetime import datetime

from prometheus_client import Counter
from prometheus_client import Gauge

from services.oms.store import hedges as hedge_store
from services.oms.stp import hedges
from services.oms.stp import report_journal
from services.oms.stp.config import StpConfig
from services.oms.stp.hedges import HedgeRow
from services.oms.stp.lp_orders import LpOrderRouter
from services.oms.stp.lp_orders import LpUnavailableError
from services.oms.stp.lp_orders import StatusRequest
from services.oms.stp.worker import DeskWorker
from services.platform.metrics import REGISTRY
from services.platform.resources import Resources

__all__ = ["Chase"]

log = logging.getLogger(__name__)

STATUS_REQUESTS = Counter(
    "tradingmesh_oms_hedge_status_requests",
    "OrderStatusRequests sent for hedge orders the provider had not answered",
    ["lp"],
    registry=REGISTRY,
)
UNKNOWN_HEDGES = Gauge(
    "tradingmesh_oms_hedge_orders_unknown",
    "hedge orders still open past TM_OMS_HEDGE_UNKNOWN_AFTER_S: their fate is unknown and a"
    " human must reconcile them with the provider",
    registry=REGISTRY,
)


class Chase:
    """What the desk knows of its hedge orders' silence, and the status requests it sends; its
    methods run on the desk's worker. `start` once the desk's worker runs."""

    def __init__(
        self,
        resources: Resources,
        config: StpConfig,
        worker: DeskWorker,
        router: Callable[[], LpOrderRouter | None],
        clock: Callable[[], datetime],
    ) -> None:
        self.resources = resources
        self.config = config
        self.worker = worker
        self.router = router  # None until the desk's order sessions start (or without LPs)
        self.clock = clock
        self._queued = False
        self._asked: dict[str, datetime] = {}  # hedge order id -> its last OrderStatusRequest
        self._unknown: set[str] = set()  # hedge orders reported of unknown fate
        self._status_refused: dict[str, str] = {}  # hedge order id -> the LP's refusal
        self._ask_now: set[str] = set()  # hedge orders to ask about at the next chase
        # NEW hedge orders made before this process's logon at their provider: they may have
        # left before the process that made them died, so they are asked about, not assumed.
        self._maybe_sent: set[str] = set()

    def start(self) -> None:
        self.worker.call_later(self.config.chase_every, self._due)

    def refused(self, hedge_id: str, text: str) -> None:
        """The provider refuses to say what became of the hedge order: its fate is unknown."""
        self._status_refused[hedge_id] = text

    def ask_soon(self, hedge_id: str) -> None:
        """Asks about the hedge order at the next chase, however recently it was asked."""
        self._ask_now.add(hedge_id)

    def settled(self, hedge_id: str) -> None:
        """An operator settled the hedge order: its provider's refusal is forgotten."""
        self._status_refused.pop(hedge_id, None)

    def sent_again(self, hedge_id: str) -> None:
        """The provider never received the hedge order, which the desk sends now: it is no
        longer one that may have been sent."""
        self._maybe_sent.discard(hedge_id)

    def _due(self) -> None:
        """Every `chase_every`: the chase joins the queue unless it is still waiting there."""
        self.worker.call_later(self.config.chase_every, self._due)
        if not self._queued:
            self._queued = True
            self.worker.enqueue("chase unanswered hedge orders", self.run)

    async def run(self) -> None:
        """Asks the provider about each hedge order it has been quiet about for
        `status_after`; reports those still open `unknown_after` after they were made (once
        each in the log, all of them in the gauge). Never ends one."""
        self._queued = False
        now = self.clock()
        async with self.resources.db.read_session() as session:
            open_hedges = await hedge_store.open_hedges(session)
            still_new = await hedge_store.new_hedges_among(session, self._maybe_sent)
        self._maybe_sent = {hedge.id for hedge in still_new}
        open_hedges += still_new
        router = self.router()
        logged_on = set(router.logged_on()) if router is not None else set()
        unknown: set[str] = set()
        for hedge in open_hedges:
            refusal = self._status_refused.get(hedge.id)
            decision = hedges.chase(
                hedge,
                self._asked.get(hedge.id),
                now,
                self.config.status_after,
                self.config.unknown_after,
                status_refused=refusal is not None,
                maybe_sent=hedge.id in self._maybe_sent,
            )
            if decision.unknown:
                unknown.add(hedge.id)
                if hedge.id not in self._unknown:
                    why = (
                        f"its provider refuses to say ({refusal})"
                        if refusal is not None
                        else f"no outcome from its provider"
                        f" {self.config.unknown_after.total_seconds():g} s after it was made"
                    )
                    log.error(
                        f"ALERT: a hedge order's fate is unknown: {why}; reconcile it with the"
                        " provider and settle it (SettleHedgeOrder); its client orders stay"
                        " WORKING",
                        extra={
                            "hedge_order_id": hedge.id,
                            "lp": hedge.liquidity_provider_id,
                            "status": hedge.status.value,
                            "filled": str(hedge.filled_quantity),
                            "created_at": hedge.created_at.isoformat(),
                        },
                    )
            ask = decision.ask or hedge.id in self._ask_now
            if ask and hedge.liquidity_provider_id in logged_on:
                await self._ask_status(hedge, now)
        self._ask_now.clear()
        for hedge_id in self._unknown - unknown:
            log.info("a hedge order of unknown fate has ended", extra={"hedge_order_id": hedge_id})
        self._unknown = unknown
        UNKNOWN_HEDGES.set(len(unknown))
        still_open = {hedge.id for hedge in open_hedges}
        self._asked = {k: v for k, v in self._asked.items() if k in still_open}
        self._status_refused = {k: v for k, v in self._status_refused.items() if k in still_open}

    async def _ask_status(self, hedge: HedgeRow, now: datetime) -> None:
        router = self.router()
        assert router is not None
        request = StatusRequest(
            hedge.id,
            hedge.liquidity_provider_id,
            hedge.symbol,
            hedge.side,
            hedge.lp_order_id,
        )
        try:
            number = await asyncio.to_thread(router.request_status, request, str(uuid.uuid4()))
        except LpUnavailableError:
            return  # the session dropped meanwhile: its resend or the next chase will tell
        async with self.resources.db.transaction() as session:
            await report_journal.record_sent(
                session, hedge.liquidity_provider_id, number, "H", hedge.id, self.clock()
            )
        self._asked[hedge.id] = now
        STATUS_REQUESTS.labels(hedge.liquidity_provider_id).inc()
        log.warning(
            "no report for a hedge order: its provider is asked for its status",
            extra={
                "hedge_order_id": hedge.id,
                "lp": hedge.liquidity_provider_id,
                "status": hedge.status.value,
                "quiet_since": hedge.updated_at.isoformat(),
            },
        )

    async def ask_unsent(self, lp: str, logon: datetime, sent: Set[str]) -> None:
        """NEW hedge orders of `lp` made before its logon and not sent by this process
        (`sent`): the process that made them may have sent them before it died (the SENT not
        recorded), so the provider is asked (after the reports it resends: FIX delivers in
        order). It answers with the order's state, or "unknown order": never received, and the
        hedge is sent now (the desk's `_send_again`). Until answered they are chased like SENT
        ones (`run`)."""
        async with self.resources.db.read_session() as session:
            made = await hedge_store.new_hedges_before(session, lp, logon)
        for hedge in made:
            if hedge.id in sent:
                continue
            self._maybe_sent.add(hedge.id)
            await self._ask_status(hedge, self.clock())
