# ruff: noqa: N802  # servicer methods carry the contract's RPC names
"""Client groups and their per-instrument settings: CreateClientGroup, GetClientGroup,
ListClientGroups, UpdateClientGroup, SetGroupInstrumentSettings, ListGroupInstrumentSettings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.account import convert
from services.account import events
from services.account import store
from services.account.api.common import ANY_STAFF
from services.account.api.common import AdminPart
from services.account.api.common import Context
from services.account.api.common import audit_change
from services.account.api.common import event_metadata
from services.account.api.common import offset_listing
from services.account.domain import check_group_levels
from services.account.domain import check_instrument_limits
from services.account.store import groups as group_store
from services.account.store.groups import GroupTerms
from services.account.store.groups import InstrumentTerms
from services.platform.access import ADMIN
from services.platform.access import DEALER
from services.platform.access import require_roles
from services.platform.enums import enum_name
from services.platform.errors import DomainError
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb
from tradingmesh.account.v1 import account_events_pb2 as ev
from tradingmesh.account.v1 import account_pb2 as pb
from tradingmesh.common.v1 import pricing_pb2
from tradingmesh.common.v1 import types_pb2
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.exact import decimal_field
from tradingmesh.exact import optional_decimal

__all__ = ["ClientGroupAdmin"]

_R = ErrorReason
_ZERO: Final = Decimal(0)


class ClientGroupAdmin(AdminPart):
    """The client group RPCs of AccountAdminService."""

    @asynccontextmanager
    async def _taking_name(self, name: str) -> AsyncIterator[AsyncSession]:
        """The transaction of a change that gives a client group `name`: ALREADY_EXISTS when
        another group has it."""
        try:
            async with self.resources.db.transaction() as session:
                yield session
        except IntegrityError:
            raise DomainError(
                _R.ERROR_REASON_ALREADY_EXISTS, f"a client group named {name} exists"
            ) from None

    async def CreateClientGroup(
        self, request: admin_pb.CreateClientGroupRequest, context: Context
    ) -> admin_pb.CreateClientGroupResponse:
        caller = require_roles((ADMIN,))
        given = request.client_group
        terms = _terms(given)
        check_group_levels(terms.margin_call_level, terms.stop_out_level)
        async with self._taking_name(given.name) as session:
            row = await group_store.insert_group(session, given.currency, terms)
            group = convert.client_group(row)
            await events.emit(
                session,
                "account.client_group.changed",
                ev.ClientGroupChanged(
                    metadata=event_metadata(caller, version=1), client_group=group
                ),
            )
            await audit_change(session, caller, "client_group.create", group)
        return admin_pb.CreateClientGroupResponse(client_group=group)

    async def GetClientGroup(
        self, request: admin_pb.GetClientGroupRequest, context: Context
    ) -> admin_pb.GetClientGroupResponse:
        require_roles(ANY_STAFF)
        async with self.resources.db.read_session() as session:
            row = await store.require_group_row(session, request.group_id)
        return admin_pb.GetClientGroupResponse(client_group=convert.client_group(row))

    async def ListClientGroups(
        self, request: admin_pb.ListClientGroupsRequest, context: Context
    ) -> admin_pb.ListClientGroupsResponse:
        require_roles(ANY_STAFF)
        groups, token = await self.listing(request, group_store.list_groups, convert.client_group)
        return admin_pb.ListClientGroupsResponse(client_groups=groups, next_page_token=token)

    async def UpdateClientGroup(
        self, request: admin_pb.UpdateClientGroupRequest, context: Context
    ) -> admin_pb.UpdateClientGroupResponse:
        caller = require_roles((ADMIN,))
        given = request.client_group
        paths = list(dict.fromkeys(request.update_mask.paths))
        async with self._taking_name(given.name) as session:
            row = await store.require_group_row(session, given.id, lock=True)
            before = convert.client_group(row)
            after = pb.ClientGroup()
            after.CopyFrom(before)
            for path in paths:
                setattr(after, path, getattr(given, path))
            if not after.name:
                raise DomainError(
                    _R.ERROR_REASON_VALIDATION_FAILED,
                    "client_group.name must not be empty",
                    field_violations=[("client_group.name", "must not be empty")],
                )
            terms = _terms(after)
            check_group_levels(terms.margin_call_level, terms.stop_out_level)
            updated = await group_store.update_group(session, row["id"], terms)
            group = convert.client_group(updated)
            changed = [p for p in paths if getattr(before, p) != getattr(group, p)]
            await events.emit(
                session,
                "account.client_group.changed",
                ev.ClientGroupChanged(
                    metadata=event_metadata(caller, version=int(updated["version"])),
                    client_group=group,
                    previous=before,
                    changed_fields=changed,
                ),
            )
            await audit_change(session, caller, "client_group.update", group, before=before)
        return admin_pb.UpdateClientGroupResponse(client_group=group)

    async def SetGroupInstrumentSettings(
        self, request: admin_pb.SetGroupInstrumentSettingsRequest, context: Context
    ) -> admin_pb.SetGroupInstrumentSettingsResponse:
        caller = require_roles((ADMIN, DEALER))
        given = request.settings
        async with self.resources.db.transaction() as session:
            group = await store.require_group_row(session, given.group_id)
            # Checked against the service's own copy of pricing's catalogue (instruments.py): a
            # symbol created a moment ago is unknown until its event has arrived.
            lot_step = await group_store.lot_step(session, given.symbol)
            if lot_step is None:
                raise DomainError(
                    _R.ERROR_REASON_UNKNOWN_INSTRUMENT,
                    f"{given.symbol} is not in the instrument catalog",
                    metadata={"symbol": given.symbol},
                )
            terms = _instrument_terms(given)
            check_instrument_limits(
                lot_step,
                points_markup=terms.spread_markup if terms.spread_markup_type == "POINTS" else None,
                max_order_size=terms.max_order_size,
                max_position=terms.max_position,
            )
            previous = await group_store.locked_instrument_settings(
                session, group["id"], given.symbol
            )
            row = await group_store.put_instrument_settings(
                session, group["id"], given.symbol, terms
            )
            settings = convert.instrument_settings(row)
            event = ev.GroupInstrumentSettingsChanged(
                metadata=event_metadata(caller), settings=settings
            )
            if previous is not None:
                event.previous.CopyFrom(convert.instrument_settings(previous))
            await events.emit(session, "account.client_group.instrument_settings_changed", event)
            await audit_change(
                session,
                caller,
                "group_instrument_settings.set",
                settings,
                before=None if previous is None else event.previous,
                entity_id=f"{settings.group_id}/{settings.symbol}",
            )
        return admin_pb.SetGroupInstrumentSettingsResponse(settings=settings)

    async def ListGroupInstrumentSettings(
        self, request: admin_pb.ListGroupInstrumentSettingsRequest, context: Context
    ) -> admin_pb.ListGroupInstrumentSettingsResponse:
        require_roles(ANY_STAFF)
        async with self.resources.db.read_session() as session:
            group = await store.require_group_row(session, request.group_id)
            settings, token = await offset_listing(
                session,
                request,
                group_store.list_instrument_settings,
                convert.instrument_settings,
                group_id=group["id"],
            )
        return admin_pb.ListGroupInstrumentSettingsResponse(
            settings=settings, next_page_token=token
        )


def _terms(group: pb.ClientGroup) -> GroupTerms:
    """The stored terms of a client group message (enums by name)."""
    return GroupTerms(
        name=group.name,
        description=group.description,
        leverage=group.leverage,
        margin_call_level=decimal_field(group, "margin_call_level", _ZERO),
        stop_out_level=decimal_field(group, "stop_out_level", _ZERO),
        execution_mode=enum_name(types_pb2.ExecutionMode, group.execution_mode),
        position_mode=enum_name(types_pb2.PositionMode, group.position_mode),
        spread_markup_type=enum_name(pricing_pb2.MarkupType, group.spread_markup_type),
        spread_markup=decimal_field(group, "spread_markup", _ZERO),
        commission_per_lot=decimal_field(group, "commission_per_lot", _ZERO),
        max_deviation_points=group.max_deviation_points,
    )


def _instrument_terms(given: pb.GroupInstrumentSettings) -> InstrumentTerms:
    """The stored settings of a message; a field not set is None (the group's term applies)."""
    return InstrumentTerms(
        **InstrumentTerms.values_of(given),
        spread_markup_type=(
            enum_name(pricing_pb2.MarkupType, given.spread_markup_type)
            if given.spread_markup_type
            else None
        ),
        spread_markup=optional_decimal(given, "spread_markup"),
    )
