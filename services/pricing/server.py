"""gRPC servicers of the pricing service: map request -> domain -> response.

Every public call prices for one client group: that of the trading account named in the
request, which the caller must own (`services/platform/access.py`). Admin calls need a staff
role; their work is in `services/pricing/admin.py`. RPCs not built yet answer UNIMPLEMENTED
(the generated base class).
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import grpc.aio

from services.platform.access import STAFF_ROLES
from services.platform.access import require_account
from services.platform.access import require_roles
from services.platform.errors import DomainError
from services.platform.paging import key_page
from services.platform.runtime import Ready
from services.pricing.admin import CHANGE_ROLES
from services.pricing.admin import PricingAdmin
from services.pricing.admin import unknown_instrument
from services.pricing.candles import CandleStore
from services.pricing.gateway import LpStatus
from services.pricing.quotes import QuoteReader
from services.pricing.quotes import StreamHub
from services.pricing.reference import Reference
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc
from tradingmesh.pricing.v1 import pricing_service_pb2
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class Parts:
    """What the servicers use; the service sets it when it opens, before it serves."""

    reference = Ready[Reference]()
    reader = Ready[QuoteReader]()
    hub = Ready[StreamHub]()
    candles = Ready[CandleStore]()
    admin = Ready[PricingAdmin]()

    def __init__(self, lp_status: dict[str, LpStatus] | None = None) -> None:
        self.lp_status = lp_status if lp_status is not None else {}
        # Re-reads the reference data when a stream names an account not known here; set by
        # the stream workers, whose copy is refreshed periodically (ADR 0008).
        self.reload: Callable[[], Awaitable[None]] | None = None


class QuoteStreams(pricing_service_pb2_grpc.PricingServiceServicer):
    """PricingService.StreamQuotes alone: what the stream workers serve (ADR 0008); the pricing
    service serves it too, with every other RPC (`PricingService`)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    @property
    def reference(self) -> Reference:
        return self.parts.reference

    @property
    def hub(self) -> StreamHub:
        return self.parts.hub

    def _group(self, account_id: str) -> str:
        """The client group of the caller's trading account (NOT_FOUND if not theirs)."""
        account = self.reference.account(account_id)
        require_account(account_id, account.user_id if account else None)
        assert account is not None
        return account.group_id

    def _check_symbols(self, group_id: str, symbols: list[str]) -> None:
        unknown = [s for s in symbols if not self.reference.offered(group_id, s)]
        if unknown:
            raise unknown_instrument(*unknown)

    async def StreamQuotes(  # type: ignore[override]  # noqa: N802 (gRPC's names)
        self, request: pricing_service_pb2.StreamQuotesRequest, context: Context
    ) -> None:
        # Written with context.write, not yielded: every response of an async generator would
        # pass through two wrapping generators per interceptor (a tenth of pricing's event loop
        # with 1,000 streams, ADR 0008); a writing handler is wrapped once per call.
        if self.reference.account(request.account_id) is None and self.parts.reload is not None:
            await self.parts.reload()  # a stream worker's copy may lag pricing's (ADR 0008)
        group = self._group(request.account_id)
        symbols = list(request.symbols)
        self._check_symbols(group, symbols)
        stream = await self.hub.open(group, symbols)
        try:
            while True:
                response = await stream.next()
                if stream.lost:  # Redis lost: said at once, not a silent stream (issue #18)
                    raise DomainError(
                        ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                        "live prices are not available right now; open the stream again",
                        retry_after=timedelta(seconds=1),
                    )
                await context.write(response)
        finally:
            self.hub.close(stream)


