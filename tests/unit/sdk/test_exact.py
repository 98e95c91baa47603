"""The SDK's exact conversions: wire decimal strings and fixed-point integers <-> Decimal."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingmesh.exact import InexactValueError
from tradingmesh.exact import InvalidDecimalError
from tradingmesh.exact import decimal_field
from tradingmesh.exact import format_decimal
from tradingmesh.exact import from_units
from tradingmesh.exact import optional_decimal
from tradingmesh.exact import parse_decimal
from tradingmesh.exact import plain_decimal
from tradingmesh.exact import to_units
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.trading.money import money_text

# Every Decimal the wire can carry: up to 18 integer and 12 fraction digits.
wire_decimals = st.builds(
    lambda units, scale: Decimal(units).scaleb(-scale),
    st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1),
    st.integers(min_value=0, max_value=12),
).filter(lambda d: len(format(d, "f").lstrip("-").split(".")[0]) <= 18)

wire_strings = st.from_regex(r"-?[0-9]{1,18}(\.[0-9]{1,12})?", fullmatch=True)


@given(wire_decimals)
def test_decimal_to_string_and_back_is_exact_and_keeps_the_scale(value: Decimal) -> None:
    text = format_decimal(value)

    back = parse_decimal(text)

    assert back == value
    assert back.as_tuple().exponent == value.as_tuple().exponent or value.is_zero()


@given(wire_strings)
def test_any_wire_string_parses_to_the_same_number(text: str) -> None:
    value = parse_decimal(text)

    assert value == Decimal(text)
    assert parse_decimal(format_decimal(value)) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1.10"), "1.10"),
        (Decimal("1.08512"), "1.08512"),
        (Decimal("1E+2"), "100"),
        (Decimal("-0.00"), "0.00"),
        (Decimal("-12.5"), "-12.5"),
        (7, "7"),
    ],
)
def test_format_decimal_writes_plain_digits_and_no_negative_zero(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "+1",
        "1e5",
        "1E5",
        "NaN",
        "Infinity",
        ".5",
        "1.",
        "1,5",
        "--1",
        "0x10",
        "1234567890123456789",
        "1.1234567890123",
        "١٢",
    ],
)
def test_parse_decimal_refuses_what_the_servers_refuse(text: str) -> None:
    with pytest.raises(InvalidDecimalError):
        parse_decimal(text)


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+18"), Decimal("1E-13")]
)
def test_format_decimal_refuses_values_the_wire_cannot_carry(value: Decimal) -> None:
    with pytest.raises(InexactValueError):
        format_decimal(value)


def test_format_decimal_refuses_floats() -> None:
    with pytest.raises(TypeError):
        format_decimal(0.1)  # type: ignore[arg-type]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(min_value=0, max_value=12))
def test_fixed_point_units_round_trip_exactly(units: int, scale: int) -> None:
    assert to_units(from_units(units, scale), scale) == units


@pytest.mark.parametrize(
    ("units", "scale", "value"),
    [(108512, 5, "1.08512"), (-250, 2, "-2.50"), (0, 3, "0.000"), (15623, 0, "15623")],
)
def test_from_units_is_the_exact_price(units: int, scale: int, value: str) -> None:
    assert format_decimal(from_units(units, scale)) == value


def test_to_units_pads_coarser_values() -> None:
    assert to_units(Decimal("1.0851"), 5) == 108510


def test_to_units_refuses_to_round() -> None:
    with pytest.raises(InexactValueError):
        to_units(Decimal("1.085123"), 5)


def test_to_units_is_exact_beyond_the_default_decimal_precision() -> None:
    value = Decimal("123456789012345678.123456789012")  # 30 significant digits

    assert to_units(value, 12) == 123456789012345678123456789012


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1.100000000000", "1.1"),
        ("3.500000000000", "3.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("0E-12", "0"),
        ("-0.000", "0"),  # never "-0": the services once disagreed here (issue #20)
        ("-0.250", "-0.25"),
        ("0.000000000001", "0.000000000001"),
        ("1.0000000000000000000000001", "1.0000000000000000000000001"),  # beyond the wire
    ],
)
def test_plain_decimal_has_no_trailing_zeros_no_exponent_and_no_negative_zero(
    value: str, text: str
) -> None:
    assert plain_decimal(Decimal(value)) == text


def test_plain_decimal_refuses_what_is_not_a_number() -> None:
    with pytest.raises(InexactValueError):
        plain_decimal(Decimal("NaN"))


def test_money_text_has_the_currencys_minor_unit_and_no_negative_zero() -> None:
    assert money_text(Decimal("12.5"), "USD") == "12.50"
    assert money_text(Decimal("-3"), "USD") == "-3.00"
    assert money_text(Decimal("-0.001"), "USD") == "0.00"
    assert money_text(Decimal("1200"), "JPY") == "1200"
    assert money_text(Decimal("0.125"), "USD") == "0.12"  # half to even


def test_an_optional_decimal_field_is_none_unset_exact_set_and_named_when_malformed() -> None:
    unset = order_service_pb2.PlaceOrderRequest()
    priced = order_service_pb2.PlaceOrderRequest(price="1.10")
    malformed = order_service_pb2.PlaceOrderRequest(price="1e3")

    assert optional_decimal(unset, "price") is None
    assert optional_decimal(priced, "price") == Decimal("1.10")
    with pytest.raises(InvalidDecimalError, match=r"^price: '1e3' is not a decimal string"):
        optional_decimal(malformed, "price")


def test_a_plain_decimal_field_is_its_default_when_empty_and_named_when_malformed() -> None:
    empty = oms_pb2.Order()
    priced = oms_pb2.Order(price="1.10")
    malformed = oms_pb2.Order(price="NaN")

    assert decimal_field(empty, "price", None) is None
    assert decimal_field(empty, "price", Decimal(0)) == Decimal(0)
    assert decimal_field(priced, "price") == Decimal("1.10")
    assert str(decimal_field(priced, "price", None)) == "1.10"  # the scale kept
    with pytest.raises(InvalidDecimalError, match=r"^price: '' is not a decimal string"):
        decimal_field(empty, "price")  # no default: empty is malformed
    with pytest.raises(InvalidDecimalError, match=r"^price: 'NaN' is not a decimal string"):
        decimal_field(malformed, "price", None)
