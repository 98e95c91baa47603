"""Where a stack keeps its files: `<repo>/.tradingmesh/<name>/` and what lives inside it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Names become directory names and parts of socket paths (PostgreSQL's unix socket path is limited
# to ~107 bytes), so keep them short and plain.
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class StackNameError(ValueError):
    """The stack name cannot be used as a directory name."""


@dataclass(frozen=True)
class StackPaths:
    """Every file of one stack. Creating them is `ensure()`; nothing here touches a process."""

    name: str
    root: Path

    @classmethod
    def for_name(cls, name: str, repo: Path = REPO) -> StackPaths:
        if not _NAME.match(name):
            raise StackNameError(
                f"stack name {name!r}: use 1-32 lower-case letters, digits and '-', "
                "starting with a letter or digit"
            )
        return cls(name=name, root=repo / ".tradingmesh" / name)

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def fix_logs(self) -> Path:
        """The FIX session logs of every process (services/platform/fix_log.py), one file per
        session, e.g. `FIX.4.4-TRADINGMESH-LP-ALPHA.log` (`TM_FIX_LOG_DIR`)."""
        return self.logs / "fix"

    @property
    def postgres_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def replica_data(self) -> Path:
        """The read replica's data directory (a hot standby of `postgres_data`)."""
        return self.root / "postgres" / "replica"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def nats_dir(self) -> Path:
        return self.root / "nats"

    @property
    def openbao_dir(self) -> Path:
        return self.root / "openbao"

    @property
    def root_token_file(self) -> Path:
        return self.openbao_dir / "root-token"

    @property
    def smtp_dir(self) -> Path:
        """The SMTP sink's Maildir: every message it received (simulators/smtp)."""
        return self.root / "smtp"

    @property
    def envoy_dir(self) -> Path:
        return self.root / "envoy"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    def service_dir(self, service: str) -> Path:
        """A service's own working data (e.g. pricing's FIX session store)."""
        return self.root / "services" / service

    def lp_dir(self, lp: str) -> Path:
        """An LP simulator's working directory (its FIX message store)."""
        return self.root / "lp" / lp

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    def ensure(self, group_id: int | None = None) -> None:
        """Create the state directory (0700) and its private subdirectories.

        `group_id`: when PostgreSQL runs as a separate system user (we are root), that user must be
        able to reach its data directory, so the state directory becomes 0710 with that user's
        group: the group may traverse it, nobody but the owner may list or read it.
        """
        self.root.parent.mkdir(mode=0o711, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        if group_id is None:
            os.chmod(self.root, 0o700)
        else:
            os.chown(self.root, -1, group_id)
            os.chmod(self.root, 0o710)
        for private in (
            self.logs,
            self.fix_logs,
            self.redis_dir,
            self.nats_dir,
            self.openbao_dir,
            self.envoy_dir,
            self.smtp_dir,
            self.tls_dir,
            self.root / "lp",
        ):
            private.mkdir(mode=0o700, exist_ok=True)
        # The postgres parent must be traversable by the database user too (0710 like the root),
        # and so must tls/, where PostgreSQL's certificate and key (its own, 0600) are: the
        # other keys there stay root's alone (ADR 0018).
        pg_parent = self.postgres_data.parent
        pg_parent.mkdir(mode=0o700, exist_ok=True)
        if group_id is not None:
            for shared in (pg_parent, self.tls_dir):
                os.chown(shared, -1, group_id)
                os.chmod(shared, 0o710)
