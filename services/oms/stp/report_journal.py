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

The same connection stores an LP's other answers (Reject, Business Message Reject,
OrderCancelReject, DontKnowTrade) and whatever the OMS cannot understand in `oms.lp_messages`
(`store_message`, migration 0015): RECEIVED rows are applied by the desk (`settle_message`
sets APPLIED or PARKED with the outcome, in the transaction that acts on it; `unapplied_messages`
after a restart), and rows parked on arrival wait for an operator. The desk records the MsgSeqNum
of each message it sends in `oms.lp_sent_messages` (`record_sent`), where a Reject's RefSeqNum
finds it (`find_sent`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any
from typing import Final
from typing import TypeVar

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.stp.lp_messages import LpMessage
from services.oms.stp.lp_messages import SentMessage
from services.oms.stp.lp_messages import StoredMessage
from services.oms.stp.lp_messages import message_from_row
from services.oms.stp.lp_messages import message_to_json
from services.oms.stp.lp_orders import ExecutionReport
from services.oms.stp.lp_orders import ReportNotStoredError
from services.oms.stp.lp_orders import StoredReport
from services.oms.stp.lp_orders import report_from_json
from services.oms.stp.lp_orders import report_to_json
from services.platform.infra_tls import libpq_params
from services.platform.secrets import Vault
from services.platform.secrets import postgres_path
from services.platform.settings import Settings

__all__ = [
    "ReportJournal",
    "claim_message",
    "connector",
    "find_sent",
    "mark_applied",
    "record_sent",
    "settle_message",
    "unapplied",
    "unapplied_messages",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS: Final = 3
STATEMENT_TIMEOUT_MS: Final = 5000

Connect = Callable[[], "psycopg.Connection[Any]"]
_T = TypeVar("_T")

_INSERT: Final = (
    "INSERT INTO oms.lp_execution_reports (liquidity_provider_id, cl_ord_id, report_key,"
    " exec_id, report, raw_message, received_at, validation_error)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (liquidity_provider_id, cl_ord_id, report_key) DO NOTHING RETURNING id"
)
# A resend of a stored report: the row as it is (no lock taken: an apply in progress does not
# hold this thread up, and its job finds the row applied if it commits first).
_FIND: Final = (
    "SELECT id, applied_at IS NOT NULL FROM oms.lp_execution_reports"
    " WHERE liquidity_provider_id = %s AND cl_ord_id = %s AND report_key = %s"
)
_MESSAGE_COLUMNS: Final = (
    "liquidity_provider_id, message_key, kind, msg_type, msg_seq_num, cl_ord_id, ref_seq_num,"
    " ref_msg_type, reason, text, validation_error, received_at"
)
_INSERT_MESSAGE: Final = (
    f"INSERT INTO oms.lp_messages ({_MESSAGE_COLUMNS}, raw_message, status, outcome) VALUES ("
    + ", ".join(f"%({c.strip()})s" for c in _MESSAGE_COLUMNS.split(","))
    + ", %(raw_message)s, %(status)s, %(outcome)s)"
    " ON CONFLICT (liquidity_provider_id, message_key) DO NOTHING RETURNING id"
)
_FIND_MESSAGE: Final = (
    "SELECT id, status FROM oms.lp_messages WHERE liquidity_provider_id = %s AND message_key = %s"
)


def connector(settings: Settings, vault: Vault) -> Connect:
    """Opens a connection to the primary as the service's own role (its Vault credentials,
    read once here)."""
    username, password = vault.read_keys(postgres_path(settings.service), "username", "password")

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            make_conninfo("", **libpq_params(settings.tls_ca_file)),  # over TLS (ADR 0018)
            host=settings.database_host,
            port=settings.database_port,
            dbname=settings.database_name,
            user=username.reveal(),
            password=password.reveal(),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=f"tradingmesh-{settings.instance_name}-fix",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )

    return connect


class ReportJournal:
    """`oms.lp_execution_reports` from QuickFIX's thread (a `lp_orders.ReportJournalWriter`)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def store(
        self, report: ExecutionReport, raw_message: str, validation_error: str = ""
    ) -> StoredReport | None:
        """Commits the report (with why the strict dictionary refuses it, if it does); the row
        to apply, or None when it was stored and applied before. ReportNotStoredError when it
        cannot be committed; a connection found broken (PostgreSQL restarted since its last
        use) is replaced and the report tried once more."""
        return self._with_connection(
            lambda: self._insert(report, raw_message, validation_error[:500])
        )

    def store_message(self, message: LpMessage, raw_message: str) -> StoredMessage | None:
        """Commits a message that is not a usable report (`lp_messages`): RECEIVED, or PARKED
        with its problem when its kind is parked on arrival. The row to apply, or None when
        there is nothing to apply (parked, or stored and dealt with before).
        ReportNotStoredError when it cannot be committed."""
        return self._with_connection(lambda: self._insert_message(message, raw_message))

    def _with_connection(self, write: Callable[[], _T]) -> _T:
        with self._lock:
            reused = self._connection is not None
            try:
                return write()
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
                return write()
            except psycopg.Error as error:
                self._close()
                raise ReportNotStoredError(f"{type(error).__name__}: {error}") from error

    def close(self) -> None:
        with self._lock:
            self._close()

    def _connected(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def _insert_message(self, message: LpMessage, raw_message: str) -> StoredMessage | None:
        connection = self._connected()
        parked = message.kind.parked_on_arrival
        row = message_to_json(message)
        row["validation_error"] = row["validation_error"][:500]
        row.update(
            raw_message=raw_message,
            status="PARKED" if parked else "RECEIVED",
            outcome=message.problem[:500] if parked else "",
        )
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(_INSERT_MESSAGE, row)
            inserted = cursor.fetchone()
            if inserted is not None:
                return None if parked else StoredMessage(int(inserted[0]), message)
            cursor.execute(_FIND_MESSAGE, (message.lp, message.key))
            found = cursor.fetchone()
        if found is None:
            raise ReportNotStoredError("the message's row is neither new nor there")
        return StoredMessage(int(found[0]), message) if found[1] == "RECEIVED" else None

    def _insert(
        self, report: ExecutionReport, raw_message: str, validation_error: str
    ) -> StoredReport | None:
        connection = self._connected()
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
                    validation_error,
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


async def unapplied_messages(session: AsyncSession, lp: str | None = None) -> list[StoredMessage]:
    """Stored LP messages not acted on yet (RECEIVED), of `lp` (None: of every provider), in
    received order."""
    clause = "" if lp is None else " AND liquidity_provider_id = :lp"
    rows = await session.execute(
        text(
            f"SELECT id, {_MESSAGE_COLUMNS} FROM oms.lp_messages WHERE status = 'RECEIVED'"
            + clause
            + " ORDER BY id"
        ),
        {"lp": lp},
    )
    return [StoredMessage(int(r["id"]), message_from_row(r)) for r in rows.mappings()]


async def claim_message(session: AsyncSession, row_id: int | None) -> bool:
    """Locks a stored LP message still to be acted on (RECEIVED) in the caller's transaction;
    False when it was dealt with before (handed over twice). One that could not be stored
    (`row_id` None) is always to be acted on."""
    if row_id is None:
        return True
    found = await session.execute(
        text("SELECT id FROM oms.lp_messages WHERE id = :id AND status = 'RECEIVED' FOR UPDATE"),
        {"id": row_id},
    )
    return found.first() is not None


async def settle_message(
    session: AsyncSession,
    row_id: int | None,
    *,
    parked: bool,
    outcome: str,
    cl_ord_id: str = "",
) -> bool:
    """Marks a stored LP message APPLIED (or PARKED for an operator) with what it did, and the
    ClOrdID of our message it refused when it named none (a Reject names a MsgSeqNum), in the
    caller's transaction; False when it was dealt with before (handed over twice). A message
    that could not be stored (`row_id` None) has nothing to mark."""
    if row_id is None:
        return True
    marked = await session.execute(
        text(
            "UPDATE oms.lp_messages SET status = :status, outcome = :outcome, applied_at = now(),"
            " cl_ord_id = CASE WHEN cl_ord_id = '' THEN :order ELSE cl_ord_id END"
            " WHERE id = :id AND status = 'RECEIVED' RETURNING id"
        ),
        {
            "id": row_id,
            "status": "PARKED" if parked else "APPLIED",
            "outcome": outcome[:500],
            "order": cl_ord_id,
        },
    )
    return marked.first() is not None


async def record_sent(
    session: AsyncSession, lp: str, msg_seq_num: int, msg_type: str, cl_ord_id: str, sent_at: Any
) -> None:
    """Records the MsgSeqNum QuickFIX gave one of our messages (`oms.lp_sent_messages`)."""
    if msg_seq_num < 1:
        return
    await session.execute(
        text(
            "INSERT INTO oms.lp_sent_messages (liquidity_provider_id, msg_seq_num, msg_type,"
            " cl_ord_id, sent_at) VALUES (:lp, :number, :type, :order, :at)"
        ),
        {"lp": lp, "number": msg_seq_num, "type": msg_type, "order": cl_ord_id, "at": sent_at},
    )


async def find_sent(session: AsyncSession, message: LpMessage) -> SentMessage | None:
    """Our message an LP's refusal refers to: the latest we sent under its RefSeqNum (numbers
    start again after a reset), else, for a Business Message Reject without one, the latest of
    its RefMsgType for its BusinessRejectRefID (the ClOrdID)."""
    if message.ref_seq_num is not None:
        row = (
            await session.execute(
                text(
                    "SELECT msg_type, cl_ord_id, msg_seq_num FROM oms.lp_sent_messages"
                    " WHERE liquidity_provider_id = :lp AND msg_seq_num = :number"
                    " ORDER BY id DESC LIMIT 1"
                ),
                {"lp": message.lp, "number": message.ref_seq_num},
            )
        ).first()
        if row is not None:
            return SentMessage(row[0], row[1], int(row[2]))
    if message.cl_ord_id and message.ref_msg_type:
        row = (
            await session.execute(
                text(
                    "SELECT msg_type, cl_ord_id, msg_seq_num FROM oms.lp_sent_messages"
                    " WHERE liquidity_provider_id = :lp AND cl_ord_id = :order"
                    " AND msg_type = :type ORDER BY id DESC LIMIT 1"
                ),
                {"lp": message.lp, "order": message.cl_ord_id, "type": message.ref_msg_type},
            )
        ).first()
        if row is not None:
            return SentMessage(row[0], row[1], int(row[2]))
    return None
