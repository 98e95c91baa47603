"""The notification service's pure rules (ADR 0011): what each domain event says to its user,
when a margin call is worth telling, and when a failed email is tried again.

No gRPC, SQL or NATS here: the consumer (`events.py`) decodes events and hands them to these
functions; the store writes what they decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC as _UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from decimal import InvalidOperation
from typing import Final

from services.platform.enums import enum_name
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_events_pb2 as account_events
from tradingmesh.account.v1 import account_pb2
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import events_pb2
from tradingmesh.common.v1 import ledger_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.exact import InexactValueError
from tradingmesh.exact import plain_decimal
from tradingmesh.notification.v1.notification_pb2 import NotificationKind
from tradingmesh.notification.v1.notification_pb2 import NotificationSeverity
from tradingmesh.oms.v1 import oms_events_pb2 as oms_events
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.reporting.v1 import reporting_pb2
from tradingmesh.risk.v1 import risk_events_pb2 as risk_events

K = NotificationKind
S = NotificationSeverity

# Kinds whose email cannot be switched off (the contract's email_required).
EMAIL_REQUIRED: Final = frozenset({K.NOTIFICATION_KIND_STOP_OUT, K.NOTIFICATION_KIND_SECURITY})
# Every kind a user has a setting for, in the contract's order.
ALL_KINDS: Final = tuple(k for k in K.values() if k != K.NOTIFICATION_KIND_UNSPECIFIED)
# Kinds whose email is off until the user switches it on (an opt-in): the daily statement, which
# is made only for users who did; and what happens to the trader's own orders (fills,
# rejections, cancellations, expiries), which the trader sees in the terminal as it happens and
# which would send an active trader hundreds of emails a day (MetaTrader 5 sends none).
EMAIL_OFF_BY_DEFAULT: Final = frozenset(
    {
        K.NOTIFICATION_KIND_DAILY_STATEMENT,
        K.NOTIFICATION_KIND_ORDER_FILLED,
        K.NOTIFICATION_KIND_ORDER_REJECTED,
        K.NOTIFICATION_KIND_ORDER_CANCELLED,
        K.NOTIFICATION_KIND_ORDER_EXPIRED,
    }
)
TITLE_MAX: Final = 120
BODY_MAX: Final = 2000


@dataclass(frozen=True)
class Draft:
    """A notification to store: one per domain event (`event_id`), for an account or a user."""

    event_id: str
    kind: NotificationKind.ValueType
    severity: NotificationSeverity.ValueType
    title: str
    body: str
    created_at: datetime
    account_id: str | None = None
    user_id: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)


def email_default(kind: NotificationKind.ValueType) -> bool:
    """A kind's email setting while the user has not chosen one."""
    return kind not in EMAIL_OFF_BY_DEFAULT


def email_switches(
    switches: Iterable[tuple[NotificationKind.ValueType, bool]],
) -> dict[str, bool]:
    """The email settings a preferences update asks for (kind, on), by stored kind name;
    VALIDATION_FAILED naming each switch that turns off the email of a kind always mailed
    (`EMAIL_REQUIRED`), by its index in the update's `preferences.kinds`."""
    changes: dict[str, bool] = {}
    violations = []
    for index, (kind, on) in enumerate(switches):
        if kind in EMAIL_REQUIRED and not on:
            violations.append(
                (
                    f"preferences.kinds[{index}].email_enabled",
                    f"email for {kind_name(kind)} cannot be switched off",
                )
            )
        changes[kind_name(kind)] = on
    if violations:
        raise DomainError(
            errors_pb2.ERROR_REASON_VALIDATION_FAILED,
            "email cannot be switched off for every kind",
            field_violations=violations,
        )
    return changes


def kind_name(kind: NotificationKind.ValueType) -> str:
    """The name stored in the database: the enum's name without its prefix (e.g. ORDER_FILLED)."""
    return enum_name(K, kind)


def kind_of(name: str) -> NotificationKind.ValueType:
    return K.Value(f"NOTIFICATION_KIND_{name}")


def severity_name(severity: NotificationSeverity.ValueType) -> str:
    return enum_name(S, severity)


def severity_of(name: str) -> NotificationSeverity.ValueType:
    return S.Value(f"NOTIFICATION_SEVERITY_{name}")


# ---- numbers as people read them ----------------------------------------------------------------


def _plain(text: str) -> str:
    """A decimal string without trailing zeros (a quantity, a level): "1.50" -> "1.5"."""
    try:
        return plain_decimal(Decimal(text))
    except (InvalidOperation, InexactValueError):
        return text


