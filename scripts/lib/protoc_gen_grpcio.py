"""A local buf plugin that emits `*_pb2_grpc.py` with grpcio-tools' own generator.

grpcio-tools ships its gRPC Python generator inside its bundled protoc, not as a
`protoc-gen-*` executable, so buf cannot call it directly. This plugin receives buf's
CodeGeneratorRequest, hands the already-compiled descriptors to that protoc
(`--descriptor_set_in`, nothing is re-parsed) and returns the files it wrote.

buf.gen.yaml: `local: [python, scripts/lib/protoc_gen_grpcio.py]` with `strategy: all`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp) / "descriptors.binpb"
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = Path(tmp) / "out"
        out.mkdir()
        # Only files that define services get a _pb2_grpc module.
        with_services = {f.name for f in request.proto_file if f.service}
        targets = [name for name in request.file_to_generate if name in with_services]
        if not targets:
            return response
        args = [
            "protoc",
            f"--descriptor_set_in={descriptors}",
            f"--grpc_python_out={out}",
            *targets,
        ]
        if protoc.main(args) != 0:
            response.error = f"grpc_tools.protoc failed: {' '.join(args)}"
            return response
        for path in sorted(out.rglob("*.py")):
            response.file.add(name=str(path.relative_to(out)), content=path.read_text())
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
