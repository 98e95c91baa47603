"""PricingAdminService through the real stack and the edge: staff sign in, Envoy verifies their
tokens, pricing changes PostgreSQL, its outbox and its running engine.

Instruments created here get fresh symbols that the LP simulators do not quote, and are removed
from PostgreSQL when the module ends: the gateway asks each LP for every stored instrument in one
request at start, and an LP refuses a request naming a symbol it does not know (ADR 0006), so a
later restart of pricing (test_stack) must not find them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from simulators.lp.control import ControlClient
from stack.ports import LP_SIMULATORS
from tests.integration.support.edge import STANDARD_GROUP
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.edge import refused
from tests.integration.support.pricing import T
from tests.integration.support.pricing import events
from tests.integration.support.pricing import offered_instrument
from tests.integration.support.waiting import eventually
from tests.messages import EVERY_DAY
from tests.messages import client_group
from tests.messages import index_instrument
from tradingmesh.account.v1 import account_admin_service_pb2 as account_admin_pb2
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as account_admin_grpc
from tradingmesh.common.v1 import pricing_pb2 as common_pricing_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc as admin_grpc
from tradingmesh.pricing.v1 import pricing_events_pb2
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc

R = ErrorReason


@dataclass(frozen=True)
class Staff:
    """Signed-in callers, by role: (user id, access token)."""

    people: dict[str, tuple[str, str]]

    def token(self, role: str) -> tuple[tuple[str, str]]:
        return bearer(self.people[role][1])

    def id(self, role: str) -> str:
        return self.people[role][0]


@pytest.fixture(scope="module")
def staff(edge: Edge) -> Staff:
    people = {}
    for role in ("admin", "dealer", "backoffice", "trader"):
        user = make_user(edge, [role])
        people[role] = (user.id, login(edge, user).access_token)
    return Staff(people)


@pytest.fixture(scope="module")
def created(edge: Edge) -> Iterator[list[str]]:
    """The symbols this module creates; removed from PostgreSQL at the end (see above)."""
    symbols: list[str] = []
    yield symbols
    with edge.database() as db:
        db.execute("DELETE FROM pricing.instruments WHERE symbol = ANY(%s)", (symbols,))
        db.execute("DELETE FROM pricing.group_instruments WHERE symbol = ANY(%s)", (symbols,))
        db.execute(
            "DELETE FROM account.group_instrument_settings WHERE symbol = ANY(%s)", (symbols,)
        )


@pytest.fixture
def admin(edge: Edge) -> Iterator[admin_grpc.PricingAdminServiceStub]:
    with edge.channel() as channel:
        yield admin_grpc.PricingAdminServiceStub(channel)


@pytest.fixture
def pricing(edge: Edge) -> Iterator[pricing_grpc.PricingServiceStub]:
    with edge.channel() as channel:
        yield pricing_grpc.PricingServiceStub(channel)


def new_symbol(created: list[str]) -> str:
    symbol = f"IT{uuid.uuid4().hex[:10].upper()}"
    created.append(symbol)
    return symbol


def create(
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
    sessions: list[pricing_pb2.TradingSession] | None = None,
    symbol: str = "",
) -> pricing_pb2.Instrument:
    symbol = symbol or new_symbol(created)
    response = admin.CreateInstrument(
        pricing_admin_service_pb2.CreateInstrumentRequest(
            instrument=index_instrument(symbol)
            if sessions is None
            else index_instrument(symbol, sessions=sessions)
        ),
        metadata=staff.token("dealer"),
        timeout=10,
    )
    instrument: pricing_pb2.Instrument = response.instrument
    return instrument


def stored(edge: Edge, symbol: str) -> tuple[Any, ...] | None:
    with edge.database() as db:
        return db.execute(
            "SELECT description, digits, tick_size, min_lot, max_lot, margin_rate, sessions,"
            " trading_status, halt_reason, version, updated_at"
            " FROM pricing.instruments WHERE symbol = %s",
            (symbol,),
        ).fetchone()


def outbox_size(edge: Edge) -> int:
    with edge.database() as db:
        row = db.execute("SELECT count(*) FROM pricing.outbox").fetchone()
    assert row is not None
    return int(row[0])


def _published(edge: Edge, subject: str, kind: Callable[[bytes], T], symbol: str) -> list[T]:
    def probe() -> list[T] | None:
        found = [
            (message, e)
            for message, e in events(edge, subject, kind)
            if e.instrument.symbol == symbol  # type: ignore[attr-defined]
        ]
        for message, _ in found:
            assert message.msg_id == message.envelope_id
        return [e for _, e in found] or None

    return eventually(probe, 20, f"{subject} for {symbol} on JetStream")


# -- create ------------------------------------------------------------------------------------


def test_a_created_instrument_is_committed_published_and_offered_to_a_group_that_lists_it(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    pricing: pricing_grpc.PricingServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    symbol = new_symbol(created)
    with edge.channel() as channel:
        accounts = account_admin_grpc.AccountAdminServiceStub(channel)
        group_id = _new_group(accounts, edge, staff)
        # The group lists the symbol before it exists: the offer counts once it is created.
        _offer_in_pricings_copy(edge, group_id, symbol)

        instrument = create(admin, staff, created, symbol=symbol)

        # Answered with the output fields set, and committed before the answer.
        assert instrument.trading_status == pricing_pb2.TRADING_STATUS_TRADING
        assert instrument.HasField("update_time")
        assert (instrument.tick_size, instrument.base_currency) == ("0.1", "")
        row = stored(edge, symbol)
        assert row is not None
        assert (row[1], row[2], row[7], row[9]) == (1, Decimal("0.1"), "TRADING", 1)
        # Published once through the outbox, by the dealer.
        (event,) = _published(
            edge,
            "pricing.instrument.created",
            pricing_events_pb2.InstrumentCreated.FromString,
            symbol,
        )
        assert event.instrument == instrument
        assert event.metadata.actor.kind == types_pb2.ACTOR_KIND_OPERATOR
        assert event.metadata.actor.id == staff.id("dealer")
        assert event.metadata.aggregate_version == 1
        # The running service knows it at once: no LP quotes it, so no price and stale books.
        provenance = admin.GetQuoteProvenance(
            pricing_admin_service_pb2.GetQuoteProvenanceRequest(symbol=symbol, group_id=group_id),
            metadata=staff.token("backoffice"),
            timeout=10,
        )
        assert not provenance.HasField("quote")
        assert [(b.liquidity_provider_id, b.stale) for b in provenance.books] == [
            (lp, True) for lp in sorted(LP_SIMULATORS)
        ]
        # A client of the group sees it (once the account's event has reached pricing).
        client = make_user(edge, ["trader"])
        account_id = accounts.CreateTradingAccount(
            account_admin_pb2.CreateTradingAccountRequest(user_id=client.id, group_id=group_id),
            metadata=staff.token("admin"),
            timeout=10,
        ).account.id
    token = bearer(login(edge, client).access_token)

    assert offered_instrument(pricing, token, account_id, symbol) == instrument
    listed = pricing.ListInstruments(
        pricing_service_pb2.ListInstrumentsRequest(account_id=account_id),
        metadata=token,
        timeout=10,
    )
    assert [i.symbol for i in listed.instruments] == [symbol]


def _new_group(
    accounts: account_admin_grpc.AccountAdminServiceStub, edge: Edge, staff: Staff
) -> str:
    """A new client group (account service), once pricing has its copy."""
    group_id: str = accounts.CreateClientGroup(
        account_admin_pb2.CreateClientGroupRequest(client_group=client_group(spread_markup="2")),
        metadata=staff.token("admin"),
        timeout=10,
    ).client_group.id

    def copied() -> bool | None:
        with edge.database() as db:
            found = db.execute(
                "SELECT 1 FROM pricing.groups WHERE group_id = %s", (group_id,)
            ).fetchone()
        return True if found else None

    eventually(copied, 20, f"pricing's copy of group {group_id}")
    return group_id


def _offer_in_pricings_copy(edge: Edge, group_id: str, symbol: str) -> None:
    """The group's offer of `symbol`, written into pricing's copy as the demo seed writes it.

    Not through the account service: its SetGroupInstrumentSettings reads pricing.instruments,
    which its database role may not (INTERNAL in the stack, reported).
    """
    with edge.database() as db:
        db.execute(
            "INSERT INTO pricing.group_instruments (group_id, symbol, enabled, version)"
            " VALUES (%s, %s, TRUE, 0)",
            (group_id, symbol),
        )


def test_a_taken_symbol_or_inconsistent_fields_create_nothing(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    existing = create(admin, staff, created)
    row, outbox = stored(edge, existing.symbol), outbox_size(edge)

    code, reason, _ = refused(
        lambda: admin.CreateInstrument(
            pricing_admin_service_pb2.CreateInstrumentRequest(
                instrument=index_instrument(
                    existing.symbol, sessions=[]
                )  # different fields, same symbol
            ),
            metadata=staff.token("dealer"),
            timeout=10,
        )
    )
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, R.ERROR_REASON_ALREADY_EXISTS)

    fresh = f"IT{uuid.uuid4().hex[:10].upper()}"
    created.append(fresh)
    bad = index_instrument(fresh)
    bad.min_lot = "0.15"  # not a multiple of lot_step 0.1
    code, reason, _ = refused(
        lambda: admin.CreateInstrument(
            pricing_admin_service_pb2.CreateInstrumentRequest(instrument=bad),
            metadata=staff.token("dealer"),
            timeout=10,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_VALIDATION_FAILED)
    missing = index_instrument(f"IT{uuid.uuid4().hex[:10].upper()}")
    missing.ClearField("margin_rate")
    code, reason, _ = refused(
        lambda: admin.CreateInstrument(
            pricing_admin_service_pb2.CreateInstrumentRequest(instrument=missing),
            metadata=staff.token("dealer"),
            timeout=10,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_VALIDATION_FAILED)

    assert stored(edge, existing.symbol) == row
    assert stored(edge, fresh) is None
    assert outbox_size(edge) == outbox


# -- update ------------------------------------------------------------------------------------


def test_an_update_changes_only_the_masked_fields_and_publishes_what_changed(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    before = create(admin, staff, created)
    given = index_instrument(before.symbol, sessions=EVERY_DAY[:5])
    given.margin_rate = "0.10"
    given.max_lot = "250"  # not in the mask: ignored
    given.description = "ignored too"

    after = admin.UpdateInstrument(
        pricing_admin_service_pb2.UpdateInstrumentRequest(
            symbol=before.symbol,
            instrument=given,
            update_mask=FieldMask(paths=["margin_rate", "sessions"]),
        ),
        metadata=staff.token("dealer"),
        timeout=10,
    ).instrument

    assert after.margin_rate == "0.1"
    assert list(after.sessions) == EVERY_DAY[:5]
    assert (after.max_lot, after.description) == (before.max_lot, before.description)
    row = stored(edge, before.symbol)
    assert row is not None
    assert (row[5], row[4], row[9]) == (Decimal("0.1"), Decimal("500"), 2)
    (event,) = _published(
        edge,
        "pricing.instrument.updated",
        pricing_events_pb2.InstrumentUpdated.FromString,
        before.symbol,
    )
    assert list(event.update_mask.paths) == ["margin_rate", "sessions"]
    assert event.instrument == after
    assert event.metadata.aggregate_version == 2


def test_an_update_over_rest_takes_the_mask_as_a_query_parameter(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    before = create(admin, staff, created)
    connection = edge.https()
    connection.request(
        "PATCH",
        f"/v1/admin/instruments/{before.symbol}?update_mask=description",
        body=json.dumps({"description": "Renamed over REST", "max_lot": "1"}),
        headers={
            "authorization": f"Bearer {staff.people['admin'][1]}",
            "content-type": "application/json",
        },
    )
    response = connection.getresponse()
    body = json.loads(response.read())

    assert response.status == 200, body
    assert body["instrument"]["description"] == "Renamed over REST"
    assert body["instrument"]["max_lot"] == "500"  # not in the mask
    row = stored(edge, before.symbol)
    assert row is not None
    assert row[0] == "Renamed over REST"


def test_bad_updates_are_refused_with_the_right_status_and_change_nothing(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    instrument = create(admin, staff, created)
    row, outbox = stored(edge, instrument.symbol), outbox_size(edge)

    def update(symbol: str, given: pricing_pb2.Instrument, paths: list[str]) -> Any:
        return admin.UpdateInstrument(
            pricing_admin_service_pb2.UpdateInstrumentRequest(
                symbol=symbol, instrument=given, update_mask=FieldMask(paths=paths)
            ),
            metadata=staff.token("dealer"),
            timeout=10,
        )

    inconsistent = index_instrument(instrument.symbol)
    inconsistent.min_lot = "600"  # above max_lot 500
    bad = {
        "immutable path": (
            instrument.symbol,
            index_instrument(instrument.symbol),
            ["contract_size"],
        ),
        "unknown path": (instrument.symbol, index_instrument(instrument.symbol), ["nope"]),
        "empty mask": (instrument.symbol, index_instrument(instrument.symbol), []),
        "inconsistent": (instrument.symbol, inconsistent, ["min_lot"]),
        "other symbol in body": (instrument.symbol, index_instrument("EURUSD"), ["description"]),
    }
    for what, (symbol, given, paths) in bad.items():
        code, reason, _ = refused(lambda s=symbol, g=given, p=paths: update(s, g, p))
        assert (code, reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            R.ERROR_REASON_VALIDATION_FAILED,
        ), what
    code, reason, message = refused(
        lambda: update("NOSUCH1", index_instrument("NOSUCH1"), ["description"])
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_UNKNOWN_INSTRUMENT)
    assert "NOSUCH1" in message

    assert stored(edge, instrument.symbol) == row
    assert outbox_size(edge) == outbox


def test_a_digits_change_reaches_the_running_engine(
    admin: admin_grpc.PricingAdminServiceStub, staff: Staff
) -> None:
    """XAUUSD (2 digits) for the demo group (10 points of markup): with 3 digits a point is
    0.001, so the markup taken off the bid falls from 0.05 to 0.005."""

    def set_digits(digits: int) -> None:
        admin.UpdateInstrument(
            pricing_admin_service_pb2.UpdateInstrumentRequest(
                symbol="XAUUSD",
                instrument=pricing_pb2.Instrument(digits=digits),
                update_mask=FieldMask(paths=["digits"]),
            ),
            metadata=staff.token("dealer"),
            timeout=10,
        )

    def bid_markup(expected: str) -> str | None:
        quote = admin.GetQuoteProvenance(
            pricing_admin_service_pb2.GetQuoteProvenanceRequest(
                symbol="XAUUSD", group_id=str(STANDARD_GROUP)
            ),
            metadata=staff.token("backoffice"),
            timeout=10,
        ).quote
        found: str = quote.provenance.markup.bid_markup
        return found if found == expected else None

    eventually(lambda: bid_markup("0.05"), 20, "XAUUSD priced with 2 digits")
    set_digits(3)
    try:
        eventually(lambda: bid_markup("0.005"), 20, "XAUUSD priced with 3 digits")
    finally:
        set_digits(2)
    eventually(lambda: bid_markup("0.05"), 20, "XAUUSD priced with 2 digits again")


# -- trading status ----------------------------------------------------------------------------


def set_status(
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    symbol: str,
    status: pricing_pb2.TradingStatus.ValueType,
    reason: str = "",
) -> pricing_pb2.Instrument:
    instrument: pricing_pb2.Instrument = admin.SetInstrumentTradingStatus(
        pricing_admin_service_pb2.SetInstrumentTradingStatusRequest(
            symbol=symbol, status=status, reason=reason
        ),
        metadata=staff.token("dealer"),
        timeout=10,
    ).instrument
    return instrument


def test_a_halt_overrides_the_schedule_and_resuming_returns_to_it(
    edge: Edge,
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
    created: list[str],
) -> None:
    instrument = create(admin, staff, created, sessions=[])  # never open
    assert instrument.trading_status == pricing_pb2.TRADING_STATUS_CLOSED

    halted = set_status(
        admin, staff, instrument.symbol, pricing_pb2.TRADING_STATUS_HALTED, "Corporate action"
    )
    assert (halted.trading_status, halted.halt_reason) == (
        pricing_pb2.TRADING_STATUS_HALTED,
        "Corporate action",
    )
    resumed = set_status(admin, staff, instrument.symbol, pricing_pb2.TRADING_STATUS_TRADING)
    assert (resumed.trading_status, resumed.halt_reason) == (pricing_pb2.TRADING_STATUS_CLOSED, "")

    changes = _published(
        edge,
        "pricing.instrument.trading_status_changed",
        pricing_events_pb2.InstrumentTradingStatusChanged.FromString,
        instrument.symbol,
    )
    assert [(e.previous_status, e.instrument.trading_status, e.reason) for e in changes] == [
        (pricing_pb2.TRADING_STATUS_CLOSED, pricing_pb2.TRADING_STATUS_HALTED, "Corporate action"),
        (pricing_pb2.TRADING_STATUS_HALTED, pricing_pb2.TRADING_STATUS_CLOSED, ""),
    ]
    # Halting needs a reason; an unknown symbol is NOT_FOUND; and neither changes anything.
    row = stored(edge, instrument.symbol)
    code, reason, _ = refused(
        lambda: set_status(admin, staff, instrument.symbol, pricing_pb2.TRADING_STATUS_HALTED)
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, R.ERROR_REASON_VALIDATION_FAILED)
    code, reason, _ = refused(
        lambda: set_status(admin, staff, "NOSUCH1", pricing_pb2.TRADING_STATUS_HALTED, "why")
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_UNKNOWN_INSTRUMENT)
    assert stored(edge, instrument.symbol) == row


def test_a_halted_instrument_is_shown_halted_to_clients_and_still_priced(
    admin: admin_grpc.PricingAdminServiceStub,
    pricing: pricing_grpc.PricingServiceStub,
    staff: Staff,
    demo: tuple[str, str],
) -> None:
    token, account = demo

    def instrument() -> pricing_pb2.Instrument:
        found: pricing_pb2.Instrument = pricing.GetInstrument(
            pricing_service_pb2.GetInstrumentRequest(symbol="EURUSD", account_id=account),
            metadata=bearer(token),
            timeout=10,
        ).instrument
        return found

    def quote_after(moment: datetime) -> pricing_pb2.Quote | None:
        quote: pricing_pb2.Quote = pricing.GetQuote(
            pricing_service_pb2.GetQuoteRequest(symbol="EURUSD", account_id=account),
            metadata=bearer(token),
            timeout=10,
        ).quote
        return quote if quote.quote_time.ToDatetime(UTC) > moment and not quote.stale else None

    halted_at = datetime.now(UTC)
    set_status(admin, staff, "EURUSD", pricing_pb2.TRADING_STATUS_HALTED, "LP pricing error")
    try:
        shown = instrument()
        assert shown.trading_status == pricing_pb2.TRADING_STATUS_HALTED
        assert shown.halt_reason == "LP pricing error"
        quote = eventually(lambda: quote_after(halted_at), 20, "a EURUSD price after the halt")
        assert Decimal(quote.ask) > Decimal(quote.bid)
    finally:
        set_status(admin, staff, "EURUSD", pricing_pb2.TRADING_STATUS_TRADING, "fixed")
    shown = instrument()
    assert (shown.trading_status, shown.halt_reason) == (pricing_pb2.TRADING_STATUS_TRADING, "")


# -- who may call ------------------------------------------------------------------------------


def test_only_staff_may_read_and_only_admins_and_dealers_may_change(
    admin: admin_grpc.PricingAdminServiceStub, staff: Staff
) -> None:
    calls: dict[str, Callable[[tuple[tuple[str, str]]], Any]] = {
        "list": lambda who: admin.ListLiquidityProviders(
            pricing_admin_service_pb2.ListLiquidityProvidersRequest(), metadata=who, timeout=10
        ),
        "provenance": lambda who: admin.GetQuoteProvenance(
            pricing_admin_service_pb2.GetQuoteProvenanceRequest(
                symbol="EURUSD", group_id=str(STANDARD_GROUP)
            ),
            metadata=who,
            timeout=10,
        ),
        "create": lambda who: admin.CreateInstrument(
            pricing_admin_service_pb2.CreateInstrumentRequest(
                instrument=index_instrument("NEVERMADE1")
            ),
            metadata=who,
            timeout=10,
        ),
        "update": lambda who: admin.UpdateInstrument(
            pricing_admin_service_pb2.UpdateInstrumentRequest(
                symbol="EURUSD",
                instrument=pricing_pb2.Instrument(description="never"),
                update_mask=FieldMask(paths=["description"]),
            ),
            metadata=who,
            timeout=10,
        ),
        "halt": lambda who: admin.SetInstrumentTradingStatus(
            pricing_admin_service_pb2.SetInstrumentTradingStatusRequest(
                symbol="EURUSD", status=pricing_pb2.TRADING_STATUS_HALTED, reason="never"
            ),
            metadata=who,
            timeout=10,
        ),
    }
    denied = (grpc.StatusCode.PERMISSION_DENIED, R.ERROR_REASON_PERMISSION_DENIED)
    for name, call in calls.items():
        code, reason, _ = refused(lambda c=call: c(staff.token("trader")))
        assert (code, reason) == denied, f"trader: {name}"
    for name in ("create", "update", "halt"):
        code, reason, _ = refused(lambda c=calls[name]: c(staff.token("backoffice")))
        assert (code, reason) == denied, f"backoffice: {name}"
    calls["list"](staff.token("backoffice"))
    calls["provenance"](staff.token("backoffice"))


# -- reads -------------------------------------------------------------------------------------


def test_the_provenance_shows_the_lp_books_and_the_markup_that_made_the_price(
    lps: dict[str, ControlClient],
    admin: admin_grpc.PricingAdminServiceStub,
    staff: Staff,
) -> None:
    lps["lp-alpha"].pin("EURUSD", "1.10000", "1.10020")
    lps["lp-beta"].pin("EURUSD", "1.10005", "1.10030")

    def explained() -> pricing_admin_service_pb2.GetQuoteProvenanceResponse | None:
        response: pricing_admin_service_pb2.GetQuoteProvenanceResponse = admin.GetQuoteProvenance(
            pricing_admin_service_pb2.GetQuoteProvenanceRequest(
                symbol="EURUSD", group_id=str(STANDARD_GROUP)
            ),
            metadata=staff.token("backoffice"),
            timeout=10,
        )
        source = response.quote.provenance
        made_of = (source.bid_source.raw_price, source.ask_source.raw_price)
        books = [(b.bid.raw_price, b.ask.raw_price) for b in response.books]
        settled = books == [("1.10000", "1.10020"), ("1.10005", "1.10030")]
        return response if made_of == ("1.10005", "1.10020") and settled else None

    response = eventually(explained, 20, "EURUSD made of the pinned LP quotes")

    quote, (alpha, beta) = response.quote, response.books
    source = quote.provenance
    assert (alpha.liquidity_provider_id, beta.liquidity_provider_id) == ("lp-alpha", "lp-beta")
    assert not alpha.stale
    assert not beta.stale
    assert Decimal(alpha.bid_size) > 0
    # The best bid is lp-beta's book, the best ask lp-alpha's.
    assert source.bid_source.liquidity_provider_id == "lp-beta"
    assert source.ask_source.liquidity_provider_id == "lp-alpha"
    assert source.bid_source.raw_price == beta.bid.raw_price
    assert source.ask_source.raw_price == alpha.ask.raw_price
    # The standard group's 10 points: 5 off the bid, 5 onto the ask, and they add up exactly.
    markup = source.markup
    assert (markup.type, markup.value) == (common_pricing_pb2.MARKUP_TYPE_POINTS, "10")
    assert (markup.bid_markup, markup.ask_markup) == ("0.00005", "0.00005")
    assert Decimal(quote.bid) == Decimal(source.bid_source.raw_price) - Decimal(markup.bid_markup)
    assert Decimal(quote.ask) == Decimal(source.ask_source.raw_price) + Decimal(markup.ask_markup)
    assert (quote.bid, quote.ask) == ("1.10000", "1.10025")


def test_unknown_symbols_and_groups_have_no_provenance(
    admin: admin_grpc.PricingAdminServiceStub, staff: Staff
) -> None:
    def provenance(symbol: str, group_id: str) -> Any:
        return admin.GetQuoteProvenance(
            pricing_admin_service_pb2.GetQuoteProvenanceRequest(symbol=symbol, group_id=group_id),
            metadata=staff.token("dealer"),
            timeout=10,
        )

    code, reason, _ = refused(lambda: provenance("NOSUCH1", str(STANDARD_GROUP)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_UNKNOWN_INSTRUMENT)
    code, reason, _ = refused(lambda: provenance("EURUSD", str(uuid.uuid4())))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)


def test_liquidity_providers_show_their_sessions_quotes_and_latency_in_pages(
    admin: admin_grpc.PricingAdminServiceStub, staff: Staff
) -> None:
    def page(token: str = "") -> pricing_admin_service_pb2.ListLiquidityProvidersResponse:
        response: pricing_admin_service_pb2.ListLiquidityProvidersResponse = (
            admin.ListLiquidityProviders(
                pricing_admin_service_pb2.ListLiquidityProvidersRequest(
                    page_size=1, page_token=token
                ),
                metadata=staff.token("backoffice"),
                timeout=10,
            )
        )
        return response

    first = page()
    second = page(first.next_page_token)
    assert second.next_page_token == ""
    providers = [*first.liquidity_providers, *second.liquidity_providers]

    assert [p.id for p in providers] == sorted(LP_SIMULATORS)
    for provider in providers:
        assert provider.session_state == pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED
        assert provider.quote_count > 0
        # The demo instruments (stack/seed.py), and any that tests created since: the gateway
        # asks the LPs for a created instrument at once, and nothing deletes instruments.
        assert provider.subscribed_instrument_count >= 6
        assert provider.stale_instrument_count < provider.subscribed_instrument_count
        age = datetime.now(UTC) - provider.last_quote_time.ToDatetime(UTC)
        assert age.total_seconds() < 10
        assert provider.HasField("median_latency")
        assert provider.p99_latency.ToTimedelta() >= provider.median_latency.ToTimedelta()
        assert provider.last_error == ""
