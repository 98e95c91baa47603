"""What a service process runs besides its gRPC server, started in order and stopped in reverse
(issue #20: one shape of wiring for every service).

A service's `main.py` subclasses `Runtime`: its `open` starts each part with
`await self.started(part.start(...), part.stop)`, so that `close` stops exactly the parts that
started, last first, each even if another one failed; `spec` makes the `ServiceSpec` whose
start and stop hooks they are, registering the servicers it is given.

Servicers are made before the runtime opens; what they need of the parts that `open` makes is
an attribute `Ready[T]()` of a small object they share with it: `open` sets it, a read before
that raises `NotReadyError` (no optional fields checked for None at every use).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Sequence
from typing import Any
from typing import Generic
from typing import TypeVar
from typing import overload

from services.platform.server import Hook
from services.platform.server import Registration
from services.platform.server import RunningServer
from services.platform.server import ServiceSpec
from services.platform.tasks import cancel_and_wait

__all__ = ["NotReadyError", "Ready", "Runtime"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


class NotReadyError(RuntimeError):
    """A part was read before the runtime's `open` set it (a call that came too early)."""


class Ready(Generic[_T]):
    """A class attribute holding a part that `open` sets and servicers read:
    `reference = Ready[Reference]()`; reading it before it is set raises `NotReadyError`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = f"{owner.__name__}.{name}"
        self._key = name

    @overload
    def __get__(self, instance: None, owner: type) -> Ready[_T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> _T: ...

    def __get__(self, instance: object | None, owner: type) -> Ready[_T] | _T:
        if instance is None:
            return self
        try:
            value: _T = instance.__dict__[self._key]
        except KeyError:
            raise NotReadyError(f"{self._name} is not ready: the service has not opened") from None
        return value

    def __set__(self, instance: object, value: _T) -> None:
        instance.__dict__[self._key] = value


class Runtime:
    """The parts of a service process besides its gRPC server; `open` and `close` are the
    `ServiceSpec`'s hooks."""

    def __init__(self) -> None:
        self._stops: list[Hook] = []

    async def open(self) -> None:
        """Starts the parts in order, each with `started` (a subclass's; none here)."""

    async def started(self, starting: Awaitable[object], stop: Hook) -> None:
        """Awaits a part's start; `close` then runs `stop` before the stops of the parts
        started earlier."""
        await starting
        self._stops.append(stop)

    def add_stop(self, stop: Hook) -> None:
        """`close` runs `stop` before the stops added so far: for a part that started without
        awaiting or has nothing to start, or one that must stop before parts started earlier."""
        self._stops.append(stop)

    def task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Runs `work` in a task of its own, cancelled by `close` (and awaited) in its turn."""
        task = asyncio.create_task(work, name=name)
        self._stops.append(lambda: cancel_and_wait(task))

    async def close(self) -> None:
        """Stops every part that started, the last started first; each stop runs even if an
        earlier one failed (it is logged), as `ServiceSpec.on_stop` hooks do."""
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                _log.exception("a part failed to stop", extra={"stop": _name(stop)})

    def spec(
        self,
        name: str,
        servicers: Sequence[object],
        on_serving: Sequence[Callable[[RunningServer], Awaitable[None]]] = (),
    ) -> ServiceSpec:
        """The process's `ServiceSpec`: `servicers` registered (`Registration.of`), `open`
        before serving and `close` after."""
        return ServiceSpec(
            name=name,
            registrations=[Registration.of(servicer) for servicer in servicers],
            on_start=[self.open],
            on_stop=[self.close],
            on_serving=on_serving,
        )


def _name(stop: Hook) -> str:
    return str(getattr(stop, "__qualname__", stop))
