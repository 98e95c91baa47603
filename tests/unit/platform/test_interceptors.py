"""The interceptor chain, end to end: a real grpc.aio server and client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import grpc
import grpc.aio
import psycopg
import pytest
from google.rpc import error_details_pb2
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2_grpc

from services.platform.errors import DomainError
from services.platform.logging import JsonFormatter
from tests.unit.platform.pricing_harness import ACCOUNT_ID
from tests.unit.platform.pricing_harness import PRICING_SERVICE
from tests.unit.platform.pricing_harness import Harness
from tests.unit.platform.pricing_harness import edge_metadata
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.errors import STATUS_DETAILS_KEY
from tradingmesh.errors import details_of
from tradingmesh.pricing.v1 import pricing_service_pb2

GOOD_QUOTE = pricing_service_pb2.GetQuoteRequest(symbol="EURUSD", account_id=ACCOUNT_ID)
GOOD_STREAM = pricing_service_pb2.StreamQuotesRequest(
    symbols=["EURUSD", "XAUUSD"], account_id=ACCOUNT_ID
)
Metadata = tuple[tuple[str, str], ...]


async def _get_quote_error(
    harness: Harness,
    request: pricing_service_pb2.GetQuoteRequest = GOOD_QUOTE,
    metadata: Metadata | None = None,
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.stub.GetQuote(
            request, metadata=edge_metadata() if metadata is None else metadata
        )
    return raised.value


async def _stream_quotes(
    harness: Harness,
    request: pricing_service_pb2.StreamQuotesRequest = GOOD_STREAM,
    metadata: Metadata | None = None,
) -> list[pricing_service_pb2.StreamQuotesResponse]:
    call = harness.stub.StreamQuotes(
        request, metadata=edge_metadata() if metadata is None else metadata
    )
    return [response async for response in call]


def _status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    raise AssertionError("no status details in the trailers")


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """The access log's JSON lines, as `configure_logging` would write them."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter("pricing"))
    logger = logging.getLogger("tradingmesh.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


# --- a call that passes every check ---


async def test_valid_call_reaches_the_handler_with_the_identity_from_the_edge(
    harness: Harness,
) -> None:
    metadata = edge_metadata(
        ("x-tm-subject", "user-1"),
        ("x-tm-roles", "client, trader"),
        ("x-tm-accounts", f"{ACCOUNT_ID},other"),
        ("x-tm-api-key-id", "key-9"),
    )

    response = await harness.stub.GetQuote(GOOD_QUOTE, metadata=metadata)

    assert response.quote.symbol == "EURUSD"
    [seen] = harness.servicer.seen
    assert seen.caller.subject == "user-1"
    assert seen.caller.roles == {"client", "trader"}
    assert seen.caller.account_ids == {ACCOUNT_ID, "other"}
    assert seen.caller.api_key_id == "key-9"


async def test_call_without_identity_headers_has_an_anonymous_caller(harness: Harness) -> None:
    await harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata())

    [seen] = harness.servicer.seen
    assert not seen.caller.authenticated
    assert seen.caller.roles == frozenset()


# --- request id ---


async def test_request_id_from_the_caller_is_echoed_and_seen_by_the_handler(
    harness: Harness,
) -> None:
    call = harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata(("x-request-id", "req-42")))

    await call

    assert ("x-request-id", "req-42") in tuple(await call.initial_metadata())
    [seen] = harness.servicer.seen
    assert seen.request_id == "req-42"
    assert seen.caller.request_id == "req-42"


async def test_call_without_request_id_gets_a_new_one(harness: Harness) -> None:
    call = harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata())

    await call

    echoed = dict(await call.initial_metadata())["x-request-id"]
    assert len(str(echoed)) == 36
    assert harness.servicer.seen[0].request_id == echoed


async def test_malformed_request_id_is_replaced(harness: Harness) -> None:
    call = harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata(("x-request-id", "x" * 300)))

    await call

    assert dict(await call.initial_metadata())["x-request-id"] != "x" * 300


async def test_concurrent_calls_keep_their_own_request_ids(harness: Harness) -> None:
    harness.servicer.delay = 0.2

    await asyncio.gather(
        *(
            harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata(("x-request-id", f"r-{n}")))
            for n in range(5)
        )
    )

    assert {(s.request_id, s.caller.request_id) for s in harness.servicer.seen} == {
        (f"r-{n}", f"r-{n}") for n in range(5)
    }


async def test_failed_call_still_echoes_its_request_id(harness: Harness) -> None:
    harness.servicer.fail_with = DomainError(ErrorReason.ERROR_REASON_NOT_FOUND, "no account")

    error = await _get_quote_error(harness, metadata=edge_metadata(("x-request-id", "req-7")))

    assert ("x-request-id", "req-7") in tuple(error.initial_metadata() or ())


