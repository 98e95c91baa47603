"""Alembic environment: online migrations only, URL from TM_MIGRATIONS_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy import pool

URL_VARIABLE = "TM_MIGRATIONS_DATABASE_URL"


def run_migrations_online() -> None:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise SystemExit(f"{URL_VARIABLE} is not set (postgresql+psycopg://admin:...@host:port/db)")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Alembic's own bookkeeping lives in public; every service's tables in its own schema.
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
run_migrations_online()
