"""Page sizes and page tokens of the lists (ADR 0001 "Lists"): the rules every service shares.

- `page_size(requested)`: 0 means `DEFAULT_PAGE_SIZE` (validation bounds a request to 500).
- A token is opaque to clients: URL-safe base64, unpadded, of its parts joined by "|"
  (`encode_token`). Keyset lists put the last item's key in it (the OMS's and reporting's
  newest-first lists: its time and id), so rows inserted while a client pages do not shift later
  pages; `decode_token` returns the parts of a token this service issued, and refuses any other
  (`bad_token`: VALIDATION_FAILED naming `page_token`).
- Lists of a few hundred keys held in memory (pricing's instruments, quotes and LPs) page over
  the sorted keys after the token's key (`key_page`).
- Offset lists (the admin lists of account and risk) carry the next offset as a token of digits
  (`offset_page`, `next_offset_token`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from services.platform.errors import DomainError
from services.platform.errors import field_error
from tradingmesh.common.v1.errors_pb2 import ErrorReason

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "bad_token",
    "decode_token",
    "encode_token",
    "key_page",
    "next_offset_token",
    "offset_page",
    "page_size",
]

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 500
"""The contracts' bound (validation refuses more); a list that is not validated caps at it."""
_SEPARATOR: Final = "|"
_MAX_OFFSET_DIGITS: Final = 12


def page_size(requested: int) -> int:
    """The contract's rule: 0 means the default, 100."""
    return requested or DEFAULT_PAGE_SIZE


def bad_token(why: str = "") -> DomainError:
    """A page token this service did not issue (or issued for other filters: `why`)."""
    problem = "not a token from a previous response"
    message = f"page_token is {problem}" + (f" {why}" if why else "")
    return field_error(ErrorReason.ERROR_REASON_VALIDATION_FAILED, "page_token", problem, message)


def encode_token(*parts: str) -> str:
    raw = _SEPARATOR.join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, count: int) -> list[str] | None:
    """The `count` parts of a token, None for an empty one (the first page); `bad_token` for
    one that does not decode to as many parts. The caller checks what each part must be."""
    if not token:
        return None
    try:
        parts = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(_SEPARATOR)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_token() from None
    if len(parts) != count:
        raise bad_token()
    return parts


def offset_page(requested_size: int, token: str) -> tuple[int, int]:
    """(limit, offset) of an offset-paged list request."""
    limit = page_size(requested_size)
    if not token:
        return limit, 0
    if not token.isdigit() or len(token) > _MAX_OFFSET_DIGITS:
        raise bad_token()
    return limit, int(token)


def next_offset_token(offset: int, limit: int, more: bool) -> str:
    """The token of the page after this one; "" when this one was the last."""
    return str(offset + limit) if more else ""


def key_page(keys: list[str], requested_size: int, token: str) -> tuple[list[str], str]:
    """A page of the sorted `keys` after the token's key, and the token of the next page ("" on
    the last): a list kept in memory, whose keys may come and go between pages."""
    decoded = decode_token(token, 1)
    after = decoded[0] if decoded else ""
    size = page_size(requested_size)
    rest = [key for key in sorted(keys) if key > after]
    page = rest[:size]
    return page, encode_token(page[-1]) if len(rest) > size else ""
