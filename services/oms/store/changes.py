"""The OMS repository: the SQL of the oms schema, and the one way an order changes (ADR 0007).

Every change to an account's orders and positions happens inside an `AccountChange`: it opens
with the account's `oms.accounts` row locked (`FOR UPDATE`), which serializes the account's
changes and holds the head of its audit chain, and it writes, in the caller's transaction,

- each order change through `apply(order, event, reason)`: `domain.state.apply` decides the new
  status (a pair the table does not allow is refused with INVALID_ORDER_STATE), the order gets
  `version + 1`, an audit row and an event (`oms.order.<event>`); all the change's events go
  out as ONE envelope (ADR 0009: one outbox row, one message). The order row is written at
  `finish` with `UPDATE ... WHERE version = <the version read>`, which proves every change was
  decided on its latest state; an order changed after its creation (cancel, amend, expiry) is
  first read `FOR UPDATE` by the caller, a new one is invisible to others until the commit.
  Nothing else updates `oms.orders.status`;
- positions and trades (services/oms/entry/fills.py), each position change with its audit row and
  event.

The caller commits after `finish`; the client is answered after the commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import datetime
from typing import Any
from typing import Final
from typing import TypeVar
from typing import cast

import psycopg
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.audit import COLUMNS as AUDIT_COLUMNS
from services.oms.audit import AuditRecord
from services.oms.audit import record_hash
from services.oms.audit import snapshot_json
from services.oms.domain import state as machine
from services.oms.domain.state import Fill
from services.oms.domain.state import OrderEvent
from services.oms.domain.state import OrderStatus
from services.oms.model import Account
from services.oms.model import Instrument
from services.oms.model import OrderRow
from services.oms.model import PositionRow
from services.oms.model import TradeRow
from services.oms.model import TradingTerms
from services.oms.model import reason_name
from services.oms.store import events
from services.oms.store.rows import all_rows
from services.oms.store.rows import first_row
from services.oms.store.rows import for_update
from services.oms.store.rows import found
from services.platform import outbox
from services.platform.access import account_not_found
from services.platform.enums import enum_name
from services.platform.envelope import Envelope
from services.platform.envelope import Sealed
from services.platform.errors import DomainError
from services.platform.identity import Caller
from services.platform.sql import Connection
from services.platform.sql import Write
from services.platform.sql import execute_raw
from services.platform.sql import fetch_raw
from services.platform.sql import one_statement
from services.platform.sql import one_statement_sql
from services.platform.sql import positional
from services.platform.sql import unexpected_write
from services.platform.sql import values_insert
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind

__all__ = [
    "OPEN_STATUS_NAMES",
    "AccountChange",
    "AccountContext",
    "DuplicateOrderError",
    "Head",
    "OptimisticConflictError",
    "account_context",
    "count_open_orders",
    "find_order",
    "get_order",
    "get_position",
    "load_accounts",
    "offered_instruments",
    "open_closing_order",
    "open_netting_position",
    "order_of",
    "position_of",
    "read_head",
    "reason_changes",
]

SCHEMA: Final = "oms"
OPEN_STATUS_NAMES: Final = tuple(sorted(s.value for s in machine.OPEN_STATUSES))
_R = ErrorReason

_MUTABLE_ORDER_COLUMNS: Final = (
    "status",
    "quantity",
    "filled_quantity",
    "price",
    "stop_price",
    "average_fill_price",
    "stop_loss",
    "take_profit",
    "position_id",
    "status_reason",
    "status_message",
    "requote_price",
    "execution_mode",
    "commission",
    "updated_at",
    "trigger_time",
    "expire_time",
    "version",
)


def _update_sql(table: str, columns: Sequence[str]) -> str:
    """The UPDATE of `columns` of the row of `table` whose version is :expected_version."""
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    return f"UPDATE {table} SET {assignments} WHERE id = :id AND version = :expected_version"


def _insert_sql(table: str, columns: str, suffix: str = "") -> str:
    """The INSERT of one row's `columns` (a comma-separated list), each from its parameter."""
    values = ", ".join(f":{c.strip()}" for c in columns.split(","))
    return f"INSERT INTO {table} ({columns}) VALUES ({values}){suffix}"


