# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""tradingmesh.account.v1.WebhookService: payment and KYC providers (the logic is
services/account/webhooks.py's)."""

from __future__ import annotations

from typing import TypeVar

from services.account.api.common import Context
from services.account.webhooks import WebhookReceiver
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.account.v1 import webhook_service_pb2_grpc

__all__ = ["WebhookService"]

_Response = TypeVar("_Response", wh_pb.ReceivePaymentEventResponse, wh_pb.ReceiveKycEventResponse)


class WebhookService(webhook_service_pb2_grpc.WebhookServiceServicer):
    """tradingmesh.account.v1.WebhookService (the logic is in services/account/webhooks.py)."""

    def __init__(self, resources: Resources, receiver: WebhookReceiver) -> None:
        self.resources = resources
        self.receiver = receiver

    async def ReceivePaymentEvent(
        self, request: wh_pb.ReceivePaymentEventRequest, context: Context
    ) -> wh_pb.ReceivePaymentEventResponse:
        return await self._receive("payment", request, context, wh_pb.ReceivePaymentEventResponse)

    async def ReceiveKycEvent(
        self, request: wh_pb.ReceiveKycEventRequest, context: Context
    ) -> wh_pb.ReceiveKycEventResponse:
        return await self._receive("kyc", request, context, wh_pb.ReceiveKycEventResponse)

    async def _receive(
        self,
        kind: str,
        request: wh_pb.ReceivePaymentEventRequest | wh_pb.ReceiveKycEventRequest,
        context: Context,
        response: type[_Response],
    ) -> _Response:
        event_id, outcome = await self.receiver.receive(
            kind, request.provider, request.body.data, context, current_caller()
        )
        return response(event_id=event_id, outcome=outcome)
