"""The opt-in daily statement (ADR 0011): after each completed rollover, one DAILY_STATEMENT
notification, with its email, per account whose user switched that email on.

The consumer records each `oms.rollover.completed` in `notification.rollovers` (in its batch's
transaction, `events.py`) with the day's period end: the completion plus a settling delay
(`TM_NOTIFICATION_DAILY_STATEMENT_DELAY_S`), by which the day's SWAP entries are booked by the
account service and replayed on reporting's replica. Once that end has passed, this job claims
the day (a lease, so replicas share the work without a leader), pages through the opted-in
accounts that have no statement of the day yet, fetches each one's statement for
[the previous day's period end, this day's) from the reporting service
(`ReportingInternalService.GetAccountStatement`, an internal call with the edge token) and
writes a page's notifications and deliveries with ONE statement. The notification's
`event_id` (`daily_statement:<day>:<account>`, UNIQUE) makes it once per account and day,
across restarts, redelivered events, a second RunRollover of the day and replicas whose
leases overlap.

Reporting unreachable (or failing): the day is given back and tried again after
`RETRY_SECONDS`; what was written stays. An account reporting does not know (NOT_FOUND) or
whose period it refuses (an account opened after the period) gets no statement that day.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Final

import grpc
import grpc.aio

from services.notification import domain
from services.notification import store
from services.platform.db import Database
from services.platform.internal import internal_channel
from services.platform.secrets import Secret
from services.platform.tasks import Repeating
from tradingmesh.common.v1 import types_pb2
from tradingmesh.notification.v1.notification_pb2 import NotificationKind
from tradingmesh.reporting.v1 import reporting_internal_service_pb2 as reporting_api
from tradingmesh.reporting.v1 import reporting_internal_service_pb2_grpc as reporting_grpc
from tradingmesh.reporting.v1 import reporting_pb2

log = logging.getLogger(__name__)

KIND: Final = domain.kind_name(NotificationKind.NOTIFICATION_KIND_DAILY_STATEMENT)
LEASE_SECONDS: Final = 300
RETRY_SECONDS: Final = 30
PAGE: Final = 50
CONCURRENT_CALLS: Final = 4
STATEMENT_DEADLINE_SECONDS: Final = 30.0
# Answers that will not change on a retry: the account gets no statement that day.
_NO_STATEMENT: Final = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})


class ReportingUnavailableError(Exception):
    """Reporting could not make a statement now (unreachable, late, failing)."""


class ReportingClient:
    """A channel to the reporting service's internal API, open for the service's lifetime."""

    def __init__(
        self, address: str, edge_token: Secret, deadline: float = STATEMENT_DEADLINE_SECONDS
    ) -> None:
        self.address = address
        self.deadline = deadline
        self._channel = internal_channel(address, edge_token, callee="reporting")
        self._stub = reporting_grpc.ReportingInternalServiceStub(self._channel)

    async def statement(
        self, account_id: str, start: datetime | None, end: datetime
    ) -> reporting_pb2.Statement | None:
        """The account's statement for [start, end) (no start: since its opening); None when
        reporting answers that it makes none (unknown account, a period before the account)."""
        time_range = types_pb2.TimeRange()
        if start is not None:
            time_range.start_time.FromDatetime(start)
        time_range.end_time.FromDatetime(end)
        request = reporting_api.GetAccountStatementRequest(
            account_id=account_id, time_range=time_range
        )
        try:
            response: reporting_api.GetAccountStatementResponse = (
                await self._stub.GetAccountStatement(request, timeout=self.deadline)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _NO_STATEMENT:
                log.warning(
                    "no daily statement for an account",
                    extra={"account_id": account_id, "code": error.code().name},
                )
                return None
            raise ReportingUnavailableError(error.code().name) from error
        return response.statement

    async def close(self) -> None:
        await self._channel.close()


class DailyStatements:
    """The job; `start` after the connections open, `wake` when a rollover was recorded,
    `stop`. `announce` gets the notifications each page stored (live streams, the sender)."""

    def __init__(
        self,
        db: Database,
        reporting: ReportingClient,
        announce: Callable[[list[store.Stored]], None],
        poll_seconds: float = 2.0,
    ) -> None:
        self._db = db
        self._reporting = reporting
        self._announce = announce
        self._calls = asyncio.Semaphore(CONCURRENT_CALLS)
        self._passes = Repeating(
            "notification-daily-statements", self.run_once, pause=poll_seconds, log=log
        )

    def start(self) -> None:
        self._passes.start()

    async def stop(self) -> None:
        await self._passes.stop()
        await self._reporting.close()

    def wake(self) -> None:
        self._passes.wake()

    async def run_once(self) -> int:
        """Makes the statements of every due day this process could claim; how many it
        stored."""
        async with self._db.transaction() as session:
            days = await store.claim_statement_days(session, LEASE_SECONDS)
        made = 0
        for day in days:
            made += await self._day(day)
        return made

    async def _day(self, day: store.StatementDay) -> int:
        trading_date = day.trading_date.isoformat()
        prefix = domain.daily_statement_event_id(trading_date, "")
        after: str | None = None
        made = 0
        try:
            while True:
                async with self._db.lone_reads() as session:
                    accounts = await store.opted_in_accounts(
                        session, KIND, prefix, after_account=after, limit=PAGE
                    )
                if not accounts:
                    break
                after = accounts[-1].account_id
                statements = await asyncio.gather(
                    *(self._statement(a.account_id, day) for a in accounts)
                )
                drafts = [
                    (str(uuid.uuid4()), domain.daily_statement(s, trading_date, day.period_end))
                    for s in statements
                    if s is not None
                ]
                async with self._db.transaction() as session:
                    stored = await store.insert_notifications(session, drafts)
                made += len(stored)
                if stored:
                    self._announce(stored)
        except ReportingUnavailableError as error:
            log.warning(
                "reporting unavailable; daily statements wait",
                extra={"trading_date": trading_date, "error": str(error)},
            )
            async with self._db.lone_writes() as session:
                retry_at = datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS)
                await store.release_statement_day(session, day.trading_date, retry_at)
            return made
        async with self._db.lone_writes() as session:
            await store.finish_statement_day(session, day.trading_date)
        log.info("daily statements made", extra={"trading_date": trading_date, "made": made})
        return made

    async def _statement(
        self, account_id: str, day: store.StatementDay
    ) -> reporting_pb2.Statement | None:
        async with self._calls:
            return await self._reporting.statement(account_id, day.period_start, day.period_end)
