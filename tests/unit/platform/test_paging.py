"""Page sizes and tokens shared by the lists (services/platform/paging.py)."""

from __future__ import annotations

import pytest

from services.platform.errors import DomainError
from services.platform.paging import (
    DEFAULT_PAGE_SIZE,
    decode_token,
    encode_token,
    next_offset_token,
    offset_page,
    page_size,
)
from tradingmesh.common.v1.errors_pb2 import ErrorReason


def test_a_token_gives_back_its_parts() -> None:
    token = encode_token("2026-12-06T19:00:00+00:00", "a|b is not allowed in a part"[:1])
    assert "=" not in token
    assert decode_token(token, 2) == ["2026-12-06T19:00:00+00:00", "a"]
    assert decode_token("", 2) is None


@pytest.mark.parametrize("token", ["%%%", "not base64 !", encode_token("one"), "bm8"])
def test_a_token_not_ours_is_a_validation_error_naming_page_token(token: str) -> None:
    with pytest.raises(DomainError) as raised:
        decode_token(token, 2)
    assert raised.value.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert [v.field for v in raised.value.field_violations] == ["page_token"]


def test_offset_pages() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE == 100
    assert offset_page(0, "") == (100, 0)
    assert offset_page(10, "30") == (10, 30)
    assert next_offset_token(30, 10, more=True) == "40"
    assert next_offset_token(30, 10, more=False) == ""
    for bad in ("-1", "x", "9" * 13):
        with pytest.raises(DomainError):
            offset_page(10, bad)
