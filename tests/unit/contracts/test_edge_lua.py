"""envoy/rest_json.lua in a real Envoy, without the stack: the intake (limits, refused
preflights, the kept body) and the check (unknown JSON fields at any depth) before a route that
answers 200, with a schema made here so that every kind of field is exercised."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.components.edge_bodies import BodySchema
from stack.components.edge_bodies import MapOf
from stack.components.edge_bodies import RequestLimits
from stack.components.edge_bodies import render_script

from .conftest import REPO
from .test_envoy_descriptor import _envoy

PUT = "/demo.v1.DemoService/Put"
PUT_LEG = "/demo.v1.DemoService/PutLeg"
SCHEMA = BodySchema(
    methods={PUT: "demo.v1.PutRequest", PUT_LEG: "demo.v1.Leg"},
    messages={
        "demo.v1.PutRequest": {
            "account_id": None,
            "accountId": None,
            "legs": "demo.v1.Leg",
            "by_name": MapOf("demo.v1.Leg"),
            "tags": MapOf(None),
            "at": None,
        },
        "demo.v1.Leg": {"price_level": None, "priceLevel": None},
    },
)
LIMITS = RequestLimits(max_path_bytes=256, max_headers_bytes=2048)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    grpc_status: str | None = None

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.body)
        return parsed

    def fields(self) -> list[str]:
        """The fields of the BadRequest violations of a refusal."""
        details = self.json()["details"]
        assert isinstance(details, list)
        (bad_request,) = [d for d in details if "field_violations" in d]
        return [v["field"] for v in bad_request["field_violations"]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _lua(path: Path) -> dict[str, object]:
    return {
        "name": f"lua_{path.stem}",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"filename": str(path)},
        },
    }


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    work = tmp_path_factory.mktemp("edge-lua")
    source = (REPO / "envoy" / "rest_json.lua").read_text()
    scripts = {}
    for role in ("intake", "check"):
        scripts[role] = work / f"{role}.lua"
        scripts[role].write_text(render_script(source, role, SCHEMA, LIMITS))
    port = _free_port()
    manager = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "test",
            "route_config": {
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "direct_response": {
                                    "status": 200,
                                    "body": {"inline_string": "passed"},
                                },
                            }
                        ],
                    }
                ]
            },
            "http_filters": [
                _lua(scripts["intake"]),
                _lua(scripts["check"]),
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.filters.http.router.v3.Router"
                    },
                },
            ],
        },
    }
    config = work / "envoy.json"
    config.write_text(
        json.dumps(
            {
                "static_resources": {
                    "listeners": [
                        {
                            "address": {
                                "socket_address": {"address": "127.0.0.1", "port_value": port}
                            },
                            "filter_chains": [{"filters": [manager]}],
                        }
                    ]
                }
            }
        )
    )
    process = subprocess.Popen(
        [_envoy(), "-c", str(config), "--disable-hot-restart", "-l", "error"],
        stdout=subprocess.DEVNULL,
        stderr=(work / "envoy.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((work / "envoy.log").read_text())
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def send(
    port: int,
    body: bytes | str | None,
    path: str = PUT,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body.encode() if isinstance(body, str) else body
    try:
        connection.request(
            method, path, body=data, headers={"content-type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return Answer(response.status, response.read(), response.getheader("grpc-status"))
    finally:
        connection.close()


# ---- the check ------------------------------------------------------------------------------


def test_known_fields_by_either_name_pass(envoy: int) -> None:
    body = {
        "account_id": "a",
        "legs": [{"price_level": "1"}, {"priceLevel": "2"}],
        "by_name": {"x": {"price_level": "3"}},
        "tags": {"anything": "goes", "at all": "1"},
        "at": "2026-12-06T00:00:00Z",
        "accountId": None,
    }

    assert send(envoy, json.dumps(body)) == Answer(200, b"passed")


def test_unknown_fields_are_refused_wherever_they_are(envoy: int) -> None:
    body = {
        "stop_los": "1",
        "legs": [{"price_level": "1"}, {"price_levl": "2"}],
        "by_name": {"x": {"nope": {"deeper": [1, 2]}}},
        "tags": {"free": "keys"},
    }

    answer = send(envoy, json.dumps(body))

    assert answer.status == 400
    assert answer.fields() == ["stop_los", "legs[1].price_levl", "by_name.x.nope"]
    details = answer.json()["details"]
    assert isinstance(details, list)
    assert details[0]["reason"] == "VALIDATION_FAILED"
    assert details[0]["metadata"] == {"field": "stop_los"}


def test_a_body_field_rule_checks_that_field_s_message(envoy: int) -> None:
    assert send(envoy, '{"price_level": "1"}', path=PUT_LEG).status == 200
    assert send(envoy, '{"account_id": "a"}', path=PUT_LEG).fields() == ["account_id"]


def test_escaped_names_are_read_as_json_reads_them(envoy: int) -> None:
    assert send(envoy, '{"\\u0061ccount_id": "a", "leg\\u0073": []}').status == 200
    assert send(envoy, '{"acc\\u00f6unt": 1}').status == 400


def test_what_the_walk_cannot_judge_is_left_to_the_transcoder(envoy: int) -> None:
    # Malformed JSON, an empty body, a method without a body rule, a gRPC call: passed on
    # (the transcoder answers malformed JSON; gRPC has no JSON).
    assert send(envoy, '{"account_id": ').status == 200
    assert send(envoy, "").status == 200
    assert send(envoy, '{"x": 1}', path="/demo.v1.DemoService/Other").status == 200
    grpc_call = send(envoy, '{"x": 1}', headers={"content-type": "application/grpc"})
    assert grpc_call.status == 200


def test_hostile_bodies_get_a_bounded_valid_answer(envoy: int) -> None:
    deep = '{"legs": [' * 40 + "]}" * 40
    odd_name = '{"a\\"b\\u0001' + "x" * 1000 + '": 1}'

    too_deep = send(envoy, deep)
    odd = send(envoy, odd_name)

    assert too_deep.status == 400
    assert "too deeply" in str(too_deep.json()["message"])
    assert odd.status == 400
    (field,) = odd.fields()  # valid JSON, whatever the name held
    assert field.startswith('a"b?x')
    assert len(field) < 200


def test_a_flood_of_unknown_fields_gets_a_short_answer(envoy: int) -> None:
    flood = json.dumps({f"k{n}": n for n in range(50_000)})

    answer = send(envoy, flood)

    assert answer.status == 400
    assert answer.fields() == [f"k{n}" for n in range(20)]


# ---- the intake -----------------------------------------------------------------------------


def test_every_options_request_that_reaches_the_intake_is_refused(envoy: int) -> None:
    answer = send(envoy, None, method="OPTIONS", headers={"origin": "https://evil.example"})

    assert answer.status == 403
    details = answer.json()["details"]
    assert isinstance(details, list)
    assert details[0]["reason"] == "PERMISSION_DENIED"
    assert details[0]["metadata"] == {"origin": "https://evil.example"}


def test_a_long_path_is_414_and_large_headers_431_for_any_protocol(envoy: int) -> None:
    long_path = send(envoy, "{}", path="/" + "a" * 300)
    large = send(envoy, "{}", headers={"x-padding": "p" * 3000})
    grpc_large = send(
        envoy, "{}", headers={"x-padding": "p" * 3000, "content-type": "application/grpc"}
    )
    fits = send(envoy, "{}", path="/" + "a" * 200, headers={"x-padding": "p" * 1000})

    assert (long_path.status, large.status) == (414, 431)
    # A gRPC call's local reply is trailers-only (HTTP 200): the refusal is its grpc-status
    # (here Envoy's default for 431; the edge's local replies make it RESOURCE_EXHAUSTED).
    assert (grpc_large.status, grpc_large.grpc_status) == (200, "2")
    assert fits.status == 200
