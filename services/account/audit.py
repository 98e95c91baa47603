"""The account domain's audit log: append-only and hash-chained (ADR 0005, AuditRecord contract).

Every change to users, trading accounts, client groups, withdrawals, balance adjustments, keys
and configuration calls `append_audit` in the change's own transaction. A record's hash is the
lower-case hex SHA-256 of its `AuditRecord` protobuf encoding with `hash` empty; that encoding
includes `previous_hash`, so each record seals the one before it. Appends take a
transaction-scoped advisory lock, so the chain stays linear under concurrency.

    python -m services.account.audit verify [--database-url URL] [--start N] [--end N]
                                            [--expected-end-hash HEX]

recomputes the chain (the URL defaults to $TM_AUDIT_DATABASE_URL); it prints one JSON line and
exits 0 when the chain is intact, 1 when it is broken, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from typing import Final

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine

from services.account.store import audit_records
from services.platform import access
from services.platform.hash_chain import next_link
from services.platform.identity import Caller
from tradingmesh.account.v1.account_pb2 import AuditRecord
from tradingmesh.common.v1.types_pb2 import Actor

__all__ = [
    "MAX_VERIFY_RECORDS",
    "ChainVerdict",
    "actor_of",
    "append_audit",
    "append_audit_record",
    "canonical_json",
    "record_hash",
    "verify_chain",
    "verify_records",
]

# Any constant unique to the audit chain; pg_advisory_xact_lock takes a bigint.
_AUDIT_LOCK_KEY: Final = 0x7467_6D61_7564_6974  # "tgmaudit"
MAX_VERIFY_RECORDS: Final = 1_000_000
SYSTEM_ACTOR_ID: Final = "account"


def actor_of(caller: Caller | None) -> Actor:
    """Who a caller is in the audit log and on ledger entries (`access.actor_of`); the
    service itself (SYSTEM) when there is no caller."""
    return access.actor_of(caller, SYSTEM_ACTOR_ID)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: Mapping[str, Any] | None) -> str:
    """The stored form of a before/after snapshot: sorted keys, no spaces; "" for None.

    Decimals, UUIDs and datetimes become strings, never floats.
    """
    if value is None:
        return ""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def record_hash(record: AuditRecord) -> str:
    """The record's hash per the contract: SHA-256 of its encoding with `hash` empty."""
    unsealed = AuditRecord()
    unsealed.CopyFrom(record)
    unsealed.hash = ""
    return hashlib.sha256(unsealed.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    """The result of checking a range of the chain (VerifyAuditChainResponse's fields)."""

    intact: bool
    start_sequence: int
    end_sequence: int
    checked_count: int
    end_hash: str
    first_broken_sequence: int = 0
    problem: str = ""
    next_start_sequence: int = 0


def verify_records(
    records: Iterable[AuditRecord],
    *,
    start_sequence: int,
    previous_hash: str,
    expected_end_hash: str = "",
) -> ChainVerdict:
    """Checks records (in sequence order, from `start_sequence`) against each other and against
    `previous_hash`, the stored hash of the record before the range ("" before the first)."""
    expected_sequence = start_sequence
    link = previous_hash
    checked = 0
    last_hash = ""

    def verdict(end: int, at: int = 0, problem: str = "") -> ChainVerdict:
        """The verdict on the records checked so far, up to `end`: intact unless `problem`
        (first seen at `at`)."""
        return ChainVerdict(
            intact=not problem,
            start_sequence=start_sequence,
            end_sequence=end,
            checked_count=checked,
            end_hash=last_hash,
            first_broken_sequence=at,
            problem=problem,
        )

    for record in records:
        if record.sequence != expected_sequence:
            problem, at = f"sequence {expected_sequence} missing", expected_sequence
        elif record.previous_hash != link:
            problem, at = "previous_hash does not link to the record before", record.sequence
        elif record_hash(record) != record.hash:
            problem, at = "hash mismatch", record.sequence
        else:
            checked += 1
            link = last_hash = record.hash
            expected_sequence += 1
            continue
        return verdict(record.sequence, at, problem)
    end = expected_sequence - 1
    if expected_end_hash and checked and last_hash != expected_end_hash:
        return verdict(end, end, "end hash differs from the expected one")
    return verdict(end if checked else 0)


async def append_audit_record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    correlation_id: str = "",
    source_ip: str = "",
) -> AuditRecord:
    """Appends one record to the chain in the session's transaction; returns it, sealed."""
    link = await next_link(session, table="account.audit_records", lock_key=_AUDIT_LOCK_KEY)
    created_at = datetime.datetime.now(datetime.UTC)
    record = AuditRecord(
        id=str(uuid.uuid4()),
        sequence=link.sequence,
        actor=actor,
        action=action,
        resource_type=entity_type,
        resource_id=entity_id,
        before=canonical_json(before),
        after=canonical_json(after),
        correlation_id=correlation_id,
        source_ip=source_ip,
        previous_hash=link.previous_hash,
    )
    record.create_time.FromDatetime(created_at)
    record.hash = record_hash(record)
    await audit_records.insert_record(session, record, created_at)
    return record


