"""third_party/proto is a faithful copy of what the installed packages define."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts" / "lib"))
import vendor_protos


def _comparable(fdp: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(fdp)
    copy.ClearField("source_code_info")
    copy.DiscardUnknownFields()
    return copy


def test_rendered_validate_proto_compiles_to_the_protovalidate_wheels_descriptor(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    compiled = next(f for f in image.file if f.name == vendor_protos.VALIDATE_FILE)
    shipped = vendor_protos.protovalidate_descriptor()

    assert _comparable(compiled) == _comparable(shipped)


def test_google_api_protos_are_the_installed_packages_files() -> None:
    spec = importlib.util.find_spec("google.api")
    assert spec is not None
    assert spec.submodule_search_locations
    installed_root = Path(next(iter(spec.submodule_search_locations))).parent.parent

    for name in vendor_protos.GOOGLE_API_FILES:
        assert (REPO / "third_party" / "proto" / name).read_text() == (
            installed_root / name
        ).read_text(), name
