"""The stack's LP simulators, over real FIX 4.4 sessions: logon, prices, fills."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from stack.ports import LP_SIMULATORS
from stack.ports import Ports
from tests.integration.conftest import RunningStack
from tests.integration.fix_client import FixClient
from tests.integration.fix_client import Received
from tests.integration.fix_client import fix_session
from tests.integration.fix_client import stack_tls
from tests.integration.support.lps import lp_logins


@pytest.fixture
def lp_sessions(
    running_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, FixClient]]:
    # Per test: QuickFIX keeps one process-wide registry of sessions by id, so two live
    # initiators with the same ids (as in the wrong-password test) must never overlap.
    logins = lp_logins(running_stack)
    ports = Ports(running_stack.state.base_port)
    clients: dict[str, FixClient] = {}
    managers = []
    try:
        for lp in LP_SIMULATORS:
            manager = fix_session(
                ports.lp_fix(lp),
                lp.upper(),
                logins[lp].username,
                logins[lp].password.reveal(),
                tmp_path_factory.mktemp(lp),
                tls_dir=stack_tls(running_stack),
            )
            clients[lp] = manager.__enter__()
            managers.append(manager)
        for client in clients.values():
            assert client.app.logged_on.wait(15), "the LP simulator did not accept the logon"
        yield clients
    finally:
        for manager in reversed(managers):
            manager.__exit__(None, None, None)


def _is(msg_type: str, request_id: str | None = None) -> Callable[[Received], bool]:
    def match(message: Received) -> bool:
        return message.msg_type == msg_type and (
            request_id is None or message.fields.get(262) == request_id
        )

    return match


def _book(message: Received) -> dict[str, Decimal]:
    return {entry[269]: Decimal(entry[270]) for entry in message.groups}


def test_both_simulators_run_in_the_stack(running_stack: RunningStack) -> None:
    names = {c.name for c in running_stack.state.components if c.healthy}
    assert set(LP_SIMULATORS) <= names


def test_a_subscription_gets_a_snapshot_then_incremental_refreshes(
    lp_sessions: dict[str, FixClient],
) -> None:
    client = lp_sessions["lp-alpha"]
    client.subscribe("md-1", ["EURUSD", "XAUUSD"])
    snapshots = [client.expect(_is("W", "md-1")) for _ in range(2)]
    assert {s.fields[55] for s in snapshots} == {"EURUSD", "XAUUSD"}
    for snapshot in snapshots:
        book = _book(snapshot)
        assert book["1"] > book["0"] > 0  # offer above bid
    update = client.expect(_is("X", "md-1"))
    assert {e[55] for e in update.groups} <= {"EURUSD", "XAUUSD"}
    eurusd = [e for e in update.groups if e[55] == "EURUSD"]
    if eurusd:  # exact decimals, to the instrument's 5 digits
        assert all(Decimal(e[270]).as_tuple().exponent == -5 for e in eurusd)
    client.subscribe("md-1", ["EURUSD", "XAUUSD"], kind="2")  # unsubscribe


def test_the_two_lps_quote_different_prices(lp_sessions: dict[str, FixClient]) -> None:
    books = {}
    for lp, client in lp_sessions.items():
        client.subscribe(f"snap-{lp}", ["EURUSD"], kind="0")
        books[lp] = _book(client.expect(_is("W", f"snap-{lp}")))
    spreads = {lp: book["1"] - book["0"] for lp, book in books.items()}
    assert spreads["lp-beta"] > spreads["lp-alpha"]  # lp-beta quotes 1.5 times wider


def test_an_unknown_symbol_is_rejected(lp_sessions: dict[str, FixClient]) -> None:
    client = lp_sessions["lp-beta"]
    client.subscribe("md-bad", ["NOPE"])
    reject = client.expect(_is("Y", "md-bad"))
    assert "NOPE" in reject.fields[58]


def _reports(client: FixClient, client_order_id: str, until_status: set[str]) -> list[Received]:
    reports = []
    while True:
        report = client.expect(lambda m: m.msg_type == "8" and m.fields.get(11) == client_order_id)
        reports.append(report)
        if report.fields[39] in until_status:
            return reports


def test_an_order_is_acknowledged_then_filled_in_pieces(
    lp_sessions: dict[str, FixClient],
) -> None:
    client = lp_sessions["lp-alpha"]
    client.new_order("ord-1", "EURUSD", "1", "12")
    reports = _reports(client, "ord-1", {"2", "8"})
    assert [r.fields[150] for r in reports] == ["0", "F", "F", "F"]  # new, then three fills
    assert [Decimal(r.fields[32]) for r in reports[1:]] == [Decimal(5), Decimal(5), Decimal(2)]
    assert Decimal(reports[-1].fields[14]) == Decimal(12)  # cumulative quantity
    assert reports[-2].fields[39] == "1"  # partially filled before the last fill


def test_an_order_too_large_is_rejected_with_a_reason(lp_sessions: dict[str, FixClient]) -> None:
    client = lp_sessions["lp-beta"]
    client.new_order("ord-2", "EURUSD", "2", "5000")
    (report,) = _reports(client, "ord-2", {"2", "8"})
    assert report.fields[150] == "8"
    assert "quantity above" in report.fields[58]


def test_a_logon_with_a_wrong_password_is_refused(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    port = Ports(running_stack.state.base_port).lp_fix("lp-alpha")
    with fix_session(
        port,
        "LP-ALPHA",
        "tradingmesh",
        "wrong-password",
        tmp_path,
        tls_dir=stack_tls(running_stack),
    ) as client:
        assert not client.app.logged_on.wait(5)