_UPDATE_ORDER: Final = _update_sql("oms.orders", _MUTABLE_ORDER_COLUMNS)
_UPDATE_AUDIT_HEAD: Final = (
    "UPDATE oms.accounts SET audit_sequence = :sequence, audit_hash = :hash"
    " WHERE account_id = :account_id"
)
_CREATE_ORDER: Final = _insert_sql(
    "oms.orders", OrderRow.COLUMNS, " ON CONFLICT (account_id, client_order_id) DO NOTHING"
)
_INSERT_ORDER: Final = text(f"{_CREATE_ORDER} RETURNING id")
_INSERT_POSITION_SQL: Final = _insert_sql("oms.positions", PositionRow.COLUMNS)
_INSERT_POSITION: Final = text(_INSERT_POSITION_SQL)
_EXPECT_WRITTEN: Final = "oms.expect_written"
_UNIQUE_VIOLATION: Final = "23505"
_MUTABLE_POSITION_COLUMNS: Final = (
    "side",
    "status",
    "quantity",
    "open_price",
    "realized_pnl",
    "commission",
    "swap",
    "stop_loss",
    "take_profit",
    "used_margin",
    "update_time",
    "close_time",
    "version",
)
_UPDATE_POSITION_SQL: Final = _update_sql("oms.positions", _MUTABLE_POSITION_COLUMNS)
_UPDATE_POSITION: Final = text(_UPDATE_POSITION_SQL)
_TRADE_COLUMNS: Final = tuple(c.strip() for c in TradeRow.COLUMNS.split(","))
_AUDIT_COLUMNS: Final = tuple(c.strip() for c in AUDIT_COLUMNS.split(","))


class _NoSession:
    """The session of an optimistic change (`AccountChange.prepared`), which has none: it reads
    and writes through its plain connection only, and using a session is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"an optimistic change has no session ({name})")


_NO_SESSION: Final = cast(AsyncSession, _NoSession())


class OptimisticConflictError(Exception):
    """An optimistic change wrote nothing: what it started from changed (`what`: "account",
    its head moved on; "order", the client_order_id was taken or an order changed; "position")."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} changed meanwhile")
        self.what = what


class DuplicateOrderError(Exception):
    """Another request with the same (account, client_order_id) committed first: roll back and
    return that order (ADR 0007, order entry step 4)."""


def concurrent_modification(kind: str, entity_id: str) -> DomainError:
    return DomainError(
        _R.ERROR_REASON_CONCURRENT_MODIFICATION,
        f"the {kind} {entity_id} changed meanwhile; read it again",
        metadata={f"{kind}_id": entity_id},
    )


# -- reads ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountContext:
    """What order entry needs of an account and one symbol: the account, its group's terms for
    the symbol (None when the group does not exist here yet), the instrument (None when
    unknown), the number of the account's open orders and whether `client_order_id` is taken
    (read in the same query, one round trip)."""

    account: Account
    terms: TradingTerms | None
    instrument: Instrument | None
    open_orders: int = 0
    client_order_id_taken: bool = False
    head: Head | None = None


@dataclass(frozen=True)
class Head:
    """An account as a change starts from it, read without a lock: the head of its audit chain
    (which every change of the account moves on, so it is the account's version) and its open
    netting position in one symbol as of that head (None: none open)."""

    sequence: int
    hash: str
    symbol: str
    netting_position: PositionRow | None


