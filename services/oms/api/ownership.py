"""Who may act on an account, as the OMS knows its owner (`oms.accounts.user_id`, ADR 0005).

Another user's account, and an account the OMS does not know, are the same NOT_FOUND
(`services/platform/access.require_account`). Order entry also needs the account to be open:
a DISABLED or CLOSED account may not trade at all (PERMISSION_DENIED, ACCOUNT_DISABLED); a
CLOSE_ONLY one may, and the pre-trade check refuses what adds exposure.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from services.oms.entry.placement import Authorize
from services.oms.model import Account
from services.oms.model import AccountStatus
from services.oms.store.changes import load_account
from services.platform.access import account_not_found
from services.platform.access import require_account
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = [
    "authorize_internal",
    "authorize_owner",
    "authorize_trader",
    "known_account",
    "owned_account",
]


def _owned(account_id: str, account: Account | None) -> Account:
    require_account(account_id, None if account is None else account.user_id)
    assert account is not None
    return account


def authorize_owner(account_id: str) -> Authorize:
    """For changes to the caller's own orders (an amend): the caller's account, whatever its
    status."""
    return partial(_owned, account_id)


def authorize_trader(account_id: str) -> Authorize:
    """For order entry by the caller: the caller's account, open for trading."""

    def authorize(account: Account | None) -> Account:
        owned = _owned(account_id, account)
        if owned.status in (AccountStatus.DISABLED, AccountStatus.CLOSED):
            raise DomainError(
                ErrorReason.ERROR_REASON_ACCOUNT_DISABLED,
                f"trading account {account_id} is {owned.status.value.lower()}",
                metadata={"account_id": account_id, "status": owned.status.value},
            )
        return owned

    return authorize


def authorize_internal(account_id: str) -> Authorize:
    """For another tradingmesh service (the edge token proved it): the account must exist."""

    def authorize(account: Account | None) -> Account:
        if account is None:
            raise account_not_found(account_id)
        return account

    return authorize


async def owned_account(session: AsyncSession, account_id: str) -> Account:
    """For reads and changes of the caller's own orders and positions."""
    return _owned(account_id, await load_account(session, account_id))


async def known_account(session: AsyncSession, account_id: str) -> Account:
    """For another tradingmesh service, or the broker's staff: the account must exist."""
    return authorize_internal(account_id)(await load_account(session, account_id))
