"""JSON log lines: one object per line with the fields every line has, and the extras."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from services.platform.logging import configure_logging
from services.platform.request_id import set_request_id


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What configure_logging writes; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("oms", "INFO", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_the_standard_fields(output: io.StringIO) -> None:
    logging.getLogger("tradingmesh.oms").info("order %s placed", "o-1")

    [line] = _lines(output)
    assert line["level"] == "INFO"
    assert line["logger"] == "tradingmesh.oms"
    assert line["message"] == "order o-1 placed"
    assert line["service"] == "oms"
    assert str(line["time"]).endswith("Z")
    assert "request_id" not in line


def test_extra_fields_are_added_and_non_json_values_become_strings(output: io.StringIO) -> None:
    logging.getLogger("x").info("filled", extra={"order_id": "o-1", "price": Decimal("1.08512")})

    [line] = _lines(output)
    assert (line["order_id"], line["price"]) == ("o-1", "1.08512")


def test_request_id_of_the_call_being_served_is_added(output: io.StringIO) -> None:
    def during_a_call() -> None:
        set_request_id("req-3")
        logging.getLogger("x").info("inside")

    contextvars.Context().run(during_a_call)

    [line] = _lines(output)
    assert line["request_id"] == "req-3"


def test_exception_is_logged_on_the_same_line(output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")

    [line] = _lines(output)
    assert "RuntimeError: boom" in str(line["exception"])


def test_records_below_the_level_are_dropped(output: io.StringIO) -> None:
    logging.getLogger("x").debug("noise")

    assert output.getvalue() == ""


def test_configuring_twice_does_not_duplicate_lines(output: io.StringIO) -> None:
    configure_logging("oms", "INFO", stream=output)

    logging.getLogger("x").warning("once")

    assert len(_lines(output)) == 1
