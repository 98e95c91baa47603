"""The notification service's SQL (schema `notification`, migrations 0019 and 0021; ADR 0011).

Writes come in batches: the consumer writes a batch's notifications and their deliveries with
one statement, its copies of users and accounts with one statement each; the sender claims due
deliveries with one statement and records their outcomes with one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import date
from datetime import datetime
from typing import Any
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.notification.domain import EMAIL_OFF_BY_DEFAULT
from services.notification.domain import EMAIL_REQUIRED
from services.notification.domain import Draft
from services.notification.domain import MarginCallState
from services.notification.domain import kind_name
from services.notification.domain import severity_name

# A visible notification: the caller's accounts' ones, and the caller's own (a user, not an API
# key) ones about themselves.
VISIBLE: Final = (
    "(n.account_id = ANY(CAST(:accounts AS uuid[]))"
    " OR (CAST(:user_id AS uuid) IS NOT NULL AND n.user_id = CAST(:user_id AS uuid)))"
)
_COLUMNS: Final = (
    "n.id, n.position, n.user_id, n.account_id, n.kind, n.severity, n.title, n.body, n.details,"
    " n.created_at, n.read_at"
)
CLAIM_LEASE_SECONDS: Final = 60
# Whether a notification `n`'s email is on, given its user's preference row `p` (or none): the
# kinds whose email is required always, else the user's setting, else the kind's default.
_EMAIL_ON: Final = (
    "(n.kind = ANY(CAST(:email_required AS text[]))"
    " OR COALESCE(p.email_enabled, n.kind <> ALL(CAST(:email_off_by_default AS text[]))))"
)
_EMAIL_KINDS: Final = {
    "email_required": sorted(kind_name(k) for k in EMAIL_REQUIRED),
    "email_off_by_default": sorted(kind_name(k) for k in EMAIL_OFF_BY_DEFAULT),
}


@dataclass(frozen=True)
class Viewer:
    """Whose notifications a call may see: a user's own and their accounts', or (an API key)
    only its accounts'."""

    user_id: str | None
    account_ids: frozenset[str]

    def params(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "accounts": sorted(self.account_ids)}


@dataclass(frozen=True)
class Stored:
    """A notification as stored."""

    id: str
    position: int
    user_id: str | None
    account_id: str | None
    kind: str
    severity: str
    title: str
    body: str
    details: dict[str, str]
    created_at: datetime
    read_at: datetime | None


def _stored(row: Any) -> Stored:
    details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
    return Stored(
        id=str(row.id),
        position=int(row.position),
        user_id=str(row.user_id) if row.user_id else None,
        account_id=str(row.account_id) if row.account_id else None,
        kind=row.kind,
        severity=row.severity,
        title=row.title,
        body=row.body,
        details={str(k): str(v) for k, v in details.items()},
        created_at=row.created_at,
        read_at=row.read_at,
    )