# The account's open netting position in :symbol, as p_<column> (NULLs: none open).
_NETTING_POSITION_COLUMNS: Final = ", ".join(
    f"p.{c.strip()} AS p_{c.strip()}" for c in PositionRow.COLUMNS.split(",")
)
_NETTING_POSITION_JOIN: Final = (
    "LEFT JOIN oms.positions p ON p.account_id = a.account_id AND p.symbol = :symbol"
    " AND p.status = 'OPEN' AND p.netting"
)
_HEAD_SQL: Final = (
    "SELECT a.audit_sequence AS head_sequence, a.audit_hash AS head_hash, "
    + _NETTING_POSITION_COLUMNS
    + " FROM oms.accounts a "
    + _NETTING_POSITION_JOIN
    + " WHERE a.account_id = :account_id"
)
_CONTEXT_SQL: Final = (
    "SELECT a.account_id, a.user_id, a.group_id, a.currency, a.status, a.position_mode,"
    " g.group_id AS g_group_id, g.execution_mode AS g_execution_mode,"
    " g.commission_per_lot AS g_commission_per_lot,"
    " g.max_deviation_points AS g_max_deviation_points, g.leverage AS g_leverage,"
    " gi.enabled AS gi_enabled, gi.execution_mode AS gi_execution_mode,"
    " gi.commission_per_lot AS gi_commission_per_lot,"
    " gi.max_deviation_points AS gi_max_deviation_points, gi.margin_rate AS gi_margin_rate,"
    " i.symbol AS i_symbol, i.base_currency AS i_base_currency,"
    " i.quote_currency AS i_quote_currency, i.digits AS i_digits, i.tick_size AS i_tick_size,"
    " i.contract_size AS i_contract_size, i.min_lot AS i_min_lot, i.max_lot AS i_max_lot,"
    " i.lot_step AS i_lot_step, i.margin_rate AS i_margin_rate, i.sessions AS i_sessions,"
    " (SELECT count(*) FROM oms.orders o WHERE o.account_id = a.account_id"
    "   AND o.status = ANY(:open)) AS open_orders,"
    " EXISTS (SELECT 1 FROM oms.orders o WHERE o.account_id = a.account_id"
    "   AND o.client_order_id = :client_order_id) AS taken,"
    " a.audit_sequence AS head_sequence, a.audit_hash AS head_hash, "
    + _NETTING_POSITION_COLUMNS
    + " FROM oms.accounts a"
    " LEFT JOIN oms.groups g ON g.group_id = a.group_id"
    " LEFT JOIN oms.group_instruments gi ON gi.group_id = a.group_id AND gi.symbol = :symbol"
    " LEFT JOIN oms.instruments i ON i.symbol = :symbol "
    + _NETTING_POSITION_JOIN
    + " WHERE a.account_id = :account_id"
)
_ACCOUNT_COLUMNS: Final = "account_id, user_id, group_id, currency, status, position_mode"
_ACCOUNT: Final = text(
    f"SELECT {_ACCOUNT_COLUMNS} FROM oms.accounts WHERE account_id = :account_id"
)


async def load_account(session: AsyncSession, account_id: str) -> Account | None:
    return await first_row(session, _ACCOUNT, {"account_id": account_id}, Account.from_row)


