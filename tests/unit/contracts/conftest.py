"""Fixtures for contract tests: the buf-built image of the whole workspace, and helpers over it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[3]


def buf() -> str:
    path = shutil.which("buf", path=str(REPO / ".venv" / "bin")) or shutil.which("buf")
    if path is None:
        pytest.fail("buf is not installed: run scripts/bootstrap")
    return path


@pytest.fixture(scope="session")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`buf build` of the workspace: a FileDescriptorSet with imports, as Envoy loads it."""
    out = tmp_path_factory.mktemp("buf") / "image.binpb"
    subprocess.run(
        [buf(), "build", "--as-file-descriptor-set", "-o", str(out)], cwd=REPO, check=True
    )
    return out


@pytest.fixture(scope="session")
def image(image_path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(image_path.read_bytes())


def our_files(image: descriptor_pb2.FileDescriptorSet) -> list[descriptor_pb2.FileDescriptorProto]:
    return [f for f in image.file if f.name.startswith("tradingmesh/")]


def walk_messages(
    messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    """(full name, message) for every message, nested ones included."""
    for message in messages:
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from walk_messages(message.nested_type, name)
