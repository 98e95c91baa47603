# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""tradingmesh.account.v1.WebhookService: payment and KYC providers (the logic is
services/account/webhooks.py's)."""

from __future__ import annotations

from services.account.api.common import Context
from services.account.webhooks import WebhookReceiver
from services.platform.identity import current_caller
from services.platform.resources import Resources
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.account.v1 import webhook_service_pb2_grpc

__all__ = ["WebhookService"]


class WebhookService(webhook_service_pb2_grpc.WebhookServiceServicer):
    """tradingmesh.account.v1.WebhookService (the logic is in services/account/webhooks.py)."""

    def __init__(self, resources: Resources, receiver: WebhookReceiver) -> None:
        self.resources = resources
        self.receiver = receiver

    async def ReceivePaymentEvent(
        self, request: wh_pb.ReceivePaymentEventRequest, context: Context
    ) -> wh_pb.ReceivePaymentEventResponse:
        event_id, outcome = await self.receiver.receive(
            "payment", request.provider, request.body.data, context, current_caller()
        )
        return wh_pb.ReceivePaymentEventResponse(event_id=event_id, outcome=outcome)

    async def ReceiveKycEvent(
        self, request: wh_pb.ReceiveKycEventRequest, context: Context
    ) -> wh_pb.ReceiveKycEventResponse:
        event_id, outcome = await self.receiver.receive(
            "kyc", request.provider, request.body.data, context, current_caller()
        )
        return wh_pb.ReceiveKycEventResponse(event_id=event_id, outcome=outcome)