class PricingService(QuoteStreams):
    """tradingmesh.pricing.v1.PricingService."""

    @property
    def reader(self) -> QuoteReader:
        return self.parts.reader

    def _offered(self, group_id: str) -> list[str]:
        group = self.reference.groups.get(group_id)
        return sorted(group.markups) if group else []

    async def ListInstruments(  # noqa: N802
        self, request: pricing_service_pb2.ListInstrumentsRequest, context: Context
    ) -> pricing_service_pb2.ListInstrumentsResponse:
        group = self._group(request.account_id)
        symbols = [
            s
            for s in self._offered(group)
            if not request.asset_class
            or self.reference.instruments[s].asset_class == request.asset_class
        ]
        page, token = key_page(symbols, request.page_size, request.page_token)
        return pricing_service_pb2.ListInstrumentsResponse(
            instruments=[self.reference.instruments[s] for s in page], next_page_token=token
        )

    async def GetInstrument(  # noqa: N802
        self, request: pricing_service_pb2.GetInstrumentRequest, context: Context
    ) -> pricing_service_pb2.GetInstrumentResponse:
        group = self._group(request.account_id)
        self._check_symbols(group, [request.symbol])
        return pricing_service_pb2.GetInstrumentResponse(
            instrument=self.reference.instruments[request.symbol]
        )

    async def GetQuote(  # noqa: N802
        self, request: pricing_service_pb2.GetQuoteRequest, context: Context
    ) -> pricing_service_pb2.GetQuoteResponse:
        group = self._group(request.account_id)
        self._check_symbols(group, [request.symbol])
        quotes = await self.reader.read(group, [request.symbol])
        quote = quotes.get(request.symbol)
        if quote is None:
            raise DomainError(
                ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE,
                f"no price has been published for {request.symbol} yet",
                metadata={"symbol": request.symbol},
            )
        return pricing_service_pb2.GetQuoteResponse(quote=quote)

    async def ListQuotes(  # noqa: N802
        self, request: pricing_service_pb2.ListQuotesRequest, context: Context
    ) -> pricing_service_pb2.ListQuotesResponse:
        group = self._group(request.account_id)
        symbols = list(request.symbols) or self._offered(group)
        self._check_symbols(group, symbols)
        page, token = key_page(symbols, request.page_size, request.page_token)
        quotes = await self.reader.read(group, page)
        response = pricing_service_pb2.ListQuotesResponse(next_page_token=token)
        for symbol in page:
            quote = quotes.get(symbol)
            if quote is None:
                response.unavailable_symbols.append(symbol)
            else:
                quote.ClearField("provenance")  # the contract: never set here
                response.quotes.append(quote)
        return response

    async def GetCandles(  # noqa: N802
        self, request: pricing_service_pb2.GetCandlesRequest, context: Context
    ) -> pricing_service_pb2.GetCandlesResponse:
        group = self._group(request.account_id)
        self._check_symbols(group, [request.symbol])
        bounds = request.time_range
        start = bounds.start_time.ToDatetime(UTC) if bounds.HasField("start_time") else None
        end = bounds.end_time.ToDatetime(UTC) if bounds.HasField("end_time") else None
        candles, token = await self.parts.candles.page(
            group,
            request.symbol,
            request.timeframe,
            start,
            end,
            request.page_size,
            request.page_token,
        )
        return pricing_service_pb2.GetCandlesResponse(candles=candles, next_page_token=token)


class PricingAdminService(pricing_admin_service_pb2_grpc.PricingAdminServiceServicer):
    """tradingmesh.pricing.v1.PricingAdminService: reads for every staff role, changes for
    admin and dealer (the contract)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    async def ListLiquidityProviders(  # noqa: N802
        self,
        request: pricing_admin_service_pb2.ListLiquidityProvidersRequest,
        context: Context,
    ) -> pricing_admin_service_pb2.ListLiquidityProvidersResponse:
        require_roles(STAFF_ROLES)
        providers = {p.id: p for p in self.parts.admin.liquidity_providers(datetime.now(UTC))}
        page, token = key_page(list(providers), request.page_size, request.page_token)
        return pricing_admin_service_pb2.ListLiquidityProvidersResponse(
            liquidity_providers=[providers[lp] for lp in page], next_page_token=token
        )

    async def CreateInstrument(  # noqa: N802
        self, request: pricing_admin_service_pb2.CreateInstrumentRequest, context: Context
    ) -> pricing_admin_service_pb2.CreateInstrumentResponse:
        caller = require_roles(CHANGE_ROLES)
        instrument = await self.parts.admin.create(caller, request.instrument)
        return pricing_admin_service_pb2.CreateInstrumentResponse(instrument=instrument)

    async def UpdateInstrument(  # noqa: N802
        self, request: pricing_admin_service_pb2.UpdateInstrumentRequest, context: Context
    ) -> pricing_admin_service_pb2.UpdateInstrumentResponse:
        caller = require_roles(CHANGE_ROLES)
        instrument = await self.parts.admin.update(
            caller, request.symbol, request.instrument, list(request.update_mask.paths)
        )
        return pricing_admin_service_pb2.UpdateInstrumentResponse(instrument=instrument)

    async def SetInstrumentTradingStatus(  # noqa: N802
        self,
        request: pricing_admin_service_pb2.SetInstrumentTradingStatusRequest,
        context: Context,
    ) -> pricing_admin_service_pb2.SetInstrumentTradingStatusResponse:
        caller = require_roles(CHANGE_ROLES)
        instrument = await self.parts.admin.set_trading_status(
            caller, request.symbol, request.status, request.reason
        )
        return pricing_admin_service_pb2.SetInstrumentTradingStatusResponse(instrument=instrument)

    async def GetQuoteProvenance(  # noqa: N802
        self, request: pricing_admin_service_pb2.GetQuoteProvenanceRequest, context: Context
    ) -> pricing_admin_service_pb2.GetQuoteProvenanceResponse:
        require_roles(STAFF_ROLES)
        return await self.parts.admin.provenance(request.symbol, request.group_id)