def _money(amount: str, currency: str) -> str:
    """An amount with two decimals at least, exactly: "1000" -> "1,000.00 USD"."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return f"{amount} {currency}".strip()
    exponent = value.as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    return f"{value:,.{places}f} {currency}".strip()


def _lots(quantity: str) -> str:
    plain = _plain(quantity)
    return f"{plain} lot" if Decimal(plain) == 1 else f"{plain} lots"


def _side(side: types_pb2.Side.ValueType) -> str:
    return "buy" if side == types_pb2.SIDE_BUY else "sell"


def _reason(reason: errors_pb2.ErrorReason.ValueType) -> str:
    return enum_name(errors_pb2.ErrorReason, reason)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Source:
    """What a draft is made from: its key (UNIQUE in the store) and when it happened."""

    event_id: str
    created_at: datetime

    @classmethod
    def of(cls, metadata: events_pb2.EventMetadata) -> Source:
        """A domain event's id and the time it occurred."""
        return cls(metadata.event_id, metadata.occurred_at.ToDatetime(tzinfo=_UTC))


def _draft(
    source: Source,
    kind: NotificationKind.ValueType,
    severity: NotificationSeverity.ValueType,
    *,
    title: str,
    body: str,
    account_id: str | None = None,
    user_id: str | None = None,
    details: Mapping[str, str] | None = None,
) -> Draft:
    """A draft whose title and body are clipped to what the store keeps."""
    return Draft(
        event_id=source.event_id,
        kind=kind,
        severity=severity,
        title=_clip(title, TITLE_MAX),
        body=_clip(body, BODY_MAX),
        created_at=source.created_at,
        account_id=account_id,
        user_id=user_id,
        details=dict(details or {}),
    )


# ---- orders and fills ---------------------------------------------------------------------------


def trade_executed(event: oms_events.TradeExecuted) -> Draft:
    trade = event.trade
    closing = trade.position_effect not in (
        trading_pb2.POSITION_EFFECT_UNSPECIFIED,
        trading_pb2.POSITION_EFFECT_OPEN,
        trading_pb2.POSITION_EFFECT_INCREASE,
    )
    pnl = ""
    if closing and trade.realized_pnl:
        pnl = f" Realized P&L: {_money(trade.realized_pnl, event.currency)}."
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_ORDER_FILLED,
        S.NOTIFICATION_SEVERITY_INFO,
        title=f"Order filled: {_side(trade.side)} {_lots(trade.quantity)} {trade.symbol}",
        body=(
            f"Your order to {_side(trade.side)} {_lots(trade.quantity)} {trade.symbol} was filled"
            f" at {trade.price}.{pnl}"
        ),
        account_id=trade.account_id,
        details={
            "order_id": trade.order_id,
            "trade_id": trade.id,
            "position_id": trade.position_id,
            "symbol": trade.symbol,
        },
    )


def _order_details(order: oms_pb2.Order, **more: str) -> dict[str, str]:
    details = {"order_id": order.id, "symbol": order.symbol, **more}
    if order.position_id:
        details["position_id"] = order.position_id
    return details


def _order_words(order: oms_pb2.Order) -> str:
    kind = oms_order_type(order)
    return f"{kind}order to {_side(order.side)} {_lots(order.quantity)} {order.symbol}"


def oms_order_type(order: oms_pb2.Order) -> str:
    """The order type as a word before "order" ("" for market orders)."""
    names = {
        trading_pb2.ORDER_TYPE_LIMIT: "limit ",
        trading_pb2.ORDER_TYPE_STOP: "stop ",
        trading_pb2.ORDER_TYPE_STOP_LIMIT: "stop-limit ",
    }
    return names.get(order.type, "")


def order_rejected(event: oms_events.OrderRejected) -> Draft:
    order = event.order
    reason = _reason(order.status_reason) if order.status_reason else "REJECTED"
    why = f" ({order.status_message})" if order.status_message else ""
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_ORDER_REJECTED,
        S.NOTIFICATION_SEVERITY_WARNING,
        title=f"Order rejected: {order.symbol}",
        body=f"Your {_order_words(order)} was rejected: {reason}{why}.",
        account_id=order.account_id,
        details=_order_details(order, reason=reason),
    )


def order_cancelled(event: oms_events.OrderCancelled) -> Draft:
    order = event.order
    reason = _reason(order.status_reason) if order.status_reason else ""
    filled = Decimal(order.filled_quantity or "0")
    part = f" after {_lots(order.filled_quantity)} filled" if filled > 0 else ""
    why = f": {reason}" if reason else ""
    details = _order_details(order, **({"reason": reason} if reason else {}))
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_ORDER_CANCELLED,
        S.NOTIFICATION_SEVERITY_INFO,
        title=f"Order cancelled: {order.symbol}",
        body=f"Your {_order_words(order)} was cancelled{part}{why}.",
        account_id=order.account_id,
        details=details,
    )


