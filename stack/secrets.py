"""The stack's credentials: generated once per Vault, kept only in Vault (ADR 0004 layout).

    secret/tradingmesh/postgres/<service>  username, password   (that service's database role)
    secret/tradingmesh/postgres/admin      username, password   (superuser: migrations, seed)
    secret/tradingmesh/postgres/replication username, password  (the read replica's streaming)
    secret/tradingmesh/redis               password
    secret/tradingmesh/nats                username, password
    secret/tradingmesh/edge                token                (Envoy -> services)
    secret/tradingmesh/lp/<lp>             username, password   (our FIX logon at that LP)
    secret/tradingmesh/smtp                host, port, username, password, sender
                                           (the mail relay: the stack's SMTP sink)
    secret/tradingmesh/account/webhooks    <provider>: {"kind", "secrets", "allow"} as JSON
                                           (payment/KYC webhook HMAC keys and allow-lists)
    transit/keys/access-token              rsa-2048 key, never exported (signs access tokens)

OpenBao's dev server keeps everything in memory, so a new OpenBao means new secrets: the
orchestrator then restarts every process holding an old one, and re-keys PostgreSQL's roles.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from dataclasses import field

from services.platform.secrets import Secret
from stack.pki import issue_policy
from stack.ports import LP_SIMULATORS
from stack.ports import SERVICES
from stack.vault import VaultAdmin

PREFIX = "tradingmesh"
POSTGRES_ADMIN_USER = "postgres"
# The role the read replica streams the WAL as (REPLICATION, nothing else; ADR 0012).
REPLICATION_USER = "replication"
# The metrics exporter's PostgreSQL role: pg_monitor (statistics views), nothing else.
MONITORING_USER = "monitoring"
NATS_USER = "tradingmesh"
SMTP_USER = "tradingmesh"
SERVICE_TOKEN_PERIOD = "24h"
# The demo payment and KYC providers of the account service's webhooks (WebhookService); locally
# they may call only from this machine.
WEBHOOK_PROVIDERS = {"demopay": "payment", "demokyc": "kyc"}
WEBHOOK_ALLOW_LIST = ("127.0.0.1/32",)
# The access token signing key (ADR 0005): its versions are the JWKS's keys; only the account
# service may sign with it, read its public keys and rotate it.
TRANSIT_MOUNT = "transit"
SIGNING_KEY = "access-token"


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
    lp: dict[str, Login]  # per LP: the FIX logon its simulator expects and the gateway sends
    webhooks: dict[str, Secret] = field(default_factory=dict)  # per provider: its HMAC key
    # The read replica's streaming role (None only in code that builds secrets by hand).
    replication: Login | None = None
    smtp: Login = field(default_factory=lambda: Login(SMTP_USER, generate()))  # the relay's
    # The PostgreSQL exporter's role (None only in code that builds secrets by hand).
    monitoring: Login | None = None

    def values(self) -> list[str]:
        """Every secret value, for the test that scans the state directory for leaks."""
        logins = [
            self.postgres_admin,
            self.nats,
            self.smtp,
            *self.postgres.values(),
            *self.lp.values(),
        ]
        logins.extend(login for login in (self.replication, self.monitoring) if login)
        return [
            *(login.password.reveal() for login in logins),
            self.redis_password.reveal(),
            self.edge_token.reveal(),
            *(secret.reveal() for secret in self.webhooks.values()),
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
        lp={lp: Login("tradingmesh", generate()) for lp in LP_SIMULATORS},
        webhooks={provider: generate() for provider in WEBHOOK_PROVIDERS},
        replication=Login(REPLICATION_USER, generate()),
        smtp=Login(SMTP_USER, generate()),
        monitoring=Login(MONITORING_USER, generate()),
    )


def _login(data: dict[str, str] | None) -> Login | None:
    if not data or not data.get("username") or not data.get("password"):
        return None
    return Login(data["username"], Secret(data["password"]))


def read(vault: VaultAdmin) -> StackSecrets | None:
    """The secrets in Vault, or None if any of them is missing."""
    admin = _login(vault.read(_path("postgres", "admin")))
    replication = _login(vault.read(_path("postgres", "replication")))
    monitoring = _login(vault.read(_path("postgres", MONITORING_USER)))
    roles = {s: _login(vault.read(_path("postgres", s))) for s in SERVICES}
    redis = vault.read(_path("redis"))
    nats = _login(vault.read(_path("nats")))
    edge = vault.read(_path("edge"))
    smtp = _login(vault.read(_path("smtp")))
    lp = {name: _login(vault.read(_path("lp", name))) for name in LP_SIMULATORS}
    if (
        admin is None
        or replication is None
        or monitoring is None
        or nats is None
        or smtp is None
        or not redis
        or not edge
    ):
        return None
    complete = {s: login for s, login in roles.items() if login is not None}
    if len(complete) != len(SERVICES) or not redis.get("password") or not edge.get("token"):
        return None
    lp_logins = {name: login for name, login in lp.items() if login is not None}
    if len(lp_logins) != len(LP_SIMULATORS):
        return None
    webhooks = _webhook_secrets(vault.read(_path("account", "webhooks")))
    if webhooks is None:
        return None
    return StackSecrets(
        postgres_admin=admin,
        postgres=complete,
        redis_password=Secret(redis["password"]),
        nats=nats,
        edge_token=Secret(edge["token"]),
        lp=lp_logins,
        webhooks=webhooks,
        replication=replication,
        smtp=smtp,
        monitoring=monitoring,
    )


def _webhook_secrets(data: dict[str, str] | None) -> dict[str, Secret] | None:
    """Each demo provider's HMAC key from its JSON entry, or None if any is missing."""
    found: dict[str, Secret] = {}
    for provider in WEBHOOK_PROVIDERS:
        try:
            keys = json.loads((data or {})[provider])["secrets"]
        except (KeyError, TypeError, ValueError):
            return None
        if not keys:
            return None
        found[provider] = Secret(keys[0])
    return found


