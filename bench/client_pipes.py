"""A benchmark's client processes, as the benchmark sees them: reports received over their
multiprocessing pipes, and the processes ended."""

from __future__ import annotations

from typing import Any


def receive(connection: Any, kind: str, timeout: float, client: str) -> Any:
    """The payload of the next message from a `client` process, which must be of `kind`."""
    if not connection.poll(timeout):
        raise SystemExit(f"a {client} sent no {kind!r} report within {timeout:.0f} s")
    try:
        got, payload = connection.recv()
    except EOFError:
        raise SystemExit(f"a {client} exited before its {kind!r} report") from None
    if got != kind:
        raise SystemExit(f"a {client} sent {got!r}, expected {kind!r}")
    return payload


def end_process(process: Any, timeout: float = 10) -> None:
    """Waits `timeout` seconds for the process to exit, then kills it."""
    process.join(timeout=timeout)
    if process.is_alive():
        process.kill()
