"""The pre-trade check: `tradingmesh.risk.v1.RiskInternalService.CheckOrder` (ADR 0007).

Called with no transaction open, with a 300 ms deadline and no retry, but `wait_for_ready`
(the check changes nothing, so waiting costs only latency): a risk service that has just
restarted is reached within the deadline as soon as the channel reconnects (within 200 ms,
`internal_channel`), instead of failing at once while the channel is between attempts
(issue #18: the first order after risk serves again must pass). A refusal is a verdict
with the risk service's reason and message; a risk service that cannot be reached, answers
late or fails is a verdict too: DEPENDENCY_UNAVAILABLE, on which the order is REJECTED (the
contract: "the OMS also rejects the order with reason DEPENDENCY_UNAVAILABLE when it cannot
reach this service").

Every call about an account goes to one risk instance, chosen by the account
(`platform.risk_internal.RiskInternalChannels`, ADR 0017): that instance holds the margin of the
account's approved orders (its reservations) and checks the account's orders one at a time, so
two orders placed at once through two OMS instances cannot both spend the same free margin.
Choosing costs no round trip (a hash of the account id and the channels' states).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import grpc
import grpc.aio

from services.platform.risk_internal import RiskInternalChannels
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.risk.v1 import risk_internal_service_pb2 as risk_pb

__all__ = ["CHECK_DEADLINE_SECONDS", "RiskClient", "Verdict"]

log = logging.getLogger(__name__)

CHECK_DEADLINE_SECONDS: Final = 0.3


@dataclass(frozen=True)
class Verdict:
    """The pre-trade check's answer as the OMS acts on it."""

    approved: bool
    reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_UNSPECIFIED
    message: str = ""
    reached: bool = True  # False: the check could not be made (NEW -> REJECTED)


def unavailable(detail: str) -> Verdict:
    return Verdict(
        approved=False,
        reason=ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
        message=f"the pre-trade risk check is unavailable ({detail})",
        reached=False,
    )


class RiskClient(RiskInternalChannels):
    """The pre-trade check over the risk service's channels."""

    deadline = CHECK_DEADLINE_SECONDS

    async def check(self, request: risk_pb.CheckOrderRequest) -> Verdict:
        stub = self.stub_for(request.account_id)
        try:
            response: risk_pb.CheckOrderResponse = await stub.CheckOrder(
                request, timeout=self.deadline, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            log.warning(
                "the pre-trade check failed",
                extra={"code": error.code().name, "order_id": request.order_id},
            )
            return unavailable(error.code().name)
        if response.approved:
            return Verdict(approved=True)
        if response.reject_reason == ErrorReason.ERROR_REASON_UNSPECIFIED:
            log.error(
                "the risk service refused without a reason", extra={"order": request.order_id}
            )
            return unavailable("a refusal without a reason")
        return Verdict(False, response.reject_reason, response.reject_message)
