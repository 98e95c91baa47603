"""The web terminal's files served by Envoy on the API's origin (ADR 0014), with a stand-in build:
the page and its assets with their content types, caching and security headers, GET and HEAD
only, no token, gzip; and what was there before is untouched: REST, gRPC-web, CORS preflights,
the edge's 404 for an unknown path.

The suite's shared stack runs Envoy with the checkout's build (clients/web/dist). This module
restarts its Envoy with TM_WEB_DIST pointing at a stand-in build, and back at the end: cheaper
than a stack of its own (two Envoy restarts, a few seconds each)."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.components.envoy import HSTS
from stack.components.web_static import IMMUTABLE
from stack.components.web_static import NO_CACHE
from stack.components.web_static import WEB_DIST_ENV
from tests.integration.conftest import RunningStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge import restart_envoy
from tests.integration.support.edge_calls import LOGIN
from tests.integration.support.edge_calls import Answer
from tests.integration.support.edge_calls import Trader
from tests.integration.support.edge_calls import call
from tests.integration.support.edge_calls import error_info
from tests.integration.support.edge_calls import preflight
from tests.integration.support.edge_calls import rest
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2

PAGE = b'<!doctype html><html lang="en"><head><script type="module" src="/assets/app-5f3a9c.js">'
SCRIPT = b"export const greeting = 'stand-in terminal';\n" * 200  # compressible, over 1 KiB
STYLE = b"body { color: #eee; }\n"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("web-dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_bytes(PAGE)
    (dist / "assets" / "app-5f3a9c.js").write_bytes(SCRIPT)
    (dist / "assets" / "app-5f3a9c.css").write_bytes(STYLE)
    return dist


@pytest.fixture(scope="module")
def edge(running_stack: RunningStack, standin: Path) -> Iterator[Edge]:
    """The shared stack's Envoy serving the stand-in build, for this module only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEB_DIST_ENV, str(standin))
        restart_envoy(running_stack)
    try:
        yield Edge(running_stack.state)
    finally:
        restart_envoy(running_stack)


@pytest.fixture(scope="module")
def trader(edge: Edge) -> Trader:
    demo = edge.state.demo
    assert demo is not None
    answer = rest(
        edge, "POST", "/v1/auth/login", None, {"username": demo.username, "password": demo.password}
    )
    assert answer.status == 200, answer
    return Trader(json.loads(answer.body)["access_token"], demo.account_id)


def plain(edge: Edge, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """A call over plain HTTP/1.1 to the web terminal's own origin (endpoints.web)."""
    assert edge.state.endpoints.web == f"http://127.0.0.1:{edge.ports.envoy}/"
    connection = http.client.HTTPConnection("127.0.0.1", edge.ports.envoy, timeout=20)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)


def _security_headers_are_set(answer: Answer) -> None:
    policy = answer.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


# ---- the terminal's files -------------------------------------------------------------------


def test_the_page_is_served_at_the_root_without_a_token_and_is_revalidated(edge: Edge) -> None:
    over_plaintext, over_tls = plain(edge, "GET", "/"), call(edge, "GET", "/index.html")
    for answer in (over_plaintext, over_tls):
        assert answer.status == 200, answer
        assert answer.body == PAGE
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["cache-control"] == NO_CACHE
        _security_headers_are_set(answer)
    # HSTS over TLS only (ADR 0018): over plaintext it would mean nothing.
    assert over_tls.headers["strict-transport-security"] == HSTS
    assert "strict-transport-security" not in over_plaintext.headers


def test_a_token_is_neither_needed_nor_checked_for_the_page(edge: Edge) -> None:
    answer = plain(edge, "GET", "/", {"authorization": "Bearer not-a-token"})

    assert answer.status == 200
    assert answer.body == PAGE


