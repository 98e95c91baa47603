"""What goes into PostgreSQL after it starts: the schema (Alembic) and the demo broker (seed)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import Protocol

from services.platform.infra_tls import with_libpq_tls
from stack.components.postgres import DATABASE
from stack.ports import HOST
from stack.secrets import Login
from stack.state import DemoCredentials
from stack.state import OperatorCredentials

log = logging.getLogger("stack")

SEED_MODULE = "stack.seed"


class ProvisionError(RuntimeError):
    pass


class _Demo(Protocol):
    """What `stack.seed.seed_demo` returns (the lead's DemoCredentials)."""

    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def account_id(self) -> str: ...


class _Operator(Protocol):
    """What `stack.seed.seed_operator` returns."""

    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...


def admin_url(admin: Login, port: int, ca_file: str | Path) -> str:
    """The superuser's SQLAlchemy URL, over TLS verified against `ca_file` (ADR 0018)."""
    user = urllib.parse.quote(admin.username, safe="")
    password = urllib.parse.quote(admin.password.reveal(), safe="")
    return with_libpq_tls(
        f"postgresql+psycopg://{user}:{password}@{HOST}:{port}/{DATABASE}", ca_file
    )


def migrate(repo: Path, database_url: str, log_path: Path, timeout: float) -> bool:
    """`alembic upgrade head` with the admin URL in the environment only; False if no migrations.

    The URL (with the superuser password) goes to Alembic through TM_MIGRATIONS_DATABASE_URL,
    never on the command line or into a file.
    """
    ini = repo / "migrations" / "alembic.ini"
    if not ini.is_file():
        log.info("migrations: %s does not exist yet, skipped", ini.relative_to(repo))
        return False
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TM_", "BAO_", "VAULT_"))}
    env["TM_MIGRATIONS_DATABASE_URL"] = database_url
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
                cwd=repo,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ProvisionError(f"migrations took longer than {timeout:.0f} s") from error
    if result.returncode != 0:
        raise ProvisionError(f"migrations failed ({result.returncode}); see {log_path}")
    log.info("migrations: at head (%.1f s)", time.monotonic() - started)
    return True


def seed(
    database_url: str, timeout: float
) -> tuple[DemoCredentials | None, OperatorCredentials | None]:
    """Run `stack.seed.seed_demo` (the demo broker) and `seed_operator` (its operator).

    Each is None if that module does not exist yet, or if the user existed already (the seed
    returns None then: it stores only a hash of the password it generated the first time).
    """
    try:
        module = importlib.import_module(SEED_MODULE)
    except ModuleNotFoundError as error:
        if error.name != SEED_MODULE:
            raise
        log.info("seed: %s does not exist yet, skipped", SEED_MODULE)
        return None, None
    # In a thread with its own event loop: `up()` may be called from code that already runs one.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed")
    started = time.monotonic()
    try:
        demo: _Demo | None = pool.submit(asyncio.run, module.seed_demo(database_url)).result(
            timeout
        )
        operator: _Operator | None = None
        if hasattr(module, "seed_operator"):
            operator = pool.submit(asyncio.run, module.seed_operator(database_url)).result(
                max(timeout - (time.monotonic() - started), 1.0)
            )
    except FutureTimeoutError as error:
        raise ProvisionError(f"seeding took longer than {timeout:.0f} s") from error
    finally:
        pool.shutdown(wait=False)
    demo_login = (
        None
        if demo is None
        else DemoCredentials(
            username=demo.username, password=demo.password, account_id=str(demo.account_id)
        )
    )
    operator_login = (
        None
        if operator is None
        else OperatorCredentials(username=operator.username, password=operator.password)
    )
    return demo_login, operator_login
