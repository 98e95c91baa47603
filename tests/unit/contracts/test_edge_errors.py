"""The edge's own errors (stack/components/edge_errors.py): every local reply Envoy can make is a
google.rpc.Status with a stable reason, as JSON for REST and as gRPC trailers for gRPC."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from services.platform.errors import STATUS_BY_REASON
from stack.components.edge_errors import LUA_JSON_STATUSES
from stack.components.edge_errors import EdgeError
from stack.components.edge_errors import edge_errors
from stack.components.edge_errors import local_reply_config
from stack.components.edge_errors import origin_refused_template
from stack.components.edge_errors import too_deep_status
from stack.components.edge_errors import unknown_field_templates
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import parse_status_details
from tradingmesh.errors import reason_string

ERRORS = edge_errors(1024 * 1024, 4096, 8192, timedelta(seconds=1))
CONFIG = local_reply_config(ERRORS)


def _info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def _rest_mappers() -> list[dict[str, Any]]:
    return [m for m in CONFIG["mappers"] if "json_format" in m.get("body_format_override", {})]


def _grpc_mappers() -> list[dict[str, Any]]:
    return [m for m in CONFIG["mappers"] if "headers_to_add" in m]


def _headers(mapper: dict[str, Any]) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in mapper["headers_to_add"]}


def test_the_edge_answers_each_status_the_issue_names() -> None:
    statuses = {
        e.matches["status_code_filter"]["comparison"]["value"]["default_value"]
        for e in ERRORS
        if "status_code_filter" in e.matches
    }

    assert {400, 401, 403, 404, 413, 414, 429, 431, 503, 504} <= statuses


def test_every_rest_body_parses_as_a_status_with_the_reasons_code() -> None:
    bodies = [m["body_format_override"]["json_format"] for m in _rest_mappers()]

    assert len(bodies) == len(ERRORS) + 1  # and the last one, for a reply the table misses
    for error, body in zip(ERRORS, bodies, strict=False):
        status = json_format.ParseDict(body, status_pb2.Status())
        info = _info(status)
        assert (info.domain, info.reason) == ("tradingmesh", reason_string(error.reason))
        assert status.code == STATUS_BY_REASON[error.reason][0].value[0], error.name
        assert status.message, error.name
    unknown = json_format.ParseDict(bodies[-1], status_pb2.Status())
    assert unknown.code == grpc.StatusCode.UNKNOWN.value[0]
    assert _info(unknown).reason == "UNSPECIFIED"


def test_rest_mappers_come_first_and_only_answer_rest_requests() -> None:
    mappers = CONFIG["mappers"]
    first_grpc = mappers.index(_grpc_mappers()[0])

    assert all(mappers.index(m) < first_grpc for m in _rest_mappers())
    for mapper in _rest_mappers()[:-1]:
        (is_rest, _matches) = mapper["filter"]["and_filter"]["filters"]
        assert "or_filter" in is_rest


def test_every_grpc_answer_is_trailers_only_with_a_status_the_sdk_decodes() -> None:
    for error, mapper in zip(ERRORS, _grpc_mappers(), strict=True):
        headers = _headers(mapper)
        code = grpc.StatusCode.UNIMPLEMENTED if error.name == "not_found" else error.code

        assert mapper["status_code"] == 200, error.name
        assert mapper["body_format_override"]["text_format_source"]["inline_string"] == ""
        assert int(headers["grpc-status"]) == code.value[0], error.name
        assert headers["grpc-message"].startswith(error.message)
        if error.name == "not_found":
            # UNIMPLEMENTED is no status of NOT_FOUND (ADR 0002): no details.
            assert "grpc-status-details-bin" not in headers
            continue
        packed = headers["grpc-status-details-bin"]
        details = parse_status_details(
            code, headers["grpc-message"], base64.b64decode(packed + "=" * (-len(packed) % 4))
        )
        assert details.reason == error.reason, error.name


def test_a_rate_limit_says_when_to_retry_and_size_limits_say_which_and_how_much() -> None:
    by_name = {e.name: e for e in ERRORS}

    rate_limited = by_name["rate_limited"].status()
    limits = {
        name: dict(_info(by_name[name].status()).metadata)
        for name in ("body_too_large", "path_too_long", "headers_too_large")
    }

    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rate_limited.details)
    assert retry.retry_delay.seconds == 1
    assert limits == {
        "body_too_large": {"limit": "body", "max_bytes": "1048576"},
        "path_too_long": {"limit": "path", "max_bytes": "4096"},
        "headers_too_large": {"limit": "headers", "max_bytes": "8192"},
    }


def _expression(mapper: dict[str, Any]) -> str:
    return str(mapper["filter"]["extension_filter"]["typed_config"]["expression"])


def test_direct_responses_are_kept_as_made_by_the_first_mapper() -> None:
    # The web terminal's files, and its 404/405/503 pages in plain text (web_static.py).
    first = CONFIG["mappers"][0]

    assert set(first) == {"filter"}
    assert _expression(first) == "response.code_details == 'direct_response'"


def test_lua_answers_in_json_are_kept_as_made_by_the_second_mapper() -> None:
    second = CONFIG["mappers"][1]
    expression = _expression(second)

    assert set(second) == {"filter"}
    assert "lua_response" in expression
    assert all(str(code) in expression for code in LUA_JSON_STATUSES)


def test_a_percent_in_a_fixed_message_is_refused() -> None:
    bad = EdgeError("bad", {}, ErrorReason.ERROR_REASON_UNSPECIFIED, "100% broken")

    with pytest.raises(ValueError, match="Envoy command"):
        local_reply_config([bad])


def _fill(template: str, **values: str) -> str:
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    return template


def test_the_lua_answers_are_statuses_once_filled() -> None:
    status_template, violation_template = unknown_field_templates()
    violations = ",".join(
        _fill(violation_template, FIELD=json.dumps(f)) for f in ("stop_los", "legs[0].x")
    )

    unknown = json_format.Parse(
        _fill(
            status_template,
            MESSAGE=json.dumps('unknown field "stop_los"'),
            FIELD=json.dumps("stop_los"),
            VIOLATIONS=violations,
        ),
        status_pb2.Status(),
    )
    refused = json_format.Parse(
        _fill(origin_refused_template(), ORIGIN=json.dumps("https://evil.example")),
        status_pb2.Status(),
    )
    deep = json_format.Parse(too_deep_status(), status_pb2.Status())

    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in unknown.details)
    assert [v.field for v in bad_request.field_violations] == ["stop_los", "legs[0].x"]
    assert {v.reason for v in bad_request.field_violations} == {"unknown_field"}
    assert (_info(unknown).reason, _info(unknown).metadata["field"]) == (
        "VALIDATION_FAILED",
        "stop_los",
    )
    assert unknown.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert (_info(refused).reason, refused.code) == ("PERMISSION_DENIED", 7)
    assert _info(refused).metadata["origin"] == "https://evil.example"
    assert _info(deep).reason == "VALIDATION_FAILED"
