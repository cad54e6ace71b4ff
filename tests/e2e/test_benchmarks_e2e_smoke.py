"""The benchmark suite's end-to-end parts still run: the echo under uvicorn for every
framework, and the whole ``python -m benchmarks`` command at a tiny size.

They measure nothing (see tests/unit/test_benchmarks_smoke.py for the in-process workloads).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import fanout
from benchmarks.run import FRAMEWORKS, echo_run, get_framework, main, serve
from tests.helpers.bench import COPY_MARK, fanout_rates, framework, micropie_copy
from tests.helpers.support import require_program


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_the_end_to_end_echo_runs_under_uvicorn(name: str) -> None:
    outcome = echo_run(framework(name), clients=3, messages=5)  # every echo checked
    assert outcome["clients"] == 3 and outcome["messages"] == 15
    assert outcome["seconds"] > 0 and outcome["server_cpu_seconds"] > 0


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
        "--workloads", "ws_handshake,e2e_echo",
        "--scale", "0.0015",  # 15 handshakes, 3 messages per client
        "--rounds", "1", "--e2e-rounds", "1",
        "--clients", "2",
        "--output-dir", str(tmp_path),
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
    assert saved["settings"]["sizes"]["ws_handshake"] == 15
    assert saved["end_to_end"]["raw"][0]["messages"] == 6
    assert (tmp_path / "results.png").exists() == chart  # drawn where matplotlib is
    if chart:
        assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")

    # Everything can be written again from the JSON, without running anything.
    again = tmp_path / "again"
    assert main(["--render-from", str(tmp_path / "results.json"), "--output-dir", str(again)]) == 0
    for written in tmp_path.glob("results.*"):
        assert (again / written.name).read_bytes() == written.read_bytes(), written.name
