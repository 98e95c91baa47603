"""`stack.json`: what a stack runs, where, and how to reach it (the shape is in ADR 0004).

{
  "name": "dev", "base_port": 17000, "state_dir": ".../.tradingmesh/dev",
  "components": [{"name", "address", "pid", "pid_start_ticks", "healthy", "log"}, ...],
  "endpoints": {"grpc", "http", "ca_file", "envoy_admin", "web", "prometheus"},
  "vault": {"address", "root_token_file"},
  "demo": {"username", "password", "account_id"} | null,
  "operator": {"username", "password"} | null,
  "replica": {"address", "streaming", "lag_bytes", "replay_lag_seconds"} | null,
  "replicas": 1,
  "updated_at": "<ISO 8601>"
}

The file is written 0600 and atomically (write + rename), so a reader never sees half of it.
`demo.password` and `operator.password` are the only credentials in it: ADR 0004 puts the demo
user's login here so that a developer can sign in, and the broker operator's (staff roles) so
that a newcomer can try the broker views and admin RPCs; every infrastructure secret lives only
in Vault. `replica` is filled in by `status` (live, from the primary's pg_stat_replication).
`replicas` is how many instances of each service the stack runs (`up --replicas`, ADR 0017;
absent from older files: 1); the instances are components `oms`, `oms-2`, ...
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ComponentState:
    name: str
    address: str
    pid: int | None
    # The process start time (clock ticks after boot, /proc/<pid>/stat field 22): a pid alone may
    # have been reused by an unrelated process since we recorded it.
    pid_start_ticks: int | None
    healthy: bool
    log: str


@dataclass(frozen=True)
class Endpoints:
    grpc: str
    http: str
    ca_file: str
    envoy_admin: str
    prometheus: str = ""  # empty in the files of stacks started before Prometheus was added
    # The web terminal, served by Envoy (ADR 0014). Absent from state files written before it:
    # then derived from `http`.
    web: str = ""
    # Whether the edge also takes plaintext (h2c, HTTP/1.1) beside TLS 1.3: the development
    # switch (ADR 0018). Files written before the switch existed: it was always on.
    plaintext: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoints:
        endpoints = cls(**data)
        if endpoints.web:
            return endpoints
        return replace(endpoints, web=web_url(endpoints.http, endpoints.plaintext))


def web_url(http: str, plaintext: bool = True) -> str:
    """The web terminal's URL for the edge's HTTP endpoint `https://host:port`. With the
    plaintext switch on, the same host and port over plain HTTP, since a browser does not trust
    the stack's own CA (a loopback origin is a secure context for the browser all the same);
    without it, `https://` (the browser must be told to trust the CA)."""
    scheme = "http://" if plaintext else "https://"
    return scheme + http.split("://", 1)[-1].rstrip("/") + "/"


@dataclass(frozen=True)
class VaultInfo:
    address: str
    root_token_file: str


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str
    account_id: str


@dataclass(frozen=True)
class OperatorCredentials:
    """The demo broker's operator: a staff user with the admin roles (admin, dealer,
    backoffice)."""

    username: str
    password: str


@dataclass(frozen=True)
class ReplicaState:
    """The read replica as `status` saw it: streaming from the primary, and how far behind."""

    address: str
    streaming: bool
    lag_bytes: int | None
    replay_lag_seconds: float | None


@dataclass(frozen=True)
class StackState:
    name: str
    base_port: int
    state_dir: str
    vault: VaultInfo
    endpoints: Endpoints
    components: tuple[ComponentState, ...] = ()
    demo: DemoCredentials | None = None
    operator: OperatorCredentials | None = None
    replica: ReplicaState | None = None
    replicas: int = 1
    updated_at: str = field(default="")

    def component(self, name: str) -> ComponentState | None:
        return next((c for c in self.components if c.name == name), None)

    def with_component(self, component: ComponentState) -> StackState:
        """This state with `component` added or replacing the one of the same name (order kept)."""
        names = [c.name for c in self.components]
        if component.name in names:
            items = tuple(component if c.name == component.name else c for c in self.components)
        else:
            items = (*self.components, component)
        return replace(self, components=items)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        demo = data.get("demo")
        operator = data.get("operator")
        replica = data.get("replica")
        return cls(
            name=data["name"],
            base_port=int(data["base_port"]),
            state_dir=data["state_dir"],
            vault=VaultInfo(**data["vault"]),
            endpoints=Endpoints.from_json(data["endpoints"]),
            components=tuple(ComponentState(**c) for c in data.get("components", [])),
            demo=DemoCredentials(**demo) if demo else None,
            operator=OperatorCredentials(**operator) if operator else None,
            replica=ReplicaState(**replica) if replica else None,
            replicas=int(data.get("replicas", 1)),
            updated_at=data.get("updated_at", ""),
        )


def load(path: Path) -> StackState | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return StackState.from_json(json.loads(text))


def save(path: Path, state: StackState) -> StackState:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    state = replace(state, updated_at=now)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state.to_json(), out, indent=2)
        out.write("\n")
    os.replace(tmp, path)
    return state
