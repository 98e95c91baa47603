"""Work a request starts that must run to its end even if the request does not.

gRPC cancels a handler's task when the client's deadline passes or the client goes away, at
whatever `await` the handler is in. Work that must follow a commit cannot run in that task: a
cancellation while the COMMIT is in flight, or between the COMMIT and what follows it, leaves
the change committed and the rest undone (issue 12 item 7: an STP order stored WORKING that
never reached the STP desk). `Detached.run(work)` runs `work` in a task of its own and waits for
it: a cancelled caller stops waiting, and the work still runs to its end. A failure that no
caller is left to hear of is logged (an `expected` one, which the caller would have handled as
an answer, without a traceback). `drain()` at shutdown waits for the work still running.

Only work that must not stop halfway belongs here (a transaction and its hand-off); what may
stop with the request (reads, the checks before the transaction) stays in the request's task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any
from typing import TypeVar

__all__ = ["Detached"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class Detached:
    """Runs pieces of work in tasks a cancelled caller cannot cancel; `name` names them in
    task listings and logs; `expected` are the exceptions that are answers, not failures (a
    refusal, a race another request won)."""

    def __init__(self, name: str, expected: tuple[type[Exception], ...] = ()) -> None:
        self.name = name
        self.expected = expected
        self._running: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """`work`'s result (or its exception); if the caller is cancelled meanwhile, the caller
        gets CancelledError and `work` goes on."""
        task = asyncio.create_task(work, name=self.name)
        self._running.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._running.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._orphaned)  # runs at once if the task is done
            raise

    def _orphaned(self, task: asyncio.Task[Any]) -> None:
        """The end of work whose caller was cancelled: its failure is logged (and retrieved,
        so asyncio does not report it again)."""
        if task.cancelled():
            _log.warning("detached work was cancelled", extra={"work": self.name})
            return
        error = task.exception()
        if isinstance(error, self.expected):
            _log.info(
                "detached work ended with an answer no caller heard",
                extra={"work": self.name, "answer": f"{type(error).__name__}: {error}"},
            )
        elif error is not None:
            _log.warning(
                "detached work failed after its caller was cancelled",
                extra={"work": self.name},
                exc_info=error,
            )

    async def drain(self, timeout: float) -> None:
        """Waits up to `timeout` seconds for the work still running (at shutdown, before the
        resources it uses close)."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