async def append_audit(
    session: AsyncSession,
    *,
    actor: Caller | None,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    """Appends an audit record for a change made in `session`'s transaction.

    `actor` is the caller (`current_caller()`), or None for a change the service makes on its
    own. `action` is "<resource_type>.<verb>", e.g. "api_key.revoke"; `before` and `after` are
    the resource's JSON form without secrets or hashes (None for a creation or a deletion).
    """
    await append_audit_record(
        session,
        actor=actor_of(actor),
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        correlation_id=actor.request_id if actor is not None else "",
        source_ip=actor.client_ip if actor is not None else "",
    )


async def verify_chain(
    session: AsyncSession,
    *,
    start_sequence: int = 0,
    end_sequence: int = 0,
    expected_end_hash: str = "",
    max_records: int = MAX_VERIFY_RECORDS,
) -> ChainVerdict:
    """Recomputes the chain over [start, end] (0: first / newest), at most `max_records`."""
    start = max(start_sequence, 1)
    newest = await audit_records.newest_sequence(session)
    end = min(end_sequence or newest, newest)
    if end < start:
        return ChainVerdict(True, start, 0, 0, "")
    last = min(end, start + max_records - 1)
    previous_hash = ""
    if start > 1:
        found = await audit_records.hash_at(session, start - 1)
        if found is None:
            return ChainVerdict(
                False, start, start, 0, "", start - 1, f"sequence {start - 1} missing"
            )
        previous_hash = found
    records = await audit_records.records_between(session, start, last)
    verdict = verify_records(
        records,
        start_sequence=start,
        previous_hash=previous_hash,
        expected_end_hash=expected_end_hash if last == end else "",
    )
    if verdict.intact and verdict.end_sequence != last:
        # Records missing at the end of the range.
        missing = verdict.end_sequence + 1 if verdict.checked_count else start
        return ChainVerdict(
            False,
            start,
            last,
            verdict.checked_count,
            verdict.end_hash,
            missing,
            f"sequence {missing} missing",
        )
    if verdict.intact and last < end:
        return ChainVerdict(
            True, start, last, verdict.checked_count, verdict.end_hash, next_start_sequence=last + 1
        )
    return verdict


async def _verify_command(args: argparse.Namespace) -> int:
    url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            session = AsyncSession(bind=connection)
            verdict = await verify_chain(
                session,
                start_sequence=args.start,
                end_sequence=args.end,
                expected_end_hash=args.expected_end_hash,
            )
    finally:
        await engine.dispose()
    print(json.dumps(verdict.__dict__))
    return 0 if verdict.intact else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.account.audit", description="The account audit chain."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="recompute the hash chain; exit 1 if broken")
    verify.add_argument(
        "--database-url",
        default=os.environ.get("TM_AUDIT_DATABASE_URL", ""),
        help="postgresql://user:password@host:port/db (default: $TM_AUDIT_DATABASE_URL)",
    )
    verify.add_argument("--start", type=int, default=0, help="first sequence (default: 1)")
    verify.add_argument("--end", type=int, default=0, help="last sequence (default: newest)")
    verify.add_argument("--expected-end-hash", default="", help="hash the last record must have")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("no database URL: pass --database-url or set TM_AUDIT_DATABASE_URL")
    try:
        return asyncio.run(_verify_command(args))
    except OperationalError as error:
        print(f"cannot reach the database: {error.orig}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