def order_expired(event: oms_events.OrderExpired) -> Draft:
    order = event.order
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_ORDER_EXPIRED,
        S.NOTIFICATION_SEVERITY_INFO,
        title=f"Order expired: {order.symbol}",
        body=f"Your {_order_words(order)} expired at the end of its trading session.",
        account_id=order.account_id,
        details=_order_details(order),
    )


# ---- margin ------------------------------------------------------------------------------------


_MarginEvent = (
    risk_events.MarginCallIssued | risk_events.MarginCallResolved | risk_events.StopOutCompleted
)


def _margin_draft(
    event: _MarginEvent,
    kind: NotificationKind.ValueType,
    severity: NotificationSeverity.ValueType,
    *,
    title: str,
    body: str,
    details: Mapping[str, str],
) -> Draft:
    """A margin event's draft: for its account, at the time risk decided it."""
    margin = event.margin_event
    source = Source(event.metadata.event_id, margin.create_time.ToDatetime(tzinfo=_UTC))
    return _draft(
        source,
        kind,
        severity,
        title=title,
        body=body,
        account_id=margin.account_id,
        details={"margin_level": margin.account_risk.margin_level, **details},
    )


def margin_call(event: risk_events.MarginCallIssued) -> Draft:
    risk = event.margin_event.account_risk
    return _margin_draft(
        event,
        K.NOTIFICATION_KIND_MARGIN_CALL,
        S.NOTIFICATION_SEVERITY_WARNING,
        title="Margin call",
        body=(
            f"Your account's margin level is {_plain(risk.margin_level)}%, below the margin-call"
            f" level of {_plain(risk.margin_call_level)}%. Deposit funds or reduce your positions;"
            f" at {_plain(risk.stop_out_level)}% positions are closed automatically."
        ),
        details={"margin_call_level": risk.margin_call_level},
    )


def margin_call_resolved(event: risk_events.MarginCallResolved) -> Draft:
    risk = event.margin_event.account_risk
    return _margin_draft(
        event,
        K.NOTIFICATION_KIND_MARGIN_CALL_RESOLVED,
        S.NOTIFICATION_SEVERITY_INFO,
        title="Margin call resolved",
        body=(
            f"Your account's margin level is back at {_plain(risk.margin_level)}%, at or above"
            f" the margin-call level of {_plain(risk.margin_call_level)}%."
        ),
        details={"margin_call_level": risk.margin_call_level},
    )


def stop_out(event: risk_events.StopOutCompleted) -> Draft:
    margin = event.margin_event
    risk = margin.account_risk
    closed = len(margin.closed_position_ids)
    positions = "1 position was" if closed == 1 else f"{closed} positions were"
    return _margin_draft(
        event,
        K.NOTIFICATION_KIND_STOP_OUT,
        S.NOTIFICATION_SEVERITY_CRITICAL,
        title="Stop-out: positions closed",
        body=(
            f"Your account's margin level fell below the stop-out level of"
            f" {_plain(risk.stop_out_level)}%, and {positions} closed; realized P&L"
            f" {_money(margin.realized_pnl or '0', risk.currency)}. The margin level is now"
            f" {_plain(risk.margin_level)}%."
        ),
        details={
            "stop_out_level": risk.stop_out_level,
            "position_ids": ",".join(margin.closed_position_ids),
            "order_ids": ",".join(margin.closing_order_ids),
        },
    )


@dataclass(frozen=True)
class MarginCallState:
    """What the throttle remembers of an account: when its last margin call was notified, and
    whether that call is still open (not yet notified as resolved)."""

    last_notified_at: datetime | None = None
    open: bool = False


def throttle_margin(
    state: MarginCallState, kind: NotificationKind.ValueType, at: datetime, interval: timedelta
) -> tuple[bool, MarginCallState]:
    """Whether a margin call or its resolution at `at` is notified, and the state after it.

    A margin call is notified when none was in the last `interval` (as cTrader does: at most one
    per account per interval, however often the level crosses the line); a resolution only when
    a notified call is open, so a user who heard of no call hears of no resolution either.
    """
    if kind == K.NOTIFICATION_KIND_MARGIN_CALL:
        last = state.last_notified_at
        if last is not None and at < last + interval:
            return False, state
        return True, MarginCallState(at, True)
    if kind == K.NOTIFICATION_KIND_MARGIN_CALL_RESOLVED:
        if not state.open:
            return False, state
        return True, MarginCallState(state.last_notified_at, False)
    return True, state


