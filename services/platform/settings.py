"""The settings of a service process, read once from `TM_*` environment variables (ADR 0004).

Addresses are settings; credentials are not (they come from Vault), except the Vault login itself.
A missing or malformed variable stops the process with one message that names every bad one.
A service reads its own variables (e.g. `TM_OMS_*`) with the same `EnvReader`, so that theirs
are reported in the same message and the same way (`server.run`: exit code 2).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from typing import TypeVar
from typing import cast
from urllib.parse import urlsplit

from services.platform.secrets import Secret

__all__ = [
    "LOG_LEVELS",
    "Address",
    "EnvReader",
    "Settings",
    "SettingsError",
    "number",
    "whole_number",
]

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")

_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")
_T = TypeVar("_T")


class SettingsError(Exception):
    """One or more variables are missing or malformed; the message lists each of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings: " + "; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Address:
    """A TCP address, host and port, e.g. 127.0.0.1:17120 or [::1]:17120."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, _, port = text.rpartition(":")
        if not _HOST.match(host) or not _is_port(port):
            raise ValueError("must be host:port, e.g. 127.0.0.1:17120")
        return cls(host, int(port))

    @property
    def bare_host(self) -> str:
        """The host without the brackets of an IPv6 literal, as socket APIs want it."""
        return self.host.strip("[]")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything a service reads from its environment. Build it with `from_env`."""

    service: str
    grpc_addr: Address
    metrics_addr: Address
    log_level: str
    vault_addr: str
    vault_token: Secret | None
    vault_role_id: str | None
    vault_secret_id: Secret | None
    database_host: str
    database_port: int
    database_name: str
    database_replica_host: str
    database_replica_port: int
    redis_host: str
    redis_port: int
    nats_url: str
    # TM_INSTANCE: which instance of the service this process is (`oms-2`, ADR 0017), in its
    # client names and per-instance consumers; default the service's name.
    instance: str = ""
    # TM_REPLICAS: how many instances of the service run (default 1). With several, copies
    # kept in memory are read per instance (`inbox.instance_durable`).
    replicas: int = 1
    # TM_TLS_CERT_TTL: the lifetime of the certificate the process issues itself from Vault's
    # PKI engine (ADR 0018), renewed at two thirds of it: "90s", "30m", "24h" (the default).
    tls_cert_ttl: str = "24h"
    # TM_TLS_CA_FILE: the CA (PEM file) that PostgreSQL's, Redis's and NATS's certificates are
    # checked against (ADR 0018, `services.platform.infra_tls`); the stack's `tls/ca.pem`
    # locally. None: the system's trust store.
    tls_ca_file: str | None = None

    @property
    def instance_name(self) -> str:
        return self.instance or self.service

    def durable(self, name: str) -> str:
        """The durable consumer `name` of this instance when copies are read per instance."""
        return f"{name}{self.instance_name.removeprefix(self.service)}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Reads and checks every `TM_*` variable; raises `SettingsError` naming each bad one."""
        read = EnvReader(environ)
        service = read.required("TM_SERVICE", _service_name)
        grpc_addr = read.required("TM_GRPC_ADDR", Address.parse)
        metrics_addr = read.required("TM_METRICS_ADDR", Address.parse)
        log_level = read.optional("TM_LOG_LEVEL", _log_level) or "INFO"
        vault_addr = read.required("TM_VAULT_ADDR", _http_url)
        vault_token, vault_role_id, vault_secret_id = _vault_login(read)
        database_host = read.required("TM_DATABASE_HOST", _host)
        database_port = read.required("TM_DATABASE_PORT", _port)
        database_name = read.required("TM_DATABASE_NAME", _database_name)
        # The replica defaults to the primary: locally there is one PostgreSQL.
        replica_host = read.optional("TM_DATABASE_REPLICA_HOST", _host) or database_host
        replica_port = read.optional("TM_DATABASE_REPLICA_PORT", _port) or database_port
        redis_host = read.required("TM_REDIS_HOST", _host)
        redis_port = read.required("TM_REDIS_PORT", _port)
        nats_url = read.required("TM_NATS_URL", _nats_url)
        instance = read.optional("TM_INSTANCE", _instance_name) or service
        replicas = read.get("TM_REPLICAS", whole_number(1), 1)
        tls_cert_ttl = read.optional("TM_TLS_CERT_TTL", _duration) or "24h"
        tls_ca_file = read.optional("TM_TLS_CA_FILE", _readable_file)
        read.check()
        return cls(
            service=service,
            grpc_addr=grpc_addr,
            metrics_addr=metrics_addr,
            log_level=log_level,
            vault_addr=vault_addr,
            vault_token=vault_token,
            vault_role_id=vault_role_id,
            vault_secret_id=vault_secret_id,
            database_host=database_host,
            database_port=database_port,
            database_name=database_name,
            database_replica_host=replica_host,
            database_replica_port=replica_port,
            redis_host=redis_host,
            redis_port=redis_port,
            nats_url=nats_url,
            instance=instance,
            replicas=replicas,
            tls_cert_ttl=tls_cert_ttl,
            tls_ca_file=tls_ca_file,
        )


def _duration(text: str) -> str:
    """A Vault duration: a whole number of seconds, minutes or hours ("90s", "30m", "24h")."""
    if len(text) < 2 or text[-1] not in "smh" or not text[:-1].isdigit() or int(text[:-1]) < 1:
        raise ValueError('must be a whole number followed by s, m or h, e.g. "24h"')
    return text