# --- validation ---


async def test_bad_request_is_invalid_argument_listing_every_violation(harness: Harness) -> None:
    request = pricing_service_pb2.GetQuoteRequest(symbol="eur usd", account_id="not-a-uuid")

    error = await _get_quote_error(harness, request)

    details = details_of(error)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert {(v.field, v.reason) for v in details.field_violations} == {
        ("symbol", "string.symbol"),
        ("account_id", "string.uuid"),
    }
    assert all(v.description for v in details.field_violations)


async def test_bad_request_never_reaches_the_handler(harness: Harness) -> None:
    request = pricing_service_pb2.GetQuoteRequest(symbol="eur usd", account_id=ACCOUNT_ID)

    await _get_quote_error(harness, request)

    assert harness.servicer.seen == []


async def test_bad_stream_request_is_refused_before_the_handler_runs(harness: Harness) -> None:
    request = pricing_service_pb2.StreamQuotesRequest(symbols=[], account_id=ACCOUNT_ID)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _stream_quotes(harness, request)

    details = details_of(raised.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert [(v.field, v.reason) for v in details.field_violations] == [
        ("symbols", "repeated.min_items")
    ]
    assert harness.servicer.seen == []


async def test_violation_in_a_list_names_the_element(harness: Harness) -> None:
    request = pricing_service_pb2.StreamQuotesRequest(
        symbols=["EURUSD", "bad one"], account_id=ACCOUNT_ID
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _stream_quotes(harness, request)

    assert [v.field for v in details_of(raised.value).field_violations] == ["symbols[1]"]


# --- error mapping ---


async def test_domain_error_becomes_the_status_of_its_reason_with_error_info(
    harness: Harness,
) -> None:
    harness.servicer.fail_with = DomainError(
        ErrorReason.ERROR_REASON_INSUFFICIENT_MARGIN,
        "not enough free margin",
        metadata={"required_margin": "1085.12", "free_margin": "100.00"},
    )

    error = await _get_quote_error(harness)

    details = details_of(error)
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.message == "not enough free margin"
    assert details.reason == ErrorReason.ERROR_REASON_INSUFFICIENT_MARGIN
    assert details.metadata == {"required_margin": "1085.12", "free_margin": "100.00"}


async def test_domain_error_with_retry_after_carries_retry_info(harness: Harness) -> None:
    harness.servicer.fail_with = DomainError(
        ErrorReason.ERROR_REASON_RATE_LIMITED, "too many streams", retry_after=timedelta(seconds=3)
    )

    error = await _get_quote_error(harness)

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in _status_details(error).details)
    assert retry.retry_delay.ToTimedelta() == timedelta(seconds=3)


async def test_unexpected_exception_is_internal_without_its_text(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.servicer.fail_with = RuntimeError("db password is hunter2")

    error = await _get_quote_error(harness, metadata=edge_metadata(("x-request-id", "req-500")))

    details = details_of(error)
    assert details.code == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (error.details() or "")
    assert "hunter2" not in _status_details(error).SerializeToString().decode(errors="replace")
    assert "req-500" in details.message
    assert details.metadata == {"request_id": "req-500"}
    [logged] = [r for r in caplog.records if r.exc_info]
    assert "hunter2" in str(logged.exc_info[1])  # type: ignore[index]


async def test_a_database_connection_lost_mid_call_is_unavailable_not_internal(
    harness: Harness,
) -> None:
    """PostgreSQL killed under load: the handler's statement fails with the lost connection
    (issue #18). That is the platform's state, not a bug: retry."""
    lost = psycopg.OperationalError("consuming input failed: server closed the connection")
    try:
        raise RuntimeError("while placing") from lost
    except RuntimeError as wrapped:
        harness.servicer.fail_with = wrapped

    error = await _get_quote_error(harness)

    details = details_of(error)
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == ErrorReason.ERROR_REASON_DEPENDENCY_UNAVAILABLE
    assert details.metadata == {"dependency": "PostgreSQL"}
    assert "closed the connection" not in (error.details() or "")


async def test_rpc_the_service_does_not_implement_is_unimplemented(harness: Harness) -> None:
    request = pricing_service_pb2.ListInstrumentsRequest(account_id=ACCOUNT_ID)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await harness.stub.ListInstruments(request, metadata=edge_metadata())

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_domain_error_mid_stream_ends_the_stream_with_its_status(harness: Harness) -> None:
    harness.servicer.fail_with = DomainError(ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE, "no price")
    call = harness.stub.StreamQuotes(GOOD_STREAM, metadata=edge_metadata())

    first = await call.read()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()

    assert isinstance(first, pricing_service_pb2.StreamQuotesResponse)
    assert details_of(raised.value).code == grpc.StatusCode.UNAVAILABLE
    assert details_of(raised.value).reason == ErrorReason.ERROR_REASON_PRICE_UNAVAILABLE


async def test_valid_stream_delivers_every_response(harness: Harness) -> None:
    responses = await _stream_quotes(harness)

    assert [r.quotes[0].symbol for r in responses] == ["EURUSD", "XAUUSD"]
    assert [s.method for s in harness.servicer.seen] == ["StreamQuotes"]


# --- edge check ---


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no token"),
        pytest.param((("x-tm-edge-token", "guessed"),), id="wrong token"),
        pytest.param((("x-tm-edge-token", ""),), id="empty token"),
        pytest.param(
            (*edge_metadata(), ("x-tm-edge-token", "guessed")), id="token repeated by a client"
        ),
        pytest.param(
            edge_metadata(("x-tm-subject", "user-1"), ("x-tm-subject", "admin")),
            id="identity header repeated",
        ),
    ],
)
async def test_call_that_did_not_come_through_the_edge_is_untrusted(
    harness: Harness, metadata: Metadata
) -> None:
    error = await _get_quote_error(harness, metadata=metadata)

    details = details_of(error)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == ErrorReason.ERROR_REASON_UNTRUSTED_CALLER
    assert harness.servicer.seen == []


