"""The LP simulator keeps its book across its restarts (simulators/lp/book_store.py) and refuses
a ClOrdID it already has, without a FIX session."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import quickfix as fix

from simulators.lp.book_store import RESTARTED
from simulators.lp.book_store import BookFile
from simulators.lp.fix import LpApplication
from tests.unit.simulators.test_lp_orders import SESSION
from tests.unit.simulators.test_lp_orders import application
from tests.unit.simulators.test_lp_orders import new_order
from tests.unit.simulators.test_lp_orders import receive
from tests.unit.simulators.test_lp_orders import status_of


def with_book(path: Path) -> LpApplication:
    app = application()
    return LpApplication(app.market, app.credentials, book_file=BookFile(path))


def test_a_restarted_simulator_still_knows_its_orders_and_fills(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    before = with_book(path)
    before.execute_queued(receive(before, new_order("h1")))
    receive(before, new_order("h2"))  # taken, then the process dies before executing it
    assert before.book_file is not None
    before.book_file.close()

    after = with_book(path)

    filled = status_of(after, "h1")
    assert (filled[150], filled[39], filled[14], filled[6]) == ("I", "2", "0.4", "1.1001")
    assert (filled[40], filled[59]) == ("1", "3")  # the order itself came back too
    never_executed = status_of(after, "h2")
    assert (never_executed[39], never_executed[14]) == ("4", "0")
    assert never_executed[58] == RESTARTED
    assert [(f.client_order_id, f.quantity, f.fills) for f in after.filled()] == [
        ("h1", Decimal("0.4"), 1)
    ]
    assert status_of(after, "never-sent")[103] == "5"  # what it never had is still unknown


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    before = with_book(path)
    before.execute_queued(receive(before, new_order("h3")))
    assert before.book_file is not None
    before.book_file.close()
    with path.open("a", encoding="utf-8") as journal:
        journal.write('{"o": ["FIX.4.4:LP-TEST->TRADINGMESH-OMS", "h4", {"symb')

    after = with_book(path)

    assert status_of(after, "h3")[39] == "2"
    assert status_of(after, "h4")[103] == "5"


def test_a_duplicate_clordid_is_refused_and_never_executed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = with_book(tmp_path / "book.jsonl")
    app.execute_queued(receive(app, new_order("h5")))
    sent: list[fix.Message] = []
    monkeypatch.setattr(fix.Session, "sendToTarget", lambda message, session: sent.append(message))

    app._on_new_order(new_order("h5"), SESSION)

    assert app.orders.empty()
    assert [(str(m.getField(150)), str(m.getField(103))) for m in sent] == [("8", "6")]
    assert status_of(app, "h5")[39] == "2"  # its state is what it was
