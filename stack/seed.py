"""The demo broker the local stack starts with: instruments, client groups and a funded demo user.

Runs once, right after the migrations of a new database. Reference data is inserted idempotently;
the demo user is created only if it does not exist yet, because its password is generated here
and only its hash is stored (the stack keeps the credentials it printed the first time).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from argon2 import PasswordHasher

DEMO_USERNAME = "demo"
# The demo broker's operator: a staff user with every staff role (services/platform/access.py),
# so a newcomer can try the broker views and every admin RPC (ADR 0012).
OPERATOR_USERNAME = "operator"
OPERATOR_ROLES = ("admin", "dealer", "backoffice")
DEMO_ACCOUNT_NUMBER = "1000001"
DEMO_DEPOSIT = Decimal("10000.00")
DEMO_CURRENCY = "USD"

# symbol, description, asset class, base, quote, digits, contract size, min, max, step, margin rate
INSTRUMENTS: tuple[tuple[str, str, str, str, str, int, str, str, str, str, str], ...] = (
    ("EURUSD", "Euro vs US Dollar", "FX", "EUR", "USD", 5, "100000", "0.01", "100", "0.01", "0.01"),
    (
        "GBPUSD",
        "British Pound vs US Dollar",
        "FX",
        "GBP",
        "USD",
        5,
        "100000",
        "0.01",
        "100",
        "0.01",
        "0.01",
    ),
    (
        "USDJPY",
        "US Dollar vs Japanese Yen",
        "FX",
        "USD",
        "JPY",
        3,
        "100000",
        "0.01",
        "100",
        "0.01",
        "0.01",
    ),
    ("XAUUSD", "Gold vs US Dollar", "METAL", "XAU", "USD", 2, "100", "0.01", "50", "0.01", "0.02"),
    ("US500", "US 500 Index", "INDEX", "USD", "USD", 1, "1", "0.1", "500", "0.1", "0.05"),
    ("BTCUSD", "Bitcoin vs US Dollar", "CRYPTO", "BTC", "USD", 2, "1", "0.01", "10", "0.01", "0.5"),
)

# name, leverage, margin call %, stop out %, execution, position mode, markup points, commission
GROUPS: tuple[tuple[str, int, str, str, str, str, str, str], ...] = (
    ("standard", 100, "100", "50", "MARKET", "NETTING", "10", "0"),
    ("pro-stp", 50, "120", "60", "STP", "HEDGING", "0", "3.50"),
)

# Swap terms per instrument for every group (ADR 0010): symbol, type, long, short, triple-swap
# ISO weekday. FX and metals roll three nights on Wednesday (spot T+2 over the weekend), indices
# and crypto on Friday. Signed: positive credits the client.
SWAP_RATES: tuple[tuple[str, str, str, str, int], ...] = (
    ("EURUSD", "POINTS", "-6.5", "1.2", 3),
    ("GBPUSD", "POINTS", "-4.1", "-0.9", 3),
    ("USDJPY", "POINTS", "11.5", "-22.3", 3),
    ("XAUUSD", "PERCENT", "-5.5", "2.5", 3),
    ("US500", "PERCENT", "-6", "1.5", 5),
    ("BTCUSD", "PERCENT", "-20", "-10", 5),
)


@dataclass(frozen=True)
class DemoCredentials:
    """What a newcomer needs to sign in to the demo broker."""

    username: str
    password: str
    account_id: str


@dataclass(frozen=True)
class OperatorCredentials:
    """The broker operator's login (no trading account: staff act on clients' accounts)."""

    username: str
    password: str


def _uuid_for(kind: str, name: str) -> uuid.UUID:
    """Stable ids for reference data, so seeding twice finds the same rows."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://tradingmesh.local/{kind}/{name}")


