"""Authorization rules: who may touch which account, who may call admin RPCs."""

from __future__ import annotations

import pytest

from services.platform.access import require_account
from services.platform.access import require_roles
from services.platform.access import require_user
from services.platform.errors import DomainError
from services.platform.identity import Caller
from tradingmesh.common.v1.errors_pb2 import ErrorReason


def caller(
    subject: str = "user-a",
    roles: set[str] | None = None,
    accounts: set[str] | None = None,
    api_key_id: str | None = None,
) -> Caller:
    return Caller(
        subject=subject,
        roles=frozenset(roles if roles is not None else {"trader"}),
        account_ids=frozenset(accounts or set()),
        api_key_id=api_key_id,
        request_id="req",
    )


def reason_of(error: pytest.ExceptionInfo[DomainError]) -> int:
    return error.value.reason


def test_anonymous_callers_are_unauthenticated() -> None:
    with pytest.raises(DomainError) as error:
        require_user(caller(subject="", roles=set()))
    assert reason_of(error) == ErrorReason.ERROR_REASON_UNAUTHENTICATED


def test_users_reach_their_own_accounts_only() -> None:
    assert require_account("acc-1", "user-a", caller()).subject == "user-a"
    with pytest.raises(DomainError) as error:
        require_account("acc-2", "user-b", caller())
    # Not PERMISSION_DENIED: another user's account is indistinguishable from a missing one.
    assert reason_of(error) == ErrorReason.ERROR_REASON_NOT_FOUND


def test_a_missing_account_is_not_found_for_everyone() -> None:
    with pytest.raises(DomainError) as error:
        require_account("acc-9", None, caller(roles={"admin"}))
    assert reason_of(error) == ErrorReason.ERROR_REASON_NOT_FOUND


def test_staff_reach_any_account() -> None:
    require_account("acc-2", "user-b", caller(subject="staff-1", roles={"backoffice"}))


def test_api_keys_reach_only_their_scoped_accounts_of_their_own_user() -> None:
    key = caller(accounts={"acc-1"}, api_key_id="key-1")
    require_account("acc-1", "user-a", key)
    for account, owner in (("acc-3", "user-a"), ("acc-1", "user-b")):
        with pytest.raises(DomainError) as error:
            require_account(account, owner, key)
        assert reason_of(error) == ErrorReason.ERROR_REASON_NOT_FOUND


def test_api_keys_never_act_as_staff() -> None:
    key = caller(roles={"admin"}, api_key_id="key-1")
    with pytest.raises(DomainError) as error:
        require_roles({"admin"}, key)
    assert reason_of(error) == ErrorReason.ERROR_REASON_PERMISSION_DENIED
    with pytest.raises(DomainError):
        require_account("acc-2", "user-b", key)


def test_admin_rpcs_need_one_of_the_roles() -> None:
    require_roles({"admin", "backoffice"}, caller(roles={"backoffice"}))
    with pytest.raises(DomainError) as error:
        require_roles({"admin"}, caller(roles={"trader"}))
    assert reason_of(error) == ErrorReason.ERROR_REASON_PERMISSION_DENIED
