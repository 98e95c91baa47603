"""A retried withdrawal or balance adjustment with its idempotency key, without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.account.domain import check_same_amount
from services.platform.errors import DomainError
from tradingmesh.common.v1.errors_pb2 import ErrorReason


def test_a_retry_with_the_same_amount_is_the_same_request() -> None:
    check_same_amount(Decimal("100.000000000000"), Decimal("100.00"), "key-1")


@pytest.mark.parametrize("requested", [Decimal("100.01"), Decimal("-100.00"), Decimal("99.99")])
def test_a_retry_with_another_amount_is_already_exists(requested: Decimal) -> None:
    with pytest.raises(DomainError) as refused:
        check_same_amount(Decimal("100.00"), requested, "key-1")

    assert refused.value.reason == ErrorReason.ERROR_REASON_ALREADY_EXISTS
    assert refused.value.metadata == {"idempotency_key": "key-1"}