def throttle_batch(
    states: Mapping[str, MarginCallState], drafts: Iterable[Draft], interval: timedelta
) -> tuple[list[Draft], dict[str, MarginCallState]]:
    """The margin drafts of a batch that pass the throttle (in order), and each touched
    account's state after them."""
    passed: list[Draft] = []
    after: dict[str, MarginCallState] = {}
    for draft in drafts:
        assert draft.account_id is not None
        state = after.get(draft.account_id, states.get(draft.account_id, MarginCallState()))
        notify, after[draft.account_id] = throttle_margin(
            state, draft.kind, draft.created_at, interval
        )
        if notify:
            passed.append(draft)
    return passed, after


THROTTLED: Final = frozenset(
    {K.NOTIFICATION_KIND_MARGIN_CALL, K.NOTIFICATION_KIND_MARGIN_CALL_RESOLVED}
)


# ---- money ------------------------------------------------------------------------------------


def deposit(event: account_events.LedgerEntryPosted) -> Draft | None:
    """A completed deposit (a ledger entry with reason DEPOSIT); None for other entries."""
    entry = event.entry
    if entry.reason != ledger_pb2.LEDGER_ENTRY_REASON_DEPOSIT:
        return None
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_DEPOSIT_COMPLETED,
        S.NOTIFICATION_SEVERITY_INFO,
        title="Deposit received",
        body=(
            f"{_money(entry.amount, entry.currency)} was credited to account"
            f" {event.account_number}. Balance: {_money(event.balance, entry.currency)}."
        ),
        account_id=entry.account_id,
        details={
            "ledger_entry_id": entry.id,
            "amount": entry.amount,
            "currency": entry.currency,
        },
    )


def _withdrawal_draft(
    event: account_events.WithdrawalCompleted | account_events.WithdrawalRejected,
    kind: NotificationKind.ValueType,
    severity: NotificationSeverity.ValueType,
    title: str,
    outcome: str,
) -> Draft:
    """A settled withdrawal's draft: "Your withdrawal of <amount> from account <n> <outcome>."."""
    w = event.withdrawal
    return _draft(
        Source.of(event.metadata),
        kind,
        severity,
        title=title,
        body=f"Your withdrawal of {_money(w.amount, w.currency)} from account"
        f" {event.account_number} {outcome}.",
        account_id=w.account_id,
        details={"withdrawal_id": w.id, "amount": w.amount, "currency": w.currency},
    )


def withdrawal_completed(event: account_events.WithdrawalCompleted) -> Draft:
    return _withdrawal_draft(
        event,
        K.NOTIFICATION_KIND_WITHDRAWAL_COMPLETED,
        S.NOTIFICATION_SEVERITY_INFO,
        "Withdrawal paid out",
        "was paid out",
    )


def withdrawal_rejected(event: account_events.WithdrawalRejected) -> Draft:
    reason = event.withdrawal.rejection_reason
    why = f": {reason}" if reason else ""
    return _withdrawal_draft(
        event,
        K.NOTIFICATION_KIND_WITHDRAWAL_REJECTED,
        S.NOTIFICATION_SEVERITY_WARNING,
        "Withdrawal rejected",
        f"was rejected{why}. The amount was credited back",
    )


# ---- the user ---------------------------------------------------------------------------------


def kyc_changed(event: account_events.KycStatusChanged) -> Draft:
    status = enum_name(account_pb2.KycStatus, event.user.kyc_status)
    rejected = event.user.kyc_status == account_pb2.KYC_STATUS_REJECTED
    words = {
        "APPROVED": "Your identity is verified: you can trade and withdraw.",
        "REJECTED": "Your identity verification was rejected.",
        "PENDING": "Your identity verification is in progress.",
    }
    why = f" Reason: {event.reason}." if rejected and event.reason else ""
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_KYC_STATUS_CHANGED,
        S.NOTIFICATION_SEVERITY_WARNING if rejected else S.NOTIFICATION_SEVERITY_INFO,
        title=f"Identity verification: {status.lower().replace('_', ' ')}",
        body=words.get(status, f"Your identity verification status is now {status}.") + why,
        user_id=event.user.id,
        details={"kyc_status": status},
    )