async def test_untrusted_caller_is_refused_before_validation(harness: Harness) -> None:
    request = pricing_service_pb2.GetQuoteRequest(symbol="eur usd", account_id=ACCOUNT_ID)

    error = await _get_quote_error(harness, request, metadata=())

    assert details_of(error).reason == ErrorReason.ERROR_REASON_UNTRUSTED_CALLER


async def test_stream_without_edge_token_is_untrusted(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _stream_quotes(harness, metadata=())

    assert details_of(raised.value).reason == ErrorReason.ERROR_REASON_UNTRUSTED_CALLER
    assert harness.servicer.seen == []


async def test_health_check_needs_no_edge_token(harness: Harness) -> None:
    health = health_pb2_grpc.HealthStub(harness.channel)

    overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
    pricing = await health.Check(health_pb2.HealthCheckRequest(service=PRICING_SERVICE))

    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert pricing.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services_without_edge_token(harness: Harness) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(harness.channel)
    call = reflection.ServerReflectionInfo()

    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    response = await call.read()
    await call.done_writing()

    names = {service.name for service in response.list_services_response.service}
    assert names == {
        PRICING_SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


# --- access log and metrics ---


async def test_each_call_writes_one_access_log_line(
    harness: Harness, access_log: io.StringIO
) -> None:
    await harness.stub.GetQuote(
        GOOD_QUOTE, metadata=edge_metadata(("x-request-id", "req-1"), ("x-tm-subject", "user-1"))
    )
    await _get_quote_error(harness, metadata=(("x-request-id", "req-2"),))
    # The server writes a failed call's line as the call ends, which may be just after the
    # client has its status.
    for _ in range(100):
        if len(access_log.getvalue().splitlines()) >= 2:
            break
        await asyncio.sleep(0.02)

    lines = [json.loads(line) for line in access_log.getvalue().splitlines()]
    assert [(line["request_id"], line["code"]) for line in lines] == [
        ("req-1", "OK"),
        ("req-2", "UNAUTHENTICATED"),
    ]
    first = lines[0]
    assert first["method"] == f"/{PRICING_SERVICE}/GetQuote"
    assert first["service"] == "pricing"
    assert first["subject"] == "user-1"
    assert isinstance(first["duration_ms"], float)


async def test_calls_are_counted_by_method_and_code(harness: Harness) -> None:
    await harness.stub.GetQuote(GOOD_QUOTE, metadata=edge_metadata())
    await _get_quote_error(harness, metadata=())
    await _get_quote_error(harness, metadata=())
    await _stream_quotes(harness)

    def handled(method: str, kind: str, code: str) -> float | None:
        return harness.registry.get_sample_value(
            "grpc_server_handled_total",
            {"grpc_service": PRICING_SERVICE, "grpc_method": method, "grpc_type": kind}
            | {"grpc_code": code},
        )

    assert handled("GetQuote", "unary", "OK") == 1
    assert handled("GetQuote", "unary", "UNAUTHENTICATED") == 2
    assert handled("StreamQuotes", "server_stream", "OK") == 1
    latency_count = harness.registry.get_sample_value(
        "grpc_server_handling_seconds_count",
        {"grpc_service": PRICING_SERVICE, "grpc_method": "GetQuote", "grpc_type": "unary"},
    )
    assert latency_count == 3
