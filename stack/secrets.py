"""The stack's credentials: generated once per Vault, kept only in Vault (ADR 0004 layout).

    secret/tradingmesh/postgres/<service>  username, password   (that service's database role)
    secret/tradingmesh/postgres/admin      username, password   (superuser: migrations, seed)
    secret/tradingmesh/redis               password
    secret/tradingmesh/nats                username, password
    secret/tradingmesh/edge                token                (Envoy -> services)

OpenBao's dev server keeps everything in memory, so a new OpenBao means new secrets: the
orchestrator then restarts every process holding an old one, and re-keys PostgreSQL's roles.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from services.platform.secrets import Secret
from stack.ports import SERVICES
from stack.vault import VaultAdmin

PREFIX = "tradingmesh"
POSTGRES_ADMIN_USER = "postgres"
NATS_USER = "tradingmesh"
SERVICE_TOKEN_PERIOD = "24h"


def generate() -> Secret:
    # 32 random bytes, URL-safe base64: safe in URLs, NATS config strings and SQL literals.
    return Secret(secrets.token_urlsafe(32))


@dataclass(frozen=True)
class Login:
    username: str
    password: Secret


@dataclass(frozen=True)
class StackSecrets:
    postgres_admin: Login
    postgres: dict[str, Login]  # per service; the role name is the service name
    redis_password: Secret
    nats: Login
    edge_token: Secret

    def values(self) -> list[str]:
        """Every secret value, for the test that scans the state directory for leaks."""
        logins = [self.postgres_admin, self.nats, *self.postgres.values()]
        return [
            *(login.password.reveal() for login in logins),
            self.redis_password.reveal(),
            self.edge_token.reveal(),
        ]


def _path(*parts: str) -> str:
    return "/".join((PREFIX, *parts))


def _generate_all() -> StackSecrets:
    return StackSecrets(
        postgres_admin=Login(POSTGRES_ADMIN_USER, generate()),
        postgres={service: Login(service, generate()) for service in SERVICES},
        redis_password=generate(),
        nats=Login(NATS_USER, generate()),
        edge_token=generate(),
    )


def _login(data: dict[str, str] | None) -> Login | None:
    if not data or not data.get("username") or not data.get("password"):
        return None
    return Login(data["username"], Secret(data["password"]))


def read(vault: VaultAdmin) -> StackSecrets | None:
    """The secrets in Vault, or None if any of them is missing."""
    admin = _login(vault.read(_path("postgres", "admin")))
    roles = {s: _login(vault.read(_path("postgres", s))) for s in SERVICES}
    redis = vault.read(_path("redis"))
    nats = _login(vault.read(_path("nats")))
    edge = vault.read(_path("edge"))
    if admin is None or nats is None or not redis or not edge:
        return None
    complete = {s: login for s, login in roles.items() if login is not None}
    if len(complete) != len(SERVICES) or not redis.get("password") or not edge.get("token"):
        return None
    return StackSecrets(
        postgres_admin=admin,
        postgres=complete,
        redis_password=Secret(redis["password"]),
        nats=nats,
        edge_token=Secret(edge["token"]),
    )


def _write(vault: VaultAdmin, stack: StackSecrets) -> None:
    def login(value: Login) -> dict[str, str]:
        return {"username": value.username, "password": value.password.reveal()}

    vault.write(_path("postgres", "admin"), login(stack.postgres_admin))
    for service, role in stack.postgres.items():
        vault.write(_path("postgres", service), login(role))
    vault.write(_path("redis"), {"password": stack.redis_password.reveal()})
    vault.write(_path("nats"), login(stack.nats))
    vault.write(_path("edge"), {"token": stack.edge_token.reveal()})


def ensure(vault: VaultAdmin) -> tuple[StackSecrets, bool]:
    """The stack's secrets, generating and writing a complete new set if any is missing.

    Returns (secrets, rotated): `rotated` means they are new, so every running holder of an old
    secret must be restarted. All-or-nothing keeps one rule for every partial state.
    """
    existing = read(vault)
    if existing is not None:
        return existing, False
    fresh = _generate_all()
    _write(vault, fresh)
    return fresh, True


def service_policy(service: str) -> str:
    """Read access to exactly the paths `service` needs (ADR 0004), nothing else."""
    paths = [
        f"{_path('postgres', service)}",
        _path("redis"),
        _path("nats"),
        _path("edge"),
    ]
    return "\n".join(f'path "secret/data/{p}" {{\n  capabilities = ["read"]\n}}' for p in paths)


def issue_service_token(vault: VaultAdmin, service: str) -> Secret:
    """Write the service's policy and create a token bound to it (one per process start)."""
    policy = f"tradingmesh-{service}"
    vault.put_policy(policy, service_policy(service))
    token = vault.create_token(
        [policy], display_name=f"tradingmesh-{service}", period=SERVICE_TOKEN_PERIOD
    )
    return Secret(token)