def _values(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> tuple[str, dict[str, Any]]:
    """`(CAST(:c_0 AS type), ...), (...)` for the rows, and the parameters."""
    params: dict[str, Any] = {}
    groups = []
    for index, row in enumerate(rows):
        cells = []
        for column, sql_type in columns:
            name = f"{column}_{index}"
            params[name] = row[column]
            cells.append(f"CAST(:{name} AS {sql_type})")
        groups.append(f"({', '.join(cells)})")
    return ", ".join(groups), params


# ---- copies of users and accounts --------------------------------------------------------------


async def save_users(session: AsyncSession, users: Iterable[Mapping[str, Any]]) -> None:
    rows = list(users)
    if not rows:
        return
    values, params = _values(
        rows, (("id", "uuid"), ("email", "text"), ("display_name", "text"), ("status", "text"))
    )
    await session.execute(
        text(
            f"INSERT INTO notification.users (id, email, display_name, status) VALUES {values}"
            " ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email,"
            " display_name = EXCLUDED.display_name, status = EXCLUDED.status, updated_at = now()"
        ),
        params,
    )


async def save_accounts(session: AsyncSession, accounts: Iterable[Mapping[str, Any]]) -> None:
    rows = list(accounts)
    if not rows:
        return
    values, params = _values(
        rows,
        (("id", "uuid"), ("user_id", "uuid"), ("account_number", "text"), ("currency", "text")),
    )
    await session.execute(
        text(
            "INSERT INTO notification.accounts (id, user_id, account_number, currency)"
            f" VALUES {values} ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id,"
            " account_number = EXCLUDED.account_number, currency = EXCLUDED.currency"
        ),
        params,
    )


# ---- writing notifications ---------------------------------------------------------------------


async def insert_notifications(
    session: AsyncSession, drafts: Sequence[tuple[str, Draft]]
) -> list[Stored]:
    """Inserts (id, draft) pairs with their email deliveries in ONE statement; returns the
    notifications stored now (an event seen before, by `event_id`, makes none). A notification
    whose email is off for its user now gets no delivery (`_EMAIL_ON`): the kinds off by default
    (a trader's own fills, ...) cost no delivery, claim or outcome unless the user switched them
    on; one whose owner is not known here yet gets one, and the sender decides."""
    if not drafts:
        return []
    rows = [
        {
            "id": notification_id,
            "event_id": d.event_id,
            "user_id": d.user_id,
            "account_id": d.account_id,
            "kind": kind_name(d.kind),
            "severity": severity_name(d.severity),
            "title": d.title,
            "body": d.body,
            "details": json.dumps(dict(d.details)),
            "created_at": d.created_at,
        }
        for notification_id, d in drafts
    ]
    values, params = _values(
        rows,
        (
            ("id", "uuid"),
            ("event_id", "text"),
            ("user_id", "uuid"),
            ("account_id", "uuid"),
            ("kind", "text"),
            ("severity", "text"),
            ("title", "text"),
            ("body", "text"),
            ("details", "jsonb"),
            ("created_at", "timestamptz"),
        ),
    )
    result = await session.execute(
        text(
            "WITH n AS (INSERT INTO notification.notifications"
            " (id, event_id, user_id, account_id, kind, severity, title, body, details,"
            f" created_at) VALUES {values} ON CONFLICT (event_id) DO NOTHING"
            " RETURNING id, position, user_id, account_id, kind, severity, title, body, details,"
            " created_at, read_at),"
            " d AS (INSERT INTO notification.deliveries (notification_id, next_attempt_at)"
            " SELECT n.id, now() FROM n"
            " LEFT JOIN notification.accounts a ON a.id = n.account_id"
            " LEFT JOIN notification.preferences p"
            " ON p.user_id = COALESCE(n.user_id, a.user_id) AND p.kind = n.kind"
            # An owner not known yet (the account's events still on their way): the sender
            # decides when it sends, as it does for every delivery.
            f" WHERE COALESCE(n.user_id, a.user_id) IS NULL OR {_EMAIL_ON})"
            f" SELECT {_COLUMNS} FROM n ORDER BY n.position"
        ),
        {**params, **_EMAIL_KINDS},
    )
    return [_stored(row) for row in result]


async def margin_states(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, MarginCallState]:
    """The throttle's state of each account, locked until the transaction ends (a replica's
    consumer applying another batch of the same account waits)."""
    if not account_ids:
        return {}
    await session.execute(
        text(
            "INSERT INTO notification.margin_call_throttle (account_id)"
            " SELECT unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"
        ),
        {"ids": sorted(set(account_ids))},
    )
    result = await session.execute(
        text(
            "SELECT account_id, last_notified_at, open FROM notification.margin_call_throttle"
            " WHERE account_id = ANY(CAST(:ids AS uuid[])) ORDER BY account_id FOR UPDATE"
        ),
        {"ids": sorted(set(account_ids))},
    )
    return {str(r.account_id): MarginCallState(r.last_notified_at, r.open) for r in result}


async def save_margin_states(session: AsyncSession, states: Mapping[str, MarginCallState]) -> None:
    if not states:
        return
    rows = [
        {"account_id": a, "last_notified_at": s.last_notified_at, "open": s.open}
        for a, s in states.items()
    ]
    values, params = _values(
        rows,
        (("account_id", "uuid"), ("last_notified_at", "timestamptz"), ("open", "boolean")),
    )
    await session.execute(
        text(
            "INSERT INTO notification.margin_call_throttle (account_id, last_notified_at, open)"
            f" VALUES {values} ON CONFLICT (account_id) DO UPDATE"
            " SET last_notified_at = EXCLUDED.last_notified_at, open = EXCLUDED.open"
        ),
        params,
    )


async def known_addresses(session: AsyncSession, user_ids: Sequence[str]) -> dict[str, set[str]]:
    """The addresses each user signed in from before."""
    if not user_ids:
        return {}
    result = await session.execute(
        text(
            "SELECT user_id, address FROM notification.sign_in_addresses"
            " WHERE user_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": sorted(set(user_ids))},
    )
    known: dict[str, set[str]] = {}
    for row in result:
        known.setdefault(str(row.user_id), set()).add(row.address)
    return known


async def save_addresses(session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> None:
    rows = [{"user_id": u, "address": a} for u, a in sorted(set(pairs))]
    if not rows:
        return
    values, params = _values(rows, (("user_id", "uuid"), ("address", "text")))
    await session.execute(
        text(
            f"INSERT INTO notification.sign_in_addresses (user_id, address) VALUES {values}"
            " ON CONFLICT DO NOTHING"
        ),
        params,
    )


# ---- reading notifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...] = ()
    unread_only: bool = False
    account_id: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    before: int | None = None  # position < before
    after: int | None = None  # position > after


def _where(viewer: Viewer, filters: Filters) -> tuple[str, dict[str, Any]]:
    clauses = [VISIBLE]
    params = viewer.params()
    if filters.unread_only:
        clauses.append("n.read_at IS NULL")
    given = (
        ("n.kind = ANY(CAST(:kinds AS text[]))", "kinds", list(filters.kinds) or None),
        ("n.account_id = CAST(:account_id AS uuid)", "account_id", filters.account_id),
        ("n.created_at >= :since", "since", filters.since),
        ("n.created_at < :until", "until", filters.until),
        ("n.position < :before", "before", filters.before),
        ("n.position > :after", "after", filters.after),
    )
    for clause, name, value in given:
        if value is not None:
            clauses.append(clause)
            params[name] = value
    return " AND ".join(clauses), params


async def page(
    session: AsyncSession,
    viewer: Viewer,
    filters: Filters,
    *,
    before_position: int | None,
    limit: int,
) -> tuple[list[Stored], int]:
    """Newest first, up to `limit` older than `before_position`; and the viewer's unread count
    (whatever the filters), in one round trip."""
    where, params = _where(viewer, replace(filters, before=before_position))
    params["limit"] = limit
    result = await session.execute(
        text(
            f"SELECT {_COLUMNS}, (SELECT count(*) FROM notification.notifications n"
            f" WHERE {VISIBLE} AND n.read_at IS NULL) AS unread"
            f" FROM notification.notifications n WHERE {where}"
            " ORDER BY n.position DESC LIMIT :limit"
        ),
        params,
    )
    rows = list(result)
    if rows:
        return [_stored(r) for r in rows], int(rows[0].unread)
    return [], await unread_count(session, viewer, ())


async def unread_count(session: AsyncSession, viewer: Viewer, kinds: Sequence[str]) -> int:
    where, params = _where(viewer, Filters(kinds=tuple(kinds), unread_only=True))
    result = await session.execute(
        text(f"SELECT count(*) FROM notification.notifications n WHERE {where}"), params
    )
    return int(result.scalar_one())


async def position_of(session: AsyncSession, viewer: Viewer, notification_id: str) -> int | None:
    """The position of one of the viewer's notifications, or None (not theirs, or gone)."""
    params = viewer.params() | {"id": notification_id}
    result = await session.execute(
        text(
            "SELECT n.position FROM notification.notifications n"
            f" WHERE n.id = CAST(:id AS uuid) AND {VISIBLE}"
        ),
        params,
    )
    value = result.scalar_one_or_none()
    return int(value) if value is not None else None


async def after(
    session: AsyncSession,
    viewer: Viewer,
    kinds: Sequence[str],
    *,
    after_position: int | None,
    since: datetime | None,
    limit: int,
) -> list[Stored]:
    """Oldest first: the viewer's notifications after a position or since a time (a replay)."""
    where, params = _where(viewer, Filters(kinds=tuple(kinds), since=since, after=after_position))
    params["limit"] = limit
    result = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM notification.notifications n WHERE {where}"
            " ORDER BY n.position LIMIT :limit"
        ),
        params,
    )
    return [_stored(r) for r in result]


