"""Account events leave through the outbox: committed with the change, published to JetStream
once, in an envelope (ADR 0009) whose id is the message's Nats-Msg-Id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.callers import AccountStack
from tests.integration.callers import account_stack
from tests.integration.callers import staff
from tests.integration.conftest import RunningStack
from tests.integration.events import events_on
from tests.integration.events import published
from tests.integration.support.waiting import eventually_async
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.common.v1 import ledger_pb2


@pytest.fixture(scope="module")
def stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    yield from account_stack(running_stack)


async def test_a_deposit_is_published_once_with_its_envelope_id(stack: AccountStack) -> None:
    backoffice = staff()
    account = stack.new_account(backoffice, stack.new_user(backoffice).id)
    stack.deposit_direct(account.account_number, "25.00")

    async def all_sent() -> bool:  # published at once after the commit, marked sent within 0.5 s
        with stack.db() as conn:
            unsent = conn.execute(
                "SELECT count(*) FROM account.outbox WHERE sent_at IS NULL"
            ).fetchone()
        return unsent == (0,)

    await eventually_async(all_sent, 10, "every outbox row marked sent")

    messages = await published(stack, "ACCOUNT", "account.>")
    posted = []
    for message, found in events_on(messages, "account.ledger_entry.posted"):
        event = ev.LedgerEntryPosted.FromString(found.data)
        if event.entry.account_id == account.id:
            posted.append((message, event))

    assert len(posted) == 1
    message, event = posted[0]
    assert message.msg_id == message.envelope_id
    # A ledger posting is a change of its own: its envelope holds the one event.
    assert message.subject == "account.ledger_entry.posted"
    assert [e.subject for e in message.events] == ["account.ledger_entry.posted"]
    assert event.entry.reason == ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT
    assert (event.entry.amount, event.balance) == ("25.00", "25.00")
    assert event.account_number == account.account_number
    assert event.metadata.aggregate_version == event.entry.sequence == 1
