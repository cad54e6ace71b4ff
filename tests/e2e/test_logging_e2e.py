"""End-to-end: what uvicorn's output shows of MicroPie's log (docs/source/howto/logging.rst).

The page's files are saved into an empty directory under the names the page
gives them and served from there, as a reader would: ``uvicorn app:app``
bare, with ``--log-config logging.json`` (and ``--log-level warning``), and
with the page's ``basicConfig()`` version of ``app.py``. Each time a real
WebSocket client is refused (its ``Origin`` is another site's) and a real
HTTP client meets the handler with a bug. Where a line must be missing, the
test waits for a later line (the bug's ``ERROR``, which every setup prints)
and then looks before it, rather than sleeping and looking.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.helpers.clients import ws_connect
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn
from tests.helpers.support import captions_of_file

TIMEOUT = 5.0
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "logging.rst"
PLAIN_APP = "examples/logs/app.py"
CONFIGURED_APP = "examples/logs/basic_config.py"
LOG_CONFIG = "examples/logs/logging.json"

REFUSED = (
    "WebSocket handshake for /echo refused: Origin 'https://elsewhere.example' is another site's"
)
FAILED = "HTTP handler average failed"
#: A line as logging.json and the basicConfig() version format it: time, level, logger, message.
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def save(directory: Path, app_file: str) -> Path:
    """Save *app_file* as app.py, and logging.json beside it, as the page does."""
    shutil.copyfile(REPO_ROOT / app_file, directory / "app.py")
    shutil.copyfile(REPO_ROOT / LOG_CONFIG, directory / "logging.json")
    return directory


def refuse_and_fail(server: RunningServer) -> str:
    """A handshake from another site's page, then the bug; the output once the bug shows."""
    start = server.mark()
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"{server.ws_url}/echo", origin="https://elsewhere.example", timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http:
        assert http.get("/average/2/4").text == "3"
        response = http.get("/average")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    output = server.wait_for_output("ZeroDivisionError: division by zero", since=start)
    assert "ZeroDivisionError" not in response.text  # the traceback is the log's only
    return output


@pytest.fixture
def reader_dir(tmp_path: Path) -> Path:
    return tmp_path


def test_the_page_shows_the_files_the_tests_run() -> None:
    assert captions_of_file(PAGE, PLAIN_APP) == ["app.py"]
    assert captions_of_file(PAGE, CONFIGURED_APP) == ["app.py"]
    assert captions_of_file(PAGE, LOG_CONFIG) == ["logging.json"]
    page = PAGE.read_text(encoding="utf-8")
    assert "Serve it with ``uvicorn app:app``" in page
    assert "\n   uvicorn app:app --log-config logging.json\n" in page


def test_without_configuration_errors_show_bare_and_info_not_at_all(reader_dir: Path) -> None:
    with run_uvicorn("app:app", cwd=save(reader_dir, PLAIN_APP)) as server:
        output = refuse_and_fail(server)
    # Python's last resort: the bare message, then the traceback.
    assert re.search(rf"^{FAILED}\nTraceback \(most recent call last\):\n", output, re.M), output
    # Printed before the error line that the test waited for, had it been printed at all.
    assert REFUSED not in output
    # uvicorn's own lines are there, in uvicorn's own form.
    assert re.search(r'^INFO: +127\.0\.0\.1:\d+ - "WebSocket /echo" 403$', output, re.M), output


@pytest.mark.parametrize("app_file", [PLAIN_APP, CONFIGURED_APP])
def test_with_the_page_s_configuration_info_lines_show(reader_dir: Path, app_file: str) -> None:
    args = ("--log-config", "logging.json") if app_file == PLAIN_APP else ()
    with run_uvicorn("app:app", *args, cwd=save(reader_dir, app_file)) as server:
        output = refuse_and_fail(server)
    assert re.search(rf"^{STAMP} INFO micropie: {re.escape(REFUSED)}$", output, re.M), output
    assert re.search(
        rf"^{STAMP} ERROR micropie: {FAILED}\nTraceback \(most recent call last\):\n", output, re.M
    ), output


def test_uvicorn_s_own_lines_take_the_configured_form(reader_dir: Path) -> None:
    with run_uvicorn(
        "app:app", "--log-config", "logging.json", cwd=save(reader_dir, PLAIN_APP)
    ) as server:
        start = server.mark()
        refuse_and_fail(server)
        output = server.wait_for_output('"GET /average HTTP/1.1" 500', since=start)
        everything = server.output
    startup = rf"^{STAMP} INFO uvicorn\.error: Application startup complete\.$"
    assert re.search(startup, everything, re.M), everything
    access = rf'^{STAMP} INFO uvicorn\.access: 127\.0\.0\.1:\d+ - "GET /average HTTP/1\.1" 500$'
    assert re.search(access, output, re.M), output


def test_log_level_quiets_uvicorn_and_not_micropie(reader_dir: Path) -> None:
    with run_uvicorn(
        "app:app",
        "--log-config",
        "logging.json",
        "--log-level",
        "warning",
        cwd=save(reader_dir, PLAIN_APP),
    ) as server:
        output = refuse_and_fail(server)
        everything = server.output
    assert re.search(rf"^{STAMP} INFO micropie: {re.escape(REFUSED)}$", output, re.M), output
    # uvicorn logs its startup before it serves, so well before the lines waited for.
    assert "Application startup complete" not in everything
    assert "uvicorn.access" not in everything
