"""Wiring of the reporting service: what it serves and what it connects to.

No settings of its own besides the platform's (ADR 0004), and no background parts: it serves
reports read from the replica, over the connections its `Resources` hold.
"""

from __future__ import annotations

from services.platform import ServiceSpec
from services.platform import Settings
from services.platform import Vault
from services.platform.resources import Resources
from services.platform.runtime import Runtime
from services.reporting import server


class ReportingRuntime(Runtime):
    """The reporting process's connections, opened before it serves and closed after."""

    def __init__(self, settings: Settings, vault: Vault) -> None:
        super().__init__()
        self.resources = Resources(settings, vault)

    async def open(self) -> None:
        await self.started(self.resources.open(), self.resources.close)


def build(settings: Settings, vault: Vault) -> ServiceSpec:
    runtime = ReportingRuntime(settings, vault)
    resources = runtime.resources
    return runtime.spec(
        "reporting",
        [
            server.ReportingService(resources),
            server.ReportingAdminService(resources),
            server.ReportingInternalService(resources),
        ],
    )
