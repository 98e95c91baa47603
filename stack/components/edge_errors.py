"""What Envoy answers when it refuses a request itself (ADR 0002, "Edge errors").

Every error the edge makes (a missing token, a rate limit, a body or headers over the limits, a
path no route serves, a body the transcoder cannot read, a service that is down, late or dies
mid-call) has the shape of the services' own errors: a `google.rpc.Status` with an ErrorInfo
carrying a stable `ErrorReason`. REST callers get it as the JSON body, with the HTTP status.
gRPC and gRPC-web callers get a trailers-only answer (HTTP 200, as gRPC requires: gRPC-web
clients such as connect-web read a non-200 status instead of grpc-status) with grpc-status,
grpc-message and the same Status in grpc-status-details-bin, which the SDK's `details_of`
decodes. The Status is built by `services.platform.errors.to_status`, as in every service, and
rendered into Envoy's `local_reply_config` (and into the answers of envoy/rest_json.lua) when
the stack renders the edge.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2

from services.platform.errors import STATUS_BY_REASON
from services.platform.errors import DomainError
from services.platform.errors import to_status
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import FieldViolation

_R = ErrorReason
_S = grpc.StatusCode

# Dynamic metadata that envoy/rest_json.lua sets on a REST/JSON request before the transcoder
# turns it into gRPC (its content-type included): how a reply knows to answer in JSON.
REST_MARK = ("tradingmesh.rest", "json")
# The statuses with which envoy/rest_json.lua answers in JSON of its own (unknown fields, a
# refused preflight); its other answers (414, 431) take their form from the mappers.
LUA_JSON_STATUSES = (400, 403)


@dataclass(frozen=True)
class EdgeError:
    """One kind of local reply: the replies it `matches` (an Envoy AccessLogFilter), what they
    become, and what the caller is told. With `envoy_detail`, the message is followed by what
    Envoy said: its text over REST (the transcoder names the field at fault, jwt_authn says
    whether the token is missing or expired), its response code details over gRPC (a header
    cannot hold the text)."""

    name: str
    matches: Mapping[str, Any]
    reason: ErrorReason.ValueType
    message: str
    envoy_detail: bool = False
    http_status: int | None = None  # rewrites Envoy's status for REST when set
    grpc_status: grpc.StatusCode | None = None  # for gRPC callers, when not the reason's own
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after: timedelta | None = None

    @property
    def code(self) -> grpc.StatusCode:
        """The status of the reason (ADR 0002): the `code` of the JSON body."""
        return STATUS_BY_REASON[self.reason][0]

    @property
    def rest_message(self) -> str:
        return f"{self.message}: %LOCAL_REPLY_BODY%" if self.envoy_detail else self.message

    @property
    def grpc_message(self) -> str:
        return f"{self.message} (%RESPONSE_CODE_DETAILS%)" if self.envoy_detail else self.message

    def status(self, code: grpc.StatusCode | None = None) -> status_pb2.Status:
        """The google.rpc.Status of this error (its message is left to each form)."""
        error = DomainError(
            self.reason,
            "",
            metadata=self.metadata,
            retry_after=self.retry_after,
            status=code or self.code,
        )
        return status_pb2.Status.FromString(to_status(error)[2])


def _cel(expression: str) -> dict[str, Any]:
    return {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expression,
            },
        }
    }


def status_code_is(code: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": f"edge.local_reply.{code}"},
            }
        }
    }


def edge_errors(
    max_body_bytes: int, max_path_bytes: int, max_headers_bytes: int, rate_limit_refill: timedelta
) -> list[EdgeError]:
    """Every local reply the edge makes, first match first. `rate_limit_refill` is the shortest
    fill interval of the edge's token buckets: the earliest a refused caller may succeed."""
    unavailable = "the service is unavailable: retry with back-off"
    return [
        # jwt_authn answers a token for another audience with 403; to a client it is as
        # unusable as an expired one: 401 / UNAUTHENTICATED (issue 4).
        EdgeError(
            "token_for_another_audience",
            _cel(
                "response.code == 403 && "
                "response.code_details.startsWith('jwt_authn_access_denied')"
            ),
            _R.ERROR_REASON_UNAUTHENTICATED,
            "missing, expired or invalid access token",
            envoy_detail=True,
            http_status=401,
        ),
        # The transcoder: malformed JSON, a value of the wrong type, an unknown enum name, an
        # unknown query parameter, a path value contradicting the body; also HTTP codec errors.
        EdgeError(
            "bad_request",
            status_code_is(400),
            _R.ERROR_REASON_VALIDATION_FAILED,
            "invalid request",
            envoy_detail=True,
        ),
        EdgeError(
            "unauthenticated",
            status_code_is(401),
            _R.ERROR_REASON_UNAUTHENTICATED,
            "missing, expired or invalid access token",
            envoy_detail=True,
        ),
        EdgeError(
            "permission_denied",
            status_code_is(403),
            _R.ERROR_REASON_PERMISSION_DENIED,
            "not allowed",
            envoy_detail=True,
        ),
        # No route, or no REST binding: gRPC callers keep UNIMPLEMENTED, their protocol's word.
        EdgeError(
            "not_found",
            status_code_is(404),
            _R.ERROR_REASON_NOT_FOUND,
            "no method or REST route at this path",
            grpc_status=_S.UNIMPLEMENTED,
        ),
        EdgeError(
            "body_too_large",
            status_code_is(413),
            _R.ERROR_REASON_REQUEST_TOO_LARGE,
            f"request body larger than {max_body_bytes} bytes",
            metadata={"limit": "body", "max_bytes": str(max_body_bytes)},
        ),
        EdgeError(
            "path_too_long",
            status_code_is(414),
            _R.ERROR_REASON_REQUEST_TOO_LARGE,
            f"request path longer than {max_path_bytes} bytes",
            metadata={"limit": "path", "max_bytes": str(max_path_bytes)},
        ),
        EdgeError(
            "rate_limited",
            status_code_is(429),
            _R.ERROR_REASON_RATE_LIMITED,
            "too many requests: retry later (x-ratelimit-reset says when)",
            retry_after=rate_limit_refill,
        ),
        EdgeError(
            "headers_too_large",
            status_code_is(431),
            _R.ERROR_REASON_REQUEST_TOO_LARGE,
            f"request path and headers larger than {max_headers_bytes} bytes",
            metadata={"limit": "headers", "max_bytes": str(max_headers_bytes)},
        ),
        EdgeError("internal", status_code_is(500), _R.ERROR_REASON_UNSPECIFIED, "internal error"),
        # The service died (or closed its connection) after the call reached it: the call may
        # have taken effect. Its answer was held whole (envoy.py, WHOLE_ANSWERS), so this
        # replaces it; without that hold the stream would only have been reset (INTERNAL).
        EdgeError(
            "reset_mid_call",
            _cel(
                "response.code == 503 && "
                "response.code_details.startsWith('upstream_reset_after_response_started')"
            ),
            _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            "the service stopped during the call, which may have taken effect: retry with"
            " back-off (a call with an idempotency key, such as an order's client_order_id,"
            " is safe to repeat)",
            envoy_detail=True,
        ),
        EdgeError(
            "bad_gateway", status_code_is(502), _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, unavailable
        ),
        EdgeError(
            "unavailable", status_code_is(503), _R.ERROR_REASON_DEPENDENCY_UNAVAILABLE, unavailable
        ),
        EdgeError(
            "timeout",
            status_code_is(504),
            _R.ERROR_REASON_DEADLINE_EXCEEDED,
            "the service did not answer in time",
        ),
    ]


