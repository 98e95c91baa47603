"""The LP simulators' personalities against the real stack: each trait over a real FIX 4.4
session, the control port that switches them, pricing's view of an LP that refuses market data,
and the FIX session logs of every session (no password in any, shown by `tradingmesh logs`)."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as fix44
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc

from simulators.lp.control import ControlClient
from simulators.lp.control import ControlError
from stack import cli
from stack.operator_tls import service_channel
from stack.paths import StackPaths
from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from tests.integration.conftest import RunningStack
from tests.integration.fix_client import FixClient
from tests.integration.fix_client import Received
from tests.integration.fix_client import fix_session
from tests.integration.fix_client import stack_tls
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.lps import lp_logins
from tests.integration.support.waiting import eventually
from tradingmesh.pricing.v1 import pricing_admin_service_pb2
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc as admin_grpc
from tradingmesh.pricing.v1 import pricing_pb2

LP = "lp-beta"  # the LP whose personality these tests change (and always clear)


@pytest.fixture
def control(running_stack: RunningStack) -> Iterator[ControlClient]:
    client = ControlClient(Ports(running_stack.state.base_port).lp_control(LP))
    client.clear_personality()
    try:
        yield client
    finally:
        client.clear_personality()


@contextlib.contextmanager
def qa_session(
    running_stack: RunningStack, workdir: Path, use_dictionary: bool = True
) -> Iterator[FixClient]:
    login_ = lp_logins(running_stack)[LP]
    port = Ports(running_stack.state.base_port).lp_fix(LP)
    with fix_session(
        port,
        LP.upper(),
        login_.username,
        login_.password.reveal(),
        workdir,
        use_dictionary,
        tls_dir=stack_tls(running_stack),
    ) as client:
        assert client.app.logged_on.wait(15), "the LP simulator did not accept the logon"
        yield client


@pytest.fixture
def lp(running_stack: RunningStack, tmp_path: Path) -> Iterator[FixClient]:
    with qa_session(running_stack, tmp_path) as client:
        yield client


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _for(cl_ord_id: str, msg_type: str = "8") -> Callable[[Received], bool]:
    return lambda m: m.msg_type == msg_type and m.fields.get(11) == cl_ord_id


def _reports(client: FixClient, cl_ord_id: str) -> list[Received]:
    """The order's execution reports up to its last (filled, cancelled or rejected)."""
    reports = []
    while True:
        report = client.expect(_for(cl_ord_id))
        reports.append(report)
        if report.fields[39] in ("2", "4", "8"):
            return reports


def _lp_health(running_stack: RunningStack, lp: str) -> int:
    with service_channel(running_stack.state, "pricing") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=f"tradingmesh.pricing.lp.{lp}"), timeout=5
        )
    status: int = response.status
    return status


Backoffice = tuple[Edge, tuple[tuple[str, str]]]


@pytest.fixture(scope="module")
def backoffice(running_stack: RunningStack) -> Backoffice:
    """The edge and a back-office user's token, to read the LP listing."""
    edge = Edge(running_stack.state)
    return edge, bearer(login(edge, make_user(edge, ["backoffice"])).access_token)


def _listed(edge: Edge, token: tuple[tuple[str, str]], lp: str) -> pricing_pb2.LiquidityProvider:
    with edge.channel() as channel:
        response = admin_grpc.PricingAdminServiceStub(channel).ListLiquidityProviders(
            pricing_admin_service_pb2.ListLiquidityProvidersRequest(page_size=50),
            metadata=token,
            timeout=10,
        )
    (provider,) = [p for p in response.liquidity_providers if p.id == lp]
    return provider


# ---- the control port ----------------------------------------------------------------------------


def test_the_personality_is_switched_and_cleared_through_the_control_port(
    control: ControlClient,
) -> None:
    assert control.personality() == []

    assert control.set_personality(["status-bmr", "limit-only"]) == ["limit-only", "status-bmr"]
    assert control.personality() == ["limit-only", "status-bmr"]
    assert control.state()["personality"] == ["limit-only", "status-bmr"]

    with pytest.raises(ControlError) as refused:
        control.set_personality(["limit-only", "market-only"])
    assert refused.value.status == 400
    assert "unknown trait market-only" in str(refused.value)
    assert control.personality() == ["limit-only", "status-bmr"]  # unchanged
    control.clear_personality()
    assert control.personality() == []


