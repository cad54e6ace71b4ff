"""Reports built in the background: a request starts one, the client asks how it is going.

Save this file as ``app.py`` and serve it with ``uvicorn app:app``. Then
``curl -i -d pieces=50 http://127.0.0.1:8000/reports`` starts a report, and
``curl http://127.0.0.1:8000/reports/1`` tells how far it has got.
"""

import asyncio
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from micropie import App

logger = logging.getLogger(__name__)

#: The most pieces a report may have, and the longest a request may wait for one.
MAX_PIECES = 1000
MAX_WAIT = 30.0

#: What the handler answers: JSON, with a status and headers when they are not the usual.
Reply = dict[str, Any] | tuple[int, dict[str, Any]] | tuple[int, dict[str, Any], dict[str, str]]


def crunch(piece: int) -> int:
    """The CPU-bound work for one piece of a report; it runs in a worker process."""
    start = piece * 100_000
    return sum(n * n for n in range(start, start + 100_000)) % 1_000_003


@dataclass
class Report:
    id: str
    pieces: int
    done: int = 0
    status: str = "running"  # then "done", "failed" or "cancelled"
    result: int | None = None
    finished_at: float | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "done": self.done,
            "pieces": self.pieces,
            "result": self.result,
        }


class Reports(App):
    def __init__(self, *, workers: int = 2, keep_for: float = 3600.0) -> None:
        super().__init__()
        self.workers = workers
        self.keep_for = keep_for  # seconds a finished report is kept
        self._reports: dict[str, Report] = {}
        self._building: dict[str, asyncio.Task[None]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self.startup_handlers.append(self._start)
        self.shutdown_handlers.append(self._stop)

    def _start(self) -> None:
        self._pool = ProcessPoolExecutor(self.workers)
        self.background_tasks.create_task(self._forget_old_reports())

    def _stop(self) -> None:
        # The background tasks have been cancelled by now: none is waiting for
        # the pool. A piece still being computed is finished, not interrupted.
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    async def reports(self, report_id: str = "", wait: str = "0") -> Reply:
        if self.request.method == "POST":
            return self._start_report()
        report = self._reports.get(report_id)
        if report is None:
            return 404, {"error": f"there is no report {report_id!r}"}
        try:
            seconds = float(wait)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= MAX_WAIT:
            return 400, {"error": f"wait is a number of seconds from 0 to {MAX_WAIT:g}"}
        building = self._building.get(report_id)
        if building is not None and seconds:
            await asyncio.wait([building], timeout=seconds)  # the report goes on regardless
        return report.public()

    def _start_report(self) -> Reply:
        pieces = self.request.form("pieces") or ""
        if not (pieces.isascii() and pieces.isdigit() and 1 <= int(pieces) <= MAX_PIECES):
            return 400, {"error": f"pieces is a whole number from 1 to {MAX_PIECES}"}
        if self._pool is None:
            return 503, {"error": "the server has not started yet"}
        report = Report(str(len(self._reports) + 1), int(pieces))
        while report.id in self._reports:  # after old reports were forgotten
            report.id = str(int(report.id) + 1)
        self._reports[report.id] = report
        # Started, kept until it ends, logged if it fails, cancelled at shutdown.
        self._building[report.id] = self.background_tasks.create_task(
            self._build(report), name=f"report {report.id}"
        )
        return 202, report.public(), {"Location": f"/reports/{report.id}"}

    async def _build(self, report: Report) -> None:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            total = 0
            for piece in range(report.pieces):
                # One piece at a time, so that a cancellation takes effect between two.
                total += await loop.run_in_executor(self._pool, crunch, piece)
                report.done = piece + 1
            report.status, report.result = "done", total % 1_000_003
        except asyncio.CancelledError:
            report.status = "cancelled"
            logger.info(
                "report %s cancelled after %d of %d pieces", report.id, report.done, report.pieces
            )
            raise
        except Exception:
            report.status = "failed"
            raise  # MicroPie logs it, with its traceback
        finally:
            report.finished_at = time.monotonic()
            del self._building[report.id]

    async def _forget_old_reports(self) -> None:
        """Runs from startup to shutdown: forgets finished reports after keep_for seconds."""
        try:
            while True:
                await asyncio.sleep(min(60.0, self.keep_for))
                cutoff = time.monotonic() - self.keep_for
                for report in list(self._reports.values()):
                    if report.finished_at is not None and report.finished_at < cutoff:
                        del self._reports[report.id]
        finally:
            logger.info("stopped forgetting old reports")


app = Reports()
