"""Runtime: a service's parts start in order and stop in reverse, each stop even if another
failed; its spec registers servicers by their generated classes (Registration.of)."""

from __future__ import annotations

import asyncio

import pytest

from services.platform.runtime import NotReadyError
from services.platform.runtime import Ready
from services.platform.runtime import Runtime
from services.platform.server import Registration
from services.pricing import server
from tradingmesh.pricing.v1 import pricing_admin_service_pb2_grpc
from tradingmesh.pricing.v1 import pricing_service_pb2_grpc


class Recorder(Runtime):
    """Three parts; the second one's stop fails when `failing_stop`, the third's start when
    `failing_start`."""

    def __init__(self, *, failing_stop: bool = False, failing_start: bool = False) -> None:
        super().__init__()
        self.log: list[str] = []
        self.failing_stop = failing_stop
        self.failing_start = failing_start

    async def open(self) -> None:
        await self.started(self._record("start a"), lambda: self._record("stop a"))
        self.add_stop(lambda: self._stop_b())
        await self.started(self._start_c(), lambda: self._record("stop c"))

    async def _record(self, event: str) -> None:
        self.log.append(event)

    async def _stop_b(self) -> None:
        self.log.append("stop b")
        if self.failing_stop:
            raise RuntimeError("b did not stop")

    async def _start_c(self) -> None:
        if self.failing_start:
            raise RuntimeError("c did not start")
        self.log.append("start c")


async def test_parts_stop_in_the_reverse_order_of_their_start() -> None:
    runtime = Recorder()

    await runtime.open()
    await runtime.close()

    assert runtime.log == ["start a", "start c", "stop c", "stop b", "stop a"]


async def test_every_stop_runs_even_when_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    runtime = Recorder(failing_stop=True)
    await runtime.open()

    await runtime.close()

    assert runtime.log == ["start a", "start c", "stop c", "stop b", "stop a"]
    assert [record.message for record in caplog.records] == ["a part failed to stop"]


async def test_a_part_whose_start_failed_is_not_stopped_and_those_before_it_are() -> None:
    runtime = Recorder(failing_start=True)

    with pytest.raises(RuntimeError, match="c did not start"):
        await runtime.open()
    await runtime.close()

    assert runtime.log == ["start a", "stop b", "stop a"]


async def test_a_task_is_cancelled_and_awaited_when_the_runtime_closes() -> None:
    runtime = Runtime()
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    runtime.task(work(), name="work")
    await asyncio.sleep(0)
    await runtime.close()

    assert ended.is_set()


def test_a_servicer_is_registered_from_the_generated_class_it_implements() -> None:
    parts = server.Parts()

    spec = Runtime().spec(
        "pricing", [server.PricingService(parts), server.PricingAdminService(parts)]
    )

    assert spec.service_names == [
        "tradingmesh.pricing.v1.PricingService",
        "tradingmesh.pricing.v1.PricingAdminService",
    ]
    pricing, admin = spec.registrations
    assert pricing.add_to_server is pricing_service_pb2_grpc.add_PricingServiceServicer_to_server
    assert (
        admin.add_to_server
        is pricing_admin_service_pb2_grpc.add_PricingAdminServiceServicer_to_server
    )


def test_an_object_that_implements_no_generated_servicer_cannot_be_registered() -> None:
    with pytest.raises(TypeError, match="object implements no generated gRPC servicer"):
        Registration.of(object())


class Shared:
    """What servicers read of a runtime: a part `open` sets."""

    reader = Ready[str]()


def test_a_ready_part_is_read_once_set_and_raises_before() -> None:
    shared, other = Shared(), Shared()

    with pytest.raises(NotReadyError, match=r"Shared\.reader is not ready"):
        _ = shared.reader
    shared.reader = "the reader"

    assert shared.reader == "the reader"
    with pytest.raises(NotReadyError):  # per instance, not per class
        _ = other.reader
