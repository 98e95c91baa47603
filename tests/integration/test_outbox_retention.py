"""The outbox relay's retention against the stack's PostgreSQL, with each service's own role:
rows sent more than a week ago go, recent and unsent rows stay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import Database
from services.platform.outbox import OutboxRelay
from services.platform.outbox import RelayPace
from tests.integration.conftest import RunningStack


def _rows(admin: str, schema: str, ids: list[str]) -> set[str]:
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute(
            f"SELECT event_id FROM {schema}.outbox WHERE event_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    return {str(r[0]) for r in found}


@pytest.mark.parametrize("schema", ["account", "pricing", "oms", "risk"])
async def test_rows_sent_more_than_a_week_ago_are_deleted_others_kept(
    running_stack: RunningStack, schema: str
) -> None:
    admin, url = running_stack.database_urls(schema)
    # Sent 8 days ago, sent 6 days ago (both written 9 days ago), never sent: only the first
    # goes. The unsent row is written now: the service's live relay polls only unsent rows
    # older than its grace (3 s; younger ones are left to their commit's hand-off), so it
    # leaves this one alone while the prune runs.
    ids = {name: str(uuid.uuid4()) for name in ("old", "recent", "unsent")}
    written: dict[str, Any] = {"old": "9 days", "recent": "9 days", "unsent": "0 seconds"}
    sent: dict[str, Any] = {"old": "8 days", "recent": "6 days", "unsent": None}
    with psycopg.connect(admin, autocommit=True) as conn:
        for name, envelope_id in ids.items():
            conn.execute(
                f"INSERT INTO {schema}.outbox (event_id, subject, payload, created_at, sent_at)"
                " VALUES (%s, 'test.retention', %s, now() - %s::interval,"
                " now() - %s::interval)",
                (envelope_id, b"x", written[name], sent[name]),
            )
    try:
        engine = create_async_engine(url)
        try:
            relay = OutboxRelay(
                Database(engine, engine),
                None,  # type: ignore[arg-type]  # prune publishes nothing
                schema,
                RelayPace(keep=timedelta(days=7)),
            )
            deleted = await relay.prune()
        finally:
            await engine.dispose()
        assert deleted >= 1
        assert _rows(admin, schema, list(ids.values())) == {ids["recent"], ids["unsent"]}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                f"DELETE FROM {schema}.outbox WHERE event_id = ANY(%s::uuid[])",
                (list(ids.values()),),
            )
