"""Strict REST bodies: which JSON fields each transcoded method accepts (issue 12).

Envoy's transcoder drops a JSON field that the request message does not define, so the edge runs
envoy/rest_json.lua around it: before the transcoder it keeps the JSON body, after it (when the
gRPC method is known) it walks the body against the method's request message and refuses an
unknown field with 400. This module reads, from the descriptor set the transcoder loads, what
each method's body is and the field names of every message a body can reach, and renders the
script's prelude: the Lua tables METHODS and MESSAGES and the JSON of its answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from stack.components.edge_errors import origin_refused_template
from stack.components.edge_errors import too_deep_status
from stack.components.edge_errors import unknown_field_templates

_F = descriptor_pb2.FieldDescriptorProto

# Their JSON forms are not objects of their fields (a Timestamp is a string, a Struct any
# object, an Any names its type): the transcoder checks them, the walk does not look inside.
UNCHECKED_TYPES = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
        # A raw body (the webhooks): the transcoder passes the bytes on as they came.
        "google.api.HttpBody",
    }
)


@dataclass(frozen=True)
class MapOf:
    """A JSON object with any keys, each value a `Spec` (a protobuf map field)."""

    values: Spec


# What a JSON value must be: None, anything (the transcoder checks it); a message's full name,
# an object with only that message's fields (or an array of such objects); MapOf, a map.
Spec = str | MapOf | None


@dataclass(frozen=True)
class BodySchema:
    """Per gRPC path (/pkg.Service/Method), the spec of its JSON body; per message, the spec of
    each JSON key it accepts (the transcoder accepts a field's proto name and its JSON name)."""

    methods: Mapping[str, Spec]
    messages: Mapping[str, Mapping[str, Spec]]


def body_schema(files: descriptor_pb2.FileDescriptorSet, services: Iterable[str]) -> BodySchema:
    """The body schema of every method of `services` (full names) whose HTTP rule has a body."""
    messages = _messages(files)
    wanted = set(services)
    methods: dict[str, Spec] = {}
    for file in files.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}"
            if full_name not in wanted:
                continue
            for method in service.method:
                spec = _body_spec(method, messages)
                if spec is not None:
                    methods[f"/{full_name}/{method.name}"] = spec
    return BodySchema(methods, _reachable(methods.values(), messages))


def _messages(files: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def add(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}" if prefix else message.name
        found[name] = message
        for nested in message.nested_type:
            add(name, nested)

    for file in files.file:
        for message in file.message_type:
            add(file.package, message)
    return found


def _body_spec(
    method: descriptor_pb2.MethodDescriptorProto,
    messages: Mapping[str, descriptor_pb2.DescriptorProto],
) -> Spec:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    rule = method.options.Extensions[annotations_pb2.http]
    bodies = {b.body for b in [rule, *rule.additional_bindings] if b.body}
    if len(bodies) != 1:
        # No body, or bindings with different bodies: the check cannot tell which one came.
        return None
    (body,) = bodies
    request = method.input_type.lstrip(".")
    if body == "*":
        return _message_spec(request)
    field = next((f for f in messages[request].field if f.name == body), None)
    return None if field is None else _field_spec(field, messages)


def _message_spec(name: str) -> Spec:
    return None if name in UNCHECKED_TYPES else name


def _field_spec(
    field: descriptor_pb2.FieldDescriptorProto,
    messages: Mapping[str, descriptor_pb2.DescriptorProto],
) -> Spec:
    if field.type != _F.TYPE_MESSAGE:
        return None  # scalars and enums: the transcoder checks the value
    name = field.type_name.lstrip(".")
    entry = messages[name]
    if entry.options.map_entry:
        (value,) = (f for f in entry.field if f.name == "value")
        return MapOf(_field_spec(value, messages))
    return _message_spec(name)


def _reachable(
    roots: Iterable[Spec], messages: Mapping[str, descriptor_pb2.DescriptorProto]
) -> dict[str, dict[str, Spec]]:
    """The accepted keys of every message that a body of `roots` can contain."""
    found: dict[str, dict[str, Spec]] = {}
    pending = [*roots]
    while pending:
        spec = pending.pop()
        if isinstance(spec, MapOf):
            pending.append(spec.values)
            continue
        if spec is None or spec in found:
            continue
        keys: dict[str, Spec] = {}
        for field in messages[spec].field:
            field_spec = _field_spec(field, messages)
            keys[field.name] = field_spec
            keys[field.json_name or _json_name(field.name)] = field_spec
            pending.append(field_spec)
        found[spec] = keys
    return found


def _json_name(name: str) -> str:
    """protoc's default JSON name (lowerCamelCase), for a descriptor that does not carry one."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# ---- the script ------------------------------------------------------------------------------


def lua_literal(value: object) -> str:
    """A Lua expression of `value`: strings, integers, booleans, None (false), MapOf ({map = ...}),
    mappings (tables with string keys, sorted so the rendering is stable)."""
    if value is None or value is False:
        return "false"
    if value is True:
        return "true"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"not a printable ASCII string: {value!r}")
        # A JSON string of printable ASCII is a Lua string literal too (\" and \\ only).
        return json.dumps(value)
    if isinstance(value, MapOf):
        return f"{{map = {lua_literal(value.values)}}}"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"[{lua_literal(key)}] = {lua_literal(item)}" for key, item in sorted(value.items())
        )
        return f"{{{items}}}"
    raise TypeError(f"no Lua form for {value!r}")


@dataclass(frozen=True)
class RequestLimits:
    """What the intake refuses before anything else: a longer path (414), a larger path and
    headers together (431)."""

    max_path_bytes: int
    max_headers_bytes: int


def render_script(source: str, role: str, schema: BodySchema, limits: RequestLimits) -> str:
    """envoy/rest_json.lua for one of its two filters ("intake" or "check"), with its prelude."""
    if role not in ("intake", "check"):
        raise ValueError(f"unknown role {role!r}")
    status, violation = unknown_field_templates()
    constants: dict[str, object] = {
        "ROLE": role,
        "MAX_PATH_BYTES": limits.max_path_bytes,
        "MAX_HEADERS_BYTES": limits.max_headers_bytes,
        "ORIGIN_REFUSED": origin_refused_template(),
        "UNKNOWN_FIELD_STATUS": status,
        "UNKNOWN_FIELD_VIOLATION": violation,
        "TOO_DEEP_STATUS": too_deep_status(),
    }
    lines = ["-- Rendered by stack/components/edge_bodies.py; do not edit."]
    lines += [f"local {name} = {lua_literal(value)}" for name, value in constants.items()]
    # The tables only the check uses (the intake needs none of them).
    methods = schema.methods if role == "check" else {}
    messages = schema.messages if role == "check" else {}
    lines.append(f"local METHODS = {lua_literal(methods)}")
    lines.append(f"local MESSAGES = {lua_literal(messages)}")
    return "\n".join(lines) + "\n\n" + source


def write_scripts(
    source: Path,
    out_dir: Path,
    descriptor_set: Path,
    services: Iterable[str],
    limits: RequestLimits,
) -> dict[str, Path]:
    """Renders the intake and check scripts into `out_dir`; their paths by role."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    schema = body_schema(files, services)
    text = source.read_text()
    paths = {}
    for role in ("intake", "check"):
        path = out_dir / f"rest_json_{role}.lua"
        path.write_text(render_script(text, role, schema, limits))
        paths[role] = path
    return paths