# ---- each trait over FIX -------------------------------------------------------------------------


def test_limit_only_refuses_a_market_order_with_a_reject_and_fills_a_limit_at_its_price(
    control: ControlClient, lp: FixClient
) -> None:
    control.set_personality(["limit-only"])
    market, limit = _id("mkt"), _id("lim")

    lp.new_order(market, "EURUSD", "1", "0.1")
    reject = lp.expect(lambda m: m.msg_type == "3")
    lp.new_order(limit, "EURUSD", "1", "0.1", limit_price="1.00000")  # far below the market
    reports = _reports(lp, limit)

    assert (reject.fields[372], reject.fields[371], reject.fields[373]) == ("D", "40", "5")
    assert int(reject.fields[45]) > 0
    assert reject.fields[58].startswith("Value is incorrect")
    assert [r.fields[150] for r in reports] == ["0", "F"]
    assert (reports[-1].fields[32], reports[-1].fields[31]) == ("0.1", "1.00000")
    (booked,) = control.fills(client="TRADINGMESH-QA", client_order_id=limit)
    assert (Decimal(booked["quantity"]), Decimal(booked["price"])) == (
        Decimal("0.1"),
        Decimal("1.00000"),
    )
    assert control.fills(client_order_id=market) == []  # refused: nothing filled


def test_status_bmr_answers_a_status_request_with_a_business_message_reject(
    control: ControlClient, lp: FixClient
) -> None:
    control.set_personality(["status-bmr"])
    order = _id("sts")

    lp.status_request(order, "EURUSD", "1")
    reject = lp.expect(lambda m: m.msg_type == "j")

    assert (reject.fields[372], reject.fields[379], reject.fields[380]) == ("H", order, "3")
    assert reject.fields[58]


def test_fix42_exectype_reports_fills_with_exectype_1_and_2(
    control: ControlClient, running_stack: RunningStack, tmp_path: Path
) -> None:
    control.set_personality(["fix42-exectype"])
    order = _id("x42")
    # A 4.4 dictionary refuses ExecType 1 and 2: this client reads what the LP sends as it is.
    with qa_session(running_stack, tmp_path, use_dictionary=False) as lp:
        lp.new_order(order, "EURUSD", "1", "12")  # filled in pieces of 5 lots
        reports = _reports(lp, order)

    assert [(r.fields[150], r.fields[39]) for r in reports] == [
        ("0", "0"),
        ("1", "1"),
        ("1", "1"),
        ("2", "2"),
    ]
    (booked,) = control.fills(client="TRADINGMESH-QA", client_order_id=order)
    assert Decimal(booked["quantity"]) == Decimal(12)


def test_strict_dictionary_refuses_a_user_defined_field_the_standard_lp_tolerates(
    control: ControlClient, lp: FixClient
) -> None:
    def order_with_custom_field(cl_ord_id: str) -> fix.Message:
        order = fix44.NewOrderSingle()
        for tag, value in (
            (11, cl_ord_id),
            (55, "EURUSD"),
            (54, "1"),
            (38, "0.1"),
            (40, "1"),
            (59, "3"),
            (60, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())),
            (5001, "ours"),
        ):
            order.setField(fix.StringField(tag, value))
        return order

    tolerated, refused = _id("std"), _id("strict")
    lp.send(order_with_custom_field(tolerated))
    assert _reports(lp, tolerated)[0].fields[150] == "0"

    control.set_personality(["strict-dictionary"])
    lp.send(order_with_custom_field(refused))
    reject = lp.expect(lambda m: m.msg_type == "3")

    assert (reject.fields[372], reject.fields[371], reject.fields[373]) == ("D", "5001", "0")
    assert control.fills(client_order_id=refused) == []


