"""Posting to the double-entry ledger (ADR 0005), inside the caller's transaction.

`post` locks the account's `balances` row (`SELECT ... FOR UPDATE`), so postings to one account
serialize and sequences have no gaps; it writes the client's leg, the house leg, the new cached
balance and the `account.ledger_entry.posted` event to the outbox as ONE statement (ADR 0009),
in the caller's transaction. A retried business event is recognised by (reason,
reference_type, reference_id), unique in the table: its client leg is not inserted, so nothing
of the statement is written, and the original entry is returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import convert
from services.account import events
from services.account.domain import HOUSE_ACCOUNT_BY_REASON
from services.account.domain import Reason
from services.account.domain import format_money
from services.account.domain import next_balance
from services.account.store import actor_columns
from services.platform.access import account_not_found
from services.platform.errors import DomainError
from services.platform.outbox import event_write
from services.platform.outbox import written
from services.platform.sql import Write
from services.platform.sql import one_statement
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.account.v1.account_pb2 import LedgerEntry
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = [
    "ENTRY_COLUMNS",
    "LockedBalance",
    "Posted",
    "References",
    "find_entry",
    "lock_balance",
    "post",
    "post_request",
]


@dataclass(frozen=True)
class References:
    """What caused an entry, shown on the LedgerEntry."""

    order_id: str | None = None
    trade_id: str | None = None
    position_id: str | None = None
    withdrawal_id: str | None = None
    balance_adjustment_id: str | None = None
    provider_event_id: str | None = None


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    created: bool  # False: the business event had been posted before; this is that entry


@dataclass
class LockedBalance:
    """An account's balance row, locked by this transaction; `post` keeps it current."""

    account_id: uuid.UUID
    currency: str
    balance: Decimal
    last_sequence: int
    user_id: str
    account_number: str


async def lock_balance(session: AsyncSession, account_id: uuid.UUID) -> LockedBalance:
    """Locks the account's balance row until the transaction ends (creating it if missing);
    NOT_FOUND when the account does not exist."""
    query = text(
        "SELECT b.balance, b.last_sequence, a.currency, a.user_id, a.account_number"
        " FROM account.balances b JOIN account.trading_accounts a ON a.id = b.account_id"
        " WHERE b.account_id = :id FOR UPDATE OF b"
    )
    row = (await session.execute(query, {"id": account_id})).first()
    if row is None:
        await session.execute(
            text(
                "INSERT INTO account.balances (account_id, currency)"
                " SELECT id, currency FROM account.trading_accounts WHERE id = :id"
                " ON CONFLICT (account_id) DO NOTHING"
            ),
            {"id": account_id},
        )
        row = (await session.execute(query, {"id": account_id})).first()
        if row is None:
            raise account_not_found(str(account_id))
    return LockedBalance(
        account_id=account_id,
        currency=row[2].strip(),
        balance=row[0],
        last_sequence=int(row[1]),
        user_id=str(row[3]),
        account_number=row[4],
    )


ENTRY_COLUMNS = (
    "id, journal_id, account_id, sequence, reason, amount, balance_after, currency,"
    " reference_type, reference_id, actor_kind, actor_id, description, order_id, trade_id,"
    " position_id, withdrawal_id, balance_adjustment_id, provider_event_id, created_at"
)


