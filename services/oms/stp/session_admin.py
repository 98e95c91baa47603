"""Operators' tools on the STP desk's LP order sessions (OrderAdminService's
ListLpOrderSessions and ResetLpOrderSession, through `desk.StpDesk`): each session's sequence
numbers read, and reset (neither number given: the store emptied, both 1, the next Logon with
ResetSeqNumFlag) or set (the numbers given; the connection drops and logs on again) by
`lp_orders.LpOrderRouter`, with an operator audit record (`store/operator_audit.py`) committed
with the change. Nothing here touches hedge orders or runs on the desk's worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime

from services.oms.store import operator_audit
from services.oms.stp.lp_orders import LpOrderRouter
from services.oms.stp.lp_orders import SessionNumbers
from services.platform.errors import not_found
from services.platform.resources import Resources
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = ["OrderSessionAdmin"]

log = logging.getLogger(__name__)


class OrderSessionAdmin:
    """The order sessions of `lps`, through the desk's router while it has one (`router`:
    None before the desk starts, after it stops, or without logon credentials)."""

    def __init__(
        self,
        resources: Resources,
        lps: Iterable[str],
        router: Callable[[], LpOrderRouter | None],
        clock: Callable[[], datetime],
    ) -> None:
        self._resources = resources
        self._lps = tuple(lps)  # in the configuration's order
        self._router = router
        self._clock = clock

    async def numbers(self, lp: str | None = None) -> list[SessionNumbers]:
        """The order sessions' sequence numbers (of `lp`; NOT_FOUND for an LP without an order
        session here)."""
        router = self._router()
        lps = list(self._lps) if lp is None else [lp]
        if router is None or any(name not in self._lps for name in lps):
            raise not_found("LP order session", "liquidity_provider_id", lp or "(none)")
        return [await asyncio.to_thread(router.numbers, name) for name in lps]

    async def set_numbers(
        self,
        lp: str,
        next_sender: int | None,
        next_target: int | None,
        reason: str,
        actor: Actor,
        correlation_id: str = "",
    ) -> SessionNumbers:
        """An operator resets the LP order session's sequence numbers (neither given) or sets
        them (`LpOrderRouter.set_numbers`), with an operator audit record committed with it.
        NOT_FOUND for an LP without an order session here."""
        router = self._router()
        if router is None or lp not in self._lps:
            raise not_found("LP order session", "liquidity_provider_id", lp)
        now = self._clock()
        reset = next_sender is None and next_target is None
        async with self._resources.db.transaction() as session:
            current = await asyncio.to_thread(router.numbers, lp)
            await operator_audit.append(
                session,
                actor=actor,
                action="lp_order_session.reset" if reset else "lp_order_session.set_numbers",
                entity_type="lp_order_session",
                entity_id=f"{current.sender_comp_id}->{current.target_comp_id}",
                reason=reason,
                before=_numbers_snapshot(current),
                after={
                    "next_sender_msg_seq_num": 1
                    if reset
                    else next_sender or current.next_sender_msg_seq_num,
                    "next_target_msg_seq_num": 1
                    if reset
                    else next_target or current.next_target_msg_seq_num,
                    "logged_on": False,
                },
                now=now,
                correlation_id=correlation_id,
            )
            # Last, so that a failure above changes nothing; the audit commits just after.
            before, after = await asyncio.to_thread(
                router.set_numbers, lp, next_sender, next_target
            )
        log.warning(
            "an LP order session's sequence numbers were set by an operator",
            extra={
                "lp": lp,
                "before": _numbers_snapshot(before),
                "after": _numbers_snapshot(after),
                "operator": actor.id,
            },
        )
        return after


def _numbers_snapshot(numbers: SessionNumbers) -> dict[str, int | bool]:
    return {
        "next_sender_msg_seq_num": numbers.next_sender_msg_seq_num,
        "next_target_msg_seq_num": numbers.next_target_msg_seq_num,
        "logged_on": numbers.logged_on,
    }
