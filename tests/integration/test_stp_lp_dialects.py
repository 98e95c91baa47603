"""Every answer an LP gives the OMS's orders is acted on (issue 13, ADR 0007 "What an LP may
answer"), against the real stack: the LP simulators play the dialects real LPs speak
("personalities", simulators/lp/personality.py), and operators repair what only they can,
through Envoy.

- With each personality a market and a limit STP order end FILLED, or REJECTED with the LP's
  words, within seconds; nothing the LP filled is left unbooked (the LP's own book,
  `GET /v1/fills`, and the platform's hedge orders agree).
- A report that fails the FIX 4.4 dictionary (ExecType 2) is journalled with the reason,
  counted, alerted on, and understood.
- An LP that refuses status requests leaves a silent hedge of unknown fate at once; an operator
  settles it (SettleHedgeOrder) and its client order completes; a trader may not.
- An operator resets or sets an LP order session's sequence numbers (ResetLpOrderSession, REST
  through Envoy), and the session logs on again; a trader may not. Each action leaves an
  operator audit record.

Traders are in the seeded "pro-stp" group; lp-alpha quotes the best price on both sides, so
every hedge order goes there, and it is lp-alpha that plays the personality.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.request
import uuid
from decimal import Decimal
from typing import Any

import grpc
import pytest

from simulators.lp.control import ControlClient
from stack.paths import StackPaths
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.edge import refused
from tests.integration.support.orders import Oms
from tests.integration.support.orders import place
from tests.integration.support.stp import ALPHA
from tests.integration.support.stp import await_pinned_price
from tests.integration.support.stp import ended
from tests.integration.support.stp import get_order
from tests.integration.support.stp import hedges_of
from tests.integration.support.stp import stp_trader
from tests.integration.support.stp import trades
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.oms.v1 import order_admin_service_pb2 as admin_pb
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc as admin_grpc

R = ErrorReason
S = trading_pb2
D = Decimal
OMS_SESSION = "TRADINGMESH-OMS"
PROMPTLY = 8  # seconds; the OMS asks a quiet LP for a hedge's status after 10


@pytest.fixture(scope="module")
def people(edge: Edge) -> dict[str, tuple[str, str]]:
    """(user id, access token) of a signed-in dealer, admin and trader."""
    found = {}
    for role in ("dealer", "admin", "trader"):
        user = make_user(edge, [role])
        found[role] = (user.id, login(edge, user).access_token)
    return found


def metric(oms: Oms, name: str, **labels: str) -> Decimal:
    """A sample of the OMS's /metrics (0 when it has none yet)."""
    url = f"http://127.0.0.1:{oms.ports.service_metrics('oms')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    sample = name + (f"{{{selector}}}" if selector else "")
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return D(found.group(1)) if found else D(0)


def oms_log(oms: Oms) -> list[dict[str, Any]]:
    path = StackPaths.for_name(oms.running.config.name).log("oms")
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def place_limit_ioc(oms: Oms, trader: Any, price: str, quantity: str) -> Any:
    return place(
        oms,
        trader,
        type=S.ORDER_TYPE_LIMIT,
        price=price,
        quantity=quantity,
        time_in_force=S.TIME_IN_FORCE_IOC,
    )


def promptly_ended(oms: Oms, trader: Any, order_id: str) -> Any:
    """The order once it has ended, which must be within PROMPTLY seconds of its placing."""
    terminal = {S.ORDER_STATUS_FILLED, S.ORDER_STATUS_CANCELLED, S.ORDER_STATUS_REJECTED}
    placed = get_order(oms, trader, order_id).create_time.ToDatetime()

    def probe() -> Any:
        order = get_order(oms, trader, order_id)
        return order if order.status in terminal else None

    order = eventually(probe, PROMPTLY, f"order {order_id} ended")
    took = (order.update_time.ToDatetime() - placed).total_seconds()
    assert took < PROMPTLY, f"{order_id} took {took} s"
    return order