async def mark_read(
    session: AsyncSession, viewer: Viewer, ids: Sequence[str] | None
) -> tuple[int, int]:
    """Marks the viewer's unread notifications read (`ids`, or all when None); returns (marked,
    unread after) from one statement."""
    params = viewer.params()
    which = "n.created_at <= now()"
    if ids is not None:
        which = "n.id = ANY(CAST(:ids AS uuid[]))"
        params["ids"] = list(ids)
    result = await session.execute(
        text(
            "WITH marked AS (UPDATE notification.notifications n SET read_at = now()"
            f" WHERE n.read_at IS NULL AND {VISIBLE} AND {which} RETURNING 1)"
            " SELECT (SELECT count(*) FROM marked) AS marked,"
            " (SELECT count(*) FROM notification.notifications n"
            f"  WHERE n.read_at IS NULL AND {VISIBLE}) AS unread_before"
        ),
        params,
    )
    row = result.one()
    marked = int(row.marked)
    return marked, max(int(row.unread_before) - marked, 0)


# ---- preferences -------------------------------------------------------------------------------


async def preferences(
    session: AsyncSession, user_id: str
) -> tuple[dict[str, bool], datetime | None]:
    """The user's email setting per kind name (only the kinds they changed), and when they last
    changed any."""
    result = await session.execute(
        text(
            "SELECT kind, email_enabled, updated_at FROM notification.preferences"
            " WHERE user_id = CAST(:user AS uuid)"
        ),
        {"user": user_id},
    )
    rows = list(result)
    changed = max((r.updated_at for r in rows), default=None)
    return {r.kind: bool(r.email_enabled) for r in rows}, changed


