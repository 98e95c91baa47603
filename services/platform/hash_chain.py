"""The tail of an append-only hash chain in PostgreSQL: the account's audit log (ADR 0005) and
the OMS's operator audit (migration 0015) are tables of records, each numbered `sequence` and
sealing the one before it with `hash`.

`next_link` takes the chain's transaction-scoped advisory lock, then reads the last record: the
appender holds the chain until its transaction ends, so two appends never take the same
sequence or seal the same predecessor. How a record is hashed is the chain's own affair.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Link", "next_link"]


@dataclass(frozen=True)
class Link:
    """Where the next record goes: its sequence (1 for the first) and the hash it seals ("" for
    the first)."""

    sequence: int
    previous_hash: str


async def next_link(session: AsyncSession, *, table: str, lock_key: int) -> Link:
    """Locks the chain in `table` (a trusted, schema-qualified name; its columns `sequence` and
    `hash`) for the rest of `session`'s transaction and returns the next record's link.
    `lock_key`: the chain's pg_advisory_xact_lock key, the same for every appender."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
    tail = text(f"SELECT sequence, hash FROM {table} ORDER BY sequence DESC LIMIT 1")
    last = (await session.execute(tail)).first()
    return Link(int(last[0]) + 1, str(last[1])) if last is not None else Link(1, "")
