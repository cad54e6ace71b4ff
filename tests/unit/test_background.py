"""BackgroundTasks, and App.background_tasks across the lifespan.

The how-to is docs/source/howto/background.rst.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from micropie import App, BackgroundTasks
from micropie.testing import TestClient
from tests.helpers.support import micropie_errors

TIMEOUT = 5.0


def micropie_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "micropie" and r.levelno == logging.WARNING
    ]


# create_task


def test_a_task_nobody_holds_still_runs_to_its_end() -> None:
    """The loop keeps only a weak reference to a task: BackgroundTasks keeps a strong one."""
    finished: list[str] = []

    async def job(release: asyncio.Event) -> None:
        await release.wait()
        finished.append("job")

    async def main() -> int:
        tasks = BackgroundTasks()
        release = asyncio.Event()
        tasks.create_task(job(release))  # the task returned is dropped at once
        await asyncio.sleep(0)
        gc.collect()
        running = len(tasks)
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        return running

    assert asyncio.run(main()) == 1
    assert finished == ["job"]


def test_a_failed_task_is_logged_with_its_traceback_and_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("the secret")

    async def main() -> tuple[int, BaseException | None]:
        tasks = BackgroundTasks()
        unnamed = tasks.create_task(fails())
        named = tasks.create_task(fails(), name="report 7")
        await asyncio.wait([unnamed, named])
        await asyncio.sleep(0)  # the done callbacks
        return len(tasks), named.exception()

    left, error = asyncio.run(main())
    assert left == 0
    assert isinstance(error, KeyError)  # the task keeps its outcome for whoever asks
    records = micropie_errors(caplog)
    assert sorted(r.getMessage() for r in records) == [
        "background task report 7 failed",
        "background task test_a_failed_task_is_logged_with_its_traceback_and_forgotten.<locals>"
        ".fails failed",
    ]
    for record in records:
        assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)


def test_cancelled_and_finished_tasks_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[Any]:
        tasks = BackgroundTasks()
        done = tasks.create_task(asyncio.sleep(0, result="done"))
        cancelled = tasks.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.wait([done, cancelled])
        return [done.result(), cancelled.cancelled(), len(tasks)]

    assert asyncio.run(main()) == ["done", True, 0]
    assert [r for r in caplog.records if r.name == "micropie"] == []


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda: None, r"not function \(call the function: create_task\(job\(\)\)"),
        (42, r"takes a coroutine, not int$"),
        (asyncio.sleep, r"not function \(call the function"),
    ],
)
def test_anything_but_a_coroutine_is_a_type_error(wrong: Any, message: str) -> None:
    async def main() -> None:
        BackgroundTasks().create_task(wrong)

    with pytest.raises(TypeError, match=message):
        asyncio.run(main())


def test_without_a_running_loop_it_says_so_and_leaves_no_warning() -> None:
    async def job() -> None:
        pass

    coroutine = job()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        with pytest.raises(RuntimeError, match="needs a running event loop"):
            BackgroundTasks().create_task(coroutine)
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
        del coroutine
        gc.collect()


# shutdown


def test_shutdown_cancels_in_order_and_waits_for_each_cleanup() -> None:
    events: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append(f"{name} cancelled")
            await asyncio.sleep(0.01)  # a cleanup that waits
            events.append(f"{name} cleaned up")

    async def main() -> int:
        tasks = BackgroundTasks()
        for name in ("first", "second", "third"):
            tasks.create_task(worker(name))
        await asyncio.sleep(0)
        await tasks.shutdown()
        events.append("shutdown returned")
        return len(tasks)

    assert asyncio.run(main()) == 0
    assert events == [
        "first cancelled",
        "second cancelled",
        "third cancelled",
        "first cleaned up",
        "second cleaned up",
        "third cleaned up",
        "shutdown returned",
    ]


def test_tasks_started_during_the_shutdown_are_cancelled_too() -> None:
    events: list[str] = []

    async def flusher() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("flusher stopped")

    async def parent(tasks: BackgroundTasks) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            tasks.create_task(flusher())  # "flush on the way out"
            events.append("parent stopped")

    async def main() -> int:
        tasks = BackgroundTasks()
        tasks.create_task(parent(tasks))
        await asyncio.sleep(0)
        await tasks.shutdown()
        return len(tasks)

    assert asyncio.run(main()) == 0
    assert events == ["parent stopped", "flusher stopped"]


def test_a_task_that_ignores_cancellation_cannot_hold_the_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ignoring = [True]

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not ignoring[0]:
                    raise

    async def main() -> tuple[float, int]:
        tasks = BackgroundTasks(shutdown_timeout=0.2)
        task = tasks.create_task(stubborn(), name="stubborn one")
        await asyncio.sleep(0)
        started = time.monotonic()
        await tasks.shutdown()
        took = time.monotonic() - started
        left = len(tasks)
        ignoring[0] = False  # leave no task behind for asyncio.run to wait on
        task.cancel()
        await asyncio.wait([task])
        return took, left

    took, left = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert 0.2 <= took < 2.0
    assert left == 1
    assert micropie_warnings(caplog) == [
        "1 background task(s) still running 0.2 s after being cancelled: stubborn one"
    ]


def test_shutdown_with_no_tasks_returns_at_once() -> None:
    async def main() -> float:
        started = time.monotonic()
        await BackgroundTasks().shutdown()
        return time.monotonic() - started

    assert asyncio.run(main()) < 0.1


# App.background_tasks and the lifespan


class Jobs(App):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events
        self.startup_handlers.append(self._start)
        self.shutdown_handlers.append(self._close)

    async def _start(self) -> None:
        self.background_tasks.create_task(self._loop("from startup"))
        await asyncio.sleep(0)  # it begins

    def _close(self) -> None:
        self.events.append(f"shutdown handler ({len(self.background_tasks)} tasks left)")

    async def _loop(self, name: str) -> None:
        try:
            self.events.append(f"{name} started")
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            self.events.append(f"{name} stopped")

    async def start(self, name: str) -> str:
        self.background_tasks.create_task(self._loop(name))
        await asyncio.sleep(0)  # it begins
        return "started"


def test_handlers_start_tasks_that_end_before_the_shutdown_handlers_run(
    make_client: Callable[..., TestClient],
) -> None:
    events: list[str] = []
    with make_client(Jobs(events)) as client:
        assert client.get("/start/from a request").text == "started"
        events.append("serving")
    assert events == [
        "from startup started",
        "from a request started",
        "serving",
        "from startup stopped",
        "from a request stopped",
        "shutdown handler (0 tasks left)",
    ]


def test_a_failed_startup_cancels_what_earlier_handlers_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = Jobs(events)

    def fail() -> None:
        raise ConnectionError("database unreachable")

    app.startup_handlers.append(fail)
    client = TestClient(app)
    with pytest.raises(RuntimeError, match="startup failed"):
        client.__enter__()
    client.close()
    assert events == ["from startup started", "from startup stopped"]
    assert [r.getMessage() for r in micropie_errors(caplog)] == ["a startup handler failed"]


def test_background_tasks_is_not_a_route(make_client: Callable[..., TestClient]) -> None:
    class Site(App):
        def background_tasks(self) -> str:  # type: ignore[override]
            return "never served"

    assert make_client(Site()).get("/background_tasks").status_code == 404
