"""The stack's edge as a client sees it: Envoy's addresses and TLS (`Edge`), users made through
AccountAdminService and signed in (`make_user`, `login`, `bearer`), a refusal's code and reason
(`refused`), and restarting Envoy."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import psycopg
import pytest
import redis
from argon2 import PasswordHasher

from stack import secrets as stack_secrets
from stack.orchestrator import status
from stack.orchestrator import up
from stack.ports import Ports
from stack.state import StackState
from stack.vault import VaultAdmin
from tests.integration.conftest import RunningStack
from tests.integration.support.infra import connect_postgres
from tests.integration.support.infra import redis_client
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import details_of

STANDARD_GROUP = uuid.uuid5(uuid.NAMESPACE_URL, "https://tradingmesh.local/group/standard")


_HASHER = PasswordHasher()


@dataclass(frozen=True)
class Edge:
    state: StackState

    @property
    def ports(self) -> Ports:
        return Ports(self.state.base_port)

    def credentials(self) -> grpc.ChannelCredentials:
        # Read each time: a restarted Envoy has new certificates.
        return grpc.ssl_channel_credentials(Path(self.state.endpoints.ca_file).read_bytes())

    def channel(self, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
        return grpc.secure_channel(self.state.endpoints.grpc, self.credentials(), options=options)

    def https(self, source: str = "127.0.0.1") -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=self.state.endpoints.ca_file)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.ports.envoy, context=context, source_address=(source, 0), timeout=20
        )

    def admin_secrets(self) -> stack_secrets.StackSecrets:
        known = stack_secrets.read(self.vault())
        assert known is not None
        return known

    def vault(self) -> VaultAdmin:
        token = Path(self.state.vault.root_token_file).read_text().strip()
        return VaultAdmin(self.state.vault.address, token)

    def database(self) -> psycopg.Connection[Any]:
        admin = self.admin_secrets().postgres_admin
        return connect_postgres(
            self.state.endpoints.ca_file,
            host="127.0.0.1",
            port=self.ports.postgres,
            dbname="tradingmesh",
            user=admin.username,
            password=admin.password.reveal(),
            autocommit=True,
        )

    def redis(self) -> redis.Redis:
        password = self.admin_secrets().redis_password.reveal()
        return redis_client(self.ports.redis, password, self.state.endpoints.ca_file)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    password: str
    account_id: str


def make_user(edge: Edge, roles: list[str]) -> User:
    user = User(
        id=str(uuid.uuid4()),
        username=f"it-{uuid.uuid4().hex[:12]}",
        password=f"pw-{uuid.uuid4().hex}",
        account_id=str(uuid.uuid4()),
    )
    with edge.database() as db:
        db.execute(
            "INSERT INTO account.users (id, username, email, display_name, password_hash, roles,"
            " kyc_status, status) VALUES (%s, %s, %s, %s, %s, %s, 'APPROVED', 'ACTIVE')",
            (
                user.id,
                user.username,
                f"{user.username}@example.test",
                "Integration Test",
                _HASHER.hash(user.password),
                roles,
            ),
        )
        db.execute(
            "INSERT INTO account.trading_accounts (id, account_number, user_id, group_id,"
            " currency, position_mode, status) VALUES (%s, %s, %s, %s, 'USD', 'NETTING', 'ACTIVE')",
            (user.account_id, f"it{uuid.uuid4().int % 10**12}", user.id, STANDARD_GROUP),
        )
    return user


def login(edge: Edge, user: User) -> auth_pb2.LoginResponse:
    with edge.channel() as channel:
        response: auth_pb2.LoginResponse = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=user.username, password=user.password), timeout=20
        )
    return response


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def refused(call: Any) -> tuple[grpc.StatusCode, ErrorReason.ValueType, str]:
    """Runs `call`, which must fail; its status, ErrorInfo reason and message."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    details = details_of(raised.value)
    return details.code, details.reason, details.message


def restart_envoy(running_stack: RunningStack) -> None:
    """A verifier that (re)starts fetches the JWKS at once: what the cache lifetime gives."""
    state = status(running_stack.config.name)
    assert state is not None
    envoy = state.component("envoy")
    assert envoy is not None
    assert envoy.pid is not None
    os.kill(envoy.pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(envoy.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    up(running_stack.config)
