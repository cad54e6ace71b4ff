"""The benchmark suite's end-to-end parts still run: the echo and the handshakes under
each server for every framework, and the whole ``python -m benchmarks`` command at a
tiny size.

They measure nothing (see tests/unit/test_benchmarks_smoke.py for the in-process workloads).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import fanout
from benchmarks.report import SERVERS
from benchmarks.run import FRAMEWORKS, e2e_run, get_framework, main, serve
from tests.helpers.bench import COPY_MARK, fanout_rates, framework, micropie_copy
from tests.helpers.support import require_program


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_the_end_to_end_runs_work_under_each_server(name: str, server: str) -> None:
    if name == "pypi-micropie" and server != "uvicorn":
        pytest.skip("the benchmarks run the PyPI release under uvicorn only")
    chosen = framework(name)
    if subprocess.run([chosen.python, "-c", f"import {server}"], check=False).returncode:
        pytest.skip(f"{server} is not installed beside {name}: `python -m benchmarks` installs it")
    # picows clients on the other core; every echo and every session cookie checked.
    echoed = e2e_run(chosen, server, "echo", clients=3, messages=5)
    assert echoed["operations"] == 15 and echoed["seconds"] > 0
    assert echoed["server_cpu_seconds"] > 0 and echoed["client_cpu_seconds"] > 0
    visited = e2e_run(chosen, server, "handshake", clients=2, messages=3)
    assert visited["operations"] == 6 and visited["server_cpu_seconds"] > 0


def test_the_end_to_end_server_runs_the_micropie_source(tmp_path: Path) -> None:
    with serve(get_framework("micropie", micropie_copy(tmp_path))) as server:
        assert COPY_MARK in server.output  # printed on import, before it answered HTTP


def test_the_fanout_benchmark_starts_its_own_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_program("redis-server")
    monkeypatch.delenv("MICROPIE_REDIS_URL", raising=False)
    assert fanout.main(["--messages", "10", "--rounds", "1"]) == 0
    fanout_rates(capsys.readouterr().out)


def test_the_command_writes_the_table_and_the_chart(tmp_path: Path) -> None:
    chart = importlib.util.find_spec("matplotlib") is not None
    args = [
        "--frameworks", "raw,micropie",
        "--workloads", "ws_handshake,e2e_echo:uvicorn,e2e_handshake:granian",
        "--scale", "0.0015",  # 15 handshakes, 3 messages per client, 1 handshake per loop
        "--rounds", "1", "--e2e-rounds", "1",
        "--clients", "2",
        "--output-dir", str(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0

    table = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Workload | raw ASGI | micropie (this repo) |" in table
    assert "Handshake with a session cookie, in process, per handshake" in table
    assert "Echo through uvicorn, end to end, messages per second" in table
    assert "Handshakes through granian, end to end, handshakes per second" in table
    assert "AMD" in table or "Intel" in table or "cores" in table
    fragment = (tmp_path / "results.inc").read_text(encoding="utf-8")
    assert ".. list-table::" in fragment
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(saved["in_process"]) == {"ws_handshake"}
    assert set(saved["end_to_end"]) == {"e2e_echo:uvicorn", "e2e_handshake:granian"}
    assert set(saved["end_to_end"]["e2e_echo:uvicorn"]) == {"raw", "micropie"}
    assert saved["settings"]["sizes"]["ws_handshake"] == 15
    assert saved["end_to_end"]["e2e_echo:uvicorn"]["raw"][0]["operations"] == 6
    assert saved["end_to_end"]["e2e_handshake:granian"]["micropie"][0]["operations"] == 8
    assert (tmp_path / "results.png").exists() == chart  # drawn where matplotlib is
    if chart:
        assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")

    # Everything can be written again from the JSON, without running anything.
    again = tmp_path / "again"
    assert main(["--render-from", str(tmp_path / "results.json"), "--output-dir", str(again)]) == 0
    for written in tmp_path.glob("results.*"):
        assert (again / written.name).read_bytes() == written.read_bytes(), written.name
