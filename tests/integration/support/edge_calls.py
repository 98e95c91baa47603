"""Calls through the edge over gRPC, gRPC-Web and REST, and the errors they answer: the shared
calling code of the edge error and web edge tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import json_format
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from tests.integration.support.edge import Edge

LOGIN = "/tradingmesh.account.v1.AuthService/Login"


@dataclass(frozen=True)
class Trader:
    token: str
    account_id: str


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def status_json(self) -> status_pb2.Status:
        """The body as a google.rpc.Status (fails the test if it is not one)."""
        assert self.headers.get("content-type") == "application/json", (self.status, self.body)
        return json_format.Parse(self.body, status_pb2.Status())


def call(
    edge: Edge,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> Answer:
    connection = edge.https(source)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)


def rest(
    edge: Edge, method: str, path: str, trader: Trader | None, body: object | None = None
) -> Answer:
    headers = {"content-type": "application/json"}
    if trader is not None:
        headers["authorization"] = f"Bearer {trader.token}"
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    return call(edge, method, path, data, headers)


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    infos = [error_details_pb2.ErrorInfo() for _ in status.details]
    found = [info for info, any_ in zip(infos, status.details, strict=True) if any_.Unpack(info)]
    assert len(found) == 1, status
    assert found[0].domain == "tradingmesh"
    return found[0]


def preflight(edge: Edge, path: str, origin: str, source: str = "127.0.0.1") -> Answer:
    return call(
        edge,
        "OPTIONS",
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
        source=source,
    )
