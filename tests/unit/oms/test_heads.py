"""Where an account stands as this process last committed it (optimistic order entry,
ADR 0009): one order of an account at a time, each from the newest head known."""

from __future__ import annotations

import asyncio

from services.oms.store.changes import Head
from services.oms.store.heads import Heads


def _head(sequence: int, symbol: str = "EURUSD") -> Head:
    return Head(sequence, f"hash-{sequence}", symbol, None)


def test_the_newer_of_the_read_and_the_committed_head_of_the_same_symbol_wins() -> None:
    heads = Heads()
    heads.committed("a", _head(7))
    assert heads.newer("a", _head(5)) == _head(7)  # this process committed since the read
    assert heads.newer("a", _head(9)) == _head(9)  # another change committed since
    assert heads.newer("a", _head(5, "GBPUSD")) == _head(5, "GBPUSD")  # position unknown here
    assert heads.newer("b", _head(1)) == _head(1)


def test_only_the_most_recently_used_accounts_are_kept() -> None:
    heads = Heads(kept=2)
    heads.committed("a", _head(2))
    heads.committed("b", _head(2))
    heads.committed("a", _head(3))
    heads.committed("c", _head(2))
    assert heads.newer("b", _head(1)) == _head(1)  # forgotten
    assert heads.newer("a", _head(1)) == _head(3)


async def test_the_orders_of_one_account_go_one_at_a_time_others_in_parallel() -> None:
    heads = Heads()
    running: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}

    async def order(account: str) -> None:
        async with heads.serialized(account):
            running[account] += 1
            most[account] = max(most[account], running[account])
            await asyncio.sleep(0.01)
            running[account] -= 1

    both = [order("a") for _ in range(5)] + [order("b") for _ in range(5)]
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*both)
    elapsed = asyncio.get_running_loop().time() - started

    assert most == {"a": 1, "b": 1}
    assert elapsed < 0.09  # a and b overlapped (serial would take 0.1 s)
    assert not heads._locks  # nothing left behind
