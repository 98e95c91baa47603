"""The risk service's internal API channels (services/platform/risk_internal.py): each caller's
class sets its deadline, and an account's calls go to the account's instance."""

from __future__ import annotations

from services.platform.risk_internal import RiskInternalChannels
from services.platform.secrets import Secret

TOKEN = Secret("edge-token")
INSTANCES = ["127.0.0.1:17101", "127.0.0.1:17102"]


class _Caller(RiskInternalChannels):
    deadline = 0.25


async def test_a_callers_class_sets_its_deadline_unless_one_is_given() -> None:
    own = _Caller(INSTANCES[0], TOKEN, plaintext=True)
    given = _Caller(INSTANCES[0], TOKEN, 1.5, plaintext=True)
    try:
        assert own.deadline == 0.25
        assert given.deadline == 1.5
    finally:
        await own.close()
        await given.close()


async def test_the_risk_services_calls_about_any_account_go_to_its_one_instance() -> None:
    channels = RiskInternalChannels(INSTANCES[0], TOKEN, plaintext=True)
    try:
        stubs = {id(channels.stub_for(account_id)) for account_id in ("a-1", "a-2", "a-3")}
        stub = channels.stub_for("a-1")
        assert len(stubs) == 1
        assert callable(stub.CheckOrder)
        assert callable(stub.GetAccountFigures)
        assert callable(stub.ReserveWithdrawal)
    finally:
        await channels.close()
