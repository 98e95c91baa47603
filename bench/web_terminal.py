"""Benchmark: what the web terminal costs a browser — the bytes a quote costs on the gRPC-web wire,
and the page's time to first price after sign-in with the bytes of its first load (issue 16).

(a) The gRPC-web wire. The page calls the API on its own origin (endpoints.web: plain HTTP/1.1 to
Envoy on 127.0.0.1, as a browser's fetch does there). This benchmark speaks the same protocol
from Python on a raw socket, so that it can count every byte: it signs in as the demo user, lists
the user's instruments and opens PricingService.StreamQuotes for all of them as a POST of
`application/grpc-web+proto` (the SDK's transport, connect-web's gRPC-web) with the 5-byte frame
header, then reads for --seconds. Counted after the response headers: the bytes on the wire (the
chunked transfer encoding's framing included), the gRPC-web body, of it the frame headers (5 bytes
a frame) and the protobuf payload, the responses and the quotes they carry; the first response,
the snapshot of the latest prices, is counted apart. The same again with
`application/grpc-web-text` (base64, for clients that cannot read binary streams; the SDK does not
use it) for comparison. Quotes are conflated by pricing (ADR 0006): the rate is what the LP
simulators publish, at most one price per symbol per conflation interval.

(b) The page: clients/web/e2e/first-price.mjs (the terminal's own script, Playwright driving
Debian's Chromium) opens the page --runs times, each in a fresh browser context, signs in and
reports the ms from the click on "Sign in" to the first price on screen, and the bytes the page's
first load transferred. Reported: p50/p95/max of the ms, and the bytes. Without that script (the
terminal not in the checkout) the benchmark says so and reports (a) only.

By default it builds the web (scripts/build-web), starts a dedicated stack (free ports) and deletes
it at the end; `--stack NAME` uses a running one as it is. Prints a table and writes JSON
(default bench/results/web_terminal.json).

    .venv/bin/python -m bench.web_terminal [--seconds 20] [--runs 5] [--stack NAME]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from bench.machine import describe
from bench.machine import load_average
from bench.market_data import percentile
from bench.notifications import print_table
from bench.stack import Bench
from bench.stack import bench_stack
from stack.paths import REPO
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.pricing.v1 import pricing_service_pb2 as pricing_pb
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc as pricing_grpc

STREAM_QUOTES = "/tradingmesh.pricing.v1.PricingService/StreamQuotes"
BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text"
FIRST_PRICE = REPO / "clients" / "web" / "e2e" / "first-price.mjs"
FRAME_HEADER = 5  # flags (1 byte) and length (4 bytes, big-endian)
TRAILER_FLAG = 0x80


# ---- (a) the gRPC-web wire -------------------------------------------------------------------


@dataclass
class WireCount:
    """What one StreamQuotes call over gRPC-web brought, after the response headers."""

    content_type: str
    seconds: float = 0.0
    wire_bytes: int = 0  # as received: HTTP/1.1 chunk framing and the body
    body_bytes: int = 0  # the gRPC-web body as sent (base64 text for grpc-web-text)
    frame_header_bytes: int = 0
    payload_bytes: int = 0  # protobuf StreamQuotesResponse messages
    responses: int = 0
    quotes: int = 0
    snapshot_quotes: int = 0  # in the first response, not counted above
    snapshot_frame_bytes: int = 0

    def summary(self) -> dict[str, Any]:
        quotes = max(self.quotes, 1)
        return {
            **asdict(self),
            "quotes_per_second": round(self.quotes / self.seconds, 1) if self.seconds else 0,
            "wire_bytes_per_quote": round(self.wire_bytes / quotes, 1),
            "body_bytes_per_quote": round(self.body_bytes / quotes, 1),
            "payload_bytes_per_quote": round(self.payload_bytes / quotes, 1),
            "quotes_per_response": round(self.quotes / max(self.responses, 1), 2),
            # Everything that is not protobuf payload: frame headers, base64, chunk framing.
            "overhead_bytes_per_quote": round((self.wire_bytes - self.payload_bytes) / quotes, 1),
            "wire_bytes_per_second": round(self.wire_bytes / self.seconds) if self.seconds else 0,
        }


class _Frames:
    """gRPC-web frames out of a body read in pieces (decoded from base64 first for text)."""

    def __init__(self, count: WireCount, text: bool) -> None:
        self.count = count
        self.text = text
        self.pending_text = b""
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if self.text:
            self.pending_text += data
            whole = len(self.pending_text) // 4 * 4
            data, self.pending_text = self.pending_text[:whole], self.pending_text[whole:]
            data = base64.b64decode(data)
        self.pending += data
        while len(self.pending) >= FRAME_HEADER:
            flags, size = self.pending[0], int.from_bytes(self.pending[1:FRAME_HEADER], "big")
            if len(self.pending) < FRAME_HEADER + size:
                return
            payload = self.pending[FRAME_HEADER : FRAME_HEADER + size]
            self.pending = self.pending[FRAME_HEADER + size :]
            if flags & TRAILER_FLAG:
                raise StreamEndedError(payload.decode(errors="replace").strip())
            self._message(payload)

    def _message(self, payload: bytes) -> None:
        response = pricing_pb.StreamQuotesResponse.FromString(payload)
        if self.count.snapshot_frame_bytes == 0:
            self.count.snapshot_frame_bytes = FRAME_HEADER + len(payload)
            self.count.snapshot_quotes = len(response.quotes)
            return
        self.count.responses += 1
        self.count.quotes += len(response.quotes)
        self.count.frame_header_bytes += FRAME_HEADER
        self.count.payload_bytes += len(payload)


class StreamEndedError(Exception):
    """The server sent the trailers: the stream ended (an error, as StreamQuotes never ends)."""


def _request(port: int, token: str, body: bytes, content_type: str) -> bytes:
    head = "\r\n".join(
        [
            f"POST {STREAM_QUOTES} HTTP/1.1",
            f"host: 127.0.0.1:{port}",
            f"content-type: {content_type}",
            f"accept: {content_type}",
            "x-grpc-web: 1",
            "x-user-agent: bench-web-terminal",
            f"authorization: Bearer {token}",
            f"content-length: {len(body)}",
            "",
            "",
        ]
    )
    return head.encode() + body


def stream_quotes(
    port: int, token: str, request: pricing_pb.StreamQuotesRequest, text: bool, seconds: float
) -> WireCount:
    """Opens StreamQuotes over gRPC-web (HTTP/1.1, chunked) and counts what `seconds` bring once
    the snapshot has arrived."""
    count = WireCount(TEXT if text else BINARY)
    message = request.SerializeToString()
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    body = base64.b64encode(frame) if text else frame
    frames = _Frames(count, text)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request(port, token, body, count.content_type))
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += _recv(sock)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if " 200 " not in f"{status_line} " or headers.get("grpc-status", "0") != "0":
            raise SystemExit(f"StreamQuotes over gRPC-web refused: {status_line} {headers}")
        if headers.get("transfer-encoding") != "chunked":
            raise SystemExit(f"expected a chunked stream, got {headers}")
        start: float | None = None
        wire_at_start = 0
        chunks = _Chunks(buffer)
        while start is None or time.monotonic() - start < seconds:
            try:
                for data in chunks.bodies():
                    count.body_bytes += len(data)
                    frames.feed(data)
            except StreamEndedError as ended:
                raise SystemExit(f"StreamQuotes ended early: {ended}") from None
            if start is None and count.snapshot_frame_bytes:
                # From here on: the live stream. What came with the snapshot is not counted.
                start, wire_at_start = time.monotonic(), chunks.wire_bytes
                count.body_bytes = count.responses = count.quotes = 0
                count.frame_header_bytes = count.payload_bytes = 0
            received = _recv(sock, until=None if start is None else start + seconds)
            chunks.add(received)
        count.seconds = round(time.monotonic() - (start or time.monotonic()), 3)
        count.wire_bytes = chunks.wire_bytes - wire_at_start
    return count


def _recv(sock: socket.socket, until: float | None = None) -> bytes:
    if until is not None:
        sock.settimeout(max(until - time.monotonic(), 0.001))
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return b""
    if not data:
        raise SystemExit("Envoy closed the stream")
    return data


class _Chunks:
    """HTTP/1.1 chunked transfer decoding that counts the bytes as received."""

    def __init__(self, initial: bytes) -> None:
        self.buffer = initial
        self.wire_bytes = len(initial)

    def add(self, data: bytes) -> None:
        self.buffer += data
        self.wire_bytes += len(data)

    def bodies(self) -> list[bytes]:
        found: list[bytes] = []
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return found
            size = int(self.buffer[:line_end].split(b";")[0], 16)
            end = line_end + 2 + size + 2
            if len(self.buffer) < end:
                return found
            if size == 0:
                raise StreamEndedError("the stream ended")
            found.append(self.buffer[line_end + 2 : line_end + 2 + size])
            self.buffer = self.buffer[end:]


def demo_session(bench: Bench) -> tuple[str, pricing_pb.StreamQuotesRequest]:
    """The demo user's access token and a StreamQuotes request for every instrument it sees."""
    demo = bench.state.demo
    if demo is None:
        raise SystemExit("the stack has no demo user")
    with grpc.insecure_channel(bench.envoy) as channel:
        token = (
            auth_grpc.AuthServiceStub(channel)
            .Login(auth_pb.LoginRequest(username=demo.username, password=demo.password), timeout=30)
            .access_token
        )
        listed = pricing_grpc.PricingServiceStub(channel).ListInstruments(
            pricing_pb.ListInstrumentsRequest(account_id=demo.account_id, page_size=200),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
    symbols = [instrument.symbol for instrument in listed.instruments]
    return token, pricing_pb.StreamQuotesRequest(account_id=demo.account_id, symbols=symbols)


# ---- (b) the page ----------------------------------------------------------------------------


def first_price(bench: Bench, runs: int) -> dict[str, Any]:
    """clients/web/e2e/first-price.mjs against the stack's page: its runs and their summary."""
    if not FIRST_PRICE.is_file():
        return {"skipped": f"{FIRST_PRICE.relative_to(REPO)} is missing: the page is not measured"}
    page = bench.state.endpoints.web
    try:
        with urllib.request.urlopen(page, timeout=10) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        return {"skipped": f"{page} answers {error.code}: the stack serves no web terminal"}
    subprocess.run([str(REPO / "scripts" / "bootstrap-browser")], check=True, timeout=900)
    demo = bench.state.demo
    assert demo is not None
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed to run first-price.mjs")
    env = {
        **os.environ,
        "TM_WEB_URL": page,
        "TM_RUNS": str(runs),
        "TM_DEMO_USERNAME": demo.username,
        "TM_DEMO_PASSWORD": demo.password,
        "TM_DEMO_ACCOUNT_ID": demo.account_id,
    }
    result = subprocess.run(
        [node, str(FIRST_PRICE)],
        cwd=FIRST_PRICE.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120 + 60 * runs,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"first-price.mjs failed:\n{result.stderr}")
    measured: list[dict[str, Any]] = json.loads(result.stdout)["runs"]
    ms = sorted(float(run["first_price_ms"]) for run in measured)
    loaded = sorted(int(run["initial_load_bytes"]) for run in measured)
    return {
        "runs": measured,
        "first_price_ms": {
            "p50": round(percentile(ms, 0.5), 1),
            "p95": round(percentile(ms, 0.95), 1),
            "max": round(ms[-1], 1),
        },
        "first_load_bytes": {
            "median": round(statistics.median(loaded)) if loaded else None,
            "max": loaded[-1] if loaded else None,
        },
    }


# ---- the report ------------------------------------------------------------------------------


def run(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    token, request = demo_session(bench)
    print(f"StreamQuotes over gRPC-web for {len(request.symbols)} symbols: {args.seconds} s each")
    wire = {
        kind: stream_quotes(bench.ports.envoy, token, request, kind == "text", args.seconds)
        for kind in ("binary", "text")
    }
    print(f"first price after sign-in: {args.runs} runs of first-price.mjs")
    return {
        "symbols": list(request.symbols),
        "grpc_web": {kind: count.summary() for kind, count in wire.items()},
        "page": first_price(bench, args.runs),
        "load_average_end": load_average(),
    }


def table(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("figure", "value")]
    for kind, label in (("binary", BINARY), ("text", TEXT)):
        wire = result["grpc_web"][kind]
        rows += [
            (f"{label}: quotes/s (responses/s)", _rate(wire)),
            (
                f"{label}: bytes/quote wire / body / protobuf",
                f"{wire['wire_bytes_per_quote']} / {wire['body_bytes_per_quote']}"
                f" / {wire['payload_bytes_per_quote']}",
            ),
            (f"{label}: overhead bytes/quote", str(wire["overhead_bytes_per_quote"])),
            (f"{label}: wire bytes/s", str(wire["wire_bytes_per_second"])),
            (
                f"{label}: snapshot (quotes, bytes)",
                f"{wire['snapshot_quotes']}, {wire['snapshot_frame_bytes']}",
            ),
        ]
    page = result["page"]
    if "skipped" in page:
        rows.append(("first price after sign-in", page["skipped"]))
    else:
        ms, loaded = page["first_price_ms"], page["first_load_bytes"]
        rows += [
            (
                f"first price after sign-in, ms p50/p95/max ({len(page['runs'])} runs)",
                f"{ms['p50']} / {ms['p95']} / {ms['max']}",
            ),
            ("first page load, bytes transferred (median)", str(loaded["median"])),
        ]
    rows.append(("load average (1, 5, 15 min) at the end", str(result["load_average_end"])))
    return rows


def _rate(wire: dict[str, Any]) -> str:
    seconds = wire["seconds"] or 1
    return f"{wire['quotes_per_second']} ({round(wire['responses'] / seconds, 1)})"


def _build_web() -> None:
    """The page a new stack's Envoy serves is the build present when it starts."""
    subprocess.run([str(REPO / "scripts" / "build-web")], check=True, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="use this running stack instead of starting one")
    parser.add_argument("--seconds", type=float, default=20.0, help="per gRPC-web stream")
    parser.add_argument("--runs", type=int, default=5, help="page loads for the first price")
    parser.add_argument("--out", type=Path, default=Path("bench/results/web_terminal.json"))
    args = parser.parse_args()
    summary: dict[str, Any] = {
        "benchmark": "web_terminal",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(load_average_at_start=load_average()),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if args.stack is None:
        _build_web()
    with bench_stack(args.stack, budget=300, prefix="bench-web", edge_limits={}) as bench:
        summary["stack"] = {"name": bench.state.name, "started_by_benchmark": bench.started_here}
        summary["result"] = result = run(bench, args)
    print_table(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
