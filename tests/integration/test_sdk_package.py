"""`pip install ./clients/python` in a fresh venv: importable, typed stubs for every service."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK_SRC = REPO / "clients" / "python" / "src"


def _generated_modules(suffix: str) -> list[str]:
    return sorted(
        ".".join(path.relative_to(SDK_SRC).with_suffix("").parts)
        for path in SDK_SRC.glob(f"tradingmesh/**/*{suffix}.py")
    )


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the SDK (and its typing extra) installed from the folder."""
    env_dir = tmp_path_factory.mktemp("sdk-venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints.txt"),
            f"{REPO / 'clients' / 'python'}[typing]",
        ],
        check=True,
        timeout=600,
    )
    return python


def _mypy(python: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "use_sdk.py"
    snippet.write_text(textwrap.dedent(code))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            str(python),
            "--config-file",
            "/dev/null",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # away from the repo, so only the installed SDK can be found
        timeout=300,
    )


def test_every_generated_module_imports_from_the_installed_package(
    fresh_python: Path, tmp_path: Path
) -> None:
    modules = _generated_modules("_pb2") + _generated_modules("_pb2_grpc")
    assert len(modules) > 4
    code = "import importlib, tradingmesh\n"
    code += "assert 'site-packages' in tradingmesh.__file__, tradingmesh.__file__\n"
    code += f"for name in {modules!r}: importlib.import_module(name)\n"

    result = subprocess.run(
        [str(fresh_python), "-c", code], capture_output=True, text=True, cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr


def test_installed_package_ships_type_stubs_and_the_typed_marker(fresh_python: Path) -> None:
    site = subprocess.run(
        [
            str(fresh_python),
            "-c",
            "import tradingmesh, os; print(os.path.dirname(tradingmesh.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = Path(site)

    assert (package / "py.typed").is_file()
    for module in _generated_modules("_pb2") + _generated_modules("_pb2_grpc"):
        stub = package.parent.joinpath(*module.split(".")).with_suffix(".pyi")
        assert stub.is_file(), stub


def _services() -> list[tuple[str, str]]:
    """(grpc module, service name) for every service in the SDK."""
    found = []
    for module in _generated_modules("_pb2_grpc"):
        path = SDK_SRC.joinpath(*module.split(".")).with_suffix(".py")
        for line in path.read_text().splitlines():
            if line.startswith("class ") and line.rstrip(":").endswith("Stub") and "(" not in line:
                found.append((module, line[len("class ") :].rstrip(":").removesuffix("Stub")))
    return found


def test_stubs_of_every_service_type_check_under_mypy_strict(
    fresh_python: Path, tmp_path: Path
) -> None:
    services = _services()
    assert services, "no services found in the SDK"
    lines = ["import grpc", "import grpc.aio"]
    for index, (module, service) in enumerate(services):
        lines += [
            f"import {module} as m{index}",
            f"def use_{index}(channel: grpc.Channel, aio_channel: grpc.aio.Channel) -> None:",
            f"    sync_stub = m{index}.{service}Stub(channel)",
            # The constructor's overloads give the asyncio stub type for an aio channel.
            f"    async_stub: m{index}.{service}AsyncStub = m{index}.{service}Stub(aio_channel)",
            "    print(sync_stub, async_stub)",
        ]

    result = _mypy(fresh_python, "\n".join(lines) + "\n", tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_wrong_request_type_through_the_installed_stubs(
    fresh_python: Path, tmp_path: Path
) -> None:
    """The typing is real: passing one message where another is expected is an error."""
    module, service = _services()[0]
    path = SDK_SRC.joinpath(*module.split(".")).with_suffix(".pyi")
    rpc = next(
        line.split(":")[0].strip()
        for line in path.read_text().splitlines()
        if "_grpc.UnaryUnaryMultiCallable[" in line
    )
    code = f"""
        import grpc
        from google.protobuf import empty_pb2
        import {module} as m

        def call(channel: grpc.Channel) -> None:
            m.{service}Stub(channel).{rpc}(empty_pb2.Empty())
    """

    result = _mypy(fresh_python, code, tmp_path)

    assert result.returncode == 1
    assert "arg-type" in result.stdout, result.stdout
