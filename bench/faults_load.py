"""The load of the fault campaign (bench/faults.py): market orders at a steady rate from several
traders through Envoy, each retried with the same `client_order_id` until it is answered, and a
record of what every client was told in the end.

It runs in a thread of its own (an asyncio loop with one gRPC channel to Envoy) while the
campaign kills and restarts components in the main thread. Each account has at most one order
outstanding (its orders alternate buy and sell, so a netting account stays near flat): a tick
whose accounts are all busy retrying is skipped and counted. A call that fails with a status a
client must retry on (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED; and
UNAUTHENTICATED, after signing in again) is sent again with the same request after a short
back-off, for as long as the load runs; any other status is final and recorded as what the
client was told. `pause` stops new orders and waits for the outstanding ones to be answered (the
reconciliation reads a quiet platform), `resume` goes on, `stop` ends the thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import grpc
import grpc.aio

from bench.orders_load import market_order
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1 import errors_pb2
from tradingmesh.common.v1 import trading_pb2
from tradingmesh.oms.v1 import order_service_pb2_grpc as order_grpc

# Statuses after which a client sends the same request again (the call may or may not have
# reached the OMS; the client_order_id makes the retry safe).
RETRY = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
TOKEN_SECONDS = 600.0  # sign in again after this long (access tokens last 15 minutes)
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 1.0


@dataclass(frozen=True)
class LoadTrader:
    username: str
    password: str
    account_id: str
    group: str  # its client group's name, e.g. "standard" (market execution) or "pro-stp"


@dataclass
class OrderRecord:
    """One order as its client saw it."""

    client_order_id: str
    account_id: str
    group: str
    buy: bool
    first_sent: float  # time.time() of the first attempt
    attempts: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (time, status) per failure
    answered_at: float | None = None  # time.time() of the final answer
    order_id: str = ""  # the order the client was told about (empty: an RPC error, or none)
    status: str = ""  # e.g. FILLED, ACCEPTED, REJECTED; "RPC <CODE>" for a final RPC error
    reason: str = ""  # the status reason (REJECTED), or the RPC error's message

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def latency(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.first_sent


@dataclass
class _Account:
    trader: LoadTrader
    token: str
    signed_in: float
    sequence: int = 0
    busy: bool = False


class OrderLoad:
    """Orders at `rate` per second over `traders` through `envoy` (module doc)."""

    def __init__(
        self,
        envoy: str,
        traders: Sequence[LoadTrader],
        *,
        rate: float,
        run_id: str,
        symbol: str = "EURUSD",
        quantity: str = "0.01",
        deadline: float = 5.0,
    ) -> None:
        if rate <= 0 or not traders:
            raise ValueError("the load needs a positive rate and at least one trader")
        self.envoy = envoy
        self.traders = list(traders)
        self.rate = rate
        self.run_id = run_id
        self.symbol = symbol
        self.quantity = quantity
        self.deadline = deadline
        self.records: list[OrderRecord] = []
        self.skipped = 0  # ticks at which every account still had an order outstanding
        self._lock = threading.Lock()
        self._sending = threading.Event()
        self._stopping = False
        self._outstanding = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # ---- control, from the campaign's thread --------------------------------------------------

    def start(self, accounts_tokens: Sequence[str]) -> None:
        """Starts sending; `accounts_tokens` are the traders' access tokens, in order."""
        now = time.time()
        accounts = [
            _Account(trader, token, now)
            for trader, token in zip(self.traders, accounts_tokens, strict=True)
        ]
        self._sending.set()
        self._thread = threading.Thread(
            target=self._run, args=(accounts,), name="fault-load", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the load did not start")
        if self._failure is not None:
            raise RuntimeError("the load failed to start") from self._failure

    def pause(self, timeout: float) -> int:
        """Stops new orders and waits up to `timeout` s for the outstanding ones to be answered;
        returns how many are still unanswered."""
        self._sending.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._outstanding == 0:
                    return 0
            time.sleep(0.1)
        with self._lock:
            return self._outstanding

    def resume(self) -> None:
        self._sending.set()

    def stop(self, timeout: float) -> int:
        """Stops the load after waiting up to `timeout` s for outstanding orders; returns how
        many were never answered."""
        left = self.pause(timeout)
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        return left

    def snapshot(self) -> list[OrderRecord]:
        with self._lock:
            return list(self.records)

    # ---- the loop ---------------------------------------------------------------------------

    def _run(self, accounts: list[_Account]) -> None:
        try:
            asyncio.run(self._main(accounts))
        except BaseException as error:  # reported by `start`, or seen as a stalled load
            self._failure = error
            self._ready.set()

    async def _main(self, accounts: list[_Account]) -> None:
        channel = grpc.aio.insecure_channel(self.envoy)
        try:
            stub = order_grpc.OrderServiceStub(channel)
            auth = auth_grpc.AuthServiceStub(channel)
            tasks: set[asyncio.Task[None]] = set()
            self._ready.set()
            period = 1.0 / self.rate
            next_tick = time.monotonic()
            turn = 0
            while not self._stopping:
                next_tick += period
                await asyncio.sleep(max(next_tick - time.monotonic(), 0))
                if not self._sending.is_set():
                    next_tick = time.monotonic()
                    continue
                free = [a for a in accounts if not a.busy]
                if not free:
                    self.skipped += 1
                    continue
                account = free[turn % len(free)]
                turn += 1
                account.busy = True
                with self._lock:
                    self._outstanding += 1
                task = asyncio.create_task(self._order(stub, auth, account))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await channel.close()

    async def _sign_in(self, auth: auth_grpc.AuthServiceAsyncStub, account: _Account) -> None:
        try:
            response = await auth.Login(
                auth_pb.LoginRequest(
                    username=account.trader.username, password=account.trader.password
                ),
                timeout=self.deadline,
            )
        except grpc.aio.AioRpcError:
            return  # the old token is tried again; the next failure signs in again
        account.token = response.access_token
        account.signed_in = time.time()

    async def _order(
        self,
        stub: order_grpc.OrderServiceAsyncStub,
        auth: auth_grpc.AuthServiceAsyncStub,
        account: _Account,
    ) -> None:
        trader = account.trader
        buy = account.sequence % 2 == 0
        account.sequence += 1
        record = OrderRecord(
            client_order_id=f"f{self.run_id}.{trader.account_id[:8]}.{account.sequence}",
            account_id=trader.account_id,
            group=trader.group,
            buy=buy,
            first_sent=time.time(),
        )
        with self._lock:
            self.records.append(record)
        request = market_order(
            trader.account_id, record.client_order_id, buy, self.symbol, self.quantity
        )
        backoff = BACKOFF_FIRST
        try:
            while True:
                if time.time() - account.signed_in > TOKEN_SECONDS:
                    await self._sign_in(auth, account)
                record.attempts += 1
                try:
                    response = await stub.PlaceOrder(
                        request,
                        metadata=(("authorization", f"Bearer {account.token}"),),
                        timeout=self.deadline,
                    )
                except grpc.aio.AioRpcError as error:
                    code = error.code()
                    record.errors.append((time.time(), code.name))
                    if code not in RETRY:
                        record.status = f"RPC {code.name}"
                        record.reason = (error.details() or "")[:200]
                        record.answered_at = time.time()
                        return
                    if code == grpc.StatusCode.UNAUTHENTICATED:
                        await self._sign_in(auth, account)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                order = response.order
                record.order_id = order.id
                record.status = trading_pb2.OrderStatus.Name(order.status).removeprefix(
                    "ORDER_STATUS_"
                )
                if order.status_reason:
                    record.reason = errors_pb2.ErrorReason.Name(order.status_reason).removeprefix(
                        "ERROR_REASON_"
                    )
                record.answered_at = time.time()
                return
        finally:
            account.busy = False
            with self._lock:
                self._outstanding -= 1


def error_counts(records: Sequence[OrderRecord], since: float, until: float) -> dict[str, int]:
    """The failed attempts (by status) that happened in [since, until)."""
    counts: Counter[str] = Counter()
    for record in records:
        for at, code in record.errors:
            if since <= at < until:
                counts[code] += 1
    return dict(counts)
