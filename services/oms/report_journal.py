"""The execution reports of the OMS's order sessions, kept before QuickFIX moves on (ADR 0007,
"The OMS's FIX sessions"; migration 0012).

`ReportJournal.store` runs on QuickFIX's thread, inside `fromApp`: it commits the report to
`oms.lp_execution_reports` over a synchronous psycopg connection of its own (the OMS's own
PostgreSQL role, the credentials the service's `Database` reads from Vault, passed as
connection arguments: never in a URL, a log line or a file) and only then lets the callback
return. It never touches the event loop, so it cannot deadlock with the loop's
`Session.sendToTarget`. A broken connection is replaced once per report; a report that still
cannot be committed raises `ReportNotStoredError` (the router then drops the session so the
provider resends it). Each statement may take 5 s at most (`statement_timeout`), connecting 3 s:
that long QuickFIX's thread (all the OMS's order sessions) may wait on PostgreSQL.

The STP desk applies a stored row and sets `applied_at` in the same transaction
(`mark_applied`); rows not applied are applied again in received order after a restart and
after each logon (`unapplied`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.lp_orders import (
    ExecutionReport,
    ReportNotStoredError,
    StoredReport,
    report_from_json,
    report_to_json,
)
from services.platform.secrets import Vault, postgres_path
from services.platform.settings import Settings

__all__ = ["ReportJournal", "connector", "mark_applied", "unapplied"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS: Final = 3
STATEMENT_TIMEOUT_MS: Final = 5000

Connect = Callable[[], "psycopg.Connection[Any]"]

_INSERT: Final = (
    "INSERT INTO oms.lp_execution_reports (liquidity_provider_id, cl_ord_id, report_key,"
    " exec_id, report, raw_message, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (liquidity_provider_id, cl_ord_id, report_key) DO NOTHING RETURNING id"
)
# A resend of a stored report: the row as it is (no lock taken: an apply in progress does not
# hold this thread up, and its job finds the row applied if it commits first).
_FIND: Final = (
    "SELECT id, applied_at IS NOT NULL FROM oms.lp_execution_reports"
    " WHERE liquidity_provider_id = %s AND cl_ord_id = %s AND report_key = %s"
)


def connector(settings: Settings, vault: Vault) -> Connect:
    """Opens a connection to the primary as the service's own role (its Vault credentials,
    read once here)."""
    username, password = vault.read_keys(postgres_path(settings.service), "username", "password")

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=settings.database_host,
            port=settings.database_port,
            dbname=settings.database_name,
            user=username.reveal(),
            password=password.reveal(),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=f"tradingmesh-{settings.service}-fix",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )

    return connect


class ReportJournal:
    """`oms.lp_execution_reports` from QuickFIX's thread (a `lp_orders.ReportJournalWriter`)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def store(self, report: ExecutionReport, raw_message: str) -> StoredReport | None:
        """Commits the report; the row to apply, or None when it was stored and applied
        before. ReportNotStoredError when it cannot be committed; a connection found broken
        (PostgreSQL restarted since its last use) is replaced and the report tried once more."""
        with self._lock:
            reused = self._connection is not None
            try:
                return self._insert(report, raw_message)
            except psycopg.Error as error:
                broken = self._connection is None or self._connection.broken
                self._close()
                if not (reused and broken):
                    raise ReportNotStoredError(f"{type(error).__name__}: {error}") from error
                log.warning(
                    "the journal's connection was broken; storing on a new one",
                    extra={"error": type(error).__name__},
                )
            try:
                return self._insert(report, raw_message)
            except psycopg.Error as error:
                self._close()
                raise ReportNotStoredError(f"{type(error).__name__}: {error}") from error

    def close(self) -> None:
        with self._lock:
            self._close()

    def _insert(self, report: ExecutionReport, raw_message: str) -> StoredReport | None:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        connection = self._connection
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(
                _INSERT,
                (
                    report.lp,
                    report.hedge_order_id,
                    report.key,
                    report.execution_id,
                    Jsonb(report_to_json(report)),
                    raw_message,
                    report.received_at,
                ),
            )
            inserted = cursor.fetchone()
            if inserted is not None:
                return StoredReport(int(inserted[0]), report)
            cursor.execute(_FIND, (report.lp, report.hedge_order_id, report.key))
            found = cursor.fetchone()
        if found is None:
            raise ReportNotStoredError("the report's row is neither new nor there")
        row_id, applied = int(found[0]), bool(found[1])
        return None if applied else StoredReport(row_id, report)

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None


async def mark_applied(session: AsyncSession, row_id: int) -> bool:
    """Marks the stored report applied in the caller's transaction (its row locked until the
    commit); False when it was applied before (a report handed over twice)."""
    marked = await session.execute(
        text(
            "UPDATE oms.lp_execution_reports SET applied_at = now()"
            " WHERE id = :id AND applied_at IS NULL RETURNING id"
        ),
        {"id": row_id},
    )
    return marked.first() is not None


async def unapplied(session: AsyncSession, lp: str | None = None) -> list[StoredReport]:
    """Stored reports not applied yet, of `lp` (None: of every provider), in received order."""
    clause = "" if lp is None else " AND liquidity_provider_id = :lp"
    rows = await session.execute(
        text(
            "SELECT id, report FROM oms.lp_execution_reports WHERE applied_at IS NULL"
            + clause
            + " ORDER BY id"
        ),
        {"lp": lp},
    )
    return [StoredReport(int(r[0]), report_from_json(r[1])) for r in rows]
