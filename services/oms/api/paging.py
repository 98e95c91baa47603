"""Page tokens of the OMS's lists (ADR 0001 "Lists"): opaque to clients, stable under inserts.

Lists are newest first; a token is the (time, id) of the last item of the page (keyset paging),
so orders placed while a client pages do not shift later pages the way an offset would. The
token is URL-safe base64 of "<ISO time>|<id>". ListOpenPositions pages by account id alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from services.platform.paging import DEFAULT_PAGE_SIZE
from services.platform.paging import bad_token
from services.platform.paging import decode_token as decode_parts
from services.platform.paging import encode_token as encode_parts
from services.platform.paging import page_size

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "decode_id_token",
    "decode_token",
    "encode_id_token",
    "encode_token",
    "page_size",
]


def encode_token(at: datetime, item_id: str) -> str:
    return encode_parts(at.isoformat(), item_id)


def decode_token(token: str) -> tuple[datetime, str] | None:
    """The (time, id) of a token, None for an empty one; VALIDATION_FAILED for a token this
    service did not issue."""
    parts = decode_parts(token, 2)
    if parts is None:
        return None
    at_text, item_id = parts
    try:
        at = datetime.fromisoformat(at_text)
        uuid.UUID(item_id)
    except ValueError:
        raise bad_token() from None
    if at.tzinfo is None:
        raise bad_token()
    return at, item_id


def decode_id_token(token: str) -> str | None:
    """The account id a ListOpenPositions token continues after; None for an empty token."""
    parts = decode_parts(token, 1)
    if parts is None:
        return None
    try:
        return str(uuid.UUID(parts[0]))
    except ValueError:
        raise bad_token() from None


def encode_id_token(item_id: str) -> str:
    return encode_parts(item_id)