async def _seed_reference_data(conn: psycopg.AsyncConnection[object]) -> None:
    for symbol, desc, asset, base, quote, digits, size, lo, hi, step, margin in INSTRUMENTS:
        tick = Decimal(1).scaleb(-digits)
        await conn.execute(
            """INSERT INTO pricing.instruments (symbol, description, asset_class, base_currency,
                   quote_currency, digits, tick_size, contract_size, min_lot, max_lot, lot_step,
                   margin_rate)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (symbol) DO NOTHING""",
            (
                symbol,
                desc,
                asset,
                base,
                quote,
                digits,
                tick,
                Decimal(size),
                Decimal(lo),
                Decimal(hi),
                Decimal(step),
                Decimal(margin),
            ),
        )
        # The account service's copy of the lot rules (migration 0007), taken from the row
        # above with its version, so the instrument's next event supersedes it.
        await conn.execute(
            """INSERT INTO account.instruments (symbol, lot_step, min_lot, max_lot, version)
               SELECT symbol, lot_step, min_lot, max_lot, version FROM pricing.instruments
                WHERE symbol = %s
               ON CONFLICT (symbol) DO NOTHING""",
            (symbol,),
        )
    for name, leverage, call, stop, execution, positions, markup, commission in GROUPS:
        group_id = _uuid_for("group", name)
        await conn.execute(
            """INSERT INTO account.client_groups (id, name, currency, leverage, margin_call_level,
                   stop_out_level, execution_mode, position_mode, spread_markup_type,
                   spread_markup, commission_per_lot, max_deviation_points)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'POINTS', %s, %s, 20)
               ON CONFLICT (id) DO NOTHING""",
            (
                group_id,
                name,
                DEMO_CURRENCY,
                leverage,
                Decimal(call),
                Decimal(stop),
                execution,
                positions,
                Decimal(markup),
                Decimal(commission),
            ),
        )
        for instrument in INSTRUMENTS:
            await conn.execute(
                """INSERT INTO account.group_instrument_settings (group_id, symbol, enabled)
                   VALUES (%s, %s, TRUE) ON CONFLICT DO NOTHING""",
                (group_id, instrument[0]),
            )
        # Pricing's copy of the group (ADR 0006), consistent with the rows above; version 0, so
        # any later account event about the group supersedes it.
        await conn.execute(
            """INSERT INTO pricing.groups (group_id, name, markup_type, markup, version)
               VALUES (%s, %s, 'POINTS', %s, 0) ON CONFLICT DO NOTHING""",
            (group_id, name, Decimal(markup)),
        )
        for instrument in INSTRUMENTS:
            await conn.execute(
                """INSERT INTO pricing.group_instruments (group_id, symbol, enabled, version)
                   VALUES (%s, %s, TRUE, 0) ON CONFLICT DO NOTHING""",
                (group_id, instrument[0]),
            )


async def _seed_risk(conn: psycopg.AsyncConnection[object]) -> None:
    """The risk service's copies (migration 0009) of what the seed wrote straight into the
    account and pricing schemas, which no event announces: instruments, groups with their
    instrument settings, and trading accounts with their ledger balance and sequence. Versions
    0 (the instruments' own), so any later event supersedes them."""
    await conn.execute(
        """INSERT INTO risk.instruments (symbol, base_currency, quote_currency, contract_size,
               margin_rate, sessions, halted, version)
           SELECT symbol, base_currency, quote_currency, contract_size, margin_rate, sessions,
                  trading_status = 'HALTED', version
             FROM pricing.instruments
           ON CONFLICT (symbol) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO risk.groups (group_id, name, currency, leverage, margin_call_level,
               stop_out_level, version)
           SELECT id, name, currency, leverage, margin_call_level, stop_out_level, 0
             FROM account.client_groups
           ON CONFLICT (group_id) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO risk.group_instruments (group_id, symbol, enabled, max_order_size,
               max_position, margin_rate, version)
           SELECT group_id, symbol, enabled, max_order_size, max_position, margin_rate, 0
             FROM account.group_instrument_settings
           ON CONFLICT (group_id, symbol) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO risk.accounts (account_id, user_id, group_id, currency, position_mode,
               status, version, balance, ledger_sequence)
           SELECT a.id, a.user_id, a.group_id, a.currency, a.position_mode, a.status, 0,
                  COALESCE(b.balance, 0), COALESCE(b.last_sequence, 0)
             FROM account.trading_accounts a
             LEFT JOIN account.balances b ON b.account_id = a.id
           ON CONFLICT (account_id) DO NOTHING"""
    )


async def _seed_notification(conn: psycopg.AsyncConnection[object]) -> None:
    """The notification service's copies (migration 0019) of the seeded users and trading
    accounts, which no event announces: whom to address an account's email to."""
    await conn.execute(
        """INSERT INTO notification.users (id, email, display_name, status)
           SELECT id, email, display_name, status FROM account.users
           ON CONFLICT (id) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO notification.accounts (id, user_id, account_number, currency)
           SELECT id, user_id, account_number, currency FROM account.trading_accounts
           ON CONFLICT (id) DO NOTHING"""
    )


async def _seed_oms(conn: psycopg.AsyncConnection[object]) -> None:
    """The OMS's copies (migration 0008) of what the seed wrote straight into the account and
    pricing schemas, which no event announces: instruments (with pricing's row version),
    groups, their instrument settings and trading accounts (version 0), so any later event
    supersedes them; and the demo instruments' swap terms (SWAP_RATES, migration 0018)."""
    await conn.execute(
        """INSERT INTO oms.instruments (symbol, base_currency, quote_currency, digits, tick_size,
               contract_size, min_lot, max_lot, lot_step, margin_rate, trading_status, sessions,
               version)
           SELECT symbol, base_currency, quote_currency, digits, tick_size, contract_size,
                  min_lot, max_lot, lot_step, margin_rate, trading_status, sessions, version
             FROM pricing.instruments
           ON CONFLICT (symbol) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO oms.groups (group_id, name, currency, leverage, margin_call_level,
               stop_out_level, execution_mode, position_mode, commission_per_lot,
               max_deviation_points, version)
           SELECT id, name, currency, leverage, margin_call_level, stop_out_level,
                  execution_mode, position_mode, commission_per_lot, max_deviation_points, 0
             FROM account.client_groups
           ON CONFLICT (group_id) DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO oms.group_instruments (group_id, symbol, enabled, commission_per_lot,
               execution_mode, max_deviation_points, max_order_size, max_position, margin_rate,
               version)
           SELECT group_id, symbol, enabled, commission_per_lot, execution_mode,
                  max_deviation_points, max_order_size, max_position, margin_rate, 0
             FROM account.group_instrument_settings
           ON CONFLICT (group_id, symbol) DO NOTHING"""
    )
    for symbol, swap_type, long_rate, short_rate, triple in SWAP_RATES:
        await conn.execute(
            """INSERT INTO oms.swap_rates (symbol, swap_type, long_rate, short_rate,
                   triple_swap_day) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (symbol, group_id) DO NOTHING""",
            (symbol, swap_type, Decimal(long_rate), Decimal(short_rate), triple),
        )
    await conn.execute(
        """INSERT INTO oms.accounts (account_id, user_id, group_id, currency, status,
               position_mode, version)
           SELECT id, user_id, group_id, currency, status, position_mode, 0
             FROM account.trading_accounts
           ON CONFLICT (account_id) DO NOTHING"""
    )