def assert_books_agree(oms: Oms, lp: ControlClient, order_ids: list[str]) -> None:
    """Every hedge of these orders has ended, and what the LP's own book says it filled of
    each is what the platform booked for it (hedge order and hedge fills)."""
    for hedge in hedges_of(oms, order_ids):
        assert hedge["status"] in ("FILLED", "CANCELLED", "REJECTED"), hedge
        book = lp.fills(client=OMS_SESSION, client_order_id=hedge["id"])
        (booked,) = oms.rows(
            "SELECT coalesce(sum(quantity), 0), coalesce(sum(quantity * price), 0)"
            " FROM oms.hedge_fills WHERE hedge_order_id = %s",
            hedge["id"],
        )
        if not book:
            assert D(hedge["filled_quantity"]) == 0, hedge
            assert D(booked[0]) == 0, hedge
            continue
        (filled,) = book
        assert D(filled["quantity"]) == D(hedge["filled_quantity"]) == D(booked[0]), hedge
        assert D(filled["price"]) == D(hedge["average_price"]), (filled, hedge)


def refusals(oms: Oms, hedge_id: str) -> list[tuple[str, str, str, str]]:
    """(kind, status, outcome, raw message) of the LP answers about a hedge order (a Reject,
    which names our message by its MsgSeqNum, gets the order's ClOrdID once applied)."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in oms.rows(
            "SELECT kind, status, outcome, raw_message FROM oms.lp_messages"
            " WHERE cl_ord_id = %s ORDER BY id",
            hedge_id,
        )
    ]


# ---- each personality ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trait", ["limit-only", "status-bmr", "fix42-exectype", "strict-dictionary"]
)
def test_with_each_personality_market_and_limit_stp_orders_end_filled_or_rejected_with_why(
    oms: Oms, stp_lps: dict[str, ControlClient], trait: str
) -> None:
    alpha = stp_lps["lp-alpha"]
    assert alpha.set_personality([trait]) == [trait]
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    understood_before = metric(
        oms, "tradingmesh_oms_lp_invalid_messages_total", lp="lp-alpha", outcome="understood"
    )

    market = place(oms, trader, quantity="0.10")
    limit = place_limit_ioc(oms, trader, ALPHA[1], "0.20")  # a buy at the LP's ask

    # Within seconds, never left WORKING with a hedge SENT: before the OMS would ask the LP for
    # the hedge's status (10 s), so the LP's own answer decided it.
    market_end, limit_end = (
        promptly_ended(oms, trader, market.id),
        promptly_ended(oms, trader, limit.id),
    )
    assert limit_end.status == S.ORDER_STATUS_FILLED, limit_end.status_message
    assert (D(limit_end.filled_quantity), D(limit_end.average_fill_price)) == (
        D("0.2"),
        D(ALPHA[1]),
    )
    if trait == "limit-only":
        # The LP refused the market hedge with a session Reject: the client hears its words.
        assert market_end.status == S.ORDER_STATUS_REJECTED
        assert market_end.status_reason == R.ERROR_REASON_LP_REJECTED
        (hedge,) = hedges_of(oms, [market.id])
        assert (hedge["status"], hedge["status_reason"]) == ("REJECTED", "LP_REJECTED")
        ((kind, status, _outcome, raw),) = refusals(oms, hedge["id"])
        assert (kind, status) == ("REJECT", "APPLIED")
        assert "\x0135=3\x01" in raw
        assert "\x01372=D\x01" in raw
        lp_text = re.search("\x0158=([^\x01]*)\x01", raw)
        assert lp_text is not None
        assert lp_text.group(1) in market_end.status_message
        assert "lp-alpha refused the order" in market_end.status_message
        assert trades(oms, trader, market.id) == []
    else:
        assert market_end.status == S.ORDER_STATUS_FILLED, market_end.status_message
        assert (D(market_end.filled_quantity), D(market_end.average_fill_price)) == (
            D("0.1"),
            D(ALPHA[1]),
        )
    assert_books_agree(oms, alpha, [market.id, limit.id])

    understood = metric(
        oms, "tradingmesh_oms_lp_invalid_messages_total", lp="lp-alpha", outcome="understood"
    )
    if trait == "fix42-exectype":
        # The fills came with ExecType 2, which FIX 4.4 does not have: journalled with the
        # reason, counted, alerted on, and booked all the same.
        hedge_ids = [h["id"] for h in hedges_of(oms, [market.id, limit.id])]
        stored = oms.rows(
            "SELECT report->>'kind', validation_error, raw_message FROM oms.lp_execution_reports"
            " WHERE cl_ord_id = ANY(%s) AND raw_message LIKE %s",
            hedge_ids,
            "%\x01150=2\x01%",
        )
        assert len(stored) == 2, stored
        assert all(kind == "FILL" and "150" in problem for kind, problem, _ in stored)
        assert understood >= understood_before + 2
        alerts = [
            line
            for line in oms_log(oms)
            if line.get("message", "").startswith("ALERT: an execution report fails the FIX 4.4")
            and line.get("lp") == "lp-alpha"
        ]
        assert alerts, "an ALERT line in the OMS log"
        assert "150" in alerts[0]["validation_error"]
    elif trait in ("status-bmr", "strict-dictionary"):
        assert understood == understood_before  # standard reports: nothing to flag


# ---- an LP that refuses status requests, and the operator who settles --------------------------


def test_a_silent_hedge_at_an_lp_refusing_status_requests_is_settled_by_an_operator(
    oms: Oms, stp_lps: dict[str, ControlClient], edge: Edge, people: dict[str, tuple[str, str]]
) -> None:
    alpha = stp_lps["lp-alpha"]
    alpha.set_personality(["status-bmr"])
    alpha.silence(orders=1)  # it fills the next order but never reports it
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)

    placed = place(oms, trader, quantity="0.30")

    def sent() -> dict[str, Any] | None:
        found = hedges_of(oms, [placed.id])
        return found[-1] if found and found[-1]["status"] == "SENT" else None

    hedge = eventually(sent, 20, "the hedge order SENT")
    # 10 s without a report, the OMS asks; the LP refuses to say (35=j): the hedge's fate is
    # unknown at once, not 60 s after it was made.
    eventually(
        lambda: (
            any(
                k == "BUSINESS_REJECT" and s == "APPLIED"
                for k, s, _, _ in refusals(oms, hedge["id"])
            )
            or None
        ),
        30,
        "the LP's Business Message Reject applied",
    )
    eventually(
        lambda: metric(oms, "tradingmesh_oms_hedge_orders_unknown") >= 1 or None,
        10,
        "the hedge order reported of unknown fate",
    )
    assert get_order(oms, trader, placed.id).status == S.ORDER_STATUS_WORKING
    assert hedges_of(oms, [placed.id])[-1]["status"] == "SENT"

    # What the LP's own book says it did: the operator reconciles with that.
    (lp_fill,) = alpha.fills(client=OMS_SESSION, client_order_id=hedge["id"])
    request = admin_pb.SettleHedgeOrderRequest(
        hedge_order_id=hedge["id"],
        outcome=admin_pb.HEDGE_SETTLEMENT_OUTCOME_FILLED,
        filled_quantity=lp_fill["quantity"],
        average_price=lp_fill["price"],
        reason="lp-alpha confirmed the fill by phone",
    )
    with edge.channel() as channel:
        admin = admin_grpc.OrderAdminServiceStub(channel)
        code, reason, _ = refused(
            lambda: admin.SettleHedgeOrder(request, metadata=bearer(people["trader"][1]))
        )
        assert (code, reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            R.ERROR_REASON_PERMISSION_DENIED,
        )
        assert hedges_of(oms, [placed.id])[-1]["status"] == "SENT"  # a refusal changes nothing

        settled = admin.SettleHedgeOrder(
            request, metadata=bearer(people["dealer"][1]), timeout=20
        ).hedge_order

        code, reason, _ = refused(
            lambda: admin.SettleHedgeOrder(request, metadata=bearer(people["dealer"][1]))
        )
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, R.ERROR_REASON_INVALID_STATE)

    assert (settled.id, D(settled.filled_quantity)) == (hedge["id"], D("0.3"))
    order = ended(oms, trader, placed.id)
    assert order.status == S.ORDER_STATUS_FILLED, order.status_message
    assert (D(order.filled_quantity), D(order.average_fill_price)) == (D("0.3"), D(ALPHA[1]))
    (trade,) = trades(oms, trader, placed.id)
    assert trade.hedge_order_id == hedge["id"]
    assert_books_agree(oms, alpha, [placed.id])
    eventually(
        lambda: metric(oms, "tradingmesh_oms_hedge_orders_unknown") == 0 or None,
        10,
        "the unknown-fate alert cleared",
    )
    # Audited: the settlement in the operator chain, the client's fill in the account's chain,
    # both by the dealer.
    dealer = people["dealer"][0]
    ((action, actor_kind, actor_id, before, after),) = oms.rows(
        "SELECT action, actor_kind, actor_id, before, after FROM oms.operator_audit_records"
        " WHERE entity_id = %s",
        hedge["id"],
    )
    assert (action, actor_kind, actor_id) == ("hedge_order.settle", "OPERATOR", dealer)
    assert json.loads(before)["status"] == "SENT"
    assert json.loads(after)["status"] == "FILLED"
    assert oms.rows(
        "SELECT actor_kind, actor_id FROM oms.audit_records WHERE entity_id = %s"
        " AND event = 'FILLED'",
        placed.id,
    ) == [("OPERATOR", dealer)]


# ---- an LP order session's sequence numbers -----------------------------------------------------


def sessions(admin: admin_grpc.OrderAdminServiceStub, token: str) -> dict[str, Any]:
    listed = admin.ListLpOrderSessions(
        admin_pb.ListLpOrderSessionsRequest(), metadata=bearer(token), timeout=10
    ).sessions
    return {s.liquidity_provider_id: s for s in listed}


def rest(
    edge: Edge, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    connection = edge.https()
    try:
        connection.request(
            method,
            path,
            body=json.dumps(body).encode() if body is not None else None,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_an_operator_resets_or_sets_an_lp_order_sessions_numbers_through_envoy(
    oms: Oms, stp_lps: dict[str, ControlClient], edge: Edge, people: dict[str, tuple[str, str]]
) -> None:
    admin_token, dealer_token, trader_token = (people[r][1] for r in ("admin", "dealer", "trader"))
    audited_before = oms.rows("SELECT count(*) FROM oms.operator_audit_records")[0][0]

    # A trader may neither look nor touch.
    status, body = rest(
        edge, "POST", "/v1/admin/lp-order-sessions/lp-beta:reset", trader_token, {"reason": "x"}
    )
    assert status == 403, body
    status, _ = rest(edge, "GET", "/v1/admin/lp-order-sessions", trader_token)
    assert status == 403

    with edge.channel() as channel:
        admin = admin_grpc.OrderAdminServiceStub(channel)
        eventually(
            lambda: all(s.logged_on for s in sessions(admin, admin_token).values()) or None,
            30,
            "both order sessions logged on",
        )

        # A reset (REST): both sides start again at 1, by the Logon's ResetSeqNumFlag.
        status, body = rest(
            edge,
            "POST",
            "/v1/admin/lp-order-sessions/lp-beta:reset",
            admin_token,
            {"reason": "lp-beta reset its store overnight"},
        )
        assert status == 200, body
        reset = body["session"]  # REST keeps the contract's field names; int64 is a string
        assert (reset["target_comp_id"], reset["logged_on"]) == ("LP-BETA", False)
        assert (reset["next_sender_msg_seq_num"], reset["next_target_msg_seq_num"]) == ("1", "1")

        def beta_back() -> Any:
            beta = sessions(admin, admin_token)["lp-beta"]
            return beta if beta.logged_on else None

        beta = eventually(beta_back, 30, "lp-beta's order session logged on again")
        assert beta.next_sender_msg_seq_num < 10
        assert beta.next_target_msg_seq_num < 10

        # A set (gRPC): our next number jumps ahead; the LP asks for the gap, we fill it, and
        # the session carries on.
        alpha = sessions(admin, admin_token)["lp-alpha"]
        jumped = alpha.next_sender_msg_seq_num + 5
        after = admin.ResetLpOrderSession(
            admin_pb.ResetLpOrderSessionRequest(
                liquidity_provider_id="lp-alpha",
                next_sender_msg_seq_num=jumped,
                reason="numbers agreed with lp-alpha's support desk",
            ),
            metadata=bearer(dealer_token),
            timeout=20,
        ).session
        assert (after.next_sender_msg_seq_num, after.next_target_msg_seq_num) == (
            jumped,
            alpha.next_target_msg_seq_num,
        )
        eventually(
            lambda: sessions(admin, admin_token)["lp-alpha"].logged_on or None,
            30,
            "lp-alpha's order session logged on again",
        )
        code, reason, _ = refused(
            lambda: admin.ResetLpOrderSession(
                admin_pb.ResetLpOrderSessionRequest(liquidity_provider_id="lp-nope", reason="x"),
                metadata=bearer(dealer_token),
            )
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)

    # Orders still reach the LP and fill.
    trader = stp_trader(oms)
    await_pinned_price(oms, trader)
    filled = ended(oms, trader, place(oms, trader, quantity="0.10").id)
    assert filled.status == S.ORDER_STATUS_FILLED, filled.status_message

    # Audited, in one hash chain.
    records = oms.rows(
        "SELECT sequence, action, entity_id, actor_id, reason, previous_hash, hash"
        " FROM oms.operator_audit_records ORDER BY sequence"
    )
    ours = records[audited_before:]
    assert [(r[1], r[2], r[3]) for r in ours] == [
        ("lp_order_session.reset", "TRADINGMESH-OMS->LP-BETA", people["admin"][0]),
        ("lp_order_session.set_numbers", "TRADINGMESH-OMS->LP-ALPHA", people["dealer"][0]),
    ]
    for previous, record in itertools.pairwise(records):
        assert record[5] == previous[6]


def test_bad_settlements_are_refused_and_change_nothing(
    oms: Oms, edge: Edge, people: dict[str, tuple[str, str]]
) -> None:
    dealer = bearer(people["dealer"][1])
    with edge.channel() as channel:
        admin = admin_grpc.OrderAdminServiceStub(channel)
        missing = str(uuid.uuid4())
        code, reason, _ = refused(
            lambda: admin.SettleHedgeOrder(
                admin_pb.SettleHedgeOrderRequest(
                    hedge_order_id=missing,
                    outcome=admin_pb.HEDGE_SETTLEMENT_OUTCOME_REJECTED,
                    reason="x",
                ),
                metadata=dealer,
            )
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, R.ERROR_REASON_NOT_FOUND)
        code, reason, _ = refused(
            lambda: admin.SettleHedgeOrder(
                admin_pb.SettleHedgeOrderRequest(
                    hedge_order_id=missing,
                    outcome=admin_pb.HEDGE_SETTLEMENT_OUTCOME_FILLED,
                    reason="no quantity",
                ),
                metadata=dealer,
            )
        )
        assert (code, reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            R.ERROR_REASON_VALIDATION_FAILED,
        )
    assert oms.rows(
        "SELECT count(*) FROM oms.operator_audit_records WHERE entity_id = %s", missing
    ) == [(0,)]
