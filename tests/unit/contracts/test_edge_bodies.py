"""The strict-body schema of the edge (stack/components/edge_bodies.py): what each transcoded
method's JSON body may contain, read from the descriptor set, and its rendering as Lua."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.api import http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf import timestamp_pb2

from stack.components.edge_bodies import BodySchema
from stack.components.edge_bodies import MapOf
from stack.components.edge_bodies import RequestLimits
from stack.components.edge_bodies import body_schema
from stack.components.edge_bodies import lua_literal
from stack.components.edge_bodies import render_script
from stack.contracts import edge_services

from .conftest import REPO

_F = descriptor_pb2.FieldDescriptorProto
SCRIPT = REPO / "envoy" / "rest_json.lua"


def _field(
    name: str,
    number: int,
    kind: descriptor_pb2.FieldDescriptorProto.Type.ValueType,
    type_name: str = "",
    repeated: bool = False,
) -> descriptor_pb2.FieldDescriptorProto:
    label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    return _F(name=name, number=number, type=kind, type_name=type_name, label=label)


def _method(
    name: str, request: str, rule: http_pb2.HttpRule
) -> descriptor_pb2.MethodDescriptorProto:
    method = descriptor_pb2.MethodDescriptorProto(
        name=name, input_type=request, output_type=".demo.v1.Empty"
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    return method


def _demo_files() -> descriptor_pb2.FileDescriptorSet:
    """A service with every kind of field a body can hold (built here, so each case is sure to
    exist whatever the real contracts use)."""
    demo = descriptor_pb2.FileDescriptorProto(name="demo/v1/demo.proto", package="demo.v1")
    leg = demo.message_type.add(name="Leg")
    leg.field.append(_field("price_level", 1, _F.TYPE_STRING))
    request = demo.message_type.add(name="PutRequest")
    request.field.extend(
        [
            _field("account_id", 1, _F.TYPE_STRING),
            _field("legs", 2, _F.TYPE_MESSAGE, ".demo.v1.Leg", repeated=True),
            _field("by_name", 3, _F.TYPE_MESSAGE, ".demo.v1.PutRequest.ByNameEntry", True),
            _field("tags", 4, _F.TYPE_MESSAGE, ".demo.v1.PutRequest.TagsEntry", True),
            _field("at", 5, _F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            _field("first_leg", 6, _F.TYPE_MESSAGE, ".demo.v1.Leg"),
        ]
    )
    for entry, value in (("ByNameEntry", ".demo.v1.Leg"), ("TagsEntry", "")):
        nested = request.nested_type.add(name=entry)
        nested.options.map_entry = True
        nested.field.append(_field("key", 1, _F.TYPE_STRING))
        kind = _F.TYPE_MESSAGE if value else _F.TYPE_STRING
        nested.field.append(_field("value", 2, kind, value))
    demo.message_type.add(name="Empty")
    service = demo.service.add(name="DemoService")
    service.method.extend(
        [
            _method("Put", ".demo.v1.PutRequest", http_pb2.HttpRule(post="/v1/put", body="*")),
            _method(
                "PutLeg", ".demo.v1.PutRequest", http_pb2.HttpRule(put="/v1/leg", body="first_leg")
            ),
            _method("Get", ".demo.v1.PutRequest", http_pb2.HttpRule(get="/v1/put/{account_id}")),
        ]
    )
    internal = demo.service.add(name="HiddenService")
    internal.method.append(
        _method("Put", ".demo.v1.PutRequest", http_pb2.HttpRule(post="/v1/hidden", body="*"))
    )
    files = descriptor_pb2.FileDescriptorSet()
    timestamp_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    files.file.append(demo)
    return files


def test_each_body_is_the_request_or_its_body_field_and_a_get_has_none() -> None:
    schema = body_schema(_demo_files(), ["demo.v1.DemoService"])

    assert schema.methods == {
        "/demo.v1.DemoService/Put": "demo.v1.PutRequest",
        "/demo.v1.DemoService/PutLeg": "demo.v1.Leg",
    }


def test_fields_are_accepted_by_proto_and_json_name_with_what_their_value_must_be() -> None:
    schema = body_schema(_demo_files(), ["demo.v1.DemoService"])

    request = schema.messages["demo.v1.PutRequest"]
    assert request["account_id"] is None
    assert request["accountId"] is None
    assert request["legs"] == "demo.v1.Leg"  # an array of Leg objects, each checked
    assert request["by_name"] == MapOf("demo.v1.Leg")
    assert request["byName"] == MapOf("demo.v1.Leg")
    assert request["tags"] == MapOf(None)
    assert request["at"] is None  # a Timestamp is a string in JSON: the transcoder checks it
    assert set(schema.messages["demo.v1.Leg"]) == {"price_level", "priceLevel"}
    assert "google.protobuf.Timestamp" not in schema.messages


def test_only_the_services_of_the_edge_are_read() -> None:
    schema = body_schema(_demo_files(), ["demo.v1.DemoService"])

    assert not any("Hidden" in method for method in schema.methods)


def test_the_real_contracts_give_every_rest_body_and_no_raw_one(image_path: Path) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(image_path.read_bytes())
    services = [s.full_name for s in edge_services(image_path)]

    schema = body_schema(files, services)

    assert schema.methods["/tradingmesh.oms.v1.OrderService/PlaceOrder"] == (
        "tradingmesh.oms.v1.PlaceOrderRequest"
    )
    assert schema.methods["/tradingmesh.account.v1.AccountAdminService/UpdateClientGroup"] == (
        "tradingmesh.account.v1.ClientGroup"
    )
    place_order = schema.messages["tradingmesh.oms.v1.PlaceOrderRequest"]
    assert {"stop_loss", "stopLoss", "client_order_id", "clientOrderId"} <= set(place_order)
    assert "stop_los" not in place_order
    # Webhook bodies are raw (google.api.HttpBody), signed as sent: never walked.
    assert not any("WebhookService" in method for method in schema.methods)
    assert not any("Internal" in method for method in schema.methods)


def test_lua_literal_renders_tables_strings_and_refuses_what_lua_would_misread() -> None:
    rendered = lua_literal({"b": MapOf(None), "a": {"x": 'y"z'}, "n": 4096, "t": True})

    assert (
        rendered == '{["a"] = {["x"] = "y\\"z"}, ["b"] = {map = false}, ["n"] = 4096, ["t"] = true}'
    )
    with pytest.raises(ValueError, match="ASCII"):
        lua_literal("caf\u00e9")
    with pytest.raises(ValueError, match="ASCII"):
        lua_literal("line\nbreak")


def test_the_prelude_defines_every_constant_the_script_uses() -> None:
    source = SCRIPT.read_text()
    schema = BodySchema({"/demo.v1.DemoService/Put": "demo.v1.PutRequest"}, {})

    for role in ("intake", "check"):
        prelude = render_script(source, role, schema, RequestLimits(4096, 8192)).split(
            "\n\n" + source
        )[0]
        defined = set(re.findall(r"^local ([A-Z_]+) = ", prelude, re.MULTILINE))
        # Capitalised names that are not table keys ({FIELD = ...}) nor assigned.
        used = set(re.findall(r"\b([A-Z][A-Z_]{2,})\b(?!\s*=[^=])", _code_of(source)))
        local = set(re.findall(r"^local ([A-Z_]+) = ", source, re.MULTILINE))
        assert used - local <= defined, role
        assert f'local ROLE = "{role}"' in prelude
    with pytest.raises(ValueError, match="role"):
        render_script(source, "other", schema, RequestLimits(4096, 8192))


def _code_of(source: str) -> str:
    """The Lua source without comments and string literals (their capitals are not names)."""
    without_comments = re.sub(r"--[^\n]*", "", source)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', without_comments)
