"""The traders of bench.orders: funded accounts to place orders with, signed in through Envoy.

The OMS serializes each account's commits (ADR 0007, "Per-account serialization"), so one
account cannot show what the OMS does with many; the benchmark makes its own traders, one
account each. The stack seeds no staff user, so they are made the way the integration tests make
theirs (tests/integration/test_trading_flow.py): straight to the account service with the
headers Envoy would add for a back-office caller (the edge token from the stack's Vault), a
signed KYC approval and a signed demopay deposit through the webhook service, as a provider
would. The accounts' events then reach the OMS and the risk service as any account's do, and each
trader signs in through Envoy with its password. `wait_until_trading` sends each account a
buy and a sell until both fill, so the benchmark starts once every account can trade.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.api import httpbody_pb2

from bench.orders_load import FILLED
from bench.orders_load import Account
from bench.orders_load import market_order
from bench.orders_load import order_outcome
from bench.orders_stats import order_leg
from services.account.webhook_auth import WEBHOOKS_PATH
from services.account.webhook_auth import sign
from stack import secrets as stack_secrets
from stack.operator_tls import service_channel
from stack.ports import HOST
from stack.state import StackState
from stack.vault import VaultAdmin
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as admin_grpc
from tradingmesh.account.v1 import account_pb2
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.account.v1 import webhook_service_pb2 as wh_pb
from tradingmesh.account.v1 import webhook_service_pb2_grpc as wh_grpc
from tradingmesh.oms.v1 import order_service_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Trader:
    username: str
    password: str
    account_id: str


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _AccountService:
    """The account service called directly, as Envoy would call it."""

    def __init__(self, state: StackState, channel: grpc.Channel) -> None:
        token = Path(state.vault.root_token_file).read_text().strip()
        vault = VaultAdmin(state.vault.address, token)
        known = stack_secrets.read(vault)
        if known is None:
            raise SystemExit(f"stack {state.name!r} has no secrets in its Vault")
        providers = vault.read(WEBHOOKS_PATH) or {}
        self.webhook_secrets = {
            name: str(json.loads(value)["secrets"][0]) for name, value in providers.items()
        }
        self.edge_token = known.edge_token.reveal()
        self.admin = admin_grpc.AccountAdminServiceStub(channel)
        self.webhooks = wh_grpc.WebhookServiceStub(channel)
        self.staff = self._as(str(uuid.uuid4()), "backoffice")

    def _as(self, subject: str, roles: str) -> Metadata:
        return (
            ("x-tm-edge-token", self.edge_token),
            ("x-tm-subject", subject),
            ("x-tm-roles", roles),
            ("x-tm-client-ip", HOST),
        )

    def _signed(
        self, provider: str, body: dict[str, str]
    ) -> tuple[httpbody_pb2.HttpBody, Metadata]:
        if provider not in self.webhook_secrets:
            raise SystemExit(f"no webhook provider {provider!r} in the stack's Vault")
        raw = json.dumps(body).encode()
        at = int(time.time())
        signature = f"t={at},v1={sign(self.webhook_secrets[provider], at, raw)}"
        metadata = (*self._as("", ""), ("x-tradingmesh-signature", signature))
        return httpbody_pb2.HttpBody(content_type="application/json", data=raw), metadata

    def group_id(self, name: str) -> str:
        groups = self.admin.ListClientGroups(
            admin_pb.ListClientGroupsRequest(), metadata=self.staff, timeout=30
        ).client_groups
        for group in groups:
            if group.name == name:
                return str(group.id)
        raise SystemExit(f"no client group {name!r} (have {', '.join(g.name for g in groups)})")

    def new_trader(self, group_id: str, deposit: str, currency: str) -> Trader:
        username = f"bench{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        user = self.admin.CreateUser(
            admin_pb.CreateUserRequest(
                username=username,
                email=f"{username}@example.test",
                display_name="Benchmark Trader",
                roles=[account_pb2.ROLE_TRADER],
                initial_password=password,
            ),
            metadata=self.staff,
            timeout=30,
        ).user
        body, metadata = self._signed(
            "demokyc",
            {
                "event_id": f"kyc_{uuid.uuid4().hex}",
                "user_id": user.id,
                "status": "approved",
                "occurred_at": _now_rfc3339(),
            },
        )
        self.webhooks.ReceiveKycEvent(
            wh_pb.ReceiveKycEventRequest(provider="demokyc", body=body),
            metadata=metadata,
            timeout=30,
        )
        account = self.admin.CreateTradingAccount(
            admin_pb.CreateTradingAccountRequest(user_id=user.id, group_id=group_id),
            metadata=self.staff,
            timeout=30,
        ).account
        body, metadata = self._signed(
            "demopay",
            {
                "event_id": f"evt_{uuid.uuid4().hex}",
                "type": "deposit",
                "account_number": account.account_number,
                "amount": deposit,
                "currency": currency,
                "status": "completed",
                "occurred_at": _now_rfc3339(),
            },
        )
        outcome = self.webhooks.ReceivePaymentEvent(
            wh_pb.ReceivePaymentEventRequest(provider="demopay", body=body),
            metadata=metadata,
            timeout=30,
        ).outcome
        if outcome != wh_pb.WEBHOOK_EVENT_OUTCOME_APPLIED:
            raise SystemExit(f"the deposit to {account.account_number} was not applied: {outcome}")
        return Trader(username, password, str(account.id))


def make_traders(state: StackState, count: int, group: str, deposit: str) -> list[Trader]:
    """`count` KYC-approved users, each with one funded account in client group `group`."""
    with service_channel(state, "account") as channel:  # as the operator (ADR 0018)
        service = _AccountService(state, channel)
        group_id = service.group_id(group)
        currency = next(
            g.currency
            for g in service.admin.ListClientGroups(
                admin_pb.ListClientGroupsRequest(), metadata=service.staff, timeout=30
            ).client_groups
            if g.id == group_id
        )
        return [service.new_trader(group_id, deposit, currency) for _ in range(count)]


def sign_in(envoy: str, traders: list[Trader]) -> list[Account]:
    """Each trader signs in through Envoy (gRPC, h2c): its account and access token."""
    accounts = []
    with grpc.insecure_channel(envoy) as channel:
        auth = auth_grpc.AuthServiceStub(channel)
        for trader in traders:
            response = auth.Login(
                auth_pb.LoginRequest(username=trader.username, password=trader.password),
                timeout=30,
            )
            accounts.append(Account(trader.account_id, response.access_token))
    return accounts


@dataclass(frozen=True)
class Readiness:
    ready: int  # accounts whose buy and sell both filled
    seconds: float
    last_outcomes: dict[str, int]  # of the accounts that never got there: their last outcome


def wait_until_trading(
    envoy: str,
    accounts: list[Account],
    symbols: tuple[str, ...],
    quantity: str,
    run_id: str,
    timeout: float,
) -> Readiness:
    """Sends each account a market buy and then a sell (flat again) until both fill, or until
    `timeout`: right after the accounts are made, the OMS and the risk service may not have
    their events yet. Returns how many got there; the benchmark runs either way and reports
    every outcome."""
    started = time.monotonic()
    deadline = started + timeout
    not_ready: Counter[str] = Counter()
    with grpc.insecure_channel(envoy) as channel:
        stub = order_grpc.OrderServiceStub(channel)
        attempts = iter(range(1 << 62))
        for account in accounts:
            metadata = (("authorization", f"Bearer {account.token}"),)
            outcome = FILLED
            for sequence in (0, 1):
                buy, symbol = order_leg(sequence, symbols)
                while True:
                    request = market_order(
                        account.account_id,
                        f"b{run_id}.ready.{next(attempts)}",
                        buy,
                        symbol,
                        quantity,
                    )
                    outcome = _place(stub, request, metadata)
                    if outcome == FILLED or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                if outcome != FILLED:
                    not_ready[outcome] += 1
                    break
    ready = len(accounts) - sum(not_ready.values())
    return Readiness(ready, round(time.monotonic() - started, 1), dict(not_ready))


def _place(
    stub: order_grpc.OrderServiceStub,
    request: order_service_pb2.PlaceOrderRequest,
    metadata: Metadata,
) -> str:
    try:
        response = stub.PlaceOrder(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return f"RPC {error.code().name}"
    return order_outcome(response.order)
