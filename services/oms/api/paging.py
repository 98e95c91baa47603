"""Page tokens of the OMS's lists (ADR 0001 "Lists"): opaque to clients, stable under inserts.

Lists are newest first; a token is the (time, id) of the last item of the page (keyset paging),
so orders placed while a client pages do not shift later pages the way an offset would. The
token is URL-safe base64 of "<ISO time>|<id>". ListOpenPositions pages by account id alone.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Final

from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = ["DEFAULT_PAGE_SIZE", "decode_token", "encode_token", "page_size"]

DEFAULT_PAGE_SIZE: Final = 100


def page_size(requested: int) -> int:
    """The contract's rule: 0 means the default, 100 (the interceptor bounds it to 500)."""
    return requested or DEFAULT_PAGE_SIZE


def encode_token(at: datetime, item_id: str) -> str:
    raw = f"{at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_token() -> DomainError:
    return DomainError(
        ErrorReason.ERROR_REASON_VALIDATION_FAILED,
        "page_token is not a token from a previous response",
        field_violations=[("page_token", "not a token from a previous response")],
    )


def decode_token(token: str) -> tuple[datetime, str] | None:
    """The (time, id) of a token, None for an empty one; VALIDATION_FAILED for a token this
    service did not issue."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        at_text, item_id = base64.urlsafe_b64decode(padded).decode().split("|")
        at = datetime.fromisoformat(at_text)
        uuid.UUID(item_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_token() from None
    if at.tzinfo is None:
        raise _bad_token()
    return at, item_id


def decode_id_token(token: str) -> str | None:
    """The account id a ListOpenPositions token continues after; None for an empty token."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        return str(uuid.UUID(base64.urlsafe_b64decode(padded).decode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_token() from None


def encode_id_token(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")
