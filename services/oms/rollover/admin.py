"""OrderAdminService's swap terms and rollovers (ADR 0010): SetSwapRates, ListSwapRates,
RunRollover. The servicer (`api/admin.py`) checks the caller's roles and calls these."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc

from services.oms.api.paging import page_size
from services.oms.domain.swaps import SwapTerms
from services.oms.domain.swaps import SwapType
from services.oms.rollover import store
from services.oms.rollover.job import NotTradingDayError
from services.oms.rollover.job import RolloverJob
from services.oms.rollover.job import rollover_proto
from services.oms.rollover.store import StoredTerms
from services.oms.store import operator_audit
from services.oms.store.reference import instrument_known
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.errors import field_error
from services.platform.paging import decode_token
from services.platform.paging import encode_token
from services.platform.resources import Resources
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.exact import plain_decimal
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2

__all__ = ["SwapAdmin", "terms_proto"]

_R = ErrorReason
_TYPES = {oms_pb2.SWAP_TYPE_POINTS: SwapType.POINTS, oms_pb2.SWAP_TYPE_PERCENT: SwapType.PERCENT}
_PROTO_TYPES = {kind: proto for proto, kind in _TYPES.items()}


def terms_proto(stored: StoredTerms) -> oms_pb2.SwapRates:
    terms = stored.terms
    message = oms_pb2.SwapRates(
        symbol=stored.symbol,
        group_id=stored.group_id,
        type=_PROTO_TYPES[terms.swap_type],
        long_rate=_rate_text(terms.long_rate),
        short_rate=_rate_text(terms.short_rate),
        triple_swap_day=oms_pb2.RolloverWeekday.ValueType(terms.triple_swap_day),
    )
    message.update_time.FromDatetime(stored.updated_at)
    return message


def _rate_text(rate: Decimal) -> str:
    """A stored rate (NUMERIC(30, 12)) without its trailing zeros: "-6.5", "0"."""
    text_ = plain_decimal(rate)
    return "0" if text_ in ("-0", "0") else text_


def _snapshot(stored: StoredTerms | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    terms = stored.terms
    return {
        "symbol": stored.symbol,
        "group_id": stored.group_id,
        "swap_type": terms.swap_type.value,
        "long_rate": _rate_text(terms.long_rate),
        "short_rate": _rate_text(terms.short_rate),
        "triple_swap_day": terms.triple_swap_day,
    }


def _token(stored: StoredTerms) -> str:
    return encode_token(stored.symbol, stored.group_id)


def _after(token: str) -> tuple[str, str] | None:
    parts = decode_token(token, 2)
    return None if parts is None else (parts[0], parts[1])


class SwapAdmin:
    def __init__(
        self,
        resources: Resources,
        job: RolloverJob | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.resources = resources
        self.job = job
        self.clock = clock

    @property
    def db(self) -> Database:
        return self.resources.db

    async def set_terms(
        self, request: order_admin_service_pb2.SetSwapRatesRequest, actor: Actor, request_id: str
    ) -> oms_pb2.SwapRates:
        rates = request.swap_rates
        terms = SwapTerms(
            _TYPES[rates.type],
            Decimal(rates.long_rate),
            Decimal(rates.short_rate),
            int(rates.triple_swap_day),
        )
        now = self.clock()
        async with self.db.transaction() as session:
            if not await instrument_known(session, rates.symbol):
                raise DomainError(
                    _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
                    f"unknown instrument {rates.symbol}",
                    metadata={"symbol": rates.symbol},
                    field_violations=[("swap_rates.symbol", "no such instrument")],
                    status=grpc.StatusCode.INVALID_ARGUMENT,  # a bad field of the request
                )
            before, after = await store.save_terms(
                session, rates.symbol, rates.group_id, terms, now
            )
            await operator_audit.append(
                session,
                actor=actor,
                action="swap_rates.set",
                entity_type="swap_rates",
                entity_id=f"{rates.symbol}/{rates.group_id or '*'}",
                reason=request.reason,
                before=_snapshot(before),
                after=_snapshot(after),
                now=now,
                correlation_id=request_id,
            )
        return terms_proto(after)

    async def list_terms(
        self, request: order_admin_service_pb2.ListSwapRatesRequest
    ) -> order_admin_service_pb2.ListSwapRatesResponse:
        size = page_size(request.page_size)
        async with self.db.read_session() as session:
            page = await store.list_terms(
                session, request.symbol, _after(request.page_token), size + 1
            )
        more = len(page) > size
        page = page[:size]
        return order_admin_service_pb2.ListSwapRatesResponse(
            swap_rates=[terms_proto(t) for t in page],
            next_page_token=_token(page[-1]) if more else "",
        )

    async def run(
        self, request: order_admin_service_pb2.RunRolloverRequest
    ) -> order_admin_service_pb2.RunRolloverResponse:
        try:
            trading_date = date.fromisoformat(request.trading_date)
        except ValueError:
            raise _bad_date(request.trading_date, "not a date") from None
        assert self.job is not None, "the admin service reaches the rollover job"
        try:
            row = await self.job.request(trading_date)
        except NotTradingDayError:
            raise _bad_date(request.trading_date, "not Monday to Friday") from None
        return order_admin_service_pb2.RunRolloverResponse(rollover=rollover_proto(row))


def _bad_date(value: str, why: str) -> DomainError:
    message = f"trading_date {value!r} has no rollover: {why}"
    return field_error(_R.ERROR_REASON_VALIDATION_FAILED, "trading_date", why, message)
