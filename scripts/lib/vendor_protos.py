"""Vendor the third-party .proto files our contracts import, from installed PyPI packages.

`google/api/{annotations,http,httpbody}.proto` ship as source in `googleapis-common-protos`; we
copy them, and `google/rpc/{status,error_details}.proto` too: no contract imports them, but every
error's details are these messages (ADR 0002), and the TypeScript SDK generates them to decode
errors (the Python SDK takes them from the same package at run time).

`buf/validate/validate.proto` ships as source in no registry package. The `protovalidate` wheel
(the validator our servers run) embeds its complete FileDescriptorProto, so we render that
descriptor back to .proto text: same package, names, numbers, types and options (comments are
not part of a descriptor). `tests/unit/contracts/test_vendored_protos.py` compiles the rendered
file with buf and checks it equals the wheel's descriptor, so the copy cannot drift silently.

Usage: python scripts/lib/vendor_protos.py OUT_DIR
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_encoding
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

GOOGLE_API_FILES = (  # all from googleapis-common-protos
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
)
VALIDATE_FILE = "buf/validate/validate.proto"

_SCALAR_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}
_MAX_FIELD_NUMBER = 536_870_911


def protovalidate_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of buf/validate/validate.proto inside the protovalidate wheel."""
    spec = importlib.util.find_spec("protovalidate")
    if spec is None or spec.origin is None:
        raise SystemExit("protovalidate is not installed (scripts/bootstrap installs it)")
    gen = Path(spec.origin).parent / "_gen" / "buf" / "validate" / "validate_pb.py"
    tree = ast.parse(gen.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            fdp = descriptor_pb2.FileDescriptorProto.FromString(node.value)
            if fdp.name == VALIDATE_FILE:
                return fdp
    raise SystemExit(f"no serialized {VALIDATE_FILE} found in {gen}")


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Renderer:
    """Renders one FileDescriptorProto (proto2/proto3) as .proto source."""

    def __init__(self, fdp: descriptor_pb2.FileDescriptorProto) -> None:
        self.fdp = fdp
        # A private pool that knows the file, so custom options (extensions defined in the file
        # itself) can be decoded and printed by name.
        self.pool = descriptor_pool.DescriptorPool()
        for dep in (descriptor_pb2.DESCRIPTOR, *self._wkt_files(fdp)):
            dep_proto = descriptor_pb2.FileDescriptorProto()
            dep.CopyToProto(dep_proto)
            self.pool.Add(dep_proto)
        self.pool.Add(fdp)
        self.lines: list[str] = []

    @staticmethod
    def _wkt_files(fdp: descriptor_pb2.FileDescriptorProto) -> list:  # type: ignore[type-arg]
        from google.protobuf import duration_pb2
        from google.protobuf import field_mask_pb2
        from google.protobuf import timestamp_pb2

        known = {
            m.DESCRIPTOR.name: m.DESCRIPTOR for m in (duration_pb2, field_mask_pb2, timestamp_pb2)
        }
        return [known[d] for d in fdp.dependency if d in known]

    def _decode_options(self, options: Message) -> Message:
        cls = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName(options.DESCRIPTOR.full_name)
        )
        return cls.FromString(options.SerializeToString())

    def _value(self, field: FieldDescriptor, value: object) -> str:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            body = text_format.MessageToString(value, as_one_line=True, as_utf8=True)  # type: ignore[arg-type]
            return "{" + body + "}"
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            return field.enum_type.values_by_number[value].name  # type: ignore[index]
        if field.type == FieldDescriptor.TYPE_BOOL:
            return "true" if value else "false"
        if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            raw = value if isinstance(value, bytes) else str(value).encode()
            return '"' + text_encoding.CEscape(raw, as_utf8=True) + '"'
        return str(value)

    def _option_items(self, options: Message) -> list[str]:
        items: list[str] = []
        for field, value in self._decode_options(options).ListFields():
            name = f"({field.full_name})" if field.is_extension else field.name
            values = value if field.is_repeated else [value]
            items.extend(f"{name} = {self._value(field, v)}" for v in values)
        return items

    def _emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text if text else "")

    def _type_name(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_ENUM):
            return field.type_name  # fully qualified with a leading dot: always unambiguous
        return _SCALAR_NAMES[field.type]

    def _field(
        self, depth: int, field: descriptor_pb2.FieldDescriptorProto, in_oneof: bool
    ) -> None:
        label = ""
        if not in_oneof:
            if field.label == FieldDescriptor.LABEL_REPEATED:
                label = "repeated "
            elif field.label == FieldDescriptor.LABEL_REQUIRED:
                label = "required "
            elif self.fdp.syntax != "proto3" or field.proto3_optional:
                label = "optional "
        opts = self._option_items(field.options) if field.HasField("options") else []
        if field.HasField("default_value"):
            opts.insert(0, f"default = {field.default_value}")
        if field.HasField("json_name") and field.json_name != _json_name(field.name):
            opts.insert(0, f'json_name = "{field.json_name}"')
        suffix = f" [{', '.join(opts)}]" if opts else ""
        self._emit(depth, f"{label}{self._type_name(field)} {field.name} = {field.number}{suffix};")

    @staticmethod
    def _range(start: int, end_exclusive: int) -> str:
        end = end_exclusive - 1
        if end >= _MAX_FIELD_NUMBER:
            return f"{start} to max"
        return str(start) if start == end else f"{start} to {end}"

    def _reserved(self, depth: int, ranges: list, names: list[str], inclusive_end: bool) -> None:  # type: ignore[type-arg]
        for r in ranges:
            end = r.end + 1 if inclusive_end else r.end
            self._emit(depth, f"reserved {self._range(r.start, end)};")
        for name in names:
            self._emit(depth, f'reserved "{name}";')

    def _enum(self, depth: int, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self._emit(depth, f"enum {enum.name} {{")
        for item in self._option_items(enum.options) if enum.HasField("options") else []:
            self._emit(depth + 1, f"option {item};")
        for value in enum.value:
            opts = self._option_items(value.options) if value.HasField("options") else []
            suffix = f" [{', '.join(opts)}]" if opts else ""
            self._emit(depth + 1, f"{value.name} = {value.number}{suffix};")
        # Enum reserved ranges are inclusive at both ends in descriptors.
        self._reserved(depth + 1, list(enum.reserved_range), list(enum.reserved_name), True)
        self._emit(depth, "}")

    def _message(self, depth: int, msg: descriptor_pb2.DescriptorProto) -> None:
        self._emit(depth, f"message {msg.name} {{")
        for item in self._option_items(msg.options) if msg.HasField("options") else []:
            self._emit(depth + 1, f"option {item};")
        for nested_enum in msg.enum_type:
            self._enum(depth + 1, nested_enum)
        for nested in msg.nested_type:
            self._message(depth + 1, nested)
        printed_oneofs: set[int] = set()
        for field in msg.field:
            if field.HasField("oneof_index") and not field.proto3_optional:
                index = field.oneof_index
                if index in printed_oneofs:
                    continue
                printed_oneofs.add(index)
                oneof = msg.oneof_decl[index]
                self._emit(depth + 1, f"oneof {oneof.name} {{")
                for item in self._option_items(oneof.options) if oneof.HasField("options") else []:
                    self._emit(depth + 2, f"option {item};")
                for member in msg.field:
                    if member.HasField("oneof_index") and member.oneof_index == index:
                        self._field(depth + 2, member, in_oneof=True)
                self._emit(depth + 1, "}")
            else:
                self._field(depth + 1, field, in_oneof=False)
        for ext_range in msg.extension_range:
            self._emit(depth + 1, f"extensions {self._range(ext_range.start, ext_range.end)};")
        self._reserved(depth + 1, list(msg.reserved_range), list(msg.reserved_name), False)
        self._extensions(depth + 1, list(msg.extension))
        self._emit(depth, "}")

    def _extensions(
        self, depth: int, extensions: list[descriptor_pb2.FieldDescriptorProto]
    ) -> None:
        extendees: dict[str, list[descriptor_pb2.FieldDescriptorProto]] = {}
        for ext in extensions:
            extendees.setdefault(ext.extendee, []).append(ext)
        for extendee, fields in extendees.items():
            self._emit(depth, f"extend {extendee} {{")
            for field in fields:
                self._field(depth + 1, field, in_oneof=False)
            self._emit(depth, "}")

    def render(self, header: str) -> str:
        fdp = self.fdp
        for line in header.splitlines():
            self._emit(0, f"// {line}".rstrip())
        self._emit(0, "")
        self._emit(0, f'syntax = "{fdp.syntax or "proto2"}";')
        self._emit(0, "")
        self._emit(0, f"package {fdp.package};")
        self._emit(0, "")
        for dep in fdp.dependency:
            self._emit(0, f'import "{dep}";')
        self._emit(0, "")
        for item in self._option_items(fdp.options) if fdp.HasField("options") else []:
            self._emit(0, f"option {item};")
        self._emit(0, "")
        self._extensions(0, list(fdp.extension))
        for enum in fdp.enum_type:
            self._emit(0, "")
            self._enum(0, enum)
        for msg in fdp.message_type:
            self._emit(0, "")
            self._message(0, msg)
        return "\n".join(self.lines) + "\n"


def render_validate_proto() -> str:
    from importlib.metadata import version

    header = (
        f"Rendered by scripts/lib/vendor_protos.py from the FileDescriptorProto embedded in the\n"
        f"protovalidate {version('protovalidate')} wheel. Do not edit; run scripts/generate.\n"
        "Copyright 2023-2026 Buf Technologies, Inc. Apache License, Version 2.0.\n"
        "Comments are not part of a descriptor; see the protovalidate documentation for each rule."
    )
    return _Renderer(protovalidate_descriptor()).render(header)


def google_api_sources() -> dict[str, str]:
    spec = importlib.util.find_spec("google.api")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "googleapis-common-protos is not installed (scripts/bootstrap installs it)"
        )
    root = Path(next(iter(spec.submodule_search_locations))).parent.parent
    return {name: (root / name).read_text() for name in GOOGLE_API_FILES}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    files = {**google_api_sources(), VALIDATE_FILE: render_validate_proto()}
    for name, text in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1])
