"""The audit hash chain, without a database: sealing, linking and every kind of tampering."""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal

from services.account.audit import actor_of
from services.account.audit import canonical_json
from services.account.audit import record_hash
from services.account.audit import verify_records
from services.platform.identity import Caller
from tradingmesh.account.v1.account_pb2 import AuditRecord
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind


def _chain(length: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = ""
    for sequence in range(1, length + 1):
        record = AuditRecord(
            id=f"00000000-0000-4000-8000-{sequence:012d}",
            sequence=sequence,
            actor=Actor(kind=ActorKind.ACTOR_KIND_OPERATOR, id="staff-1"),
            action="client_group.update",
            resource_type="client_group",
            resource_id="g-1",
            before=canonical_json({"leverage": sequence}),
            after=canonical_json({"leverage": sequence + 1}),
            previous_hash=previous,
        )
        record.create_time.FromDatetime(
            datetime.datetime(2026, 11, 21, 10, 0, sequence, 123456, tzinfo=datetime.UTC)
        )
        record.hash = record_hash(record)
        previous = record.hash
        records.append(record)
    return records


def test_the_hash_is_sha256_of_the_record_encoded_without_its_hash() -> None:
    record = _chain(1)[0]
    unsealed = AuditRecord()
    unsealed.CopyFrom(record)
    unsealed.hash = ""

    assert record.hash == hashlib.sha256(unsealed.SerializeToString()).hexdigest()
    assert len(record.hash) == 64


def test_an_untouched_chain_is_intact() -> None:
    records = _chain(5)

    verdict = verify_records(records, start_sequence=1, previous_hash="")

    assert verdict.intact
    assert verdict.checked_count == 5
    assert verdict.end_sequence == 5
    assert verdict.end_hash == records[-1].hash


def test_a_changed_field_breaks_the_chain_at_that_record() -> None:
    records = _chain(5)
    records[2].after = canonical_json({"leverage": 500})

    verdict = verify_records(records, start_sequence=1, previous_hash="")

    assert not verdict.intact
    assert verdict.first_broken_sequence == 3
    assert verdict.problem == "hash mismatch"


def test_a_resealed_record_still_breaks_the_link_of_the_next() -> None:
    records = _chain(5)
    records[2].after = canonical_json({"leverage": 500})
    records[2].hash = record_hash(records[2])

    verdict = verify_records(records, start_sequence=1, previous_hash="")

    assert not verdict.intact
    assert verdict.first_broken_sequence == 4


def test_a_deleted_record_is_a_missing_sequence() -> None:
    records = _chain(5)
    del records[1]

    verdict = verify_records(records, start_sequence=1, previous_hash="")

    assert not verdict.intact
    assert verdict.first_broken_sequence == 2
    assert verdict.problem == "sequence 2 missing"


def test_a_truncated_tail_is_caught_by_the_expected_end_hash() -> None:
    records = _chain(5)

    verdict = verify_records(
        records[:4], start_sequence=1, previous_hash="", expected_end_hash=records[4].hash
    )

    assert not verdict.intact


def test_a_range_links_to_the_record_before_it() -> None:
    records = _chain(5)

    good = verify_records(records[2:], start_sequence=3, previous_hash=records[1].hash)
    bad = verify_records(records[2:], start_sequence=3, previous_hash="0" * 64)

    assert good.intact
    assert not bad.intact
    assert bad.first_broken_sequence == 3


def test_snapshots_are_canonical_and_never_floats() -> None:
    text = canonical_json({"b": Decimal("1.10"), "a": "x"})

    assert text == '{"a":"x","b":"1.10"}'
    assert canonical_json(None) == ""


def test_actors_from_callers() -> None:
    def caller(**overrides: object) -> Caller:
        fields: dict[str, object] = {
            "subject": "u-1",
            "roles": frozenset({"trader"}),
            "account_ids": frozenset(),
            "api_key_id": None,
            "request_id": "r",
        }
        fields.update(overrides)
        return Caller(**fields)  # type: ignore[arg-type]

    assert actor_of(None).kind == ActorKind.ACTOR_KIND_SYSTEM
    assert actor_of(caller()).kind == ActorKind.ACTOR_KIND_USER
    assert actor_of(caller(roles=frozenset({"backoffice"}))).kind == ActorKind.ACTOR_KIND_OPERATOR
    key = actor_of(caller(api_key_id="k-1"))
    assert (key.kind, key.id) == (ActorKind.ACTOR_KIND_API_KEY, "k-1")
