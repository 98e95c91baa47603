"""Hostile input to the admin write RPCs, as the broker's operator (issue #18).

`test_hostile_inputs.py` sends generated hostile requests to every routed RPC as a trader (an
admin write is PERMISSION_DENIED there, before any of its validation runs) and the admin reads
also as the operator. An admin write the operator is allowed to make would change the session's
stack under the other test modules, so this module calls the admin write RPCs as the operator on a
stack of its own, with the same generated requests. Each answer must be OK or a client error with
an ErrorInfo of the `tradingmesh` domain, never INTERNAL, UNKNOWN or DATA_LOSS; and each refused
call must have changed nothing: the services' schemas are compared before and after every refused
call (a call that succeeded changes them by design: the comparison starts again once its effects
have settled). The report (RPCs, cases, outcomes) goes to the terminal as the other module's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import cast

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import settings

from tests.integration import test_hostile_inputs as hostile
from tests.integration.conftest import RunningStack
from tests.integration.conftest import stack_of_its_own
from tests.integration.support.edge import Edge
from tests.integration.support.hostile import ACCEPTED
from tests.integration.support.hostile import RPCS
from tests.integration.support.hostile import SETTINGS
from tests.integration.support.hostile import Baseline
from tests.integration.support.hostile import Report
from tests.integration.support.hostile import Requests
from tests.integration.support.hostile import Rpc
from tests.integration.support.hostile import Snapshot
from tests.integration.support.hostile import World
from tests.integration.support.hostile import call
from tests.integration.support.hostile import changed
from tests.integration.support.hostile import snapshot
from tests.messages import client_group
from tests.messages import fx_instrument
from tradingmesh.account.v1 import account_admin_service_pb2 as account_admin
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2 as order_admin
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import position_service_pb2
from tradingmesh.pricing.v1 import pricing_admin_service_pb2 as pricing_admin
from tradingmesh.pricing.v1 import pricing_pb2
from tradingmesh.risk.v1 import risk_admin_service_pb2 as risk_admin
from tradingmesh.risk.v1 import risk_pb2

EXAMPLES = int(os.environ.get("TM_HOSTILE_ADMIN_EXAMPLES", "12"))
SETTLE_SECONDS = 15.0  # how long a call that succeeded may take to settle (its events applied)
WRITES = [rpc for rpc in RPCS if rpc.admin and not rpc.read_only]

# The other module's fixtures, on this module's own stack (edge and accounts: conftest's).
report = hostile.report
world = hostile.world
baseline = hostile.baseline


@pytest.fixture(scope="module")
def running_stack() -> Iterator[RunningStack]:
    """This module's own stack: the operator's writes that succeed stay here."""
    yield from stack_of_its_own(f"it-hostile-admin-{os.getpid()}")


def group_of(edge: Edge, account_id: str) -> str:
    with edge.database() as db:
        row = db.execute(
            "SELECT group_id::text FROM account.trading_accounts WHERE id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def admin_templates(edge: Edge, world: World) -> dict[str, Message]:
    """A well-formed request of each admin write about the world's objects: the hostile examples
    change one or two of their fields, so that the hostility gets past validation."""
    me = world.me
    account, user, group = me.account_id, me.user_id, group_of(edge, me.account_id)
    cancel = cast("order_service_pb2.CancelOrderRequest", world.templates["CancelOrder"])
    close = cast("position_service_pb2.ClosePositionRequest", world.templates["ClosePosition"])
    order_id, position_id = cancel.order_id, close.position_id
    group_terms = client_group(id=group, name="hostile")
    instrument = fx_instrument(
        description="hostile", trading_status=pricing_pb2.TRADING_STATUS_TRADING
    )
    found: list[Message] = [
        account_admin.CreateUserRequest(
            username="hostile-user",
            email="hostile@example.com",
            display_name="hostile",
            roles=[account_pb2.ROLE_TRADER],
            initial_password="a-long-hostile-password-1",
        ),
        account_admin.CreateTradingAccountRequest(
            user_id=user,
            group_id=group,
            position_mode=types_pb2.POSITION_MODE_NETTING,
            idempotency_key="hostile-account",
        ),
        account_admin.CreateClientGroupRequest(client_group=group_terms),
        account_admin.UpdateClientGroupRequest(
            client_group=group_terms, update_mask=field_mask_pb2.FieldMask(paths=["name"])
        ),
        account_admin.SetGroupInstrumentSettingsRequest(
            settings=account_pb2.GroupInstrumentSettings(
                group_id=group, symbol="EURUSD", enabled=True, max_order_size="10"
            )
        ),
        account_admin.RequestBalanceAdjustmentRequest(
            account_id=account, amount="1.00", reason="hostile", idempotency_key="hostile-adj"
        ),
        account_admin.UpdateTradingAccountStatusRequest(
            account_id=account,
            status=account_pb2.TRADING_ACCOUNT_STATUS_ACTIVE,
            reason="hostile",
        ),
        account_admin.UpdateUserStatusRequest(
            user_id=user, status=account_pb2.USER_STATUS_ACTIVE, reason="hostile"
        ),
        account_admin.CreateApiKeyRequest(
            user_id=user,
            name="hostile",
            scopes=[account_pb2.API_KEY_SCOPE_READ],
            account_ids=[account],
        ),
        order_admin.CancelOrderAsOperatorRequest(
            account_id=account, order_id=order_id, reason="hostile"
        ),
        order_admin.ClosePositionAsOperatorRequest(
            account_id=account,
            position_id=position_id,
            client_order_id="hostile-operator-close",
            quantity="0.01",
            reason="hostile",
        ),
        order_admin.ResetLpOrderSessionRequest(
            liquidity_provider_id="lp-alpha",
            next_sender_msg_seq_num=1,
            next_target_msg_seq_num=1,
            reason="hostile",
        ),
        order_admin.RunRolloverRequest(trading_date="2030-01-02"),
        order_admin.SetSwapRatesRequest(
            swap_rates=oms_pb2.SwapRates(
                symbol="EURUSD",
                group_id=group,
                type=oms_pb2.SWAP_TYPE_POINTS,
                long_rate="-1",
                short_rate="1",
                triple_swap_day=oms_pb2.ROLLOVER_WEEKDAY_WEDNESDAY,
            ),
            reason="hostile",
        ),
        pricing_admin.CreateInstrumentRequest(instrument=instrument),
        pricing_admin.UpdateInstrumentRequest(
            symbol="EURUSD",
            instrument=instrument,
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        pricing_admin.SetInstrumentTradingStatusRequest(
            symbol="EURUSD", status=pricing_pb2.TRADING_STATUS_TRADING, reason="hostile"
        ),
        risk_admin.UpdateAccountRiskLimitsRequest(
            account_id=account,
            limits=risk_pb2.AccountRiskLimits(account_id=account, max_open_orders=50),
            update_mask=field_mask_pb2.FieldMask(paths=["max_open_orders"]),
        ),
    ]
    return {request.DESCRIPTOR.name.removesuffix("Request"): request for request in found}


@pytest.fixture(scope="module")
def templates(edge: Edge, world: World) -> dict[str, Message]:
    return admin_templates(edge, world)


def database(edge: Edge, world: World) -> Snapshot:
    """Every table of the services' schemas (the trader's rows and everyone else's)."""
    found = snapshot(edge, world.me, own=False)
    found.update({f"{name} (trader)": v for name, v in snapshot(edge, world.me, own=True).items()})
    return found


