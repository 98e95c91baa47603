"""Structured logs: one JSON object per line, through the standard `logging` module.

Every line has `time`, `level`, `logger`, `message` and `service`, the `request_id` of the call
being served when there is one, and the `extra={...}` fields of the log call. Code logs as usual
(`logging.getLogger(__name__).info("order placed", extra={"order_id": ...})`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final
from typing import TextIO

from services.platform.request_id import current_request_id

__all__ = ["JsonFormatter", "configure_logging"]

# The attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def __init__(self, service: str, instance: str | None = None) -> None:
        super().__init__()
        self._service = service
        # Which instance of the service (`oms-2`, ADR 0017): on every line, unless it is the
        # service's only or first one.
        self._instance = instance if instance and instance != service else None

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self._service,
        }
        if self._instance is not None:
            line["instance"] = self._instance
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # `str` for what JSON cannot hold (Decimal, UUID, datetime, Secret, which prints '***').
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    service: str, level: str = "INFO", *, stream: TextIO | None = None, instance: str | None = None
) -> None:
    """Sends every log record at `level` or above to `stream` (stderr) as JSON lines.

    Replaces the root logger's handlers, so calling it again reconfigures rather than duplicates.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service, instance))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-21T20:43:05.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
