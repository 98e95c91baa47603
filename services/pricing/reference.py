"""What pricing prices with: instruments, the groups' markups and offers, account → group.

Instruments are pricing's own (`pricing.instruments`). Groups, their instrument settings and the
trading accounts are the account domain's: pricing keeps a copy in its schema, fed by the account
events (ADR 0006) through a durable JetStream consumer. Each event is applied once (its id goes
into `pricing.inbox` in the same transaction) and only if newer than what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.db import Database
from services.pricing.engine import GroupConfig
from services.pricing.model import Markup, MarkupKind
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.common.v1.pricing_pb2 import MarkupType
from tradingmesh.pricing.v1 import pricing_pb2

log = logging.getLogger(__name__)

CONSUMER = "pricing-reference"
_Event = (
    account_events_pb2.ClientGroupChanged
    | account_events_pb2.GroupInstrumentSettingsChanged
    | account_events_pb2.TradingAccountCreated
)
SUBJECTS: dict[str, type[_Event]] = {
    "account.client_group.changed": account_events_pb2.ClientGroupChanged,
    "account.client_group.instrument_settings_changed": (
        account_events_pb2.GroupInstrumentSettingsChanged
    ),
    "account.trading_account.created": account_events_pb2.TradingAccountCreated,
}
_KIND: dict[int, MarkupKind] = {
    MarkupType.MARKUP_TYPE_POINTS: MarkupKind.POINTS,
    MarkupType.MARKUP_TYPE_PERCENT: MarkupKind.PERCENT,
}


@dataclass(frozen=True)
class AccountRef:
    account_id: str
    user_id: str
    group_id: str


def _markup_kind(value: int) -> str:
    return _KIND.get(value, MarkupKind.POINTS).value


class Reference:
    """In-memory copy of the reference data, loaded at start and kept current by events."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.instruments: dict[str, pricing_pb2.Instrument] = {}
        self.digits: dict[str, int] = {}
        self.groups: dict[str, GroupConfig] = {}
        self.accounts: dict[str, AccountRef] = {}
        self.on_groups_changed: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        async with self.db.read_session() as session:
            await self._load_instruments(session)
            await self._load_groups(session)
            rows = await session.execute(
                text("SELECT account_id::text, user_id::text, group_id::text FROM pricing.accounts")
            )
            self.accounts = {r[0]: AccountRef(r[0], r[1], r[2]) for r in rows}

    async def _load_instruments(self, session: AsyncSession) -> None:
        rows = await session.execute(
            text(
                "SELECT symbol, description, asset_class, base_currency, quote_currency, digits,"
                " tick_size, contract_size, min_lot, max_lot, lot_step, margin_rate,"
                " trading_status, updated_at FROM pricing.instruments ORDER BY symbol"
            )
        )
        instruments = {}
        for r in rows.mappings():
            instrument = pricing_pb2.Instrument(
                symbol=r["symbol"],
                description=r["description"],
                asset_class=pricing_pb2.AssetClass.Value(f"ASSET_CLASS_{r['asset_class']}"),
                base_currency=r["base_currency"].strip(),
                quote_currency=r["quote_currency"].strip(),
                digits=r["digits"],
                tick_size=_text(r["tick_size"]),
                contract_size=_text(r["contract_size"]),
                min_lot=_text(r["min_lot"]),
                max_lot=_text(r["max_lot"]),
                lot_step=_text(r["lot_step"]),
                margin_rate=_text(r["margin_rate"]),
                trading_status=pricing_pb2.TradingStatus.Value(
                    f"TRADING_STATUS_{r['trading_status']}"
                ),
            )
            instrument.update_time.FromDatetime(r["updated_at"])
            instruments[instrument.symbol] = instrument
        self.instruments = instruments
        self.digits = {s: i.digits for s, i in instruments.items()}

    async def _load_groups(self, session: AsyncSession) -> None:
        groups = await session.execute(
            text("SELECT group_id::text, markup_type, markup FROM pricing.groups")
        )
        defaults = {r[0]: Markup(MarkupKind(r[1]), Decimal(r[2]).normalize()) for r in groups}
        offers = await session.execute(
            text(
                "SELECT group_id::text, symbol, markup_type, markup FROM pricing.group_instruments"
                " WHERE enabled"
            )
        )
        markups: dict[str, dict[str, Markup]] = {g: {} for g in defaults}
        for group_id, symbol, kind, value in offers:
            if group_id not in defaults or symbol not in self.instruments:
                continue
            markups[group_id][symbol] = (
                Markup(MarkupKind(kind), Decimal(value).normalize())
                if kind is not None
                else defaults[group_id]
            )
        self.groups = {g: GroupConfig(g, m) for g, m in markups.items()}

    def account(self, account_id: str) -> AccountRef | None:
        return self.accounts.get(account_id)

    def offered(self, group_id: str, symbol: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and symbol in group.markups

    # -- events --------------------------------------------------------------------------------

    async def start(self, js: JetStreamContext) -> None:
        subscription = await js.pull_subscribe(
            "account.>",
            durable=CONSUMER,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
            ),
        )
        self._task = asyncio.create_task(self._consume(subscription), name="pricing-reference")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _consume(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(batch=100, timeout=1)
            except (NatsTimeoutError, TimeoutError):  # nats-py raises either when idle
                continue
            except Exception:
                log.exception("reading account events failed; retrying")
                await asyncio.sleep(1)
                continue
            changed = False
            for message in messages:
                kind = SUBJECTS.get(message.subject)
                if kind is not None:
                    event = kind.FromString(message.data)
                    try:
                        changed |= await self.apply(message.subject, event)
                    except Exception:
                        log.exception("applying an account event failed; it will be redelivered")
                        continue
                await message.ack()
            if changed:
                # From the primary: a replica may not have the change yet.
                async with self.db.transaction() as session:
                    await self._load_groups(session)
                self.on_groups_changed()

    async def apply(self, subject: str, event: _Event) -> bool:
        """Applies one event once; True if the groups' pricing may have changed."""
        version = event.metadata.occurred_at.ToMicroseconds()
        async with self.db.transaction() as session:
            fresh = await session.execute(
                text(
                    "INSERT INTO pricing.inbox (event_id, subject) VALUES (:id, :subject)"
                    " ON CONFLICT DO NOTHING RETURNING event_id"
                ),
                {"id": event.metadata.event_id, "subject": subject},
            )
            if fresh.first() is None:
                return False  # seen before
            if isinstance(event, account_events_pb2.ClientGroupChanged):
                group = event.client_group
                await session.execute(
                    text(
                        "INSERT INTO pricing.groups (group_id, name, markup_type, markup, version)"
                        " VALUES (:id, :name, :kind, :markup, :version)"
                        " ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name,"
                        " markup_type = EXCLUDED.markup_type, markup = EXCLUDED.markup,"
                        " version = EXCLUDED.version, updated_at = now()"
                        " WHERE pricing.groups.version < EXCLUDED.version"
                    ),
                    {
                        "id": group.id,
                        "name": group.name,
                        "kind": _markup_kind(group.spread_markup_type),
                        "markup": Decimal(group.spread_markup or "0"),
                        "version": version,
                    },
                )
                return True
            if isinstance(event, account_events_pb2.GroupInstrumentSettingsChanged):
                settings = event.settings
                override = settings.HasField("spread_markup")
                await session.execute(
                    text(
                        "INSERT INTO pricing.group_instruments (group_id, symbol, enabled,"
                        " markup_type, markup, version)"
                        " VALUES (:group, :symbol, :enabled, :kind, :markup, :version)"
                        " ON CONFLICT (group_id, symbol) DO UPDATE SET enabled = EXCLUDED.enabled,"
                        " markup_type = EXCLUDED.markup_type, markup = EXCLUDED.markup,"
                        " version = EXCLUDED.version, updated_at = now()"
                        " WHERE pricing.group_instruments.version < EXCLUDED.version"
                    ),
                    {
                        "group": settings.group_id,
                        "symbol": settings.symbol,
                        "enabled": settings.enabled,
                        "kind": _markup_kind(settings.spread_markup_type) if override else None,
                        "markup": Decimal(settings.spread_markup) if override else None,
                        "version": version,
                    },
                )
                return True
            account = event.account
            await session.execute(
                text(
                    "INSERT INTO pricing.accounts (account_id, user_id, group_id)"
                    " VALUES (:id, :user, :group) ON CONFLICT (account_id) DO NOTHING"
                ),
                {"id": account.id, "user": account.user_id, "group": account.group_id},
            )
            self.accounts[account.id] = AccountRef(account.id, account.user_id, account.group_id)
            return False


def _text(value: Decimal) -> str:
    """A NUMERIC as a plain decimal string without trailing zeros ("0.01", "100000")."""
    normalized = value.normalize()
    return format(normalized, "f")
