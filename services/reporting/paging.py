"""Page tokens of reporting's lists (ADR 0001 "Lists"): opaque to clients, stable under inserts.

Lists are newest first and keyset-paged: a token is the (time, id) of the last item of the page,
bound to the request's filters by a short digest, so a token reused with other filters is a
VALIDATION_FAILED rather than a page of another list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import datetime
from typing import Final

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["DEFAULT_PAGE_SIZE", "Cursor", "decode_token", "encode_token", "page_size"]

DEFAULT_PAGE_SIZE: Final = 100

Cursor = tuple[datetime, str]


def page_size(requested: int) -> int:
    """The contract's rule: 0 means the default, 100 (the validation bounds it to 500)."""
    return requested or DEFAULT_PAGE_SIZE


def _digest(filters: str) -> str:
    return hashlib.sha256(filters.encode()).hexdigest()[:12]


def encode_token(at: datetime, item_id: str, filters: str) -> str:
    raw = f"{at.isoformat()}|{item_id}|{_digest(filters)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_token() -> DomainError:
    return DomainError(
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
        "page_token is not a token from a previous response with the same filters",
        field_violations=[("page_token", "not a token from a previous response")],
    )


def decode_token(token: str, filters: str) -> Cursor | None:
    """The (time, id) a page continues after; None for an empty token."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        at_text, item_id, digest = base64.urlsafe_b64decode(padded).decode().split("|")
        at = datetime.fromisoformat(at_text)
        uuid.UUID(item_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_token() from None
    if at.tzinfo is None or digest != _digest(filters):
        raise _bad_token()
    return at, item_id
