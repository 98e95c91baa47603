"""An account's money as the risk service values it: one source of truth for equity, margin and
what can be withdrawn (issue #12).

The ledger (this service) knows the balance; the risk service knows the open positions and live
prices, and answers the margin figures (`RiskInternalService.GetAccountFigures`) and whether a
withdrawal fits (`ReserveWithdrawal`: at most the smaller of balance and free margin, with
margin that orders and other withdrawals are using at that moment reserved). GetAccount shows
exactly the figures GetAccountRisk shows; RequestWithdrawal reserves the amount in the risk
service while it holds the account's balance lock, before it debits the ledger.

Both calls about an account go to the risk instance chosen by the account
(`platform.risk_internal.RiskInternalChannels`, ADR 0017), the one the OMS's checks of the
account's orders go to: a withdrawal and an order of one account are decided one after the
other, each seeing the other's reservation.

An account the risk service does not know yet (its creation event is still on its way) has no
positions — no order is taken for it — so its figures are the ledger's alone, and the ledger's
own check (no overdraft) is the whole withdrawal check. The risk service unreachable or late:
UNAVAILABLE / DEPENDENCY_UNAVAILABLE, and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Final
from typing import TypeVar

import grpc
import grpc.aio
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import store
from services.platform.errors import DomainError
from services.platform.risk_internal import RiskInternalChannels
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.risk.v1 import risk_internal_service_pb2 as risk_pb
from tradingmesh.risk.v1 import risk_internal_service_pb2_grpc as risk_grpc
from tradingmesh.risk.v1 import risk_pb2

__all__ = ["MarginFigures", "summary_of"]

log = logging.getLogger(__name__)

# The risk service waits up to half of it for its copy of the ledger to catch up.
DEADLINE_SECONDS: Final = 2.0
_R = ErrorReason
# The fields AccountSummary and the risk service's AccountRisk share, by name.
_SUMMARY_FIELDS: Final = (
    "account_id",
    "currency",
    "balance",
    "unrealized_pnl",
    "equity",
    "used_margin",
    "free_margin",
    "margin_level",
    "withdrawable",
    "leverage",
    "margin_call_level",
    "stop_out_level",
)
_Answer = TypeVar("_Answer")


def summary_of(figures: risk_pb2.AccountRisk) -> pb.AccountSummary:
    """The risk service's figures as an AccountSummary, field for field."""
    same = {name: getattr(figures, name) for name in _SUMMARY_FIELDS}
    return pb.AccountSummary(**same, compute_time=figures.computed_time)


def _unavailable(error: grpc.aio.AioRpcError) -> DomainError:
    log.warning("the risk service could not be asked", extra={"code": error.code().name})
    return DomainError(
        _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
        "the account's margin figures are unavailable right now; try again shortly",
        status=grpc.StatusCode.UNAVAILABLE,
    )


class MarginFigures(RiskInternalChannels):
    """The account's figures and withdrawal reservations over the risk service's channels."""

    deadline = DEADLINE_SECONDS

    async def figures(self, account_id: str, ledger_sequence: int) -> risk_pb2.AccountRisk | None:
        """The account's figures now, with its ledger up to `ledger_sequence` (what this
        service has committed); None when the risk service does not know the account."""
        request = risk_pb.GetAccountFiguresRequest(
            account_id=account_id, min_ledger_sequence=ledger_sequence
        )
        response: risk_pb.GetAccountFiguresResponse | None = await self._ask(
            account_id, lambda stub: stub.GetAccountFigures(request, timeout=self.deadline)
        )
        return None if response is None else response.account_risk

    async def reserve_withdrawal(
        self, account_id: str, withdrawal_id: str, amount: str, ledger_sequence: int
    ) -> None:
        """Reserves `amount` (a decimal string) for the withdrawal against the account with
        its ledger up to `ledger_sequence`, or raises the refusal: INSUFFICIENT_FUNDS
        (FAILED_PRECONDITION) naming what can be withdrawn."""
        request = risk_pb.ReserveWithdrawalRequest(
            account_id=account_id,
            withdrawal_id=withdrawal_id,
            amount=amount,
            min_ledger_sequence=ledger_sequence,
        )
        response: risk_pb.ReserveWithdrawalResponse | None = await self._ask(
            account_id, lambda stub: stub.ReserveWithdrawal(request, timeout=self.deadline)
        )
        # None: the risk service has no positions of the account, so the ledger's own check is
        # the whole check.
        if response is None or response.approved:
            return
        currency = response.account_risk.currency
        raise DomainError(
            response.reject_reason,
            response.reject_message,
            metadata={
                "withdrawable": response.withdrawable,
                "free_margin": response.account_risk.free_margin,
                "currency": currency,
            },
        )

    async def _ask(
        self,
        account_id: str,
        call: Callable[[risk_grpc.RiskInternalServiceAsyncStub], Awaitable[_Answer]],
    ) -> _Answer | None:
        """The answer of the risk instance of the account to `call`, None when it does not know
        the account; UNAVAILABLE when it cannot be asked."""
        try:
            return await call(self.stub_for(account_id))
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise _unavailable(error) from error

    async def summary(self, session: AsyncSession, account: Mapping[Any, Any]) -> pb.AccountSummary:
        """The account's summary: the risk service's figures, or the ledger's alone for an
        account it does not know yet."""
        figures = await self.figures(
            str(account["id"]), await store.ledger_sequence(session, account["id"])
        )
        if figures is None:
            return await store.summary(session, account)
        return summary_of(figures)
