"""The benchmark suite still runs: every workload once, tiny, against every framework.

``python -m benchmarks`` is not part of the test run (it takes minutes); these
tests keep it from rotting. They measure nothing: they run each in-process
workload and the end-to-end echo at a tiny size, through the same code as the
real run, and rely on its checks of every answer. Raw ASGI, this
repository's MicroPie and Starlette always run. The ``micropie`` release on
PyPI runs only where ``benchmarks/.venvs/pypi-micropie`` already exists
(``python -m benchmarks`` creates it from PyPI): these tests never download.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchmarks import e2e, report
from benchmarks.frameworks import (
    FRAMEWORKS,
    HARNESS,
    PYPI_VENV,
    REPO_ROOT,
    Framework,
    get_framework,
    pypi_venv_exists,
    run_harness,
    server_options,
)
from benchmarks.run import IN_PROCESS, main

TINY = 3


def _framework(name: str) -> Framework:
    if name == "pypi-micropie" and not pypi_venv_exists():
        pytest.skip(
            f"{PYPI_VENV.relative_to(REPO_ROOT)} does not exist; `python -m benchmarks` "
            "creates it from PyPI, and the smoke test never downloads"
        )
    return get_framework(name)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_every_in_process_workload_runs_and_is_checked(name: str) -> None:
    framework = _framework(name)
    spec = {
        "workloads": dict.fromkeys(IN_PROCESS, TINY),
        "repeats": 1,
        "warmup": False,
        "record_all": True,  # every echo compared, not only the last
    }
    outcome = run_harness(framework, spec)  # raises if any answer was wrong
    assert set(outcome["results"]) == set(IN_PROCESS)
    for timed in outcome["results"].values():
        assert timed["size"] == TINY
        assert len(timed["cpu_seconds"]) == len(timed["wall_seconds"]) == 1
        assert timed["wall_seconds"][0] > 0


@pytest.mark.e2e
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_end_to_end_echo_runs_under_uvicorn(name: str) -> None:
    framework = _framework(name)
    with e2e.serve(framework, server_options()) as server:
        outcome = e2e.echo_load(server, "/text", clients=3, messages=5)
    assert outcome["messages"] == 15
    assert outcome["seconds"] > 0


def test_the_pypi_release_is_the_one_that_runs() -> None:
    """Its processes must not find this repository's micropie package first."""
    framework = _framework("pypi-micropie")
    outcome = run_harness(framework, {"workloads": {"http_json": 1}, "warmup": False})
    assert Path(outcome["module_file"]).is_relative_to(PYPI_VENV)
    assert outcome["versions"]["micropie"] != "0.1.0"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


async def _wrong_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": "something else"})


async def _no_cookie(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"]})
    await send({"type": "websocket.close", "code": 1000})


async def _html(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/html")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"message": "Hello, World!"}'})


@pytest.mark.parametrize(
    ("workload", "app", "record_all"),
    [
        ("ws_text", _wrong_echo, True),
        ("ws_text", _wrong_echo, False),
        ("ws_handshake", _no_cookie, True),
        ("http_json", _html, True),
    ],
)
def test_a_wrong_answer_fails_the_benchmark(workload: str, app: Any, record_all: bool) -> None:
    harness = _harness()
    trial = harness.WORKLOADS[workload](app, TINY, record_all)
    asyncio.run(trial.run())
    with pytest.raises(harness.BenchmarkError):
        trial.check()


def test_the_command_writes_the_table_and_the_chart(tmp_path: Path) -> None:
    chart = importlib.util.find_spec("matplotlib") is not None
    args = [
        "--frameworks", "raw,micropie",
        "--workloads", "ws_handshake,e2e_echo",
        "--ws-handshake", "2",
        "--rounds", "1", "--repeats", "1", "--e2e-rounds", "1",
        "--clients", "2", "--client-messages", "3",
        "--output-dir", str(tmp_path),
        *([] if chart else ["--no-chart"]),
    ]  # fmt: skip
    assert main(args) == 0

    table = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Workload | raw ASGI | micropie (this repo) |" in table
    assert "Handshake with a session cookie, in process, per handshake" in table
    assert "Echo through uvicorn, end to end, messages per second" in table
    assert "AMD" in table or "Intel" in table or "cores" in table
    fragment = (tmp_path / "results.inc").read_text(encoding="utf-8")
    assert ".. list-table::" in fragment
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(saved["in_process"]) == {"ws_handshake"}
    assert set(saved["end_to_end"]) == {"raw", "micropie"}
    if chart:
        assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")

    # The table can be written again from the JSON, without running anything.
    again = tmp_path / "again"
    assert main(["--render-from", str(tmp_path / "results.json"), "--output-dir", str(again),
                 "--no-chart"]) == 0  # fmt: skip
    assert report.markdown(report.Results.load(again / "results.json")) == (
        again / "results.md"
    ).read_text(encoding="utf-8")