def _write(vault: VaultAdmin, stack: StackSecrets) -> None:
    def login(value: Login) -> dict[str, str]:
        return {"username": value.username, "password": value.password.reveal()}

    vault.write(_path("postgres", "admin"), login(stack.postgres_admin))
    if stack.replication is not None:
        vault.write(_path("postgres", "replication"), login(stack.replication))
    if stack.monitoring is not None:
        vault.write(_path("postgres", MONITORING_USER), login(stack.monitoring))
    for service, role in stack.postgres.items():
        vault.write(_path("postgres", service), login(role))
    vault.write(_path("redis"), {"password": stack.redis_password.reveal()})
    vault.write(_path("nats"), login(stack.nats))
    vault.write(_path("edge"), {"token": stack.edge_token.reveal()})
    for name, lp_login in stack.lp.items():
        vault.write(_path("lp", name), login(lp_login))
    providers = {
        name: json.dumps(
            {
                "kind": WEBHOOK_PROVIDERS[name],
                "secrets": [secret.reveal()],
                "allow": list(WEBHOOK_ALLOW_LIST),
            }
        )
        for name, secret in stack.webhooks.items()
    }
    vault.write(_path("account", "webhooks"), providers)
    # The relay's address is the stack's sink; `up` writes it (`write_smtp_relay`) once it knows
    # the ports. Until then the login alone marks the set complete.
    vault.write(_path("smtp"), login(stack.smtp))


def write_smtp_relay(vault: VaultAdmin, login: Login, host: str, port: int, sender: str) -> None:
    """The notification service's mail relay (`secret/tradingmesh/smtp`): in the dev stack its
    SMTP sink; in production an operator writes the relay's own values here."""
    vault.write(
        _path("smtp"),
        {
            "host": host,
            "port": str(port),
            "username": login.username,
            "password": login.password.reveal(),
            "sender": sender,
        },
    )


def ensure(vault: VaultAdmin) -> tuple[StackSecrets, bool]:
    """The stack's secrets, generating and writing a complete new set if any is missing.

    Returns (secrets, rotated): `rotated` means they are new, so every running holder of an old
    secret must be restarted. All-or-nothing keeps one rule for every partial state.
    """
    vault.ensure_transit_key(TRANSIT_MOUNT, SIGNING_KEY, "rsa-2048")
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
    if service in ("pricing", "oms"):  # market data and STP hedge orders: logons to every LP
        paths += [_path("lp", name) for name in LP_SIMULATORS]
    if service == "account":  # payment and KYC webhook keys and allow-lists
        paths.append(_path("account", "webhooks"))
    if service == "notification":  # the mail relay's address and login
        paths.append(_path("smtp"))
    policy = "\n".join(f'path "secret/data/{p}" {{\n  capabilities = ["read"]\n}}' for p in paths)
    policy += "\n" + issue_policy(service)  # its own certificate, for its name only (ADR 0018)
    if service == "account":  # signs access tokens; the private key is not exportable
        grants = {
            f"{TRANSIT_MOUNT}/sign/{SIGNING_KEY}": "update",
            f"{TRANSIT_MOUNT}/keys/{SIGNING_KEY}": "read",
            f"{TRANSIT_MOUNT}/keys/{SIGNING_KEY}/rotate": "update",
        }
        policy += "".join(
            f'\npath "{path}" {{\n  capabilities = ["{grant}"]\n}}'
            for path, grant in grants.items()
        )
    return policy


def issue_service_token(vault: VaultAdmin, service: str) -> Secret:
    """Write the service's policy and create a token bound to it (one per process start)."""
    policy = f"tradingmesh-{service}"
    vault.put_policy(policy, service_policy(service))
    token = vault.create_token(
        [policy], display_name=f"tradingmesh-{service}", period=SERVICE_TOKEN_PERIOD
    )
    return Secret(token)
