"""FIX session logs (services/platform/fix_log.py): one file per session, no password on disk,
and a clear sentence for every logout, reject, resend request and sequence reset."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as fix44

from services.platform.fix_log import SessionLog
from services.platform.fix_log import describe
from services.platform.fix_log import fix_log_dir
from services.platform.fix_log import record
from services.platform.fix_log import redact
from services.platform.fix_log import session_log

SESSION = fix.SessionID("FIX.4.4", "TRADINGMESH", "LP-ALPHA")


def message(kind: type[fix.Message], *fields: tuple[int, str]) -> fix.Message:
    built = kind()
    for tag, value in fields:
        built.setField(fix.StringField(tag, value))
    return built


def logon(password: str) -> fix.Message:
    built = message(fix44.Logon, (98, "0"), (108, "10"), (553, "tradingmesh"), (554, password))
    for tag, value in ((49, "TRADINGMESH"), (56, "LP-ALPHA"), (34, "1")):
        built.getHeader().setField(fix.StringField(tag, value))
    return built


def test_passwords_are_blanked_and_other_fields_kept() -> None:
    raw = "8=FIX.4.4\x019=70\x0135=A\x01553=tm\x01554=s3cret\x01925=n3w\x0110=123\x01"

    assert redact(raw) == "8=FIX.4.4\x019=70\x0135=A\x01553=tm\x01554=***\x01925=***\x0110=123\x01"
    assert redact("8=FIX.4.4\x0135=0\x01") == "8=FIX.4.4\x0135=0\x01"


def test_a_session_log_is_one_file_per_session_private_and_holds_no_password(
    tmp_path: Path,
) -> None:
    log = SessionLog(tmp_path / "fix")

    log.outgoing(SESSION, logon("s3cret-pw"))
    log.incoming(SESSION, message(fix44.Heartbeat))
    log.event(SESSION, "logged on")
    log.close()

    path = tmp_path / "fix" / "FIX.4.4-TRADINGMESH-LP-ALPHA.log"
    lines = path.read_text().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["OUT", "IN", "EVT"]
    assert "|35=A|" in lines[0]
    assert "|553=tradingmesh|554=***|" in lines[0]
    assert "s3cret-pw" not in path.read_text()
    assert lines[2].endswith(" EVT logged on")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "fix").stat().st_mode) == 0o700


def test_the_log_folder_is_the_stacks_when_set(tmp_path: Path) -> None:
    assert fix_log_dir(tmp_path / "d", {"TM_FIX_LOG_DIR": "/x/logs/fix"}) == Path("/x/logs/fix")
    assert fix_log_dir(tmp_path / "d", {}) == tmp_path / "d"


@pytest.mark.parametrize(
    ("received", "incoming", "sentence"),
    [
        (
            message(fix44.Logout, (58, "MsgSeqNum too low, expecting 12 but received 7")),
            True,
            "logout received: MsgSeqNum too low, expecting 12 but received 7",
        ),
        (message(fix44.Logout), False, "logout sent: (no reason given)"),
        (
            message(
                fix44.Reject,
                (45, "5"),
                (371, "40"),
                (372, "D"),
                (373, "5"),
                (58, "Value is incorrect"),
            ),
            True,
            "session reject received: message 5 (NewOrderSingle D), tag 40, reason 5 (value is"
            " incorrect (out of range) for this tag): Value is incorrect",
        ),
        (
            message(
                fix44.BusinessMessageReject,
                (45, "9"),
                (372, "H"),
                (379, "h-1"),
                (380, "3"),
                (58, "not supported"),
            ),
            True,
            "business reject received: message 9 (OrderStatusRequest H), id h-1, reason 3"
            " (unsupported message type): not supported",
        ),
        (
            message(fix44.MarketDataRequestReject, (262, "md-1"), (281, "0"), (58, "NOPE")),
            True,
            "market data request md-1 refused (received), reason 0 (unknown symbol): NOPE",
        ),
        (
            message(fix44.ResendRequest, (7, "4"), (16, "0")),
            False,
            "resend request sent: messages 4 to the latest",
        ),
    ],
)
def test_logouts_rejects_and_resends_are_described_with_their_reason(
    received: fix.Message, incoming: bool, sentence: str
) -> None:
    described = describe(received, incoming)

    assert described is not None
    assert described[1] == sentence


def test_other_messages_are_not_described() -> None:
    assert describe(message(fix44.Heartbeat), True) is None


def test_record_writes_the_message_and_its_reason_to_the_session_log_and_the_process_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session_log = SessionLog(tmp_path)
    logout = message(fix44.Logout, (58, "bad credentials"))

    with caplog.at_level(logging.INFO):
        record(logging.getLogger("test"), session_log, logout, SESSION, incoming=True)
    session_log.close()

    lines = (tmp_path / SessionLog.file_name(SESSION)).read_text().splitlines()
    assert [line.split(" ", 2)[1:] for line in lines][1] == [
        "EVT",
        "logout received: bad credentials",
    ]
    assert caplog.messages == ["FIX.4.4:TRADINGMESH->LP-ALPHA: logout received: bad credentials"]


def test_market_data_refreshes_are_left_out_unless_asked_for_and_the_log_says_so(
    tmp_path: Path,
) -> None:
    refresh = message(fix44.MarketDataIncrementalRefresh, (262, "md-1"))
    quiet, full = (
        session_log(tmp_path / "quiet", {}),
        session_log(tmp_path / "full", {"TM_FIX_LOG_MARKET_DATA": "Y"}),
    )

    for log in (quiet, full):
        log.incoming(SESSION, refresh)
        log.incoming(SESSION, refresh)
        log.incoming(SESSION, message(fix44.Heartbeat))
        log.close()

    name = SessionLog.file_name(SESSION)
    quiet_lines = (tmp_path / "quiet" / name).read_text().splitlines()
    assert [line.split(" ", 2)[1] for line in quiet_lines] == ["EVT", "IN"]
    assert "TM_FIX_LOG_MARKET_DATA=Y" in quiet_lines[0]
    assert "|35=0|" in quiet_lines[1]
    full_lines = (tmp_path / "full" / name).read_text().splitlines()
    assert ["|35=X|" in line for line in full_lines] == [True, True, False]