def test_an_asset_is_served_with_its_type_and_cached_for_good(edge: Edge) -> None:
    script = plain(edge, "GET", "/assets/app-5f3a9c.js")
    style = plain(edge, "GET", "/assets/app-5f3a9c.css")

    assert (script.status, script.body) == (200, SCRIPT)
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == IMMUTABLE
    assert (style.status, style.body) == (200, STYLE)
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert style.headers["x-content-type-options"] == "nosniff"


def test_text_files_are_gzipped_for_a_browser_that_accepts_it(edge: Edge) -> None:
    answer = plain(edge, "GET", "/assets/app-5f3a9c.js", {"accept-encoding": "gzip"})

    assert answer.headers["content-encoding"] == "gzip"
    assert len(answer.body) < len(SCRIPT) // 4
    assert gzip.decompress(answer.body) == SCRIPT


def test_head_answers_the_headers_without_the_body(edge: Edge) -> None:
    answer = plain(edge, "HEAD", "/assets/app-5f3a9c.js")

    assert answer.status == 200
    assert answer.body == b""
    assert answer.headers["content-length"] == str(len(SCRIPT))
    assert answer.headers["cache-control"] == IMMUTABLE


def test_other_methods_on_the_terminals_paths_are_refused(edge: Edge) -> None:
    for method, path in (
        ("POST", "/"),
        ("PUT", "/index.html"),
        ("DELETE", "/assets/app-5f3a9c.js"),
    ):
        answer = plain(edge, method, path)

        assert answer.status == 405, (method, path, answer)
        assert answer.headers["allow"] == "GET, HEAD"


def test_unknown_paths_are_404(edge: Edge) -> None:
    asset = plain(edge, "GET", "/assets/app-000000.js")
    elsewhere = call(edge, "GET", "/no-such-page")

    assert asset.status == 404
    assert elsewhere.status == 404
    # Outside /assets/ the edge's own answer: a Status with a reason, as before.
    assert error_info(elsewhere.status_json()).reason == "NOT_FOUND"


# ---- the API on the same listener, as before ------------------------------------------------


def test_rest_still_works_with_a_token_and_is_refused_without(edge: Edge, trader: Trader) -> None:
    listed = rest(edge, "GET", f"/v1/instruments?account_id={trader.account_id}", trader)
    anonymous = rest(edge, "GET", f"/v1/instruments?account_id={trader.account_id}", None)

    assert listed.status == 200, listed
    assert b'"symbol":"EURUSD"' in listed.body
    assert listed.headers.get("content-encoding") is None  # JSON is never compressed
    assert anonymous.status == 401


def test_grpc_web_works_on_the_pages_own_origin(edge: Edge) -> None:
    demo = edge.state.demo
    assert demo is not None
    message = auth_pb2.LoginRequest(username=demo.username, password=demo.password)
    data = message.SerializeToString()
    connection = http.client.HTTPConnection("127.0.0.1", edge.ports.envoy, timeout=20)
    try:
        connection.request(
            "POST",
            LOGIN,
            body=b"\x00" + len(data).to_bytes(4, "big") + data,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "accept-encoding": "gzip",
            },
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()

    assert response.status == 200
    assert response.getheader("content-encoding") is None  # gRPC-web is never compressed here
    size = int.from_bytes(payload[1:5], "big")
    assert payload[0] == 0
    assert auth_pb2.LoginResponse.FromString(payload[5 : 5 + size]).access_token
    assert b"grpc-status:0" in payload[5 + size :].replace(b" ", b"")


def test_cors_preflights_are_answered_as_before(edge: Edge) -> None:
    allowed = f"http://127.0.0.1:{edge.ports.web_client}"

    answered = preflight(edge, LOGIN, allowed)
    refused = preflight(edge, "/v1/auth/login", "https://evil.example", source="127.0.0.5")

    assert answered.status == 200
    assert answered.headers["access-control-allow-origin"] == allowed
    assert refused.status == 403
    assert "access-control-allow-origin" not in refused.headers
