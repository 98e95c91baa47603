"""AccountAdminService.SetGroupInstrumentSettings through the real stack and the edge.

The account service checks a group's instrument settings against its own copy of pricing's
instruments (`account.instruments`, fed by pricing's instrument events), never against pricing's
schema, which its database role may not read. The settings then reach pricing as an account
event and change the group's prices.

Instruments created here get fresh symbols that the LP simulators do not quote, and are removed
from PostgreSQL when the module ends, as in test_pricing_admin (a restarted pricing asks the LPs
for every stored instrument).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.integration.support.edge import STANDARD_GROUP
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.edge import refused
from tests.integration.support.infra import connect_nats
from tests.integration.support.pricing import STANDARD_MARKUP_POINTS
from tests.integration.support.pricing import events
from tests.integration.support.pricing import get_quote
from tests.integration.support.pricing import offered_instrument
from tests.integration.support.waiting import eventually
from tests.integration.support.waiting import eventually_async
from tests.messages import client_group
from tests.messages import index_instrument
from tradingmesh.account.v1 import account_admin_service_pb2 as account_admin_pb2
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as account_admin_grpc
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import pricing_pb2 as common_pricing_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.events_pb2 import EnvelopedEvent
from tradingmesh.common.v1.events_pb2 import EventEnvelope
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc as pricing_admin_grpc
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc

R = ErrorReason
Metadata = tuple[tuple[str, str]]
POINT = Decimal("0.00001")  # EURUSD quotes 5 digits
CONSUMER = "account-instruments"  # services/account/instruments.py


@pytest.fixture(scope="module")
def staff(edge: Edge) -> dict[str, Metadata]:
    """A signed-in admin (sets group settings) and dealer (creates instruments): their tokens."""
    return {
        role: bearer(login(edge, make_user(edge, [role])).access_token)
        for role in ("admin", "dealer")
    }


@pytest.fixture(scope="module")
def created(edge: Edge) -> Iterator[list[str]]:
    """The symbols this module creates; removed from PostgreSQL at the end (see above)."""
    symbols: list[str] = []
    yield symbols
    with edge.database() as db:
        for table in (
            "pricing.group_instruments",
            "account.group_instrument_settings",
            "account.instruments",
            "pricing.instruments",
        ):
            db.execute(f"DELETE FROM {table} WHERE symbol = ANY(%s)", (symbols,))


@pytest.fixture
def accounts(edge: Edge) -> Iterator[account_admin_grpc.AccountAdminServiceStub]:
    with edge.channel() as channel:
        yield account_admin_grpc.AccountAdminServiceStub(channel)


@pytest.fixture
def instruments(edge: Edge) -> Iterator[pricing_admin_grpc.PricingAdminServiceStub]:
    with edge.channel() as channel:
        yield pricing_admin_grpc.PricingAdminServiceStub(channel)


@pytest.fixture
def pricing(edge: Edge) -> Iterator[pricing_grpc.PricingServiceStub]:
    with edge.channel() as channel:
        yield pricing_grpc.PricingServiceStub(channel)


def offer(
    accounts: account_admin_grpc.AccountAdminServiceStub,
    staff: dict[str, Metadata],
    group_id: str,
    symbol: str,
    **fields: Any,
) -> account_pb2.GroupInstrumentSettings:
    response = accounts.SetGroupInstrumentSettings(
        account_admin_pb2.SetGroupInstrumentSettingsRequest(
            settings=account_pb2.GroupInstrumentSettings(
                group_id=group_id, symbol=symbol, enabled=True, **fields
            )
        ),
        metadata=staff["admin"],
        timeout=10,
    )
    settings: account_pb2.GroupInstrumentSettings = response.settings
    return settings


def new_group(
    accounts: account_admin_grpc.AccountAdminServiceStub, staff: dict[str, Metadata]
) -> str:
    group_id: str = accounts.CreateClientGroup(
        account_admin_pb2.CreateClientGroupRequest(client_group=client_group(spread_markup="2")),
        metadata=staff["admin"],
        timeout=10,
    ).client_group.id
    return group_id


def create_instrument(
    instruments: pricing_admin_grpc.PricingAdminServiceStub,
    staff: dict[str, Metadata],
    created: list[str],
) -> str:
    symbol = f"IT{uuid.uuid4().hex[:10].upper()}"
    created.append(symbol)
    instruments.CreateInstrument(
        pricing_admin_service_pb2.CreateInstrumentRequest(instrument=index_instrument(symbol)),
        metadata=staff["dealer"],
        timeout=10,
    )
    return symbol


def account_copy(edge: Edge, symbol: str) -> tuple[Any, ...] | None:
    """(lot_step, min_lot, max_lot, version) of the account service's copy of `symbol`."""
    with edge.database() as db:
        return db.execute(
            "SELECT lot_step, min_lot, max_lot, version FROM account.instruments WHERE symbol = %s",
            (symbol,),
        ).fetchone()


