"""FIX over TLS (ADR 0018): the LP simulators accept TLS only and require a client certificate
from the platform CA; the platform's initiators (services/platform/fix.py) check each LP's
certificate against that LP's CA, say why a session cannot log on, and take a renewed
certificate of ours at the next logon."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import quickfix as fix

from services.platform.certificates import Issued
from services.platform.certificates import Subscriber
from services.platform.fix import ClientTls
from services.platform.fix import InitiatorSessions
from services.platform.fix import LpEndpoint
from services.platform.fix import initiator_settings
from stack import pki
from stack.components.lpsim import QA_COMP_ID
from stack.ports import HOST
from stack.ports import Ports
from stack.vault import VaultAdmin
from tests.integration.conftest import RunningStack
from tests.integration.fix_client import fix_session
from tests.integration.fix_client import stack_tls
from tests.integration.support.lps import lp_logins
from tests.integration.support.waiting import eventually
from tests.local_ca import LocalCA

LP = "lp-alpha"
ANOTHER_CA = "not the platform CA"


class Certificate:
    """Our certificate as `services.platform.certificates.CertificateSource` hands it out,
    renewed when the test says."""

    def __init__(self, issued: Issued) -> None:
        self.current = issued
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def renew(self, issued: Issued) -> None:
        self.current = issued
        for subscriber in self._subscribers:
            subscriber(issued)


class QaSessions(InitiatorSessions):
    """The platform's initiator code, as the QA comp id (the services hold their own)."""

    def __init__(self, running_stack: RunningStack, store: Path, tls: ClientTls) -> None:
        port = Ports(running_stack.state.base_port).lp_fix(LP)
        endpoints = [LpEndpoint(LP, HOST, port)]
        login = lp_logins(running_stack)[LP]
        super().__init__(
            endpoints,
            {LP: (login.username, login.password)},
            initiator_settings(
                endpoints,
                QA_COMP_ID,
                store,
                persist_messages=False,
                reset_on_logon=True,
                reconnect_seconds=1,
                heartbeat_seconds=5,
            ),
            tls,
        )
        self.logged_on = False

    def on_logon(self, session: fix.SessionID) -> None:
        self.logged_on = True

    def on_logout(self, session: fix.SessionID) -> None:
        self.logged_on = False

    def on_error(self, session: fix.SessionID, text: str) -> None:
        pass

    def on_app_message(self, message: fix.Message, session: fix.SessionID) -> None:
        pass


@pytest.fixture
def vault(running_stack: RunningStack) -> VaultAdmin:
    state = running_stack.state
    return VaultAdmin(state.vault.address, Path(state.vault.root_token_file).read_text().strip())


@pytest.fixture
def start_session(
    running_stack: RunningStack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[[Path, Certificate], QaSessions]]:
    """Starts the platform's initiator to the LP, trusting `lp_ca` for the LP and presenting
    `ours`, its log captured; stopped when the test ends."""
    caplog.set_level(logging.INFO, logger="services.platform.fix")
    started: list[QaSessions] = []

    def start(lp_ca: Path, ours: Certificate) -> QaSessions:
        session = QaSessions(running_stack, tmp_path / "store", ClientTls({LP: lp_ca}, ours))
        started.append(session)
        session.start()
        return session

    yield start
    for each in started:
        each.stop()


def _said(caplog: pytest.LogCaptureFixture, *words: str) -> Callable[[], bool]:
    return lambda: any(
        all(word in record.getMessage() for word in words) for record in caplog.records
    )


def test_a_plaintext_logon_to_a_simulator_is_refused(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    login = lp_logins(running_stack)[LP]
    port = Ports(running_stack.state.base_port).lp_fix(LP)
    with fix_session(
        port, LP.upper(), login.username, login.password.reveal(), tmp_path / "plain", tls_dir=None
    ) as client:
        assert not client.app.logged_on.wait(5)
    # The same logon over TLS, as the operator, is accepted.
    with fix_session(
        port,
        LP.upper(),
        login.username,
        login.password.reveal(),
        tmp_path / "tls",
        tls_dir=stack_tls(running_stack),
    ) as client:
        assert client.app.logged_on.wait(15)


def test_an_lp_whose_certificate_is_not_from_its_configured_ca_is_refused_and_we_say_why(
    vault: VaultAdmin,
    start_session: Callable[[Path, Certificate], QaSessions],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_ca = LocalCA(ANOTHER_CA).write_ca(tmp_path / "other-ca.pem")
    session = start_session(other_ca, Certificate(pki.issue(vault, pki.OPERATOR)))
    eventually(
        _said(caplog, LP, "cannot log on", "does not verify against its CA"),
        15,
        "the reason logged",
    )
    assert not session.logged_on


def test_our_certificate_from_another_ca_is_refused_and_a_renewed_one_logs_on(
    running_stack: RunningStack,
    vault: VaultAdmin,
    start_session: Callable[[Path, Certificate], QaSessions],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = Certificate(LocalCA(ANOTHER_CA).issue(pki.OPERATOR))
    session = start_session(stack_tls(running_stack) / "ca.pem", ours)
    eventually(_said(caplog, LP, "cannot log on", "TLS handshake failed"), 15, "the reason logged")
    assert not session.logged_on
    # Renewed (here: from the platform CA): the LP's initiator reads the new files and logs on.
    ours.renew(pki.issue(vault, pki.OPERATOR))
    eventually(lambda: session.logged_on, 20, "the renewed certificate logs on")
    assert _said(caplog, LP, "next logon presents our renewed certificate")()
    key = tmp_path / "store" / "tls" / "client-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
