"""The risk service's internal API as its callers reach it (ADR 0017): a channel per risk
instance, the account's instance chosen per call (`affinity.AccountAffineChannels`), so the
OMS's checks of an account's orders and the account service's withdrawals of that account are
decided by one instance, one after the other, each seeing the other's reservations.

`RiskInternalChannels` is the part both callers share; each adds its own calls over
`stub_for(account_id)` with its own `deadline` (the OMS's `feeds.risk.RiskClient`, the account
service's `margin.MarginFigures`).
"""

from __future__ import annotations

from services.platform.affinity import AccountAffineChannels
from services.platform.certificates import CertificateSource
from services.platform.secrets import Secret
from tradingmesh.risk.v1 import risk_internal_service_pb2_grpc as risk_grpc

__all__ = ["RiskInternalChannels"]


class RiskInternalChannels:
    """Channels to the risk service's internal API (one per instance, the account's chosen per
    call), open for the service's lifetime. Its calls are given `deadline` seconds: the class's
    own (each caller's sets its own) unless one is given. Mutual TLS as `internal_channel`
    (`certificate`, `plaintext` go to it)."""

    deadline: float = 1.0

    def __init__(
        self,
        address: str,
        edge_token: Secret,
        deadline: float | None = None,
        *,
        certificate: CertificateSource | None = None,
        plaintext: bool = False,
    ) -> None:
        if deadline is not None:
            self.deadline = deadline
        self._channels = AccountAffineChannels(
            address,
            edge_token,
            risk_grpc.RiskInternalServiceStub,
            callee="risk",
            certificate=certificate,
            plaintext=plaintext,
        )

    def stub_for(self, account_id: str) -> risk_grpc.RiskInternalServiceAsyncStub:
        """The stub of the risk instance to call about `account_id` now (no I/O)."""
        return self._channels.stub_for(account_id)

    async def close(self) -> None:
        await self._channels.close()