def copied(edge: Edge, symbol: str, version: int) -> tuple[Any, ...]:
    """The account's copy of `symbol` once it holds `version` (the event is on its way)."""

    def probe() -> tuple[Any, ...] | None:
        row = account_copy(edge, symbol)
        return row if row is not None and row[3] >= version else None

    return eventually(probe, 20, f"the account's copy of {symbol} at version {version}")


def markup_of(pricing: pricing_grpc.PricingServiceStub, demo: tuple[str, str]) -> str:
    value: str = get_quote(pricing, demo).provenance.markup.value
    return value


# -- an existing instrument ---------------------------------------------------------------------


def test_an_offer_with_its_own_markup_reaches_pricing_and_widens_the_groups_quote(
    edge: Edge,
    accounts: account_admin_grpc.AccountAdminServiceStub,
    pricing: pricing_grpc.PricingServiceStub,
    staff: dict[str, Metadata],
    demo: tuple[str, str],
) -> None:
    with edge.database() as db:
        readable = db.execute("SELECT has_schema_privilege('account', 'pricing', 'USAGE')")
        assert readable.fetchone() == (False,)  # the account service checks its own copy
    assert markup_of(pricing, demo) == str(STANDARD_MARKUP_POINTS)
    try:
        settings = offer(
            accounts,
            staff,
            str(STANDARD_GROUP),
            "EURUSD",
            spread_markup_type=common_pricing_pb2.MARKUP_TYPE_POINTS,
            spread_markup="30",
            max_order_size="50",
        )

        assert (settings.symbol, settings.spread_markup, settings.max_order_size) == (
            "EURUSD",
            "30",
            "50",
        )
        eventually(
            lambda: markup_of(pricing, demo) == "30" or None, 20, "the group's new EURUSD markup"
        )
        quote = get_quote(pricing, demo)
        source = quote.provenance
        assert Decimal(source.bid_source.raw_price) - Decimal(quote.bid) == 15 * POINT
        assert Decimal(quote.ask) - Decimal(source.ask_source.raw_price) == 15 * POINT
    finally:
        # Back to the seed's offer: the group's own markup.
        offer(accounts, staff, str(STANDARD_GROUP), "EURUSD")
        eventually(
            lambda: markup_of(pricing, demo) == str(STANDARD_MARKUP_POINTS) or None,
            20,
            "the group's EURUSD markup restored",
        )


def test_an_unknown_symbol_is_not_found_and_changes_nothing(
    edge: Edge, accounts: account_admin_grpc.AccountAdminServiceStub, staff: dict[str, Metadata]
) -> None:
    def counts() -> tuple[Any, ...] | None:
        with edge.database() as db:
            return db.execute(
                "SELECT (SELECT count(*) FROM account.group_instrument_settings),"
                " (SELECT count(*) FROM account.outbox),"
                " (SELECT count(*) FROM account.audit_records)"
            ).fetchone()

    before = counts()

    code, reason, message = refused(lambda: offer(accounts, staff, str(STANDARD_GROUP), "NOSUCH.X"))

    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_UNKNOWN_INSTRUMENT)
    assert "NOSUCH.X" in message
    assert counts() == before


# -- instruments created and changed in pricing ------------------------------------------------


def test_an_instrument_created_in_pricing_can_then_be_offered_to_a_group(
    edge: Edge,
    accounts: account_admin_grpc.AccountAdminServiceStub,
    instruments: pricing_admin_grpc.PricingAdminServiceStub,
    pricing: pricing_grpc.PricingServiceStub,
    staff: dict[str, Metadata],
    created: list[str],
) -> None:
    group_id = new_group(accounts, staff)
    symbol = create_instrument(instruments, staff, created)

    # Copied from pricing's event with pricing's row version.
    assert copied(edge, symbol, 1) == (Decimal("0.1"), Decimal("0.1"), Decimal("500"), 1)
    # Checked against the copy's lot step (0.1).
    code, reason, _ = refused(
        lambda: offer(accounts, staff, group_id, symbol, max_order_size="0.15")
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_TOO_MANY_DECIMALS)
    settings = offer(accounts, staff, group_id, symbol, max_order_size="1.5")
    assert (settings.group_id, settings.symbol, settings.enabled) == (group_id, symbol, True)

    # The offer reaches pricing: a client of the group sees the instrument.
    client = make_user(edge, ["trader"])
    account_id = accounts.CreateTradingAccount(
        account_admin_pb2.CreateTradingAccountRequest(user_id=client.id, group_id=group_id),
        metadata=staff["admin"],
        timeout=10,
    ).account.id
    token = bearer(login(edge, client).access_token)

    assert offered_instrument(pricing, token, account_id, symbol).symbol == symbol