# ---- Envoy's local_reply_config --------------------------------------------------------------


def _is_rest() -> dict[str, Any]:
    """A REST/JSON request: marked by envoy/rest_json.lua before the transcoder made it look
    like gRPC (content-type included), or refused before that filter with a content-type that
    is not gRPC's (or none). Everything else is a gRPC or gRPC-web call."""
    grpc_type = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    return {
        "or_filter": {
            "filters": [
                {
                    "metadata_filter": {
                        "matcher": {
                            "filter": REST_MARK[0],
                            "path": [{"key": REST_MARK[1]}],
                            "value": {"bool_match": True},
                        },
                        "match_if_key_not_found": False,
                    }
                },
                {"header_filter": {"header": {**grpc_type, "invert_match": True}}},
                {"header_filter": {"header": {"name": "content-type", "present_match": False}}},
            ]
        }
    }


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def status_json(status: status_pb2.Status, message: str) -> dict[str, Any]:
    """A Status as the transcoder prints the services' errors (proto field names)."""
    body: dict[str, Any] = json_format.MessageToDict(status, preserving_proto_field_name=True)
    body["code"] = status.code
    body["message"] = message
    body.setdefault("details", [])
    return body


def _rest_mapper(error: EdgeError) -> dict[str, Any]:
    mapper: dict[str, Any] = {
        "filter": {"and_filter": {"filters": [_is_rest(), error.matches]}},
        "body_format_override": {"json_format": status_json(error.status(), error.rest_message)},
    }
    if error.http_status:
        mapper["status_code"] = error.http_status
    return mapper


