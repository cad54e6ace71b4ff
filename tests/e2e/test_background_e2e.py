"""End-to-end: the reports example of docs/source/howto/background.rst under uvicorn.

The page's ``app.py`` is saved into an empty directory, with the logging
page's ``logging.json`` beside it, and served from there with
``uvicorn app:app --log-config logging.json``. A real HTTP client starts
reports; SIGTERM then stops the server in the middle of one, and the test
reads in the server's output that the report's task and the task that
forgets old reports were cancelled and ended, before the application's
shutdown finished, and that the worker processes went with the server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.background.app import crunch
from tests.helpers.logs import assert_no_errors
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn
from tests.helpers.support import captions_of_file

TIMEOUT = 10.0
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "background.rst"
APP = "examples/background/app.py"
LOG_CONFIG = "examples/logs/logging.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    shutil.copyfile(REPO_ROOT / APP, tmp_path / "app.py")
    shutil.copyfile(REPO_ROOT / LOG_CONFIG, tmp_path / "logging.json")
    with run_uvicorn("app:app", "--log-config", "logging.json", cwd=tmp_path) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def test_the_page_shows_the_file_the_tests_run() -> None:
    assert captions_of_file(PAGE, APP) == ["app.py"]


def test_a_report_is_built_in_the_worker_processes(http: httpx.Client) -> None:
    response = http.post("/reports", data={"pieces": "6"})
    assert response.status_code == 202
    location = response.headers["location"]
    report = http.get(f"{location}?wait=8").json()
    expected = sum(crunch(piece) for piece in range(6)) % 1_000_003
    assert report == {
        "id": location.rpartition("/")[2],
        "status": "done",
        "done": 6,
        "pieces": 6,
        "result": expected,
    }


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"pieces": "0"}, 400, "pieces is a whole number from 1 to 1000"),
        ({"pieces": "1001"}, 400, "pieces is a whole number from 1 to 1000"),
        ({"pieces": "²"}, 400, "pieces is a whole number from 1 to 1000"),
        ({}, 400, "pieces is a whole number from 1 to 1000"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    http: httpx.Client, form: dict[str, str], status: int, error: str
) -> None:
    response = http.post("/reports", data=form)
    assert (response.status_code, response.json()) == (status, {"error": error})


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_bad_wait_is_refused(http: httpx.Client, wait: str) -> None:
    location = http.post("/reports", data={"pieces": "1"}).headers["location"]
    response = http.get(f"{location}?wait={wait}")
    assert response.status_code == 400
    assert response.json() == {"error": "wait is a number of seconds from 0 to 30"}
    assert http.get("/reports/999").status_code == 404


def test_sigterm_cancels_the_tasks_before_the_shutdown_ends(
    server: RunningServer, http: httpx.Client
) -> None:
    location = http.post("/reports", data={"pieces": "1000"}).headers["location"]
    deadline = time.monotonic() + TIMEOUT
    while http.get(location).json()["done"] < 2:
        assert time.monotonic() < deadline, "the report made no progress"
        time.sleep(0.02)
    # uvicorn and the pool's worker processes, in the server's process group.
    assert len(processes_in_group(server.process.pid)) >= 3
    start = server.mark()
    lines = server.stop(TIMEOUT)[start:].splitlines()
    messages = [line.split(" ", 2)[2] for line in lines if line[:4].isdigit()]
    cancelled = [m for m in messages if m.startswith("INFO app: report 1 cancelled after ")]
    assert len(cancelled) == 1, lines
    assert cancelled[0].endswith(" of 1000 pieces")
    # Both tasks ended before the shutdown was complete. (They are cancelled in
    # the order they were started; which one ends first depends on what each
    # was waiting for: a piece of the report in the pool may finish meanwhile.)
    complete = messages.index("INFO uvicorn.error: Application shutdown complete.")
    assert messages.index("INFO app: stopped forgetting old reports") < complete, lines
    assert messages.index(cancelled[0]) < complete, lines
    assert_no_errors("\n".join(lines))
    assert "Task was destroyed" not in server.output
    # The pool was shut down: no worker process outlived the server.
    deadline = time.monotonic() + TIMEOUT
    while left := processes_in_group(server.process.pid):
        assert time.monotonic() < deadline, f"processes outlived the server: {left}"
        time.sleep(0.02)


def processes_in_group(group: int) -> list[int]:
    """The processes of process group *group*, from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        # After the command: state, parent, process group. A zombie is gone but for its entry.
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