async def save_preferences(
    session: AsyncSession, user_id: str, settings: Mapping[str, bool]
) -> None:
    if not settings:
        return
    rows = [{"user_id": user_id, "kind": k, "email_enabled": v} for k, v in settings.items()]
    values, params = _values(
        rows, (("user_id", "uuid"), ("kind", "text"), ("email_enabled", "boolean"))
    )
    await session.execute(
        text(
            "INSERT INTO notification.preferences (user_id, kind, email_enabled)"
            f" VALUES {values} ON CONFLICT (user_id, kind) DO UPDATE"
            " SET email_enabled = EXCLUDED.email_enabled, updated_at = now()"
        ),
        params,
    )


# ---- email deliveries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A claimed delivery with what its email needs."""

    notification: Stored
    attempts: int  # including this one
    email: str | None  # the user's address; None while the copy of the user is missing
    display_name: str
    email_enabled: bool


async def claim_due(session: AsyncSession, limit: int) -> list[Due]:
    """Claims up to `limit` due deliveries (PENDING and due, or SENDING whose claim lapsed: the
    process that held it stopped) in ONE statement: status SENDING, one more attempt, and a
    lease of CLAIM_LEASE_SECONDS in next_attempt_at. SKIP LOCKED lets replicas claim apart.
    Each comes with whether its email is still on (the user may have switched it off since)."""
    result = await session.execute(
        text(
            "WITH due AS (SELECT notification_id FROM notification.deliveries"
            " WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at <= now()"
            " ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED),"
            " claimed AS (UPDATE notification.deliveries d SET status = 'SENDING',"
            " attempts = d.attempts + 1,"
            " next_attempt_at = now() + make_interval(secs => :lease)"
            " FROM due WHERE d.notification_id = due.notification_id"
            " RETURNING d.notification_id, d.attempts)"
            f" SELECT {_COLUMNS}, c.attempts, u.email, u.display_name, {_EMAIL_ON} AS email_enabled"
            " FROM claimed c JOIN notification.notifications n ON n.id = c.notification_id"
            " LEFT JOIN notification.accounts a ON a.id = n.account_id"
            " LEFT JOIN notification.users u ON u.id = COALESCE(n.user_id, a.user_id)"
            " LEFT JOIN notification.preferences p"
            " ON p.user_id = COALESCE(n.user_id, a.user_id) AND p.kind = n.kind"
            " ORDER BY n.position"
        ),
        {"limit": limit, "lease": CLAIM_LEASE_SECONDS, **_EMAIL_KINDS},
    )
    return [
        Due(
            notification=_stored(r),
            attempts=int(r.attempts),
            email=r.email,
            display_name=r.display_name or "",
            email_enabled=bool(r.email_enabled),
        )
        for r in result
    ]


@dataclass(frozen=True)
class Outcome:
    notification_id: str
    status: str  # SENT, SKIPPED, PENDING (to retry), DEAD
    next_attempt_at: datetime | None
    last_error: str
    recipient: str


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Records what the sender's attempts came to, in ONE statement (only deliveries still
    claimed: SENDING)."""
    if not outcomes:
        return
    rows = [
        {
            "id": o.notification_id,
            "status": o.status,
            "next": o.next_attempt_at,
            "error": o.last_error[:1000],
            "recipient": o.recipient,
        }
        for o in outcomes
    ]
    values, params = _values(
        rows,
        (
            ("id", "uuid"),
            ("status", "text"),
            ("next", "timestamptz"),
            ("error", "text"),
            ("recipient", "text"),
        ),
    )
    await session.execute(
        text(
            "UPDATE notification.deliveries d SET status = v.status,"
            " next_attempt_at = COALESCE(v.next, d.next_attempt_at), last_error = v.error,"
            " recipient = v.recipient,"
            " sent_at = CASE WHEN v.status = 'SENT' THEN now() ELSE d.sent_at END"
            f" FROM (VALUES {values}) AS v (id, status, next, error, recipient)"
            " WHERE d.notification_id = v.id AND d.status = 'SENDING'"
        ),
        params,
    )


# ---- daily statements --------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloverSeen:
    """A completed rollover as `oms.rollover.completed` announced it."""

    trading_date: date
    rollover_time: datetime
    completed_at: datetime
    period_end: datetime  # completed_at + the settling delay


@dataclass(frozen=True)
class StatementDay:
    """A trading day whose statements are due: [period_start, period_end); no start means since
    each account's opening."""

    trading_date: date
    period_start: datetime | None
    period_end: datetime