def _grpc_mapper(error: EdgeError) -> dict[str, Any]:
    code = error.grpc_status or error.code
    headers = [
        _header("grpc-status", str(code.value[0])),
        _header("grpc-message", error.grpc_message),
    ]
    if code in STATUS_BY_REASON[error.reason]:
        # Only a Status the reason allows (ADR 0002): UNIMPLEMENTED carries no NOT_FOUND.
        details = error.status(code).SerializeToString()
        headers.append(
            _header("grpc-status-details-bin", base64.b64encode(details).decode().rstrip("="))
        )
    return {
        "filter": error.matches,
        # Trailers-only: HTTP 200 and no body, the status in the headers. (A body would become
        # a gRPC-web client's data, and a non-200 status would make Envoy's gRPC-web filter
        # replace grpc-status with one guessed from the HTTP status.)
        "status_code": 200,
        "headers_to_add": headers,
        "body_format_override": {"text_format_source": {"inline_string": ""}},
    }


def local_reply_config(errors: list[EdgeError]) -> dict[str, Any]:
    """Mappers for REST (a reply takes the first mapper that matches), with a last one for a
    reply the table misses (UNKNOWN); then for gRPC, whose unmatched replies keep Envoy's own
    form."""
    for error in errors:
        if "%" in error.message:
            raise ValueError(f"{error.name}: '%' starts an Envoy command in {error.message!r}")
    # UNKNOWN, which no reason has (UNSPECIFIED is INTERNAL, a bug): a reply the table misses.
    unknown = EdgeError("unknown", {}, _R.ERROR_REASON_UNSPECIFIED, "").status()
    unknown.code = _S.UNKNOWN.value[0]
    return {
        "mappers": [
            # The edge's own answers, kept as they are: the web terminal's files and its 404,
            # 405 and "not built" pages (direct responses, stack/components/web_static.py) ...
            {"filter": _cel("response.code_details == 'direct_response'")},
            # ... and rest_json.lua's JSON refusals.
            {
                "filter": _cel(
                    "response.code_details == 'lua_response'"
                    f" && response.code in {list(LUA_JSON_STATUSES)}"
                )
            },
            *(_rest_mapper(e) for e in errors),
            {
                "filter": _is_rest(),
                "body_format_override": {"json_format": status_json(unknown, "%LOCAL_REPLY_BODY%")},
            },
            *(_grpc_mapper(e) for e in errors),
        ]
    }


# ---- the answers of envoy/rest_json.lua ------------------------------------------------------
#
# JSON with @NAME@ placeholders that the script fills with JSON values (quoted strings, or the
# list of violations) in one pass.


def _template(body: dict[str, Any], *placeholders: str) -> str:
    text = json.dumps(body, separators=(",", ":"))
    for name in placeholders:
        text = text.replace(json.dumps(f"@{name}@"), f"@{name}@")
    return text


def _lua_status(error: DomainError) -> dict[str, Any]:
    return status_json(status_pb2.Status.FromString(to_status(error)[2]), error.message)


def origin_refused_template() -> str:
    """403 to a CORS preflight from an origin the edge does not allow (@ORIGIN@)."""
    error = DomainError(
        _R.ERROR_REASON_PERMISSION_DENIED,
        "CORS preflight refused: this origin is not allowed",
        metadata={"origin": "@ORIGIN@"},
    )
    return _template(_lua_status(error), "ORIGIN")


def unknown_field_templates() -> tuple[str, str]:
    """400 to a JSON body with fields its message does not define: the Status (@MESSAGE@, the
    first @FIELD@, and @VIOLATIONS@, the list) and one BadRequest violation (@FIELD@)."""
    error = DomainError(
        _R.ERROR_REASON_VALIDATION_FAILED,
        "@MESSAGE@",
        metadata={"field": "@FIELD@"},
        field_violations=[FieldViolation("@FIELD@", "unknown field", "unknown_field")],
    )
    body = _lua_status(error)
    (bad_request,) = (d for d in body["details"] if "field_violations" in d)
    (violation,) = bad_request["field_violations"]
    bad_request["field_violations"] = "@VIOLATIONS@"
    status = _template(body, "MESSAGE", "FIELD").replace('"@VIOLATIONS@"', "[@VIOLATIONS@]")
    return status, _template(violation, "FIELD")


def too_deep_status() -> str:
    """400 to a JSON body nested deeper than any request message goes."""
    error = DomainError(_R.ERROR_REASON_VALIDATION_FAILED, "JSON body nested too deeply")
    return json.dumps(_lua_status(error), separators=(",", ":"))
