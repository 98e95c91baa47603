"""Wiring of the notification service: what it serves and what it connects to (ADR 0011).

Settings of its own, besides the platform's (ADR 0004):
    TM_NOTIFICATION_MARGIN_CALL_INTERVAL_S  at most one margin call notified per account in
                                            this many seconds (default 300)
    TM_NOTIFICATION_EMAIL_MAX_ATTEMPTS      an email is DEAD after this many failed attempts
                                            (default 6)
    TM_NOTIFICATION_EMAIL_RETRY_BASE_MS     the wait after the first failure; doubled after each
                                            further one (default 1000)
    TM_NOTIFICATION_EMAIL_RETRY_CAP_S       the longest wait between attempts (default 600)
    TM_NOTIFICATION_EMAIL_WORKERS           email batches sent at once, each over its own SMTP
                                            connection (default 2)
    TM_NOTIFICATION_DAILY_STATEMENT_DELAY_S a day's statements end this long after its rollover
                                            completed, and are made then: the day's SWAP
                                            bookings and the replica catch up (default 30)
    TM_REPORTING_ADDR                       the reporting service's gRPC address (host:port),
                                            for the daily statements; unset: none are made

The SMTP relay (host, port, username, password, sender) is read from Vault,
`secret/tradingmesh/smtp`. Start order: connections, the live hub (core NATS), the email sender,
the daily statements job, the three event consumers (which catch up with whatever happened
while the service was down), the retention job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.notification import server
from services.notification.domain import RetryPolicy
from services.notification.events import ACCOUNT
from services.notification.events import FOLLOWED
from services.notification.events import OMS
from services.notification.events import RISK
from services.notification.events import ROLLOVER_COMPLETED
from services.notification.events import Notifier
from services.notification.live import LiveHub
from services.notification.sender import SMTP_PATH
from services.notification.sender import EmailSender
from services.notification.sender import Relay
from services.notification.statements import DailyStatements
from services.notification.statements import ReportingClient
from services.notification.store import Stored
from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.inbox import EventConsumer
from services.platform.resources import Resources
from services.platform.retention import Retention
from services.platform.retention import RetentionRule
from services.platform.retention import inbox_rule
from services.platform.runtime import Runtime
from services.platform.secrets import EDGE_PATH
from services.platform.secrets import Secret
from services.platform.settings import EnvReader
from services.platform.settings import whole_number

log = logging.getLogger(__name__)

SCHEMA = "notification"
# A steady trickle of events makes batches (ADR 0009); a notification waits at most this long.
LINGER_SECONDS = 0.5
# Old rows deleted (services/platform/retention.py): the contract keeps notifications 90 days;
# their deliveries go with them (ON DELETE CASCADE).
RETENTION = (
    inbox_rule(SCHEMA),
    RetentionRule("notification.notifications", "created_at", timedelta(days=90)),
)


@dataclass(frozen=True)
class NotificationConfig:
    margin_call_interval: timedelta
    retry: RetryPolicy
    email_workers: int = 2
    statement_delay: timedelta = timedelta(seconds=30)
    reporting_address: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NotificationConfig:
        read = EnvReader(environ)
        interval = read.get("TM_NOTIFICATION_MARGIN_CALL_INTERVAL_S", whole_number(0), 300)
        attempts = read.get("TM_NOTIFICATION_EMAIL_MAX_ATTEMPTS", whole_number(1), 6)
        base_ms = read.get("TM_NOTIFICATION_EMAIL_RETRY_BASE_MS", whole_number(1), 1000)
        cap_s = read.get("TM_NOTIFICATION_EMAIL_RETRY_CAP_S", whole_number(1), 600)
        workers = read.get("TM_NOTIFICATION_EMAIL_WORKERS", whole_number(1, 32), 2)
        delay = read.get("TM_NOTIFICATION_DAILY_STATEMENT_DELAY_S", whole_number(0), 30)
        reporting_address = read.get("TM_REPORTING_ADDR", str, "")
        read.check()
        return cls(
            margin_call_interval=timedelta(seconds=interval),
            retry=RetryPolicy(
                base=timedelta(milliseconds=base_ms),
                cap=timedelta(seconds=cap_s),
                max_attempts=attempts,
            ),
            email_workers=workers,
            statement_delay=timedelta(seconds=delay),
            reporting_address=reporting_address,
        )


def relay_from(vault: Vault) -> Relay:
    values = vault.read(SMTP_PATH)
    try:
        return Relay(
            host=values["host"].reveal(),
            port=int(values["port"].reveal()),
            username=values["username"].reveal() if "username" in values else "",
            password=values.get("password", Secret("")),
            sender=values["sender"].reveal(),
        )
    except (KeyError, ValueError) as error:
        raise SystemExit(f"notification: secret/{SMTP_PATH} is incomplete ({error})") from None


class NotificationRuntime(Runtime):
    """Everything the notification process runs besides the gRPC server, started in order."""

    def __init__(self, settings: Settings, vault: Vault, config: NotificationConfig) -> None:
        super().__init__()
        self.vault = vault
        self.config = config
        self.resources = Resources(settings, vault)
        self.hub = LiveHub()
        self.parts = server.NotificationParts(self.hub)
        self.sender: EmailSender | None = None
        self.statements: DailyStatements | None = None

    def _announce(self, stored: list[Stored]) -> None:
        self.hub.announce(stored)
        if self.sender is not None:
            self.sender.wake()

    def _rollover_recorded(self) -> None:
        if self.statements is not None:
            self.statements.wake()

    async def open(self) -> None:
        await self.started(self.resources.open(), self.resources.close)
        db = self.resources.db
        self.parts.db = db
        await self.started(self.hub.start(self.resources.nats), self.hub.stop)
        self.sender = EmailSender(
            db, relay_from(self.vault), self.config.retry, workers=self.config.email_workers
        )
        self.sender.start()
        self.add_stop(self.sender.stop)
        if self.config.reporting_address:
            (edge_token,) = self.vault.read_keys(EDGE_PATH, "token")
            reporting = ReportingClient(self.config.reporting_address, edge_token)
            self.statements = DailyStatements(db, reporting, self._announce)
            self.statements.start()
            self.add_stop(self.statements.stop)
        else:
            log.warning("TM_REPORTING_ADDR is not set: no daily statements are made")
        notifier = Notifier(
            self.config.margin_call_interval,
            self._announce,
            statement_delay=self.config.statement_delay,
            rollover_recorded=self._rollover_recorded,
        )

        account = FOLLOWED - set(OMS) - set(RISK)
        for name, subjects, followed in (
            ("notification-oms", "oms.>", frozenset({*OMS, ROLLOVER_COMPLETED})),
            ("notification-risk", "risk.>", frozenset(RISK)),
            ("notification-account", "account.>", frozenset(account | set(ACCOUNT))),
        ):
            consumer = EventConsumer(
                name,
                subjects,
                db,
                notifier.handle,
                inbox=SCHEMA,
                events=followed.__contains__,
                linger=LINGER_SECONDS,
                before_commit=notifier.before_commit,
            )
            await self.started(consumer.start(self.resources.jetstream), consumer.stop)
        retention = Retention(db, RETENTION)
        await self.started(retention.start(), retention.stop)


def build(settings: Settings, vault: Vault, config: NotificationConfig) -> ServiceSpec:
    runtime = NotificationRuntime(settings, vault, config)
    return runtime.spec("notification", [server.NotificationService(runtime.parts)])
