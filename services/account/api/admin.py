"""tradingmesh.account.v1.AccountAdminService: staff, composed from one part per resource.

`KeyAdministration` (services/account/auth/api.py) comes first and the generated servicer last,
so every RPC a part defines takes precedence over the generated UNIMPLEMENTED one.
"""

from __future__ import annotations

from services.account.api.accounts import TradingAccountAdmin
from services.account.api.adjustments import BalanceAdjustmentAdmin
from services.account.api.audit import AuditAdmin
from services.account.api.groups import ClientGroupAdmin
from services.account.api.users import UserAdmin
from services.account.api.withdrawals import WithdrawalAdmin
from services.account.auth.api import KeyAdministration
from services.account.margin import MarginFigures
from services.platform.resources import Resources
from tradingmesh.account.v1 import account_admin_service_pb2_grpc

__all__ = ["AccountAdminService"]


class AccountAdminService(
    KeyAdministration,
    UserAdmin,
    TradingAccountAdmin,
    WithdrawalAdmin,
    ClientGroupAdmin,
    BalanceAdjustmentAdmin,
    AuditAdmin,
    account_admin_service_pb2_grpc.AccountAdminServiceServicer,
):
    """tradingmesh.account.v1.AccountAdminService (key RPCs in services/account/auth)."""

    def __init__(self, resources: Resources, margin: MarginFigures) -> None:
        self.resources = resources
        self.margin = margin
