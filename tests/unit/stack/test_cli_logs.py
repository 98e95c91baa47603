"""`tradingmesh logs` (stack/cli.py): components' logs and the FIX session logs, from a stack's
log folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import cli
from stack.paths import StackPaths


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackPaths:
    stack = StackPaths("t", tmp_path / "t")
    stack.fix_logs.mkdir(parents=True)
    stack.log("oms").write_text("oms started\n")
    for session in ("FIX.4.4-TRADINGMESH-LP-ALPHA", "FIX.4.4-LP-ALPHA-TRADINGMESH"):
        lines = [f"20261206-10:00:0{i}.000000 EVT line {i} of {session}" for i in range(30)]
        (stack.fix_logs / f"{session}.log").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(StackPaths, "for_name", classmethod(lambda cls, name: stack))
    return stack


def test_logs_fix_shows_the_last_lines_of_every_fix_session_log(
    paths: StackPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["logs", "--name", "t", "fix"]) == 0

    out = capsys.readouterr().out
    assert "==> FIX.4.4-TRADINGMESH-LP-ALPHA (" in out
    assert "==> FIX.4.4-LP-ALPHA-TRADINGMESH (" in out
    assert "line 29 of FIX.4.4-TRADINGMESH-LP-ALPHA" in out
    assert "line 9 of FIX.4.4-TRADINGMESH-LP-ALPHA" not in out  # the last 20 lines only
    assert "oms started" not in out


@pytest.mark.parametrize("name", ["TRADINGMESH-LP-ALPHA", "FIX.4.4-TRADINGMESH-LP-ALPHA"])
def test_one_session_is_shown_whole_by_its_name(
    paths: StackPaths, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert cli.main(["logs", "--name", "t", name]) == 0

    out = capsys.readouterr().out
    assert out.count("of FIX.4.4-TRADINGMESH-LP-ALPHA") == 30
    assert "LP-ALPHA-TRADINGMESH" not in out


def test_everything_lists_components_then_fix_sessions(
    paths: StackPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["logs", "--name", "t"]) == 0

    out = capsys.readouterr().out
    assert out.index("==> oms (") < out.index("==> fix/FIX.4.4-LP-ALPHA-TRADINGMESH (")


def test_an_unknown_log_names_the_components_and_sessions_there_are(
    paths: StackPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["logs", "--name", "t", "nope"]) == 1

    err = capsys.readouterr().err
    assert "components: oms" in err
    assert "FIX.4.4-TRADINGMESH-LP-ALPHA" in err
