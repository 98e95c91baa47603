"""The id of the request being served, for logs, errors and calls to other services.

Envoy sets `x-request-id` on every request; a call that did not come through Envoy gets a new one.
The id lives in a context variable: each gRPC call runs in its own asyncio task, whose context is
its own copy, so one call's id never shows in another call's logs.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Final

__all__ = ["REQUEST_ID_HEADER", "accept_request_id", "current_request_id", "set_request_id"]

REQUEST_ID_HEADER: Final = "x-request-id"

# What an id may look like: Envoy's UUIDs and the usual trace ids. Anything else (too long, or
# with characters that could forge log lines) is replaced by a fresh id.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("tradingmesh_request_id", default=None)


def accept_request_id(given: str | None) -> str:
    """The caller's id if it is well formed, else a new UUID."""
    if given is not None and _WELL_FORMED.match(given):
        return given
    return str(uuid.uuid4())


def set_request_id(request_id: str) -> None:
    """Makes `request_id` the current one for the rest of this task (this gRPC call)."""
    _request_id.set(request_id)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a call."""
    return _request_id.get()
