"""bench/web_terminal.py's gRPC-web reading: chunked HTTP/1.1 bodies, frames, base64 text."""

from __future__ import annotations

import base64

import pytest

from bench.web_terminal import BINARY
from bench.web_terminal import TEXT
from bench.web_terminal import StreamEndedError
from bench.web_terminal import WireCount
from bench.web_terminal import _Chunks
from bench.web_terminal import _Frames
from tradingmesh.pricing.v1 import pricing_service_pb2 as pricing_pb


def _frame(symbols: list[str], flags: int = 0) -> bytes:
    message = pricing_pb.StreamQuotesResponse(
        quotes=[pricing_pb.QuoteTick(symbol=s) for s in symbols]
    ).SerializeToString()
    return bytes([flags]) + len(message).to_bytes(4, "big") + message


def _chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_the_snapshot_is_counted_apart_and_the_rest_per_quote(text: bool) -> None:
    snapshot, live = _frame(["EURUSD", "GBPUSD"]), _frame(["EURUSD"]) + _frame(["GBPUSD", "X"])
    body = snapshot + live
    sent = base64.b64encode(body) if text else body
    count = WireCount(TEXT if text else BINARY)
    frames = _Frames(count, text)
    chunks = _Chunks(b"")

    chunks.add(_chunked(sent, 7))  # frames and base64 groups split across chunks
    for data in chunks.bodies():
        frames.feed(data)

    assert (count.snapshot_quotes, count.snapshot_frame_bytes) == (2, len(snapshot))
    assert (count.responses, count.quotes) == (2, 3)
    assert count.frame_header_bytes == 10
    assert count.payload_bytes == len(live) - 10
    assert chunks.wire_bytes > len(sent)


def test_the_trailers_end_the_stream() -> None:
    frames = _Frames(WireCount(BINARY), text=False)

    with pytest.raises(StreamEndedError, match="grpc-status:14"):
        frames.feed(b"\x80" + (16).to_bytes(4, "big") + b"grpc-status:14\r\n")
