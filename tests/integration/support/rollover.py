"""The broker's day: running a rollover as staff and waiting for it, swap entries and balances."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tests.integration.callers import Who
from tests.integration.support.orders import Oms
from tests.integration.support.waiting import eventually
from tradingmesh.oms.v1 import oms_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2
from tradingmesh.oms.v1 import order_admin_service_pb2_grpc

D = Decimal


def admin(oms: Oms) -> order_admin_service_pb2_grpc.OrderAdminServiceStub:
    return order_admin_service_pb2_grpc.OrderAdminServiceStub(oms.channel)


def as_staff(oms: Oms, role: str) -> tuple[tuple[str, str], ...]:
    return oms.stack.as_(Who(str(uuid.uuid4()), role))


def run_rollover(oms: Oms, trading_date: str) -> oms_pb2.Rollover:
    return (
        admin(oms)
        .RunRollover(
            order_admin_service_pb2.RunRolloverRequest(trading_date=trading_date),
            metadata=as_staff(oms, "admin"),
            timeout=10,
        )
        .rollover
    )


def completed(oms: Oms, trading_date: str) -> oms_pb2.Rollover:
    def probe() -> oms_pb2.Rollover | None:
        rollover = run_rollover(oms, trading_date)
        return rollover if rollover.state == oms_pb2.ROLLOVER_STATE_COMPLETED else None

    return eventually(probe, 60, f"the rollover of {trading_date} completed")


def swap_entries(oms: Oms, account_id: str) -> dict[str, Decimal]:
    """The account's SWAP ledger entries, by the charge they book."""
    rows = oms.rows(
        "SELECT reference_id, amount FROM account.ledger_entries"
        " WHERE account_id = %s AND reason = 'SWAP' AND reference_type = 'swap_charge'",
        account_id,
    )
    assert len(rows) == len({r[0] for r in rows})
    return {str(r[0]): D(r[1]) for r in rows}


def balance(oms: Oms, account_id: str) -> Decimal:
    (row,) = oms.rows("SELECT balance FROM account.balances WHERE account_id = %s", account_id)
    return D(row[0])
