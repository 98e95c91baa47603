"""A Redis pub/sub subscription read in one tight loop (ADR 0008).

redis-py's asyncio `PubSub` spends 17-23 µs of CPU per message (`get_message` and `listen` run a
health check, a timeout and a retry wrapper around every single message). The stream tier reads
every price of every group it streams, so it reads its subscription itself: one connection,
RESP2 parsed straight from the socket buffer, every message already received handled in one pass
(about 5 µs each, measured in ADR 0008), without yielding to the event loop in between: what the
caller schedules with `call_soon`/`call_at` runs after the pass, so a burst of prices is fanned
out at once.

Only what a subscriber receives is parsed: arrays of bulk strings and integers (messages,
subscribe confirmations, the answer to PING), simple strings (+OK to AUTH) and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass

from services.platform.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Item = bytes | int
"""An element of a parsed RESP2 array: a bulk string or an integer."""

CONNECT_TIMEOUT_SECONDS = 5.0
# A subscription carries nothing while no price changes: after this long without a byte, a PING
# proves the connection alive; without an answer after as long again, it is replaced.
IDLE_SECONDS = 15.0
RECONNECT_SECONDS = 0.5
READ_SIZE = 256 * 1024


class RespError(Exception):
    """Redis answered with an error (e.g. a wrong password)."""


@dataclass(frozen=True)
class RedisEndpoint:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    # The client's TLS context (the server checked against the CA, ADR 0018); None: plaintext.
    tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:  # never print the password
        return f"RedisEndpoint({self.host}:{self.port})"


def command(*args: bytes) -> bytes:
    """A command in RESP2 (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def parse(buffer: bytes, start: int = 0) -> tuple[list[Item] | bytes | None, int]:
    """The reply at `start` and where the next one begins; (None, start) if it is incomplete.

    An array comes back as a list; a simple string as bytes; an error raises `RespError`.
    """
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None, start
    kind = buffer[start]
    if kind == 0x2A:  # "*" an array
        count = int(buffer[start + 1 : end])
        position = end + 2
        items: list[Item] = []
        for _ in range(count):
            end = buffer.find(b"\r\n", position)
            if end < 0:
                return None, start
            if buffer[position] == 0x24:  # "$" a bulk string
                size = int(buffer[position + 1 : end])
                first = end + 2
                if size < 0:  # a null bulk string: never sent to a subscriber
                    items.append(b"")
                    position = first
                    continue
                if len(buffer) < first + size + 2:
                    return None, start
                items.append(buffer[first : first + size])
                position = first + size + 2
            else:  # ":" an integer
                items.append(int(buffer[position + 1 : end]))
                position = end + 2
        return items, position
    if kind == 0x2B:  # "+" a simple string
        return buffer[start + 1 : end], end + 2
    if kind == 0x2D:  # "-" an error
        raise RespError(buffer[start + 1 : end].decode(errors="replace"))
    raise RespError(f"unexpected reply type {chr(kind)!r} on a subscription")


class Subscription:
    """Channels subscribed on one Redis connection, kept subscribed across reconnections.

    `on_message(channel, data)` for each message, `on_subscribed(channel)` each time a channel's
    subscription is confirmed (again after a reconnection: what was published meanwhile is lost,
    so the caller re-reads what it needs), `on_lost()` when the connection dropped. All run on
    the event loop, inside the reading task; they must not block.
    """

    def __init__(
        self,
        endpoint: RedisEndpoint,
        on_message: Callable[[bytes, bytes], None],
        on_subscribed: Callable[[bytes], None],
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.endpoint = endpoint
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.on_lost = on_lost
        self.channels: set[bytes] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, channels: Iterable[bytes]) -> None:
        """Adds channels; subscribed at once if connected, else when the connection is made."""
        new = [c for c in channels if c not in self.channels]
        if not new:
            return
        self.channels.update(new)
        if self._writer is not None:
            self._writer.write(command(b"SUBSCRIBE", *new))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="quote-subscription")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except (OSError, RespError, TimeoutError, ValueError, IndexError) as error:
                log.warning(
                    "quote subscription lost; reconnecting",
                    extra={"error": f"{type(error).__name__}: {error}"},
                )
                self.on_lost()
            finally:
                self._writer = None
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _session(self) -> None:
        endpoint = self.endpoint
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=endpoint.tls,
                server_hostname=endpoint.host if endpoint.tls is not None else None,
            )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            hello = b""
            if endpoint.password is not None:
                credentials = [endpoint.password.encode()]
                if endpoint.username:
                    credentials.insert(0, endpoint.username.encode())
                hello = command(b"AUTH", *credentials)
            writer.write(hello + command(b"SUBSCRIBE", *sorted(self.channels)))
            self._writer = writer
            await self._read(reader, writer)
        finally:
            self._writer = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        pinged = False
        while True:
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    chunk = await reader.read(READ_SIZE)
            except TimeoutError:
                if pinged:
                    raise TimeoutError("no answer to PING") from None
                writer.write(command(b"PING"))
                pinged = True
                continue
            if not chunk:
                raise ConnectionResetError("redis closed the subscription")
            pinged = False
            buffer = buffer + chunk if buffer else chunk
            position = 0
            while position < len(buffer):
                reply, after = parse(buffer, position)
                if reply is None:
                    break
                position = after
                if isinstance(reply, list):
                    self._dispatch(reply)
            buffer = buffer[position:]

    def _dispatch(self, reply: list[Item]) -> None:
        kind = reply[0]
        if kind == b"message":
            channel, data = reply[1], reply[2]
            if isinstance(channel, bytes) and isinstance(data, bytes):
                self.on_message(channel, data)
        elif kind == b"subscribe":
            channel = reply[1]
            if isinstance(channel, bytes):
                self.on_subscribed(channel)
        # b"pong" (the answer to PING while subscribed) needs nothing
