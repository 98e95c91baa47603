"""PostgreSQL as the tests watch it: which service's backend waits on a lock."""

from __future__ import annotations

from tests.integration.support.orders import Oms


def blocked_by(oms: Oms, service: str, pid: int) -> bool:
    """Whether a statement of the service waits for a lock the backend `pid` holds."""
    (count,) = oms.rows(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND %s = ANY(pg_blocking_pids(pid))",
        f"tradingmesh-{service}",
        pid,
    )[0]
    return int(count) > 0