def token_family_revoked(event: account_events.TokenFamilyRevoked) -> Draft | None:
    """A security notification for a stolen-looking refresh token (reuse) or a password change;
    None for an ordinary sign-out."""
    reasons = account_events.TokenFamilyRevokeReason
    if event.reason == reasons.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED:
        where = f" from {event.source_ip}" if event.source_ip else ""
        title, severity = "Session signed out: token reuse", S.NOTIFICATION_SEVERITY_CRITICAL
        body = (
            f"A spent sign-in token of one of your sessions was presented again{where}, so that"
            " session was signed out everywhere. If this was not you, change your password."
        )
        name = "token_family_revoked"
    elif event.reason == reasons.TOKEN_FAMILY_REVOKE_REASON_PASSWORD_CHANGED:
        title, severity = "Password changed", S.NOTIFICATION_SEVERITY_WARNING
        body = "Your password was changed and your other sessions were signed out."
        name = "password_changed"
    else:
        return None
    details = {"event": name}
    if event.source_ip:
        details["source_ip"] = event.source_ip
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_SECURITY,
        severity,
        title=title,
        body=body,
        user_id=event.user_id,
        details=details,
    )


def signed_in_from_new_address(event: account_events.UserSignedIn) -> Draft:
    """The notification of a sign-in from an address the user had not signed in from (whether
    it is new is the store's to say: `sign_in_addresses`)."""
    return _draft(
        Source.of(event.metadata),
        K.NOTIFICATION_KIND_SECURITY,
        S.NOTIFICATION_SEVERITY_WARNING,
        title="New sign-in from a new address",
        body=(
            f"Your account was signed in to from {event.source_ip}, an address not seen before."
            " If this was not you, change your password and sign out everywhere."
        ),
        user_id=event.user_id,
        details={"event": "new_address_sign_in", "source_ip": event.source_ip},
    )


# ---- the daily statement ------------------------------------------------------------------------

# The statement's figures a daily statement carries in its details, as reporting wrote them
# (exact decimal strings), in the order the email shows them.
STATEMENT_FIGURES: Final = (
    "opening_balance",
    "deposits",
    "withdrawals",
    "realized_pnl",
    "commissions",
    "swaps",
    "adjustments",
    "closing_balance",
    "closing_unrealized_pnl",
    "closing_equity",
    "closing_margin",
    "closing_free_margin",
    "closing_margin_level",
)


def daily_statement_event_id(trading_date: str, account_id: str) -> str:
    """The daily statement's key in `notifications.event_id` (UNIQUE): one per account and
    trading day, whoever makes it and however often."""
    return f"daily_statement:{trading_date}:{account_id}"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def daily_statement(
    statement: reporting_pb2.Statement, trading_date: str, created_at: datetime
) -> Draft:
    """The notification of an account's statement for the trading day its rollover closed;
    its email shows the summary (`email.py`)."""
    currency = statement.currency
    level = statement.closing_margin_level
    margin = f" Margin level: {_plain(level)}%." if level else ""
    details = {name: getattr(statement, name) for name in STATEMENT_FIGURES}
    details |= {
        "trading_date": trading_date,
        "account_number": statement.account_number,
        "currency": currency,
        "period_start": _rfc3339(statement.period.start_time.ToDatetime(tzinfo=_UTC)),
        "period_end": _rfc3339(statement.period.end_time.ToDatetime(tzinfo=_UTC)),
    }
    return _draft(
        Source(daily_statement_event_id(trading_date, statement.account_id), created_at),
        K.NOTIFICATION_KIND_DAILY_STATEMENT,
        S.NOTIFICATION_SEVERITY_INFO,
        title=f"Daily statement {trading_date}: account {statement.account_number}",
        body=(
            f"Your statement of account {statement.account_number} for the trading day"
            f" {trading_date}: balance {_money(statement.opening_balance, currency)} to"
            f" {_money(statement.closing_balance, currency)}, realized P&L"
            f" {_money(statement.realized_pnl, currency)}, equity"
            f" {_money(statement.closing_equity, currency)}.{margin}"
        ),
        account_id=statement.account_id,
        details=details,
    )


# ---- email retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How failed emails are tried again: the n-th failure waits base * 2^(n-1), at most `cap`;
    after `max_attempts` attempts the delivery is DEAD."""

    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=10)
    max_attempts: int = 6

    def delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt (1 for the first)."""
        exponent = max(attempts - 1, 0)
        if exponent >= 40:  # 2**40 seconds is beyond any cap
            return self.cap
        wait: timedelta = self.base * int(2**exponent)
        return min(wait, self.cap)

    def after_failure(self, attempts: int) -> str:
        """The delivery's status after its `attempts`-th attempt failed."""
        return "DEAD" if attempts >= self.max_attempts else "PENDING"
