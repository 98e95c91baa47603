"""Calling the account service as Envoy would, for the account, ledger and webhook tests.

Until the edge verifies JWTs, tests call the service directly with the metadata Envoy adds:
the edge token from Vault and the identity headers of the caller they play. Webhooks, which
are public at the edge, are also sent through Envoy's REST route (`post_webhook`).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.api import httpbody_pb2

from services.account.webhook_auth import sign
from stack import secrets as stack_secrets
from stack.operator_tls import service_channel
from stack.ports import Ports
from stack.provision import admin_url
from stack.state import StackState
from stack.vault import VaultAdmin
from tests.integration.conftest import RunningStack
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as admin_grpc
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.account.v1 import account_service_pb2_grpc as api_grpc
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.account.v1 import webhook_service_pb2_grpc as wh_grpc

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Who:
    subject: str
    roles: str
    accounts: str = ""
    client_ip: str = "127.0.0.1"


@dataclass
class AccountStack:
    state: StackState
    channel: grpc.Channel
    edge_token: str
    database_url: str
    webhook_secrets: dict[str, str]
    nats_url: str
    nats_user: str
    nats_password: str

    @property
    def nats_ca_file(self) -> str:
        """The stack's CA: NATS requires TLS (ADR 0018)."""
        return self.state.endpoints.ca_file

    @property
    def api(self) -> api_grpc.AccountServiceStub:
        return api_grpc.AccountServiceStub(self.channel)

    @property
    def admin(self) -> admin_grpc.AccountAdminServiceStub:
        return admin_grpc.AccountAdminServiceStub(self.channel)

    @property
    def webhooks(self) -> wh_grpc.WebhookServiceStub:
        return wh_grpc.WebhookServiceStub(self.channel)

    def as_(self, who: Who) -> Metadata:
        pairs = [
            ("x-tm-edge-token", self.edge_token),
            ("x-tm-subject", who.subject),
            ("x-tm-roles", who.roles),
            ("x-tm-client-ip", who.client_ip),
        ]
        if who.accounts:
            pairs.append(("x-tm-accounts", who.accounts))
        return tuple(pairs)

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    # -- arranging ------------------------------------------------------------------------------

    def new_user(self, staff: Who, *, kyc_approved: bool = True) -> pb.User:
        name = f"u{uuid.uuid4().hex[:12]}"
        user = self.admin.CreateUser(
            admin_pb.CreateUserRequest(
                username=name,
                email=f"{name}@example.test",
                display_name="Test User",
                roles=[pb.ROLE_TRADER],
                initial_password="correct horse battery",
            ),
            metadata=self.as_(staff),
        ).user
        if kyc_approved:
            outcome = self.kyc(user.id, "approved")
            assert outcome == wh_pb.WEBHOOK_EVENT_OUTCOME_APPLIED
        return user

    def new_account(self, staff: Who, user_id: str) -> pb.TradingAccount:
        groups = self.admin.ListClientGroups(
            admin_pb.ListClientGroupsRequest(), metadata=self.as_(staff)
        ).client_groups
        usd = next(g for g in groups if g.currency == "USD")
        return self.admin.CreateTradingAccount(
            admin_pb.CreateTradingAccountRequest(user_id=user_id, group_id=usd.id),
            metadata=self.as_(staff),
        ).account

    def signed(
        self, provider: str, body: dict[str, Any], *, at: int | None = None
    ) -> tuple[bytes, str]:
        raw = json.dumps(body).encode()
        t = int(time.time()) if at is None else at
        return raw, f"t={t},v1={sign(self.webhook_secrets[provider], t, raw)}"

    def kyc(self, user_id: str, status: str) -> int:
        raw, signature = self.signed(
            "demokyc",
            {
                "event_id": f"kyc_{uuid.uuid4().hex}",
                "user_id": user_id,
                "status": status,
                "occurred_at": _now_rfc3339(),
            },
        )
        response = self.webhooks.ReceiveKycEvent(
            wh_pb.ReceiveKycEventRequest(
                provider="demokyc",
                body=httpbody_pb2.HttpBody(content_type="application/json", data=raw),
            ),
            metadata=(*self.as_(Who("", "")), ("x-tradingmesh-signature", signature)),
        )
        return int(response.outcome)

    def deposit_direct(
        self, account_number: str, amount: str, *, event_id: str | None = None
    ) -> int:
        """A completed deposit webhook straight to the service (as Envoy would forward it)."""
        raw, signature = self.signed("demopay", deposit_body(account_number, amount, event_id))
        response = self.webhooks.ReceivePaymentEvent(
            wh_pb.ReceivePaymentEventRequest(
                provider="demopay",
                body=httpbody_pb2.HttpBody(content_type="application/json", data=raw),
            ),
            metadata=(*self.as_(Who("", "")), ("x-tradingmesh-signature", signature)),
        )
        return int(response.outcome)

    def post_webhook(
        self, path: str, raw: bytes, signature: str | None
    ) -> tuple[int, dict[str, Any]]:
        """POST through Envoy's public REST route; (HTTP status, JSON body or {})."""
        context = ssl.create_default_context(cafile=self.state.endpoints.ca_file)
        connection = http.client.HTTPSConnection(
            "127.0.0.1", Ports(self.state.base_port).envoy, context=context, timeout=15
        )
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["X-Tradingmesh-Signature"] = signature
        try:
            connection.request("POST", path, body=raw, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        return response.status, (json.loads(payload) if payload.strip() else {})

    # -- observing ------------------------------------------------------------------------------

    def balance(self, account_id: str) -> tuple[Any, Any, int]:
        """(cached balance, sum of the entries, number of entries) straight from PostgreSQL."""
        with self.db() as conn:
            cached = conn.execute(
                "SELECT balance FROM account.balances WHERE account_id = %s", (account_id,)
            ).fetchone()
            total = conn.execute(
                "SELECT COALESCE(sum(amount), 0), count(*) FROM account.ledger_entries"
                " WHERE account_id = %s",
                (account_id,),
            ).fetchone()
        assert cached is not None
        assert total is not None
        return cached[0], total[0], int(total[1])


def deposit_body(account_number: str, amount: str, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": "deposit",
        "account_number": account_number,
        "amount": amount,
        "currency": "USD",
        "status": "completed",
        "occurred_at": _now_rfc3339(),
    }


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def staff(role: str = "backoffice") -> Who:
    return Who(str(uuid.uuid4()), role)


def account_stack(running_stack: RunningStack) -> Iterator[AccountStack]:
    state = running_stack.state
    vault = VaultAdmin(state.vault.address, Path(state.vault.root_token_file).read_text().strip())
    known = stack_secrets.read(vault)
    assert known is not None
    providers = vault.read("tradingmesh/account/webhooks") or {}
    secrets = {name: json.loads(value)["secrets"][0] for name, value in providers.items()}
    url = admin_url(known.postgres_admin, Ports(state.base_port).postgres, state.endpoints.ca_file)
    channel = service_channel(state, "account")
    try:
        yield AccountStack(
            state=state,
            channel=channel,
            edge_token=known.edge_token.reveal(),
            database_url=url.replace("postgresql+psycopg://", "postgresql://", 1),
            webhook_secrets=secrets,
            nats_url=f"nats://127.0.0.1:{Ports(state.base_port).nats}",
            nats_user=known.nats.username,
            nats_password=known.nats.password.reveal(),
        )
    finally:
        channel.close()
