"""What partners' own tools need from proto/: sources that protobufjs parses, and the edge's
reflection catalogue matching the contracts (ADR 0003)."""

from __future__ import annotations

import re

from google.protobuf import descriptor_pb2

from services.platform.reflection import is_internal
from services.platform.reflection import public_services

from .conftest import REPO
from .conftest import our_files

# An extension name used as a key inside a message literal, e.g. `string: {[pkg.rule]: true}`.
# protoc and buf accept it; protobufjs (Node's @grpc/proto-loader) cannot parse it.
_EXTENSION_KEY = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\]\s*:")


def _code(line: str) -> str:
    return line.split("//", 1)[0]


def test_no_message_literal_names_an_extension() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "proto").rglob("*.proto"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if _EXTENSION_KEY.search(_code(line))
    ]

    assert found == [], "write `(buf.validate.field).string.(tradingmesh.common.v1.x) = true`"


def test_the_check_finds_the_form_protobufjs_cannot_parse() -> None:
    assert _EXTENSION_KEY.search("    string: {[tradingmesh.common.v1.symbol]: true}")
    assert not _EXTENSION_KEY.search(
        "  string s = 1 [(buf.validate.field).string.(tradingmesh.common.v1.symbol) = true];"
    )
    assert not _EXTENSION_KEY.search('    in: ["USD", "EUR"]')


def test_reflection_at_the_edge_lists_every_service_of_proto_that_is_not_internal(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    in_proto = {
        f"{file.package}.{service.name}"
        for file in our_files(image)
        for service in file.service
        if not is_internal(service.name)
    }

    assert set(public_services()) == in_proto
