"""Page sizes and tokens shared by the lists (services/platform/paging.py)."""

from __future__ import annotations

import pytest

from services.platform.errors import DomainError
from services.platform.paging import DEFAULT_PAGE_SIZE
from services.platform.paging import decode_token
from services.platform.paging import encode_token
from services.platform.paging import key_page
from services.platform.paging import next_offset_token
from services.platform.paging import offset_page
from services.platform.paging import page_size
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


def test_key_pages_walk_the_sorted_keys_and_skip_keys_gone_meanwhile() -> None:
    keys = ["GBPUSD", "EURUSD", "XAUUSD", "USDJPY", "AUDUSD"]

    first, token = key_page(keys, 2, "")
    second, token2 = key_page(keys, 2, token)
    gone, token3 = key_page([k for k in keys if k != "GBPUSD"], 2, token)
    third, last = key_page(keys, 2, token2)

    assert (first, second, third) == (["AUDUSD", "EURUSD"], ["GBPUSD", "USDJPY"], ["XAUUSD"])
    assert (gone, token3) == (["USDJPY", "XAUUSD"], "")
    assert last == ""
    assert key_page(keys, 0, "")[1] == ""  # 0 is the default, 100: one page
    with pytest.raises(DomainError):
        key_page(keys, 2, "not!a!token")
