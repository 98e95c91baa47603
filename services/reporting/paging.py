"""Page tokens of reporting's lists (ADR 0001 "Lists"): opaque to clients, stable under inserts.

Lists are newest first and keyset-paged: a token is the (time, id) of the last item of the page,
bound to the request's filters by a short digest, so a token reused with other filters is a
VALIDATION_FAILED rather than a page of another list.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from services.platform.paging import DEFAULT_PAGE_SIZE
from services.platform.paging import bad_token
from services.platform.paging import decode_token as decode_parts
from services.platform.paging import encode_token as encode_parts
from services.platform.paging import page_size

__all__ = ["DEFAULT_PAGE_SIZE", "Cursor", "decode_token", "encode_token", "page_size"]

Cursor = tuple[datetime, str]
_OTHER_FILTERS = "with the same filters"


def _digest(filters: str) -> str:
    return hashlib.sha256(filters.encode()).hexdigest()[:12]


def encode_token(at: datetime, item_id: str, filters: str) -> str:
    return encode_parts(at.isoformat(), item_id, _digest(filters))


def decode_token(token: str, filters: str) -> Cursor | None:
    """The (time, id) a page continues after; None for an empty token."""
    parts = decode_parts(token, 3)
    if parts is None:
        return None
    at_text, item_id, digest = parts
    try:
        at = datetime.fromisoformat(at_text)
        uuid.UUID(item_id)
    except ValueError:
        raise bad_token(_OTHER_FILTERS) from None
    if at.tzinfo is None or digest != _digest(filters):
        raise bad_token(_OTHER_FILTERS)
    return at, item_id