async def load_accounts(session: AsyncSession, account_ids: Collection[str]) -> dict[str, Account]:
    """The accounts among `account_ids` that exist, by id (one query)."""
    if not account_ids:
        return {}
    rows = await session.execute(
        text(
            f"SELECT {_ACCOUNT_COLUMNS} FROM oms.accounts"
            " WHERE account_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(account_ids)},
    )
    accounts = [Account.from_row(row) for row in rows.mappings()]
    return {account.account_id: account for account in accounts}


async def account_context(
    session: Connection, account_id: str, symbol: str, client_order_id: str = ""
) -> AccountContext | None:
    """The account with its terms and instrument for `symbol`; None for an unknown account."""
    params = {
        "account_id": account_id,
        "symbol": symbol,
        "open": list(OPEN_STATUS_NAMES),
        "client_order_id": client_order_id,
    }
    rows = await fetch_raw(session, _CONTEXT_SQL, params)  # the hot path: no ORM layer
    if not rows:
        return None
    row = rows[0]
    terms = TradingTerms.from_row(row) if row["g_group_id"] is not None else None
    instrument = Instrument.from_row(row, "i_") if row["i_symbol"] is not None else None
    return AccountContext(
        Account.from_row(row),
        terms,
        instrument,
        int(row["open_orders"]),
        bool(row["taken"]),
        _head_of(row, symbol),
    )


async def read_head(connection: Connection, account_id: str, symbol: str) -> Head | None:
    """The account's head and its netting position in `symbol`, in one read without a lock."""
    rows = await fetch_raw(connection, _HEAD_SQL, {"account_id": account_id, "symbol": symbol})
    if not rows:
        return None
    return _head_of(rows[0], symbol)


def _head_of(row: Mapping[str, Any], symbol: str) -> Head:
    """The head columns of `_HEAD_SQL` and `_CONTEXT_SQL` (the netting position as p_*)."""
    position = None if row["p_id"] is None else PositionRow.from_row(row, "p_")
    return Head(int(row["head_sequence"]), str(row["head_hash"]), symbol, position)


async def offered_instruments(session: AsyncSession, group_id: str) -> list[Instrument]:
    """The instruments a group is offered (for currency conversion pairs)."""
    offered = (
        f"SELECT {Instrument.COLUMNS} FROM oms.instruments WHERE symbol IN (SELECT symbol"
        " FROM oms.group_instruments WHERE group_id = :group_id AND enabled) ORDER BY symbol"
    )
    return await all_rows(session, offered, Instrument.from_row, {"group_id": group_id})


async def find_order(
    session: AsyncSession, account_id: str, client_order_id: str
) -> OrderRow | None:
    return await first_row(
        session,
        f"SELECT {OrderRow.COLUMNS} FROM oms.orders"
        " WHERE account_id = :account_id AND client_order_id = :client_order_id",
        {"account_id": account_id, "client_order_id": client_order_id},
        OrderRow.from_row,
    )


async def get_order(
    session: AsyncSession, account_id: str, order_id: str, *, lock: bool = False
) -> OrderRow | None:
    """The account's order, or None (another account's order is None too)."""
    return await _account_row(session, OrderRow, "oms.orders", account_id, order_id, lock)


async def order_of(
    session: AsyncSession, account_id: str, order_id: str, *, lock: bool = False
) -> OrderRow:
    """The account's order; NOT_FOUND when it has none of that id."""
    return found(await get_order(session, account_id, order_id, lock=lock), "order", order_id)


async def get_position(
    session: AsyncSession, account_id: str, position_id: str, *, lock: bool = False
) -> PositionRow | None:
    """The account's position, or None (another account's position is None too)."""
    return await _account_row(session, PositionRow, "oms.positions", account_id, position_id, lock)


async def position_of(
    session: AsyncSession, account_id: str, position_id: str, *, lock: bool = False
) -> PositionRow:
    """The account's position; NOT_FOUND when it has none of that id."""
    position = await get_position(session, account_id, position_id, lock=lock)
    return found(position, "position", position_id)


_Row = TypeVar("_Row", OrderRow, PositionRow)


async def _account_row(
    session: AsyncSession, kind: type[_Row], table: str, account_id: str, row_id: str, lock: bool
) -> _Row | None:
    return await first_row(
        session,
        f"SELECT {kind.COLUMNS} FROM {table}"
        f" WHERE id = :id AND account_id = :account_id{for_update(lock)}",
        {"id": row_id, "account_id": account_id},
        kind.from_row,
    )


async def open_netting_position(
    session: AsyncSession, account_id: str, symbol: str, *, lock: bool = False
) -> PositionRow | None:
    return await first_row(
        session,
        f"SELECT {PositionRow.COLUMNS} FROM oms.positions"
        " WHERE account_id = :account_id AND symbol = :symbol AND status = 'OPEN'"
        f" AND netting{for_update(lock)}",
        {"account_id": account_id, "symbol": symbol},
        PositionRow.from_row,
    )


async def count_open_orders(session: AsyncSession, account_id: str) -> int:
    count = await session.scalar(
        text(
            "SELECT count(*) FROM oms.orders WHERE account_id = :account_id AND status = ANY(:open)"
        ),
        {"account_id": account_id, "open": list(OPEN_STATUS_NAMES)},
    )
    return int(count or 0)


async def open_closing_order(session: AsyncSession, position_id: str) -> str | None:
    """The id of an open order that closes `position_id`, if any."""
    found = await session.scalar(
        text(
            "SELECT id FROM oms.orders WHERE position_id = :position_id AND status = ANY(:open)"
            " LIMIT 1"
        ),
        {"position_id": position_id, "open": list(OPEN_STATUS_NAMES)},
    )
    return None if found is None else str(found)


# -- changes ---------------------------------------------------------------------------------------


@dataclass
class AccountChange:
    """One transaction's changes to one account's orders and positions (see the module doc).
    Open it with `opened` (or `prepared`), close it with `finish` before the commit.

    A unit of work: an order inserted here is updated once at `finish` with its final state
    (however many transitions it made), and the order updates, trades, audit rows and the
    envelope of events (one outbox row) of the whole change, with the chain's new head, are
    written at `finish` as ONE statement (`platform.sql.one_statement`). The rows are the same
    as if each were written at once; the transaction costs a handful of statements instead of
    one per row. Positions are written at once: a netting reversal closes one and opens
    another, which the one-open-position index must see in that order."""

    session: AsyncSession
    account: Account
    actor: Actor
    now: datetime
    correlation_id: str = ""
    _sequence: int = 0
    _hash: str = ""
    _audit: list[dict[str, Any]] = field(default_factory=list)
    _envelope: Envelope = field(default_factory=lambda: outbox.new_envelope(SCHEMA))
    _trades: list[dict[str, Any]] = field(default_factory=list)
    # order id -> (its version as stored now, the order as changed here)
    _orders: dict[str, tuple[int, OrderRow]] = field(default_factory=dict)
    # Optimistic (`prepared`): nothing locked or written before `finish`, which writes the
    # whole change as ONE statement that checks the head it started from.
    _prepared: Head | None = None
    _created: set[str] = field(default_factory=set)
    _position_writes: list[Write] = field(default_factory=list)
    _raw: psycopg.AsyncConnection[Any] | None = None
    sealed: Sealed | None = None

    @classmethod
    def prepared(
        cls,
        connection: psycopg.AsyncConnection[Any],
        account: Account,
        actor: Actor,
        now: datetime,
        head: Head,
        correlation_id: str = "",
    ) -> AccountChange:
        """An optimistic change from `head` (read without a lock), on an autocommit session
        (`Database.lone_writes`): `finish` writes it as ONE statement, which writes nothing if
        the account's head moved on meanwhile, the order's client_order_id was taken or a
        position it changes changed (`OptimisticConflictError`). Only for changes whose positions
        are the account's netting position in `head.symbol` or new ones."""
        change = cls(_NO_SESSION, account, actor, now, correlation_id, head.sequence, head.hash)
        change._prepared = head
        change._raw = connection
        return change

    def head_after(self, position: PositionRow | None, before: Head) -> Head:
        """The account's head once this change committed, with its netting position in the
        head's symbol (a position this change left open; else the one before, untouched)."""
        netting = before.netting_position
        if position is not None and position.netting and position.symbol == before.symbol:
            netting = position if position.is_open else None
        return Head(self._sequence, self._hash, before.symbol, netting)

    async def netting_position(self, symbol: str) -> PositionRow | None:
        """The account's open netting position in `symbol`, locked (optimistic: as of the head)."""
        if self._prepared is not None:
            if symbol != self._prepared.symbol:
                raise OptimisticConflictError("position")  # not prepared for: take the locking path
            return self._prepared.netting_position
        return await open_netting_position(self.session, self.account.account_id, symbol, lock=True)

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(
        cls,
        session: AsyncSession,
        account: Account,
        actor: Actor,
        now: datetime,
        correlation_id: str = "",
    ) -> AsyncIterator[AccountChange]:
        """Locks the account's row (and with it the head of its audit chain), and `finish`es
        when the block ends without an exception: what a caller changed is always written (an
        exception leaves it unwritten, and the transaction rolls back)."""
        head = (
            await session.execute(
                text(
                    "SELECT audit_sequence, audit_hash FROM oms.accounts"
                    " WHERE account_id = :account_id FOR UPDATE"
                ),
                {"account_id": account.account_id},
            )
        ).first()
        if head is None:
            raise account_not_found(account.account_id)
        async with cls(
            session, account, actor, now, correlation_id, int(head[0]), str(head[1])
        ) as change:
            yield change

    @classmethod
    def for_caller(
        cls, session: AsyncSession, account: Account, caller: Caller, now: datetime
    ) -> contextlib.AbstractAsyncContextManager[AccountChange]:
        """`opened` for the change a gRPC caller asks for: the caller is the actor
        (`events.actor_of`), its request id the correlation id."""
        return cls.opened(session, account, events.actor_of(caller), now, caller.request_id)

    async def __aenter__(self) -> AccountChange:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            await self.finish()

    async def finish(self) -> None:
        """Writes the changed orders, the trades, the audit rows, the envelope and the new
        head of the audit chain, as ONE statement (same transaction); nothing when nothing
        changed. CONCURRENT_MODIFICATION when an order changed since it was read (its version
        moved on). Called by the `async with` block (`opened`) as it ends."""
        writes: list[Write] = []
        updated: list[str] = []
        for stored_version, order in self._orders.values():
            if order.id in self._created:
                writes.append(Write(_CREATE_ORDER, order.params(), expect=1, name="order"))
                continue
            if order.version == stored_version:
                continue
            params = order.params()
            params["expected_version"] = stored_version
            writes.append(Write(_UPDATE_ORDER, params, counted=True, expect=1, name="order"))
            updated.append(order.id)
        self._orders.clear()
        self._created.clear()
        writes += self._position_writes
        self._position_writes = []
        if self._trades:
            writes.append(Write(*values_insert("oms.trades", _TRADE_COLUMNS, self._trades)))
            self._trades = []
        if self._audit:
            writes.append(Write(*values_insert("oms.audit_records", _AUDIT_COLUMNS, self._audit)))
            self._audit = []
        sealed = self._envelope.seal() if self._envelope else None
        if not writes and sealed is None:
            return  # nothing changed: the audit chain's head stays where it was
        if sealed is not None:
            writes.append(outbox.envelope_write(SCHEMA, sealed))
        head = {"sequence": self._sequence, "hash": self._hash}
        if self._prepared is not None:
            await self._finish_prepared(writes, head, sealed)
            return
        if sealed is not None:
            outbox.written(self.session, SCHEMA, sealed)
        writes.append(Write(_UPDATE_AUDIT_HEAD, {**head, "account_id": self.account.account_id}))
        counts = (await self.session.execute(*one_statement(writes))).one()
        for order_id, written in zip(updated, counts, strict=True):
            if written != 1:
                raise concurrent_modification("order", order_id)

    async def _finish_prepared(
        self, writes: list[Write], head: dict[str, Any], sealed: Sealed | None
    ) -> None:
        """The optimistic change's one statement (autocommit): committed when it returns; the
        envelope is then handed to the relay.

        The account's row is written FIRST: the checked writes run in the order the check lists
        them, and the locking changes take the account's row before its positions, so this one
        must too (the other order deadlocks with them, measured under contention)."""
        assert self._prepared is not None
        expected = {"expected_sequence": self._prepared.sequence}
        writes.insert(
            0,
            Write(
                _UPDATE_AUDIT_HEAD + " AND audit_sequence = :expected_sequence",
                {**head, **expected, "account_id": self.account.account_id},
                expect=1,
                name="account",
            ),
        )
        assert self._raw is not None
        statement, values = positional(*one_statement_sql(writes, check=_EXPECT_WRITTEN))
        try:
            await execute_raw(self._raw, statement, values)
        except (DBAPIError, psycopg.Error) as error:
            what = unexpected_write(error)
            if what is not None:
                raise OptimisticConflictError(what) from error
            if getattr(getattr(error, "orig", error), "sqlstate", None) == _UNIQUE_VIOLATION:
                raise OptimisticConflictError("position") from error  # a netting position opened
            raise
        self.sealed = sealed
        if sealed is not None:
            outbox.committed(SCHEMA, sealed)

    # -- audit and outbox ------------------------------------------------------------------------

    async def audit(
        self,
        *,
        entity_type: str,
        entity_id: str,
        event: str,
        status_before: str,
        status_after: str,
        reason: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        version: int,
    ) -> None:
        """Appends an audit record to the account's chain (written at `finish`)."""
        record = AuditRecord(
            account_id=self.account.account_id,
            sequence=self._sequence + 1,
            entity_type=entity_type,
            entity_id=entity_id,
            event=event,
            actor_kind=enum_name(ActorKind, self.actor.kind),
            actor_id=self.actor.id,
            status_before=status_before,
            status_after=status_after,
            reason=reason,
            before=snapshot_json(before),
            after=snapshot_json(after),
            version=version,
            created_at=self.now,
            correlation_id=self.correlation_id[:128],
            previous_hash=self._hash,
        )
        sealed = replace(record, hash=record_hash(record))
        self._audit.append(sealed.params())
        self._sequence, self._hash = sealed.sequence, sealed.hash

    async def emit(self, subject: str, event: Message) -> str:
        """Adds an event to the change's envelope (ADR 0009; written at `finish` as one outbox
        row); checked against its contract now (`bus.encode_event`), so a malformed event fails
        the change. Returns its id."""
        return self._envelope.add(subject, event)

    def metadata(self, version: int) -> Any:
        return events.metadata(self.actor, version, self.now, correlation_id=self.correlation_id)

    # -- orders ----------------------------------------------------------------------------------

    async def create(self, order: OrderRow) -> OrderRow:
        """Inserts a NEW order (event CREATED); DuplicateOrderError when a concurrent request
        with the same client_order_id committed first."""
        assert order.status is OrderStatus.NEW, "an order is created NEW"
        assert order.version == 1, "an order is created at version 1"
        if self._prepared is not None:  # inserted at `finish`, in its final state
            self._created.add(order.id)
            self._orders[order.id] = (order.version, order)
            await self._order_recorded(order, OrderEvent.CREATED, None, reason="")
            return order
        inserted = (await self.session.execute(_INSERT_ORDER, order.params())).first()
        if inserted is None:
            raise DuplicateOrderError(order.client_order_id)
        self._orders[order.id] = (order.version, order)
        await self._order_recorded(order, OrderEvent.CREATED, None, reason="")
        return order

    async def apply(
        self,
        order: OrderRow,
        event: OrderEvent | Fill,
        reason: str = "",
        *,
        changes: Mapping[str, Any] | None = None,
        trade: TradeRow | None = None,
        event_reason: ErrorReason.ValueType = _R.ERROR_REASON_UNSPECIFIED,
        event_message: str = "",
        changed_fields: Sequence[str] = (),
        trigger_price: str = "",
    ) -> OrderRow:
        """Applies `event` to `order` (as read or last changed in this transaction): the status
        machine decides (INVALID_ORDER_STATE for a pair it does not allow), the order gets
        version + 1, an audit row and its event; the row is written at `finish`. `changes` are
        other columns the change sets (e.g. status_reason, average_fill_price); a fill adds its
        quantity to filled_quantity. `reason` is the audit row's reason."""
        status = machine.apply(order.state, event)
        kind = machine.resolve(order.state, event)
        updated = replace(
            order,
            **dict(changes or {}),
            status=status,
            version=order.version + 1,
            updated_at=self.now,
        )
        if isinstance(event, Fill):
            updated = replace(updated, filled_quantity=order.filled_quantity + event.quantity)
        stored_version, latest = self._orders.get(order.id, (order.version, order))
        if latest.version != order.version:
            raise concurrent_modification("order", order.id)  # applied to a stale copy
        self._orders[order.id] = (stored_version, updated)
        await self._order_recorded(
            updated,
            kind,
            order,
            reason=reason,
            trade=trade,
            event_reason=event_reason,
            event_message=event_message,
            changed_fields=changed_fields,
            trigger_price=trigger_price,
        )
        return updated

    async def _order_recorded(
        self,
        order: OrderRow,
        kind: OrderEvent,
        before: OrderRow | None,
        *,
        reason: str,
        trade: TradeRow | None = None,
        event_reason: ErrorReason.ValueType = _R.ERROR_REASON_UNSPECIFIED,
        event_message: str = "",
        changed_fields: Sequence[str] = (),
        trigger_price: str = "",
    ) -> None:
        await self.audit(
            entity_type="order",
            entity_id=order.id,
            event=kind.value,
            status_before="" if before is None else before.status.value,
            status_after=order.status.value,
            reason=reason,
            before=None if before is None else before.snapshot(),
            after=order.snapshot(),
            version=order.version,
        )
        previous = (
            trading_pb2.ORDER_STATUS_UNSPECIFIED if before is None else before.status.to_proto()
        )
        message = events.order_event(
            kind,
            self.metadata(order.version),
            order.to_proto(self.account.currency),
            previous,
            trade=None if trade is None else trade.to_proto(),
            trigger_price=trigger_price,
            changed_fields=changed_fields,
            reason=event_reason,
            message=event_message,
        )
        await self.emit(events.order_subject(kind), message)

    # -- positions and trades --------------------------------------------------------------------

    async def insert_position(self, position: PositionRow) -> None:
        if self._prepared is not None:
            if self._position_writes:  # a reversal: the index must see the close first
                raise OptimisticConflictError("position")
            self._position_writes.append(Write(_INSERT_POSITION_SQL, position.params()))
            return
        await self.session.execute(_INSERT_POSITION, position.params())

    async def update_position(self, position: PositionRow, expected_version: int) -> None:
        params = position.params()
        params["expected_version"] = expected_version
        if self._prepared is not None:
            self._position_writes.append(
                Write(_UPDATE_POSITION_SQL, params, expect=1, name="position")
            )
            return
        written = await self.session.execute(_UPDATE_POSITION, params)
        if written.rowcount != 1:  # type: ignore[attr-defined]
            raise concurrent_modification("position", position.id)

    async def change_position(
        self, before: PositionRow, event: str, reason: str, **changes: Any
    ) -> PositionRow:
        """Changes an open position's `changes` (its version + 1, updated now) with its audit
        row `event`; returns it as changed."""
        after = replace(before, update_time=self.now, version=before.version + 1, **changes)
        await self.update_position(after, before.version)
        await self.audit_position(before, after, event, reason)
        return after

    async def audit_position(
        self, before: PositionRow | None, after: PositionRow, event: str, reason: str
    ) -> None:
        """The audit record of a position's change (`before` None: it opened)."""
        await self.audit(
            entity_type="position",
            entity_id=after.id,
            event=event,
            status_before="" if before is None else before.status,
            status_after=after.status,
            reason=reason,
            before=None if before is None else before.snapshot(),
            after=after.snapshot(),
            version=after.version,
        )

    async def insert_trade(self, trade: TradeRow) -> None:
        """Adds a trade (written at `finish`: nothing reads a trade back in its change)."""
        self._trades.append(trade.params())


def reason_changes(reason: ErrorReason.ValueType, message: str) -> dict[str, Any]:
    """The columns of an order the platform ended (REJECTED, EXPIRED, or CANCELLED with a
    reason): status_reason and status_message."""
    return {"status_reason": reason_name(reason), "status_message": message[:500]}
