"""The margin watcher's pass without a database: the margin events it decides and writes, an
account the margin arithmetic refuses left out without stopping the pass, and turns given to
the event loop during a long pass."""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import AsyncIterator
from collections.abc import Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from typing import cast

import pytest

from services.platform.db import Database
from services.risk.episodes import Episode
from services.risk.episodes import EventType
from services.risk.model import Account
from services.risk.model import Group
from services.risk.model import GroupInstrument
from services.risk.model import PositionMode
from services.risk.model import Side
from services.risk.pass_valuation import PassValuer
from services.risk.state import RiskState
from services.risk.watcher import Closer
from services.risk.watcher import MarginWatcher
from services.risk.watcher import WatcherConfig
from tests.unit.risk.builders import account
from tests.unit.risk.builders import broker
from tests.unit.risk.builders import instrument
from tests.unit.risk.builders import position
from tests.unit.risk.builders import price
from tradingmesh.trading.margin import RiskStatus

D = Decimal


class _Session:
    def __init__(self, written: list[Mapping[str, Any]]) -> None:
        self.written = written
        self.info: dict[str, Any] = {}

    async def execute(self, statement: object, parameters: Mapping[str, Any] | None = None) -> None:
        self.written.append(parameters or {})


class RecordingDatabase:
    """Where the watcher writes: keeps the statements' parameters."""

    def __init__(self) -> None:
        self.written: list[Mapping[str, Any]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Session]:
        yield _Session(self.written)

    def event_types(self) -> dict[str, list[str]]:
        """Per account, the margin events written (the rows of risk.margin_events)."""
        events: dict[str, list[str]] = {}
        for row in self.written:
            if "type" in row and "account_id" in row:
                events.setdefault(row["account_id"], []).append(row["type"])
        return events


class Watcher(MarginWatcher):
    def __init__(self, state: RiskState, database: RecordingDatabase) -> None:
        super().__init__(cast(Database, database), state, cast(Closer, None), WatcherConfig())
        self.stop_outs: list[str] = []

    def _ensure_stop_out(self, account_id: str) -> None:
        self.stop_outs.append(account_id)


def funded(state: RiskState, number: int, balance: str) -> Account:
    """An account with 1 lot of EURUSD long at 1.10020, bid 1.10000: P&L -20.00, margin
    1,100.20 at 1:100."""
    owner = account(state, balance, account_id=f"00000000-0000-4000-8000-{number:012d}")
    position(state, owner, "EURUSD", Side.BUY, "1.00", "1.10020")
    return owner


async def test_a_pass_issues_margin_calls_and_stop_outs_once_and_resolves_them() -> None:
    state = broker()
    ok = funded(state, 1, "5000.00")  # level 452 %
    call = funded(state, 2, "900.00")  # equity 880.00, level 79.98 %
    stop = funded(state, 3, "500.00")  # level 43.62 %
    resolved = funded(state, 4, "2000.00")  # back above 100 % with a margin call open
    database = RecordingDatabase()
    watcher = Watcher(state, database)
    watcher.episodes[resolved.id] = Episode(
        RiskStatus.MARGIN_CALL, 1, "00000000-0000-4000-8000-00000000ca11"
    )

    await watcher.run_pass(watcher._watched())
    await watcher.run_pass(watcher._watched())  # nothing new the second time

    assert database.event_types() == {
        call.id: [EventType.MARGIN_CALL.value],
        stop.id: [EventType.STOP_OUT_TRIGGERED.value],
        resolved.id: [EventType.MARGIN_CALL_RESOLVED.value],
    }
    assert ok.id not in watcher.episodes
    assert watcher.state.statuses == {
        call.id: RiskStatus.MARGIN_CALL,
        stop.id: RiskStatus.STOP_OUT,
    }
    assert watcher.stop_outs == [stop.id, stop.id]  # started, then resumed by the next pass


async def test_an_account_at_1_30_converted_by_multiplying_is_valued() -> None:
    state = broker()
    # 1:30 and a GBP-quoted instrument on a USD account, converted through GBPUSD: 1/30 of the
    # notional has no exact decimal; its product with the rate is rounded at the 60th digit.
    state.put_group(Group("group-30", "USD", 30, D(100), D(50), 1))
    state.put_instrument(instrument("GBPUSD", "GBP", "USD"))
    for symbol in ("EURGBP", "GBPUSD"):
        state.put_group_instrument(GroupInstrument("group-30", symbol, True, None, None, None, 1))
    price(state, "EURGBP", "0.85001", "0.85024", group="group-30")
    price(state, "GBPUSD", "1.27001", "1.27023", group="group-30")
    account = Account(
        "00000000-0000-4000-8000-000000000001",
        "user",
        "group-30",
        "USD",
        PositionMode.NETTING,
        "ACTIVE",
        1,
        D(1000),
    )
    state.put_account(account)
    position(state, account, "EURGBP", Side.BUY, "0.10", "0.85000")
    watcher = Watcher(state, RecordingDatabase())

    await watcher.run_pass(watcher._watched())

    assert account.id in watcher.last_pass


async def test_an_account_the_margin_arithmetic_refuses_is_left_out_not_the_whole_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = broker()
    refused = funded(state, 1, "5000.00")
    call = funded(state, 2, "900.00")
    real_status = PassValuer.status

    def status(self: PassValuer, account: Account) -> RiskStatus | None:
        if account.id == refused.id:
            raise decimal.Overflow("a figure beyond the arithmetic's range")
        return real_status(self, account)

    monkeypatch.setattr(PassValuer, "status", status)
    database = RecordingDatabase()
    watcher = Watcher(state, database)

    await watcher.run_pass(watcher._watched())

    assert database.event_types() == {call.id: [EventType.MARGIN_CALL.value]}
    assert refused.id not in watcher.last_pass


async def test_a_long_pass_gives_the_event_loop_turns() -> None:
    state = broker()
    for number in range(1, 3001):
        funded(state, number, "5000.00")
    watcher = Watcher(state, RecordingDatabase())
    turns = 0
    done = False

    async def count_turns() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    started = turns

    await watcher.run_pass(watcher._watched())

    done = True
    await counter
    assert turns - started > 1
    assert len(watcher.last_pass) == 3000
