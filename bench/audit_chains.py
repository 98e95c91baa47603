"""After an orders run: the audit chains of the accounts that traded still verify (issue 14:
"the audit chain still verifies after a full-speed run"). Reads `oms.audit_records` as the
stack's superuser over its PostgreSQL socket and recomputes each chain with the OMS's own
`verify_records` (the same check as `python -m services.oms.audit verify`), and compares the
chain's end with the head on `oms.accounts`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from services.oms.audit import COLUMNS
from services.oms.audit import AuditRecord
from services.oms.audit import verify_records
from stack.paths import StackPaths
from stack.ports import Ports
from stack.state import StackState

__all__ = ["ChainsChecked", "verify_chains"]


@dataclass
class ChainsChecked:
    accounts: int = 0
    records: int = 0
    broken: dict[str, str] = field(default_factory=dict)  # account id -> what is wrong

    def line(self) -> str:
        verdict = "all intact" if not self.broken else f"BROKEN: {self.broken}"
        return (
            f"audit chains of the {self.accounts} accounts that traded: {verdict}"
            f" ({self.records:,} records recomputed)"
        )


def verify_chains(state: StackState, account_ids: Iterable[str]) -> ChainsChecked:
    checked = ChainsChecked()
    with psycopg.connect(
        host=str(StackPaths(state.name, Path(state.state_dir)).postgres_data),
        port=Ports(state.base_port).postgres,
        user="postgres",
        dbname="tradingmesh",
        connect_timeout=5,
        autocommit=True,
        application_name="tradingmesh-bench",
    ) as connection:
        for account_id in sorted(set(account_ids)):
            rows: list[dict[str, Any]] = (
                connection.cursor(row_factory=dict_row)
                .execute(
                    f"SELECT {COLUMNS} FROM oms.audit_records WHERE account_id = %s"
                    " ORDER BY sequence",
                    (account_id,),
                )
                .fetchall()
            )
            head = connection.execute(
                "SELECT audit_sequence, audit_hash FROM oms.accounts WHERE account_id = %s",
                (account_id,),
            ).fetchone()
            verdict = verify_records(AuditRecord.from_row(row) for row in rows)
            checked.accounts += 1
            checked.records += len(rows)
            if not verdict.intact:
                checked.broken[account_id] = verdict.problem
            elif head != (len(rows), verdict.end_hash):
                checked.broken[account_id] = f"the head on oms.accounts is {head}"
    return checked