def settled(edge: Edge, world: World, moving: set[str]) -> Snapshot:
    """The database once a call that succeeded has had its effects (two looks alike in a row)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = database(edge, world)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = database(edge, world)
        if not _moved(last, now, moving):
            return now
        last = now
    return last


def _moved(before: Snapshot, after: Snapshot, moving: set[str]) -> set[str]:
    return {name for name in changed(before, after) if name.removesuffix(" (trader)") not in moving}


def test_there_are_admin_writes_to_call() -> None:
    assert len(WRITES) >= 20, [rpc.path for rpc in WRITES]


@pytest.mark.parametrize("rpc", WRITES, ids=[rpc.path.rpartition(".")[2] for rpc in WRITES])
def test_hostile_admin_writes_as_the_operator_are_client_errors_and_change_nothing(
    rpc: Rpc,
    edge: Edge,
    world: World,
    baseline: Baseline,
    report: Report,
    templates: dict[str, Message],
) -> None:
    template = templates.get(rpc.method.name)
    requests = Requests(world.ids, world.me.account_id).message(rpc.method.input_type, 0, template)
    found = report.violations[rpc.path]
    moving = baseline.moving
    before = settled(edge, world, moving)

    with edge.channel(options=[("grpc.max_send_message_length", 64 << 20)]) as channel:

        @settings(SETTINGS, max_examples=EXAMPLES)
        @given(request=requests)
        def hostile_write(request: Message) -> None:
            nonlocal before
            outcome = call(channel, rpc, request, world.operator_token)
            report.outcomes[rpc.path][outcome.label] += 1
            if outcome.code == grpc.StatusCode.OK:
                report.succeeded.add(rpc.path)
                before = settled(edge, world, moving)
                return
            if outcome.code not in ACCEPTED or not outcome.error_info:
                found.append(
                    f"operator: {outcome.label} {outcome.message!r} (ErrorInfo:"
                    f" {outcome.error_info}) for {hostile.shown(request)}"
                )
            after = database(edge, world)
            moved = _moved(before, after, moving)
            if moved:
                found.append(
                    f"operator: {outcome.label} changed {sorted(moved)} for"
                    f" {hostile.shown(request)}"
                )
            before = after

        hostile_write()

    assert not found, f"{rpc.path}: {len(found)} bad answers:\n" + "\n".join(found[:10])


def test_each_template_passes_validation(
    edge: Edge, world: World, templates: dict[str, Message]
) -> None:
    """The templates are well formed (else the hostile examples built on them would stop at the
    validation of another field): none is refused as VALIDATION_FAILED."""
    refused = {}
    by_name = {rpc.method.name: rpc for rpc in WRITES}
    with edge.channel() as channel:
        for name, request in templates.items():
            outcome = call(channel, by_name[name], request, world.operator_token)
            if outcome.reason == "VALIDATION_FAILED":
                refused[name] = outcome.message
    assert not refused, refused
