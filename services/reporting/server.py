"""gRPC servicers of the reporting service: map request -> report -> response.

Every report reads the replica (services/reporting/reports.py). A caller sees only their own
accounts (another user's account is NOT_FOUND, like one that does not exist); staff roles
(admin, dealer, backoffice) may read any account and use ReportingAdminService, which answers
anyone else PERMISSION_DENIED (services/platform/access.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.api import httpbody_pb2

from services.platform.resources import Resources
from services.reporting.domain.csvrows import CONTENT_TYPE
from services.reporting.reports import Reports
from tradingmesh.reporting.v1 import reporting_admin_service_pb2 as admin_api
from tradingmesh.reporting.v1 import reporting_admin_service_pb2_grpc
from tradingmesh.reporting.v1 import reporting_internal_service_pb2 as internal_api
from tradingmesh.reporting.v1 import reporting_internal_service_pb2_grpc
from tradingmesh.reporting.v1 import reporting_service_pb2 as api
from tradingmesh.reporting.v1 import reporting_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _chunk(data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=data)


class ReportingService(reporting_service_pb2_grpc.ReportingServiceServicer):
    """tradingmesh.reporting.v1.ReportingService."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    @property
    def reports(self) -> Reports:
        return Reports(self.resources.db)

    async def GetStatement(  # noqa: N802
        self, request: api.GetStatementRequest, context: Context
    ) -> api.GetStatementResponse:
        statement = await self.reports.statement(request.account_id, request.time_range)
        return api.GetStatementResponse(statement=statement)

    async def GetPerformance(  # noqa: N802
        self, request: api.GetPerformanceRequest, context: Context
    ) -> api.GetPerformanceResponse:
        performance = await self.reports.performance(
            request.account_id, request.time_range, request.interval
        )
        return api.GetPerformanceResponse(performance=performance)

    async def ListTradeHistory(  # noqa: N802
        self, request: api.ListTradeHistoryRequest, context: Context
    ) -> api.ListTradeHistoryResponse:
        trades, token = await self.reports.trade_history(request)
        return api.ListTradeHistoryResponse(trades=trades, next_page_token=token)

    async def ListOrderHistory(  # noqa: N802
        self, request: api.ListOrderHistoryRequest, context: Context
    ) -> api.ListOrderHistoryResponse:
        orders, token = await self.reports.order_history(request)
        return api.ListOrderHistoryResponse(orders=orders, next_page_token=token)

    async def ExportTrades(  # noqa: N802
        self, request: api.ExportTradesRequest, context: Context
    ) -> AsyncIterator[api.ExportTradesResponse]:
        async for data in self.reports.export_trades(request.account_id, request.time_range):
            yield api.ExportTradesResponse(chunk=_chunk(data))


class ReportingAdminService(reporting_admin_service_pb2_grpc.ReportingAdminServiceServicer):
    """tradingmesh.reporting.v1.ReportingAdminService (staff roles only)."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    @property
    def reports(self) -> Reports:
        return Reports(self.resources.db)

    async def GetBrokerSummary(  # noqa: N802
        self, request: admin_api.GetBrokerSummaryRequest, context: Context
    ) -> admin_api.GetBrokerSummaryResponse:
        return admin_api.GetBrokerSummaryResponse(
            summary=await self.reports.broker_summary(request)
        )

    async def GetExposureHistory(  # noqa: N802
        self, request: admin_api.GetExposureHistoryRequest, context: Context
    ) -> admin_api.GetExposureHistoryResponse:
        return admin_api.GetExposureHistoryResponse(**await self.reports.exposure_history(request))

    async def ExportBrokerTrades(  # noqa: N802
        self, request: admin_api.ExportBrokerTradesRequest, context: Context
    ) -> AsyncIterator[admin_api.ExportBrokerTradesResponse]:
        async for data in self.reports.export_broker_trades(request):
            yield admin_api.ExportBrokerTradesResponse(chunk=_chunk(data))


class ReportingInternalService(
    reporting_internal_service_pb2_grpc.ReportingInternalServiceServicer
):
    """tradingmesh.reporting.v1.ReportingInternalService: reports for other services (never
    routed at the edge, so only a service holding the edge token reaches it)."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def GetAccountStatement(  # noqa: N802
        self, request: internal_api.GetAccountStatementRequest, context: Context
    ) -> internal_api.GetAccountStatementResponse:
        statement = await Reports(self.resources.db).statement(
            request.account_id, request.time_range, internal=True
        )
        return internal_api.GetAccountStatementResponse(statement=statement)