def test_no_market_data_refuses_a_subscription_with_a_business_message_reject(
    control: ControlClient, lp: FixClient, backoffice: Backoffice
) -> None:
    control.set_personality(["no-market-data"])

    lp.subscribe("md-refused", ["EURUSD"])
    reject = lp.expect(lambda m: m.msg_type == "j")

    assert (reject.fields[372], reject.fields[379], reject.fields[380]) == ("V", "md-refused", "4")
    # The trait dropped pricing's subscription too: the next tests want its prices back.
    cleared = datetime.now(UTC)
    control.clear_personality()
    eventually(
        lambda: _listed(*backoffice, LP).last_quote_time.ToDatetime(UTC) > cleared,
        45,
        f"pricing asked {LP} again and got prices",
    )


# ---- pricing's view of an LP that refuses market data --------------------------------------------


def test_pricing_reports_an_lp_that_refuses_market_data_as_not_serving_and_recovers(
    control: ControlClient, running_stack: RunningStack, backoffice: Backoffice
) -> None:
    edge, token = backoffice
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    eventually(lambda: _lp_health(running_stack, LP) == serving, 30, f"{LP} serving to begin with")

    # Its subscriptions go silent, then every new one is refused with 35=j.
    control.set_personality(["no-market-data"])
    eventually(
        lambda: _lp_health(running_stack, LP) == not_serving,
        30,
        f"pricing saw {LP}'s market data stop",
    )
    eventually(
        lambda: "market data is not available" in _listed(edge, token, LP).last_error,
        30,
        f"the listing shows the reason {LP} gave",
    )
    provider = _listed(edge, token, LP)
    assert provider.session_state == pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTING
    assert provider.last_error == (
        "market data refused: market data is not available on this session"
    )
    other = next(lp for lp in LP_SIMULATORS if lp != LP)
    assert _listed(edge, token, other).session_state == (
        pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED
    )

    control.clear_personality()
    eventually(
        lambda: _lp_health(running_stack, LP) == serving,
        45,  # the back-off is at most 15 s
        f"pricing asked {LP} again and got prices",
    )
    provider = _listed(edge, token, LP)
    assert provider.session_state == pricing_pb2.LIQUIDITY_PROVIDER_SESSION_STATE_CONNECTED
    assert provider.last_error == ""


# ---- FIX session logs ----------------------------------------------------------------------------


def test_every_fix_session_has_a_log_without_its_password_and_tradingmesh_logs_shows_them(
    running_stack: RunningStack, control: ControlClient, lp: FixClient
) -> None:
    control.set_personality(["limit-only"])
    lp.new_order(_id("log"), "EURUSD", "1", "0.1")  # refused: a reject to be logged
    lp.expect(lambda m: m.msg_type == "3")
    logs = StackPaths.for_name(running_stack.config.name).fix_logs
    passwords = [login_.password.reveal() for login_ in lp_logins(running_stack).values()]

    expected = {
        f"FIX.4.4-{sender}-{target}.log"
        for name in LP_SIMULATORS
        for sender, target in (
            ("TRADINGMESH", name.upper()),  # pricing's market data session
            ("TRADINGMESH-OMS", name.upper()),  # the OMS's order session
            (name.upper(), "TRADINGMESH"),  # the LP's side of each
            (name.upper(), "TRADINGMESH-OMS"),
        )
    }
    eventually(
        lambda: expected <= {p.name for p in logs.glob("*.log")}, 10, "a log for every session"
    )
    for path in logs.glob("*.log"):
        text = path.read_text()
        assert not any(password in text for password in passwords), path
        assert " EVT logged on" in text or "QA" in path.name, path
    pricing_side = (logs / f"FIX.4.4-TRADINGMESH-{LP.upper()}.log").read_text()
    assert "|35=A|" in pricing_side
    assert "|554=***|" in pricing_side
    lp_side = (logs / f"FIX.4.4-{LP.upper()}-TRADINGMESH-QA.log").read_text()
    assert "session reject sent: message" in lp_side
    assert "(NewOrderSingle D), tag 40, reason 5" in lp_side

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        assert cli.main(["logs", "--name", running_stack.config.name, "fix"]) == 0
    assert f"==> FIX.4.4-TRADINGMESH-OMS-{LP.upper()} (" in shown.getvalue()
    one = io.StringIO()
    with contextlib.redirect_stdout(one):
        assert (
            cli.main(["logs", "--name", running_stack.config.name, f"{LP.upper()}-TRADINGMESH"])
            == 0
        )
    assert " EVT logged on" in one.getvalue()
