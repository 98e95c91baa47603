"""The fingerprint of an order request: what makes a retry "the same request" (ADR 0007).

PlaceOrder is idempotent on `(account_id, client_order_id)`: a retry returns the stored order
only if it asks for the same order, otherwise ALREADY_EXISTS / DUPLICATE_CLIENT_ORDER_ID. "The
same" is decided by this fingerprint: SHA-256 of the request's deterministic protobuf encoding,
after applying the defaults the server applies (an unset time in force is the type's default)
and writing every decimal in one spelling ("0.10" and "0.1" are the same quantity). The
request's message name is part of the hash, so a ClosePosition and a PlaceOrder that happen to
share a client_order_id are different requests.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from decimal import InvalidOperation

from google.protobuf.message import Message

from tradingmesh.common.v1 import trading_pb2
from tradingmesh.exact import InexactValueError
from tradingmesh.exact import plain_decimal
from tradingmesh.oms.v1 import order_service_pb2

__all__ = ["fingerprint", "normalized_decimal"]

# Fields of each request that hold decimal strings.
_DECIMAL_FIELDS = (
    "quantity",
    "price",
    "stop_price",
    "requested_price",
    "stop_loss",
    "take_profit",
)


def normalized_decimal(text: str) -> str:
    """One spelling of a decimal string ("0.10" -> "0.1", "100.0" -> "100"); text that is not a
    decimal is returned as it is (the contract's rules refuse it before this runs)."""
    try:
        return plain_decimal(Decimal(text))
    except (InvalidOperation, InexactValueError):  # not a number, or not a finite one
        return text


def fingerprint(request: Message) -> str:
    """The lower-case hex SHA-256 of `request` with defaults applied and decimals normalized."""
    canonical = type(request)()
    canonical.CopyFrom(request)
    if (
        isinstance(canonical, order_service_pb2.PlaceOrderRequest)
        and canonical.time_in_force == trading_pb2.TIME_IN_FORCE_UNSPECIFIED
    ):
        canonical.time_in_force = (
            trading_pb2.TIME_IN_FORCE_IOC
            if canonical.type == trading_pb2.ORDER_TYPE_MARKET
            else trading_pb2.TIME_IN_FORCE_GTC
        )
    fields = {descriptor.name for descriptor in canonical.DESCRIPTOR.fields}
    for name in _DECIMAL_FIELDS:
        if name not in fields:
            continue
        descriptor = canonical.DESCRIPTOR.fields_by_name[name]
        present = (
            canonical.HasField(name) if descriptor.has_presence else bool(getattr(canonical, name))
        )
        if present:
            setattr(canonical, name, normalized_decimal(getattr(canonical, name)))
    digest = hashlib.sha256()
    digest.update(canonical.DESCRIPTOR.full_name.encode())
    digest.update(b"\0")
    digest.update(canonical.SerializeToString(deterministic=True))
    return digest.hexdigest()