def _readable_file(text: str) -> str:
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise ValueError("must be a readable file")
    return text


_INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")


def _instance_name(text: str) -> str:
    if _INSTANCE_NAME.match(text):
        return text
    raise ValueError("must be a name such as oms or oms-2")


class EnvReader:
    """Reads variables and collects every problem, so that one run reports all of them; `check`
    then raises one `SettingsError` that names each. A blank variable counts as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def present(self, name: str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def required(self, name: str, parse: Callable[[str], _T]) -> _T:
        """The parsed value; when missing or malformed, a problem and a placeholder.

        The placeholder is never seen: `check` raises before the caller builds its settings.
        """
        value = self.optional(name, parse)
        if value is None and not self.present(name):
            self.problems.append(f"{name} is missing")
        return cast("_T", value)

    def optional(self, name: str, parse: Callable[[str], _T]) -> _T | None:
        if not self.present(name):
            return None
        text = self._environ[name].strip()
        try:
            return parse(text)
        except _UnshownValueError as error:
            self.problems.append(f"{name} {error}")
            return None
        except ValueError as error:
            self.problems.append(f"{name} {error}, got {text!r}")
            return None

    def get(self, name: str, parse: Callable[[str], _T], default: _T) -> _T:
        """The parsed value, or `default` when the variable is unset."""
        value = self.optional(name, parse)
        return default if value is None else value

    def merged(self, read: Callable[[Mapping[str, str]], _T]) -> _T:
        """What another reader of these variables returns (e.g. a part's `from_env`); the
        problems of the `SettingsError` it raises join these, and a placeholder is returned."""
        try:
            return read(self._environ)
        except SettingsError as error:
            self.problems.extend(error.problems)
            return cast("_T", None)

    def secret(self, name: str) -> Secret | None:
        # Never parsed or echoed: a credential is only ever present or absent.
        return Secret(self._environ[name].strip()) if self.present(name) else None

    def check(self) -> None:
        """Raises `SettingsError` naming every problem found so far, if there is one."""
        if self.problems:
            raise SettingsError(self.problems)


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A parser for `EnvReader`: a whole number from `low` to `high` (None: no bound)."""
    if low is not None and high is not None:
        rule = f"a whole number from {low} to {high}"
    elif low is not None:
        rule = f"a whole number of at least {low}"
    else:
        rule = "a whole number"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be {rule}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"must be {rule}")
        return value

    return parse


def number(low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """A parser for `EnvReader`: a number from `low` (`above`: greater than `low`) to `high`."""
    rule = f"above {low} and at most {high}" if above else f"from {low} to {high}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (low < value <= high if above else low <= value <= high):
            raise ValueError(f"must be a number {rule}")
        return value

    return parse


class _UnshownValueError(ValueError):
    """A malformed value that must not be echoed, because it may hold a credential."""


def _vault_login(reader: EnvReader) -> tuple[Secret | None, str | None, Secret | None]:
    """The token (dev), or the AppRole role id and secret id (Kubernetes): exactly one of them."""
    token = reader.secret("TM_VAULT_TOKEN")
    role_id = reader.optional("TM_VAULT_ROLE_ID", str)
    secret_id = reader.secret("TM_VAULT_SECRET_ID")
    approle = role_id is not None or secret_id is not None
    if token is not None and approle:
        reader.problems.append(
            "set TM_VAULT_TOKEN or TM_VAULT_ROLE_ID + TM_VAULT_SECRET_ID, not both"
        )
    elif token is None and not approle:
        reader.problems.append(
            "TM_VAULT_TOKEN (or TM_VAULT_ROLE_ID + TM_VAULT_SECRET_ID) is missing"
        )
    elif token is None and role_id is None:
        reader.problems.append("TM_VAULT_ROLE_ID is missing (TM_VAULT_SECRET_ID is set)")
    elif token is None and secret_id is None:
        reader.problems.append("TM_VAULT_SECRET_ID is missing (TM_VAULT_ROLE_ID is set)")
    return token, role_id, secret_id


def _service_name(text: str) -> str:
    if not _SERVICE_NAME.match(text):
        raise ValueError("must be a service name of a-z, 0-9 and _, e.g. oms")
    return text


def _host(text: str) -> str:
    if not _HOST.match(text):
        raise ValueError("must be a host name or IP address, e.g. 127.0.0.1")
    return text


def _port(text: str) -> int:
    if not _is_port(text):
        raise ValueError("must be a port number from 1 to 65535")
    return int(text)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def _database_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", text):
        raise ValueError("must be a PostgreSQL database name, e.g. tradingmesh")
    return text


def _http_url(text: str) -> str:
    return _url(text, ("http", "https"), "http://127.0.0.1:17004")


def _nats_url(text: str) -> str:
    return _url(text, ("nats", "tls"), "nats://127.0.0.1:17002")


def _url(text: str, schemes: tuple[str, ...], example: str) -> str:
    if "@" in text:
        # Credentials belong in Vault, and this URL gets logged; the value is not echoed.
        raise _UnshownValueError("must not hold credentials (they come from Vault)")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  # raises ValueError for a malformed port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a {' or '.join(schemes)} URL, e.g. {example}")
    return text.rstrip("/")