async def find_entry(
    session: AsyncSession, reason: Reason, reference_type: str, reference_id: str
) -> LedgerEntry | None:
    row = (
        (
            await session.execute(
                text(
                    f"SELECT {ENTRY_COLUMNS} FROM account.ledger_entries WHERE reason = :reason"
                    " AND reference_type = :rtype AND reference_id = :rid"
                ),
                {"reason": reason.value, "rtype": reference_type, "rid": reference_id},
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else convert.ledger_entry(row)


async def post(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    reason: Reason,
    amount: Decimal,
    reference_type: str,
    reference_id: str,
    actor: Actor,
    description: str = "",
    references: References = References(),
    correlation_id: str = "",
    locked: LockedBalance | None = None,
) -> Posted:
    """Posts one client leg and its house leg; INSUFFICIENT_FUNDS refuses and changes nothing
    (the caller's transaction rolls back on the raised error)."""
    balance = locked or await lock_balance(session, account_id)
    try:
        posting = next_balance(
            balance.balance, balance.last_sequence, amount, reason, balance.currency
        )
    except DomainError:
        # A retry of a posting that was made (e.g. a withdrawal that left too little for a
        # second one) gets the original, not a refusal.
        existing = await find_entry(session, reason, reference_type, reference_id)
        if existing is not None:
            return Posted(existing, created=False)
        raise
    refs = references
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "journal_id": uuid.uuid4(),
        "account_id": account_id,
        "sequence": posting.sequence,
        "reason": reason.value,
        "amount": amount,
        "balance_after": posting.balance_after,
        "currency": balance.currency,
        "reference_type": reference_type,
        "reference_id": reference_id,
        **actor_columns("actor", actor),
        "description": description,
        "order_id": refs.order_id,
        "trade_id": refs.trade_id,
        "position_id": refs.position_id,
        "withdrawal_id": refs.withdrawal_id,
        "balance_adjustment_id": refs.balance_adjustment_id,
        "provider_event_id": refs.provider_event_id,
        "created_at": datetime.now(UTC),
    }
    entry = convert.ledger_entry(row)
    # ONE statement: the client's leg (once per business event: a retry's insert does nothing,
    # and neither do the writes that depend on it), the house leg, the cached balance and the
    # event. After the lock a concurrent posting of the same business event has committed.
    client_leg = Write(
        f"INSERT INTO account.ledger_entries ({ENTRY_COLUMNS}) VALUES ("
        + ", ".join(f":{c.strip()}" for c in ENTRY_COLUMNS.split(","))
        + ") ON CONFLICT (reason, reference_type, reference_id) DO NOTHING",
        row,
        counted=True,
    )
    if_posted = "EXISTS (SELECT 1 FROM w0)"
    posted, sealed = event_write(
        events.SCHEMA,
        "account.ledger_entry.posted",
        account_events_pb2.LedgerEntryPosted(
            metadata=events.metadata(
                actor, aggregate_version=posting.sequence, correlation_id=correlation_id
            ),
            entry=entry,
            balance=format_money(posting.balance_after, balance.currency),
            user_id=balance.user_id,
            account_number=balance.account_number,
        ),
        when=if_posted,
    )
    house_leg = Write(
        "INSERT INTO account.house_ledger_entries"
        " (id, journal_id, house_account, reason, amount, currency)"
        f" SELECT :id, :journal_id, :house, :reason, :amount, :currency WHERE {if_posted}",
        {
            "id": uuid.uuid4(),
            "journal_id": row["journal_id"],
            "house": HOUSE_ACCOUNT_BY_REASON[reason],
            "reason": reason.value,
            "amount": -amount,
            "currency": balance.currency,
        },
    )
    cached = Write(
        "UPDATE account.balances SET balance = :balance, last_sequence = :sequence,"
        f" updated_at = now() WHERE account_id = :id AND {if_posted}",
        {"balance": posting.balance_after, "sequence": posting.sequence, "id": account_id},
    )
    (created,) = (
        await session.execute(*one_statement([client_leg, house_leg, cached, posted]))
    ).one()
    if created != 1:
        existing = await find_entry(session, reason, reference_type, reference_id)
        assert existing is not None, "a posting refused as a duplicate has its original"
        return Posted(existing, created=False)
    written(session, events.SCHEMA, sealed)
    # The lock holder's view of the balance moves on, for a second posting in one transaction.
    balance.balance, balance.last_sequence = posting.balance_after, posting.sequence
    return Posted(entry, created=True)


async def post_request(
    session: AsyncSession,
    kind: Literal["withdrawal", "balance_adjustment"],
    request: Mapping[str, Any],
    reason: Reason,
    *,
    actor: Actor,
    description: str,
    correlation_id: str,
    provider_event_id: str | None = None,
) -> Posted:
    """`post` of the amount of a withdrawal's or balance adjustment's row (`request`) to its
    account: the entry's reference is the request (`kind`, its id), which the entry shows as
    its `<kind>_id`."""
    request_id = str(request["id"])
    return await post(
        session,
        account_id=request["account_id"],
        reason=reason,
        amount=request["amount"],
        reference_type=kind,
        reference_id=request_id,
        actor=actor,
        description=description,
        references=References(**{f"{kind}_id": request_id}, provider_event_id=provider_event_id),
        correlation_id=correlation_id,
    )
