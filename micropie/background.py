"""Work an application starts that outlives the request: tracked, logged, stopped at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundTasks"]

logger = logging.getLogger("micropie")

_T = TypeVar("_T")


class BackgroundTasks:
    """The tasks an application runs beside its requests: ``App.background_tasks``.

    :meth:`create_task` starts a coroutine as an :class:`asyncio.Task` and
    keeps it until it ends: the event loop itself keeps only a weak
    reference, and a task nobody holds can vanish midway. A task that fails
    is logged, with its traceback, on the ``micropie`` logger. When the
    server shuts down, the tasks still running are cancelled, and awaited
    for at most *shutdown_timeout* seconds, before the application's
    shutdown handlers run.

    .. attribute:: shutdown_timeout
       :type: float

       How long :meth:`shutdown` waits for the cancelled tasks to end, in seconds.
    """

    __module__ = "micropie"

    def __init__(self, *, shutdown_timeout: float = 10.0) -> None:
        self.shutdown_timeout = shutdown_timeout
        # A dict for its order: tasks are cancelled in the order they were started.
        self._tasks: dict[asyncio.Task[Any], None] = {}

    def create_task(
        self, coroutine: Coroutine[Any, Any, _T], *, name: str | None = None
    ) -> asyncio.Task[_T]:
        """Run *coroutine* in a task of its own, and return the task.

        Call it where an event loop runs: in an ``async def`` handler, a
        startup handler or another task (a ``def`` handler runs in a worker
        thread, where none does). *name* names the task in the log; by default, the
        coroutine function's name.

        :rtype: asyncio.Task
        """
        if not asyncio.iscoroutine(coroutine):
            hint = " (call the function: create_task(job()), not create_task(job))"
            raise TypeError(
                f"create_task() takes a coroutine, not {type(coroutine).__name__}"
                + (hint if callable(coroutine) else "")
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coroutine.close()  # never to run: no "was never awaited" warning on top
            raise RuntimeError(
                "create_task() needs a running event loop: call it from an async def "
                "handler, a startup handler or another task (a def handler runs in a "
                "worker thread)"
            ) from None
        name = name or getattr(coroutine, "__qualname__", None)
        task = loop.create_task(coroutine, name=name)
        self._tasks[task] = None
        task.add_done_callback(self._finished)
        return task

    def __len__(self) -> int:
        """The number of tasks still running."""
        return len(self._tasks)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=error)

    async def shutdown(self) -> None:
        """Cancel the tasks still running, and wait until they have ended.

        They are cancelled in the order they were started, and tasks that
        their cancelled peers start meanwhile are cancelled too. A
        task still running after :attr:`shutdown_timeout` seconds is named in
        a warning and left behind, so that a task that ignores its
        cancellation cannot hold the server's shutdown forever.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        while self._tasks:
            running = list(self._tasks)
            for task in running:
                task.cancel()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            _, still_running = await asyncio.wait(running, timeout=remaining)
            if still_running:
                break
        if self._tasks:
            names = ", ".join(sorted(task.get_name() for task in self._tasks))
            logger.warning(
                "%d background task(s) still running %s s after being cancelled: %s",
                len(self._tasks),
                self.shutdown_timeout,
                names,
            )
