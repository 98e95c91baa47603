"""The edge's routes for every public and admin service (stack/components/envoy.py, ADR 0004):
unary calls are held whole and retried only when they never reached a service; streams are
neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stack.components.envoy import STREAM_CLUSTER
from stack.components.envoy import UNARY_RETRY
from stack.components.envoy import WHOLE_ANSWERS
from stack.components.envoy import routes
from stack.contracts import edge_services
from stack.ports import SERVICES


def _held(route: dict[str, Any]) -> bool:
    config = route.get("typed_per_filter_config", {}).get(WHOLE_ANSWERS)
    return not (config and config.get("disabled"))


def test_every_unary_route_holds_answers_whole_and_retries_only_unsent_calls(
    image_path: Path,
) -> None:
    services = edge_services(image_path)
    found = routes(services, STREAM_CLUSTER)
    streaming = {f"/{s.full_name}/{m}" for s in services for m in s.streaming_methods}
    unary = [r for r in found if r["match"].get("path") not in streaming]
    streams = [r for r in found if r["match"].get("path") in streaming]

    # Every service process behind the edge has unary routes, and each of them is held.
    assert {r["route"]["cluster"] for r in unary} == set(SERVICES)
    for route in unary:
        if route["match"].get("prefix") == "/grpc.reflection.":
            assert not _held(route), "a reflection stream is never whole"
            continue
        assert _held(route), route["match"]
        assert route["route"]["retry_policy"] == UNARY_RETRY, route["match"]
    assert len(streams) == len(streaming)
    for route in streams:
        assert not _held(route), route["match"]
        assert route["route"].get("retry_policy", {}).get("retry_on") != UNARY_RETRY["retry_on"]
    # Only calls that never reached a service are sent again: nothing after the request went out.
    assert set(UNARY_RETRY["retry_on"].split(",")) == {
        "connect-failure",
        "refused-stream",
        "reset-before-request",
    }
