"""Account events leave through the outbox: committed with the change, published to JetStream
once, with Nats-Msg-Id = the event id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest

from tests.integration.callers import AccountStack, account_stack, staff
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.common.v1 import ledger_pb2


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


async def _published(stack: AccountStack, subject: str) -> list[tuple[dict[str, str], bytes]]:
    client = await nats.connect(stack.nats_url, user=stack.nats_user, password=stack.nats_password)
    try:
        subscription = await client.jetstream().pull_subscribe(subject, stream="ACCOUNT")
        messages: list[tuple[dict[str, str], bytes]] = []
        while True:
            try:
                batch = await subscription.fetch(100, timeout=2)
            except TimeoutError:  # nats-py raises its own or asyncio's once the stream is drained
                break
            messages += [(dict(m.headers or {}), m.data) for m in batch]
        await subscription.unsubscribe()
    finally:
        await client.close()
    return messages


async def test_a_deposit_is_published_once_with_its_event_id(stack: AccountStack) -> None:
    backoffice = staff()
    account = stack.new_account(backoffice, stack.new_user(backoffice).id)
    stack.deposit_direct(account.account_number, "25.00")
    for _ in range(50):  # the relay publishes within its idle interval (0.5 s)
        with stack.db() as conn:
            unsent = conn.execute(
                "SELECT count(*) FROM account.outbox WHERE sent_at IS NULL"
            ).fetchone()
        if unsent == (0,):
            break
        await asyncio.sleep(0.2)
    assert unsent == (0,)

    posted = []
    for headers, data in await _published(stack, "account.ledger_entry.posted"):
        event = ev.LedgerEntryPosted.FromString(data)
        if event.entry.account_id == account.id:
            posted.append((headers, event))

    assert len(posted) == 1
    headers, event = posted[0]
    assert headers["Nats-Msg-Id"] == event.metadata.event_id
    assert event.entry.reason == ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT
    assert (event.entry.amount, event.balance) == ("25.00", "25.00")
    assert event.account_number == account.account_number
    assert event.metadata.aggregate_version == event.entry.sequence == 1