def test_an_update_reaches_the_copy_and_replayed_or_older_events_change_nothing(
    edge: Edge,
    accounts: account_admin_grpc.AccountAdminServiceStub,
    instruments: pricing_admin_grpc.PricingAdminServiceStub,
    staff: dict[str, Metadata],
    created: list[str],
) -> None:
    group_id = new_group(accounts, staff)
    symbol = create_instrument(instruments, staff, created)
    copied(edge, symbol, 1)

    instruments.UpdateInstrument(
        pricing_admin_service_pb2.UpdateInstrumentRequest(
            symbol=symbol,
            instrument=pricing_pb2.Instrument(lot_step="0.05"),
            update_mask=FieldMask(paths=["lot_step"]),
        ),
        metadata=staff["dealer"],
        timeout=10,
    )

    assert copied(edge, symbol, 2) == (Decimal("0.05"), Decimal("0.1"), Decimal("500"), 2)
    assert offer(accounts, staff, group_id, symbol, max_order_size="0.15").max_order_size == "0.15"

    # The update's envelope delivered again, its event changed, past JetStream's duplicate
    # window (a new Nats-Msg-Id), and an older change delivered late in an envelope of its own:
    # the copy keeps version 2.
    ((message, update),) = [
        (m, e)
        for m, e in events(
            edge, "pricing.instrument.updated", pricing_events_pb2.InstrumentUpdated.FromString
        )
        if e.instrument.symbol == symbol
    ]
    replayed = pricing_events_pb2.InstrumentUpdated()
    replayed.CopyFrom(update)
    replayed.metadata.aggregate_version = 9
    replayed.instrument.lot_step = "0.5"
    older = pricing_events_pb2.InstrumentUpdated()
    older.CopyFrom(update)
    older.metadata.event_id = str(uuid.uuid4())
    older.metadata.aggregate_version = 1
    older.instrument.lot_step = "1"

    publish_and_wait_for_the_copy(
        edge, [(message.envelope_id, replayed), (str(uuid.uuid4()), older)]
    )

    assert account_copy(edge, symbol) == (Decimal("0.05"), Decimal("0.1"), Decimal("500"), 2)
    # The copy keeps versions and has no envelope inbox: it records each event's own id once.
    with edge.database() as db:
        seen = db.execute(
            "SELECT count(*) FROM account.inbox WHERE event_id = ANY(%s)",
            ([update.metadata.event_id, older.metadata.event_id],),
        ).fetchone()
    assert seen == (2,)


def publish_and_wait_for_the_copy(
    edge: Edge, updates: list[tuple[str, pricing_events_pb2.InstrumentUpdated]]
) -> None:
    """Publishes each (envelope id, update) to the PRICING stream as an envelope holding that
    update, under a new Nats-Msg-Id, and waits until the account service's consumer has
    acknowledged them."""
    known = edge.admin_secrets().nats

    async def run() -> None:
        client = await connect_nats(
            f"nats://127.0.0.1:{edge.ports.nats}",
            known.username,
            known.password.reveal(),
            edge.state.endpoints.ca_file,
        )
        try:
            js = client.jetstream()
            last = 0
            for envelope_id, event in updates:
                envelope = EventEnvelope(
                    envelope_id=envelope_id,
                    events=[
                        EnvelopedEvent(
                            subject="pricing.instrument.updated", payload=event.SerializeToString()
                        )
                    ],
                )
                ack = await js.publish(
                    "pricing.instrument.updated",
                    envelope.SerializeToString(),
                    headers={"Nats-Msg-Id": str(uuid.uuid4())},
                )
                last = ack.seq

            async def acknowledged() -> bool:
                info = await js.consumer_info("PRICING", CONSUMER)
                return info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= last

            await eventually_async(acknowledged, 20, f"{CONSUMER} acknowledged sequence {last}")
        finally:
            await client.close()

    asyncio.run(run())
