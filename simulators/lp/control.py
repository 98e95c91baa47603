"""The LP simulator's control port: a small JSON API on 127.0.0.1 for tests and benchmarks.

    GET    /v1/state                the LP's name, update rate and pinned quotes
    PUT    /v1/pins/<symbol>        {"bid": "1.10000", "ask": "1.10020"}: quote exactly that;
                                    optional "size": "1.5", the lots quoted on each side
    DELETE /v1/pins/<symbol>        walk again (DELETE /v1/pins: every symbol); answers {}
    PUT    /v1/rate                 {"updates_per_second": "200"}: per instrument
    PUT    /v1/fill-delay           {"ms": "1500"}: how long the LP waits before it executes
                                    an order (against its quote at that moment), 0..60000
    PUT    /v1/silence              {"orders": "1", "status_requests": "0"}: the next N orders
                                    are executed but none of their execution reports is sent,
                                    the next M OrderStatusRequests get no answer (each 0..1000,
                                    either may be left out: unchanged); answers both counts
    GET    /v1/personality          {"traits": ["limit-only", ...]}: the LP's dialect
                                    (simulators/lp/personality.py; [] is the standard one)
    PUT    /v1/personality          {"traits": ["limit-only", "status-bmr"]}: switch to it from
                                    the next message on ([] clears it); answers the traits
    GET    /v1/fills                {"fills": [{"client": "TRADINGMESH-OMS", "cl_ord_id": "...",
                                    "symbol": "EURUSD", "side": "1", "quantity": "0.1",
                                    "price": "1.08512", "fills": 1}, ...]}: the LP's own book of
                                    what it filled, per client session and ClOrdID, oldest
                                    first, reports sent or not; `?client=TRADINGMESH-OMS` or
                                    `?cl_ord_id=...` narrow it

Prices are decimal strings, as everywhere. A bad request gets 400 (404 for an unknown symbol)
with {"error": "..."} and changes nothing. It is a simulator's test hook, not part of the
platform: it listens on loopback only and holds no secret.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from decimal import Decimal
from decimal import InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from urllib.parse import parse_qs
from urllib.parse import quote
from urllib.parse import urlsplit

from simulators.lp.market import Market
from simulators.lp.market import Quote
from simulators.lp.personality import Personality
from simulators.lp.personality import UnknownTraitError

if TYPE_CHECKING:
    from simulators.lp.fix import Filled

log = logging.getLogger("lpsim.control")

MAX_RATE = Decimal(10_000)
MAX_FILL_DELAY_MS = 60_000
MAX_SILENCED = 1000


class OrderDesk(Protocol):
    """What executes the LP's orders (`fix.LpApplication`): it reads the delay per order, the
    silence switches (guarded by its `book_lock`) per order and per status request, and its
    personality per message; it keeps the book of what it filled."""

    fill_delay_ms: int
    silent_orders: int
    silent_status_requests: int
    book_lock: threading.Lock
    personality: Personality

    def set_personality(self, personality: Personality) -> None: ...

    def filled(self) -> list[Filled]: ...


class ControlRequestError(Exception):
    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class Controls:
    """What the control port may change; the publishing loop reads `rate` on every round."""

    def __init__(
        self,
        name: str,
        market: Market,
        lock: threading.Lock,
        rate: Decimal,
        publish: Callable[[Iterable[Quote]], object],
        orders: OrderDesk | None = None,
    ) -> None:
        self.name = name
        self.market = market
        self.lock = lock
        self.rate = rate
        self.publish = publish
        self.orders = orders

    def state(self) -> dict[str, Any]:
        with self.lock:
            pins = self.market.pins()
        return {
            "name": self.name,
            "updates_per_second": str(self.rate),
            "fill_delay_ms": str(self.orders.fill_delay_ms) if self.orders is not None else "",
            "silent_orders": str(self.orders.silent_orders) if self.orders is not None else "",
            "silent_status_requests": (
                str(self.orders.silent_status_requests) if self.orders is not None else ""
            ),
            "personality": self.orders.personality.names() if self.orders is not None else [],
            "pins": {
                s: {"bid": str(q.bid), "ask": str(q.ask), "size": str(q.ask_size)}
                for s, q in pins.items()
            },
        }

    def pin(self, symbol: str, body: dict[str, Any]) -> dict[str, Any]:
        bid, ask = _decimal(body, "bid"), _decimal(body, "ask")
        size = _decimal(body, "size") if "size" in body else None
        with self.lock:
            if self.market.instrument(symbol) is None:
                raise ControlRequestError(f"unknown symbol {symbol}", HTTPStatus.NOT_FOUND)
            try:
                quote = self.market.pin(symbol, bid, ask, size)
            except ValueError as error:
                raise ControlRequestError(str(error)) from None
        self.publish([quote])  # at once, rather than on the next round
        return {
            "symbol": symbol,
            "bid": str(quote.bid),
            "ask": str(quote.ask),
            "size": str(quote.ask_size),
        }

    def unpin(self, symbol: str | None) -> dict[str, Any]:
        with self.lock:
            for s in [symbol] if symbol else self.market.symbols:
                self.market.unpin(s)
        return {}

    def set_rate(self, body: dict[str, Any]) -> dict[str, Any]:
        rate = _decimal(body, "updates_per_second")
        if not 0 < rate <= MAX_RATE:
            raise ControlRequestError(f"updates_per_second must be in (0, {MAX_RATE}], not {rate}")
        self.rate = rate
        return {"updates_per_second": str(rate)}

    def set_fill_delay(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.orders is None:
            raise ControlRequestError("this LP has no order desk", HTTPStatus.NOT_FOUND)
        delay = _decimal(body, "ms")
        if delay != delay.to_integral_value() or not 0 <= delay <= MAX_FILL_DELAY_MS:
            raise ControlRequestError(
                f"ms must be a whole number in [0, {MAX_FILL_DELAY_MS}], not {delay}"
            )
        self.orders.fill_delay_ms = int(delay)
        return {"fill_delay_ms": str(int(delay))}

    def set_silence(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.orders is None:
            raise ControlRequestError("this LP has no order desk", HTTPStatus.NOT_FOUND)
        if not {"orders", "status_requests"} & body.keys():
            raise ControlRequestError("give orders, status_requests or both")
        counts = {key: _count(body, key) for key in ("orders", "status_requests") if key in body}
        with self.orders.book_lock:
            if "orders" in counts:
                self.orders.silent_orders = counts["orders"]
            if "status_requests" in counts:
                self.orders.silent_status_requests = counts["status_requests"]
            return {
                "orders": str(self.orders.silent_orders),
                "status_requests": str(self.orders.silent_status_requests),
            }

    def personality(self) -> dict[str, Any]:
        desk = self._desk()
        return {"traits": desk.personality.names()}

    def set_personality(self, body: dict[str, Any]) -> dict[str, Any]:
        desk = self._desk()
        traits = body.get("traits")
        if not isinstance(traits, list) or not all(isinstance(t, str) for t in traits):
            raise ControlRequestError('traits must be a list of trait names, e.g. ["limit-only"]')
        try:
            personality = Personality.parse(traits)
        except UnknownTraitError as error:
            raise ControlRequestError(str(error)) from None
        desk.set_personality(personality)
        return {"traits": personality.names()}

    def fills(self, query: dict[str, list[str]]) -> dict[str, Any]:
        desk = self._desk()
        unknown = sorted(set(query) - {"client", "cl_ord_id"})
        if unknown:
            raise ControlRequestError(f"unknown parameter {', '.join(unknown)}")
        clients, ids = set(query.get("client", [])), set(query.get("cl_ord_id", []))
        return {
            "fills": [
                {
                    "client": f.client,
                    "cl_ord_id": f.client_order_id,
                    "symbol": f.symbol,
                    "side": f.side,
                    "quantity": str(f.quantity),
                    "price": str(f.price),
                    "fills": f.fills,
                }
                for f in desk.filled()
                if (not clients or f.client in clients) and (not ids or f.client_order_id in ids)
            ]
        }

    def _desk(self) -> OrderDesk:
        if self.orders is None:
            raise ControlRequestError("this LP has no order desk", HTTPStatus.NOT_FOUND)
        return self.orders


def _count(body: dict[str, Any], key: str) -> int:
    number = _decimal(body, key)
    if number != number.to_integral_value() or not 0 <= number <= MAX_SILENCED:
        raise ControlRequestError(f"{key} must be a whole number in [0, {MAX_SILENCED}]")
    return int(number)


def _decimal(body: dict[str, Any], key: str) -> Decimal:
    value = body.get(key)
    if not isinstance(value, str):
        raise ControlRequestError(f"{key} must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ControlRequestError(f"{key} must be a decimal string, not {value!r}") from None
    if not number.is_finite():
        raise ControlRequestError(f"{key} must be finite")
    return number


def serve(controls: Controls, port: int) -> ThreadingHTTPServer:
    """Starts the control server on 127.0.0.1:port in a daemon thread; shut it down to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/v1/state":
                self._handle(controls.state)
            elif url.path == "/v1/personality":
                self._handle(controls.personality)
            elif url.path == "/v1/fills":
                self._handle(lambda: controls.fills(parse_qs(url.query)))
            else:
                self._handle(lambda: None)

        def do_PUT(self) -> None:
            if self.path == "/v1/rate":
                self._handle(lambda: controls.set_rate(self._body()))
            elif self.path == "/v1/fill-delay":
                self._handle(lambda: controls.set_fill_delay(self._body()))
            elif self.path == "/v1/silence":
                self._handle(lambda: controls.set_silence(self._body()))
            elif self.path == "/v1/personality":
                self._handle(lambda: controls.set_personality(self._body()))
            elif self.path.startswith("/v1/pins/"):
                symbol = self.path.removeprefix("/v1/pins/")
                self._handle(lambda: controls.pin(symbol, self._body()))
            else:
                self._handle(lambda: None)

        def do_DELETE(self) -> None:
            if self.path == "/v1/pins" or self.path.startswith("/v1/pins/"):
                symbol = self.path.removeprefix("/v1/pins").removeprefix("/") or None
                self._handle(lambda: controls.unpin(symbol))
            else:
                self._handle(lambda: None)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 4096:
                raise ControlRequestError("body too large")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise ControlRequestError("body must be JSON") from None
            if not isinstance(body, dict):
                raise ControlRequestError("body must be a JSON object")
            return body

        def _handle(self, action: Callable[[], dict[str, Any] | None]) -> None:
            try:
                result = action()
                status = HTTPStatus.OK
                if result is None:
                    status, result = HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"}
            except ControlRequestError as error:
                status, result = error.status, {"error": str(error)}
            payload = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("control: " + format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    return server


class ControlClient:
    """Drives a simulator's control port (tests and benchmarks)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/v1/state")

    def pin(self, symbol: str, bid: str, ask: str, size: str | None = None) -> dict[str, Any]:
        body = {"bid": bid, "ask": ask}
        if size is not None:
            body["size"] = size
        return self._call("PUT", f"/v1/pins/{symbol}", body)

    def unpin(self, symbol: str | None = None) -> None:
        self._call("DELETE", f"/v1/pins/{symbol}" if symbol else "/v1/pins")

    def set_rate(self, updates_per_second: str) -> None:
        self._call("PUT", "/v1/rate", {"updates_per_second": updates_per_second})

    def set_fill_delay(self, ms: int) -> None:
        """How long the LP waits before it executes an order (it executes at its quote then)."""
        self._call("PUT", "/v1/fill-delay", {"ms": str(ms)})

    def silence(self, orders: int | None = None, status_requests: int | None = None) -> None:
        """The next `orders` orders are executed without a report sent; the next
        `status_requests` OrderStatusRequests get no answer (None: unchanged)."""
        body = {}
        if orders is not None:
            body["orders"] = str(orders)
        if status_requests is not None:
            body["status_requests"] = str(status_requests)
        self._call("PUT", "/v1/silence", body)

    def personality(self) -> list[str]:
        """The LP's current traits (simulators/lp/personality.py); [] is the standard one."""
        traits: list[str] = self._call("GET", "/v1/personality")["traits"]
        return traits

    def set_personality(self, traits: Iterable[str]) -> list[str]:
        """Switches the LP to these traits from its next message on; the traits now set."""
        result: list[str] = self._call("PUT", "/v1/personality", {"traits": list(traits)})["traits"]
        return result

    def clear_personality(self) -> None:
        """Back to the standard behaviour."""
        self.set_personality([])

    def fills(
        self, client: str | None = None, client_order_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The LP's own book of fills (see `GET /v1/fills`), narrowed to one client session
        (its SenderCompID, e.g. TRADINGMESH-OMS) and/or one ClOrdID."""
        query = "&".join(
            f"{key}={quote(value, safe='')}"
            for key, value in (("client", client), ("cl_ord_id", client_order_id))
            if value is not None
        )
        fills: list[dict[str, Any]] = self._call(
            "GET", "/v1/fills" + ("?" + query if query else "")
        )["fills"]
        return fills

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                result: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ControlError(error.code, json.loads(error.read()).get("error", "")) from None
        return result


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
