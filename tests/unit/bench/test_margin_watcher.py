"""The margin watcher benchmark's options and state (bench.margin_watcher): what it builds is
what it says, and a pass over it writes exactly the margin events the stale share calls for."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC
from datetime import datetime

import pytest

from bench.margin_watcher import CATALOGUE
from bench.margin_watcher import StateSpec
from bench.margin_watcher import build_state
from bench.margin_watcher import one_pass
from bench.margin_watcher import pair_of
from bench.margin_watcher import parse_args
from services.risk.valuation import value_account
from tradingmesh.trading.margin import RiskStatus


def test_the_defaults_are_the_spec_target_and_the_options_are_checked() -> None:
    args = parse_args([])
    assert args.spec == StateSpec()
    assert args.spec.accounts == 100_000
    assert parse_args(["--currencies", "usd, jpy", "--positions", "3"]).spec.currencies == (
        "USD",
        "JPY",
    )
    for bad in (
        ["--currencies", "XAU"],
        ["--symbols", "0"],
        ["--crossing", "2"],
        ["--passes", "0"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_pairs_take_the_market_conventions_base() -> None:
    assert (pair_of("USD", "EUR"), pair_of("JPY", "GBP"), pair_of("USD", "XAU")) == (
        "EURUSD",
        "GBPJPY",
        "XAUUSD",
    )


def test_the_state_has_every_account_priced_and_the_watchers_margin_state_matches_it() -> None:
    spec = StateSpec(accounts=400, positions=3, symbols=10, groups=4, currencies=("USD", "JPY"))
    now = datetime.now(UTC)

    built = build_state(spec, now)

    state = built.state
    assert len(state.accounts) == 400
    assert len(state.positions) == built.positions == 1200
    assert {p.symbol for p in state.positions.values()} == set(CATALOGUE[:10])
    statuses: Counter[RiskStatus] = Counter()
    for account in state.accounts.values():
        valuation = value_account(state, account, now, None)
        assert valuation is not None
        assert valuation.complete
        statuses[valuation.status] += 1
        episode = built.episodes.get(account.id)
        assert (episode.status if episode else RiskStatus.OK) is valuation.status
    assert statuses == built.statuses
    assert statuses[RiskStatus.OK] > 350


async def test_a_pass_writes_one_event_per_stale_account_and_nothing_else() -> None:
    built = build_state(StateSpec(accounts=600, positions=2), datetime.now(UTC))
    stop_outs = built.statuses[RiskStatus.STOP_OUT]

    result = await one_pass(built, 0.05, random.Random(7))

    assert result.accounts == 600
    assert result.expected_events == 30
    assert result.transactions == 30
    assert result.stop_outs_started >= stop_outs
