"""The OMS audit chain: each record seals the one before it; any change breaks the chain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from services.oms.audit import AuditRecord
from services.oms.audit import record_hash
from services.oms.audit import snapshot_json
from services.oms.audit import verify_records

ACCOUNT = "7b1c1a4e-9a0f-4c57-8f7e-7f6d3d0e2b11"
ORDER = "0c9d3c2e-0b0b-4a5e-9d55-0f3b2f3f4a12"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def chain(length: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = ""
    for sequence in range(1, length + 1):
        record = AuditRecord(
            account_id=ACCOUNT,
            sequence=sequence,
            entity_type="order",
            entity_id=ORDER,
            event="SUBMITTED" if sequence > 1 else "CREATED",
            actor_kind="USER",
            actor_id="u-1",
            status_before="NEW" if sequence > 1 else "",
            status_after="PENDING",
            reason="",
            before=snapshot_json({"status": "NEW"}) if sequence > 1 else "",
            after=snapshot_json({"status": "PENDING", "quantity": "1.0"}),
            version=sequence,
            created_at=T0 + timedelta(milliseconds=sequence),
            correlation_id="req-1",
            previous_hash=previous,
        )
        record = replace(record, hash=record_hash(record))
        records.append(record)
        previous = record.hash
    return records


def test_an_untouched_chain_is_intact() -> None:
    records = chain(5)
    verdict = verify_records(records)
    assert verdict.intact
    assert verdict.checked_count == 5
    assert verdict.end_hash == records[-1].hash


def test_the_hash_covers_the_previous_hash_and_every_field() -> None:
    record = chain(1)[0]
    assert record_hash(replace(record, previous_hash="x")) != record.hash
    assert record_hash(replace(record, reason="edited")) != record.hash
    assert record_hash(replace(record, after='{"status":"FILLED"}')) != record.hash
    assert record_hash(replace(record, hash="anything")) == record.hash  # not itself


def test_the_time_is_hashed_in_utc_whatever_zone_it_is_read_in() -> None:
    record = chain(1)[0]
    elsewhere = record.created_at.astimezone(timezone(timedelta(hours=5)))
    assert record_hash(replace(record, created_at=elsewhere)) == record.hash


def test_an_edited_record_breaks_the_chain_there() -> None:
    records = chain(4)
    records[2] = replace(records[2], reason="rewritten")
    verdict = verify_records(records)
    assert not verdict.intact
    assert verdict.first_broken_sequence == 3
    assert verdict.checked_count == 2


def test_a_removed_record_breaks_the_chain() -> None:
    records = chain(4)
    del records[1]
    verdict = verify_records(records)
    assert not verdict.intact
    assert verdict.first_broken_sequence == 3


def test_a_resealed_record_breaks_the_link_to_the_next() -> None:
    records = chain(3)
    edited = replace(records[1], reason="rewritten")
    records[1] = replace(edited, hash=record_hash(edited))
    verdict = verify_records(records)
    assert not verdict.intact
    assert verdict.first_broken_sequence == 3


def test_snapshots_are_canonical_json() -> None:
    assert snapshot_json({"b": "1", "a": "2"}) == '{"a":"2","b":"1"}'
    assert snapshot_json(None) == ""
