"""The OMS's audit log: every change of an order or position, append-only and hash-chained per
account (ADR 0007 "Audit").

A record holds who (actor), what (entity, event, status before and after, reason), the entity's
snapshots before and after (canonical JSON), when, and the entity's version after the change.
Its `hash` is the lower-case hex SHA-256 of its canonical form (`canonical`), which includes
`previous_hash`, the hash of the account's record before it ("" for the first), so changing,
removing or re-sealing any record breaks the chain from there on. The chain's head (its last
sequence and hash) is kept on the account's `oms.accounts` row, which every change of the
account's orders and positions locks in its transaction anyway: records of one account are
appended one at a time without a global lock, and records of different accounts in parallel.

    python -m services.oms.audit verify --account ACCOUNT_ID [--database-url URL]

recomputes an account's chain (the URL defaults to $TM_AUDIT_DATABASE_URL, a role that reads
oms.audit_records); it prints one JSON line and exits 0 when the chain is intact, 1 when it is
broken, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from services.oms.columns import from_columns

__all__ = ["AuditRecord", "ChainVerdict", "canonical", "record_hash", "verify_records"]

COLUMNS: Final = (
    "account_id, sequence, entity_type, entity_id, event, actor_kind, actor_id, status_before,"
    " status_after, reason, before, after, version, created_at, correlation_id, previous_hash,"
    " hash"
)


def snapshot_json(value: Mapping[str, Any] | None) -> str:
    """The stored form of a before/after snapshot: sorted keys, no spaces; "" for none."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditRecord:
    """One change of an order or a position, as the chain seals it."""

    account_id: str
    sequence: int
    entity_type: str  # "order" or "position"
    entity_id: str
    event: str  # e.g. "FILLED", "STOPS_MODIFIED"
    actor_kind: str
    actor_id: str
    status_before: str
    status_after: str
    reason: str
    before: str
    after: str
    version: int
    created_at: datetime
    correlation_id: str
    previous_hash: str
    hash: str = ""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditRecord:
        return from_columns(cls, row)

    def params(self) -> dict[str, Any]:
        return asdict(self)


def canonical(record: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but `hash`, as sorted compact JSON, the
    time in UTC to the microsecond (as PostgreSQL stores it)."""
    fields = asdict(record)
    del fields["hash"]
    fields["created_at"] = record.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    intact: bool
    checked_count: int
    end_hash: str
    first_broken_sequence: int = 0
    problem: str = ""


def verify_records(records: Iterable[AuditRecord]) -> ChainVerdict:
    """Recomputes one account's chain from its first record, in sequence order."""
    previous, count = "", 0
    for expected_sequence, record in enumerate(records, start=1):
        problem = ""
        if record.sequence != expected_sequence:
            problem = f"sequence {record.sequence} where {expected_sequence} was expected"
        elif record.previous_hash != previous:
            problem = "previous_hash is not the hash of the record before"
        elif record_hash(record) != record.hash:
            problem = "hash does not match the record"
        if problem:
            return ChainVerdict(False, count, previous, record.sequence, problem)
        previous, count = record.hash, count + 1
    return ChainVerdict(True, count, previous)


async def _verify(database_url: str, account_id: str) -> ChainVerdict:
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    f"SELECT {COLUMNS} FROM oms.audit_records WHERE account_id = :account"
                    " ORDER BY sequence"
                ),
                {"account": account_id},
            )
            return verify_records(AuditRecord.from_row(r) for r in rows.mappings())
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.oms.audit")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="recompute one account's audit chain")
    verify.add_argument("--account", required=True)
    verify.add_argument("--database-url", default=os.environ.get("TM_AUDIT_DATABASE_URL", ""))
    args = parser.parse_args(argv)
    if not args.database_url:
        print("no --database-url and no TM_AUDIT_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        verdict = asyncio.run(_verify(args.database_url, args.account))
    except (OperationalError, OSError) as error:
        print(f"cannot read the audit log: {error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(verdict)))
    return 0 if verdict.intact else 1


if __name__ == "__main__":
    sys.exit(main())
