"""The SMTP sink's control port: a small JSON API on 127.0.0.1 for tests and benchmarks.

    GET  /v1/state         {"received": n, "refused": n, "refuse_next": n, "stored": n}
    GET  /v1/messages      {"messages": [{"key", "mail_from", "rcpt_tos", "received_at",
                           "message_id", "subject", "from", "to", "headers", "text",
                           "html"}, ...]}: every stored message, oldest first; `?to=<address>`
                           narrows it to one recipient
    PUT  /v1/refuse        {"count": 2}: the next 2 messages are answered 451 (temporary
                           failure) at DATA and not stored; 0 clears it; answers the count

A bad request gets 400 with {"error": "..."}. It is a test hook of the dev stack, not part of
the platform: it listens on loopback only and holds no secret.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from typing import cast
from urllib.parse import parse_qs
from urllib.parse import quote
from urllib.parse import urlsplit
from urllib.request import ProxyHandler
from urllib.request import Request
from urllib.request import build_opener

from simulators.smtp.sink import Mailstore

log = logging.getLogger("smtpsink.control")


def serve(store: Mailstore, host: str, port: int) -> ThreadingHTTPServer:
    """Starts the control API in a daemon thread; `shutdown()` the returned server to stop."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/v1/state":
                self._answer(HTTPStatus.OK, store.state())
            elif url.path == "/v1/messages":
                to = query.get("to", [None])[0]
                self._answer(HTTPStatus.OK, {"messages": store.messages(to)})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})

        def do_PUT(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/v1/refuse":
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
                return
            try:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                count = body.get("count") if isinstance(body, dict) else None
                if isinstance(count, bool) or not isinstance(count, int):
                    raise ValueError('give {"count": <whole number>}')
                self._answer(HTTPStatus.OK, {"count": store.refuse(count)})
            except ValueError as error:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(error)})

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="smtp-control", daemon=True).start()
    return server


class SinkClient:
    """Reads and steers the sink through its control port (tests and benchmarks)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        # Loopback only: no proxy may intercept it.
        self._opener = build_opener(ProxyHandler({}))

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/v1/state")

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every stored message, oldest first; `to` narrows it to one recipient."""
        query = f"?to={quote(to)}" if to else ""
        return list(self._call("GET", f"/v1/messages{query}")["messages"])

    def refuse_next(self, count: int) -> None:
        """The next `count` messages are answered 451 (a temporary failure) and not stored."""
        self._call("PUT", "/v1/refuse", {"count": count})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = Request(f"{self.base}{path}", data=data, method=method)
        with self._opener.open(request, timeout=10) as response:
            return cast(dict[str, Any], json.load(response))
