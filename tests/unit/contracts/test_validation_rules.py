"""The field rules declared in the contracts reject bad requests and accept good ones.

These run protovalidate, the validator the servers' interceptor runs, on the generated messages.
"""

from __future__ import annotations

import uuid

import protovalidate
import pytest
from google.protobuf.message import Message

from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2

ACCOUNT_ID = str(uuid.uuid4())


def _violations(message: Message) -> set[tuple[str, str]]:
    """(field path, rule id) of every violation; message-level rules have an empty path."""
    found = set()
    for violation in protovalidate.collect_violations(message):
        field = violation.proto.field
        path = ".".join(e.field_name for e in field.elements) if field is not None else ""
        found.add((path, violation.proto.rule_id))
    return found


def _market_order(**changes: object) -> order_service_pb2.PlaceOrderRequest:
    fields: dict[str, object] = {
        "account_id": ACCOUNT_ID,
        "client_order_id": "web-2026-11-21-0001",
        "symbol": "EURUSD",
        "side": types_pb2.SIDE_BUY,
        "type": trading_pb2.ORDER_TYPE_MARKET,
        "quantity": "0.10",
    }
    fields.update(changes)
    return order_service_pb2.PlaceOrderRequest(**fields)  # type: ignore[arg-type]


def test_a_well_formed_market_order_passes() -> None:
    assert _violations(_market_order()) == set()


def test_a_well_formed_limit_order_passes() -> None:
    order = _market_order(
        type=trading_pb2.ORDER_TYPE_LIMIT,
        price="1.08500",
        time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
    )

    assert _violations(order) == set()


@pytest.mark.parametrize("quantity", ["-1", "-0.10", "0", "0.000", "", "1e3", "1,5", "0.1.2"])
def test_quantity_that_is_not_a_positive_decimal_is_rejected(quantity: str) -> None:
    assert _violations(_market_order(quantity=quantity)) == {
        ("quantity", "string.positive_decimal")
    }


def test_unspecified_side_is_rejected() -> None:
    violations = _violations(_market_order(side=types_pb2.SIDE_UNSPECIFIED))

    assert {path for path, _ in violations} == {"side"}


def test_undefined_side_number_is_rejected() -> None:
    violations = _violations(_market_order(side=7))

    assert ("side", "enum.defined_only") in violations


@pytest.mark.parametrize("symbol", ["eurusd", "EUR USD", "", "EURUSD!", "-EURUSD", "X" * 33])
def test_malformed_symbol_is_rejected(symbol: str) -> None:
    assert _violations(_market_order(symbol=symbol)) == {("symbol", "string.symbol")}


def test_price_on_a_market_order_is_rejected_by_the_message_rule() -> None:
    violations = _violations(_market_order(price="1.08500"))

    assert ("", "place_order.market_fields") in violations


def test_limit_order_without_price_is_rejected() -> None:
    violations = _violations(
        _market_order(
            type=trading_pb2.ORDER_TYPE_LIMIT, time_in_force=trading_pb2.TIME_IN_FORCE_GTC
        )
    )

    assert ("", "place_order.limit_fields") in violations


def test_account_id_must_be_a_uuid() -> None:
    assert _violations(_market_order(account_id="1000123")) == {("account_id", "string.uuid")}


@pytest.mark.parametrize("client_order_id", ["", "has space", "x" * 65, "tm:reserved"])
def test_bad_client_order_id_is_rejected(client_order_id: str) -> None:
    violations = _violations(_market_order(client_order_id=client_order_id))

    assert {path for path, _ in violations} == {"client_order_id"}


def test_get_quote_refuses_a_malformed_symbol_and_accepts_a_good_one() -> None:
    good = pricing_service_pb2.GetQuoteRequest(symbol="XAUUSD", account_id=ACCOUNT_ID)
    bad = pricing_service_pb2.GetQuoteRequest(symbol="xau/usd", account_id=ACCOUNT_ID)

    assert _violations(good) == set()
    assert _violations(bad) == {("symbol", "string.symbol")}


def test_stream_quotes_needs_at_least_one_symbol() -> None:
    request = pricing_service_pb2.StreamQuotesRequest(account_id=ACCOUNT_ID)

    assert {path for path, _ in _violations(request)} == {"symbols"}


def test_stream_quotes_refuses_ten_thousand_symbols() -> None:
    symbols = [f"SYM{i}" for i in range(10_000)]
    request = pricing_service_pb2.StreamQuotesRequest(account_id=ACCOUNT_ID, symbols=symbols)

    assert ("symbols", "repeated.max_items") in _violations(request)


def test_stream_quotes_refuses_a_malformed_symbol_in_the_list() -> None:
    request = pricing_service_pb2.StreamQuotesRequest(
        account_id=ACCOUNT_ID, symbols=["EURUSD", "bad symbol"]
    )

    assert {path for path, _ in _violations(request)} == {"symbols"}