async def seed_demo(database_url: str) -> DemoCredentials | None:
    """Seeds the demo broker; returns the demo user's new credentials, or None if it existed.

    `database_url` is a libpq/psycopg URL with rights to write every service schema (the stack
    passes the admin credentials it keeps in Vault).
    """
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        await _seed_reference_data(conn)
        existing = await conn.execute(
            "SELECT 1 FROM account.users WHERE username = %s", (DEMO_USERNAME,)
        )
        if await existing.fetchone() is not None:
            return None
        password = secrets.token_urlsafe(12)
        user_id, account_id = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            """INSERT INTO account.users (id, username, email, display_name, password_hash,
                   roles, kyc_status, status)
               VALUES (%s, %s, %s, %s, %s, %s, 'APPROVED', 'ACTIVE')""",
            (
                user_id,
                DEMO_USERNAME,
                "demo@tradingmesh.local",
                "Demo Trader",
                PasswordHasher().hash(password),
                ["trader"],
            ),
        )
        await conn.execute(
            """INSERT INTO account.trading_accounts (id, account_number, user_id, group_id,
                   currency, position_mode, status)
               VALUES (%s, %s, %s, %s, %s, 'NETTING', 'ACTIVE')""",
            (
                account_id,
                DEMO_ACCOUNT_NUMBER,
                user_id,
                _uuid_for("group", "standard"),
                DEMO_CURRENCY,
            ),
        )
        await conn.execute(
            """INSERT INTO pricing.accounts (account_id, user_id, group_id) VALUES (%s, %s, %s)""",
            (account_id, user_id, _uuid_for("group", "standard")),
        )
        # The demo funding is a deposit like any other (ADR 0005): one journal with the
        # client's leg and the house cash leg, and the balance cache in the same transaction.
        journal_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO account.ledger_entries (id, journal_id, account_id, sequence, reason,
                   amount, balance_after, currency, reference_type, reference_id, actor_kind,
                   actor_id, description)
               VALUES (%s, %s, %s, 1, 'DEPOSIT', %s, %s, %s, 'seed', %s, 'SYSTEM', 'stack.seed',
                   'Demo funding')""",
            (
                uuid.uuid4(),
                journal_id,
                account_id,
                DEMO_DEPOSIT,
                DEMO_DEPOSIT,
                DEMO_CURRENCY,
                str(account_id),
            ),
        )
        await conn.execute(
            """INSERT INTO account.house_ledger_entries (id, journal_id, house_account, reason,
                   amount, currency)
               VALUES (%s, %s, 'house:cash', 'DEPOSIT', %s, %s)""",
            (uuid.uuid4(), journal_id, -DEMO_DEPOSIT, DEMO_CURRENCY),
        )
        await conn.execute(
            """INSERT INTO account.balances (account_id, currency, balance, last_sequence)
               VALUES (%s, %s, %s, 1)""",
            (account_id, DEMO_CURRENCY, DEMO_DEPOSIT),
        )
        await _seed_risk(conn)
        await _seed_oms(conn)
        await _seed_notification(conn)
    return DemoCredentials(DEMO_USERNAME, password, str(account_id))


async def seed_operator(database_url: str) -> OperatorCredentials | None:
    """Seeds the broker operator (every staff role); returns its new credentials, or None if it
    existed (only a hash of its password is stored, as for the demo user)."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        existing = await conn.execute(
            "SELECT 1 FROM account.users WHERE username = %s", (OPERATOR_USERNAME,)
        )
        if await existing.fetchone() is not None:
            return None
        password = secrets.token_urlsafe(12)
        await conn.execute(
            """INSERT INTO account.users (id, username, email, display_name, password_hash,
                   roles, kyc_status, status)
               VALUES (%s, %s, %s, %s, %s, %s, 'APPROVED', 'ACTIVE')""",
            (
                uuid.uuid4(),
                OPERATOR_USERNAME,
                "operator@tradingmesh.local",
                "Broker Operator",
                PasswordHasher().hash(password),
                list(OPERATOR_ROLES),
            ),
        )
    return OperatorCredentials(OPERATOR_USERNAME, password)