@dataclass(frozen=True)
class OptedIn:
    account_id: str
    user_id: str


async def save_rollovers(session: AsyncSession, rollovers: Iterable[RolloverSeen]) -> None:
    """Records completed rollovers (a day seen before keeps its first row)."""
    rows = [
        {
            "trading_date": r.trading_date,
            "rollover_time": r.rollover_time,
            "completed_at": r.completed_at,
            "period_end": r.period_end,
        }
        for r in {r.trading_date: r for r in rollovers}.values()
    ]
    if not rows:
        return
    values, params = _values(
        rows,
        (
            ("trading_date", "date"),
            ("rollover_time", "timestamptz"),
            ("completed_at", "timestamptz"),
            ("period_end", "timestamptz"),
        ),
    )
    await session.execute(
        text(
            "INSERT INTO notification.rollovers"
            f" (trading_date, rollover_time, completed_at, period_end) VALUES {values}"
            " ON CONFLICT (trading_date) DO NOTHING"
        ),
        params,
    )


async def claim_statement_days(session: AsyncSession, lease_seconds: int) -> list[StatementDay]:
    """Claims the trading days whose statements are due (period ended, not done, no live claim
    of another process) for `lease_seconds`, in ONE statement, oldest first; each with its
    period's start, the end of the latest earlier day's."""
    result = await session.execute(
        text(
            "WITH due AS (SELECT trading_date FROM notification.rollovers"
            " WHERE statements_done_at IS NULL AND period_end <= now()"
            " AND (claimed_until IS NULL OR claimed_until < now())"
            " ORDER BY trading_date FOR UPDATE SKIP LOCKED),"
            " claimed AS (UPDATE notification.rollovers r"
            " SET claimed_until = now() + make_interval(secs => :lease)"
            " FROM due WHERE r.trading_date = due.trading_date"
            " RETURNING r.trading_date, r.period_end)"
            " SELECT c.trading_date, c.period_end,"
            " (SELECT p.period_end FROM notification.rollovers p"
            "  WHERE p.trading_date < c.trading_date"
            "  ORDER BY p.trading_date DESC LIMIT 1) AS period_start"
            " FROM claimed c ORDER BY c.trading_date"
        ),
        {"lease": lease_seconds},
    )
    return [StatementDay(r.trading_date, r.period_start, r.period_end) for r in result]


async def opted_in_accounts(
    session: AsyncSession,
    kind: str,
    event_prefix: str,
    *,
    after_account: str | None,
    limit: int,
) -> list[OptedIn]:
    """The accounts whose user switched the email of `kind` on and that have no notification
    `<event_prefix><account id>` yet, in account id order after `after_account`."""
    result = await session.execute(
        text(
            "SELECT a.id, a.user_id FROM notification.accounts a"
            " JOIN notification.preferences p ON p.user_id = a.user_id AND p.kind = :kind"
            " AND p.email_enabled"
            " WHERE (CAST(:after AS uuid) IS NULL OR a.id > CAST(:after AS uuid))"
            " AND NOT EXISTS (SELECT 1 FROM notification.notifications n"
            "  WHERE n.event_id = :prefix || CAST(a.id AS text))"
            " ORDER BY a.id LIMIT :limit"
        ),
        {"kind": kind, "prefix": event_prefix, "after": after_account, "limit": limit},
    )
    return [OptedIn(str(r.id), str(r.user_id)) for r in result]


async def finish_statement_day(session: AsyncSession, trading_date: date) -> None:
    await session.execute(
        text(
            "UPDATE notification.rollovers SET statements_done_at = now(), claimed_until = NULL"
            " WHERE trading_date = :day"
        ),
        {"day": trading_date},
    )


async def release_statement_day(
    session: AsyncSession, trading_date: date, retry_at: datetime
) -> None:
    """Gives a day back to be tried again at `retry_at` (reporting could not be reached)."""
    await session.execute(
        text("UPDATE notification.rollovers SET claimed_until = :at WHERE trading_date = :day"),
        {"day": trading_date, "at": retry_at},
    )
