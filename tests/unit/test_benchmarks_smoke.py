"""The benchmark suite still runs: every in-process workload once, tiny, against every framework.

``python -m benchmarks`` is not part of the test run (it takes minutes); these
tests keep it from rotting. They measure nothing: they run each in-process
workload at a tiny size, through the same code as the real run, and rely on
its checks of every answer. Raw ASGI, this repository's MicroPie and
Starlette always run. The ``micropie`` release on PyPI runs only where
``benchmarks/.venvs/pypi-micropie`` already exists (``python -m benchmarks``
creates it from PyPI): these tests never download. The end-to-end echo and
the whole command: tests/e2e/test_benchmarks_e2e_smoke.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchmarks import report
from benchmarks.run import (
    FRAMEWORKS,
    HARNESS,
    IN_PROCESS,
    PYPI_VENV,
    BenchmarkFailed,
    get_framework,
    main,
    parse_args,
    run_harness,
)
from tests.helpers.bench import COPY_VERSION, framework, micropie_copy
from tests.helpers.support import REPO_ROOT

TINY = 3
PUBLISHED = REPO_ROOT / "docs" / "source" / "_static" / "benchmarks"


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_every_in_process_workload_runs_and_is_checked(name: str) -> None:
    tried = framework(name)
    spec = {
        "workloads": dict.fromkeys(IN_PROCESS, TINY),
        "warmup": False,
        "check_all": True,  # every echo compared, not only the last
    }
    outcome = run_harness(tried, spec)  # raises if any answer was wrong
    assert set(outcome["results"]) == set(IN_PROCESS)
    for timed in outcome["results"].values():
        assert timed["size"] == TINY
        assert timed["wall_seconds"] > 0 and timed["cpu_seconds"] > 0


def test_the_profile_says_where_the_time_went() -> None:
    spec = {"workloads": {"ws_text": TINY}, "profile": True}
    outcome = run_harness(framework("micropie"), spec)
    profile = outcome["results"]["ws_text"]["profile"]
    assert "function calls" in profile and "receive_text" in profile


def test_the_pypi_release_is_the_one_that_runs() -> None:
    """Its processes must not find this repository's micropie package first."""
    spec = {"workloads": {"http_json": 1}, "warmup": False}
    outcome = run_harness(framework("pypi-micropie"), spec)
    assert Path(outcome["micropie_file"]).is_relative_to(PYPI_VENV)
    assert outcome["versions"]["micropie"] != "0.1.0"


def test_micropie_source_puts_another_tree_first(tmp_path: Path) -> None:
    """--micropie-source: the harness imports that tree's micropie, not this repository's."""
    source = micropie_copy(tmp_path)
    spec = {"workloads": {"ws_text": TINY}, "warmup": False}
    outcome = run_harness(get_framework("micropie", source), spec)
    assert Path(outcome["micropie_file"]).is_relative_to(source / "micropie")
    assert outcome["versions"]["micropie"] == COPY_VERSION


def test_a_micropie_imported_from_elsewhere_fails_the_run(tmp_path: Path) -> None:
    tried = dataclasses.replace(get_framework("micropie"), micropie_home=tmp_path)
    with pytest.raises(BenchmarkFailed, match="micropie came from"):
        run_harness(tried, {"workloads": {"http_json": 1}, "warmup": False})


def test_micropie_source_must_hold_a_micropie_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--micropie-source", str(tmp_path)])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument --micropie-source: {tmp_path} holds no micropie/ package" in error


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--rounds", "0"], "argument --rounds: 0 is not a number above 0"),
        (["--clients", "2.5"], "argument --clients: invalid int value: '2.5'"),
        (["--scale", "-5"], "argument --scale: -5.0 is not a number above 0"),
        (["--scale", "nan"], "argument --scale: nan is not a number above 0"),
        (["--scale", "x"], "argument --scale: invalid float value: 'x'"),
        (["--frameworks", "raw,flask"], "--frameworks: unknown flask; choose from raw, micropie"),
        (["--workloads", ","], "argument --workloads: none given; choose from ws_text"),
    ],
)
def test_bad_options_are_refused_with_the_reason(
    arguments: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(arguments)
    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


def test_the_published_results_are_written_again_byte_for_byte(tmp_path: Path) -> None:
    """--render-from runs nothing and writes what the published run wrote: the page's table
    and its data as they are (the chart: see below)."""
    args = ["--render-from", str(PUBLISHED / "results.json"), "--output-dir", str(tmp_path)]
    assert main(args) == 0
    for name in ("results.json", "results.inc"):
        assert (tmp_path / name).read_bytes() == (PUBLISHED / name).read_bytes(), name
    results = report.Results.load(PUBLISHED / "results.json")
    assert (tmp_path / "results.md").read_text(encoding="utf-8") == report.markdown(results)


def test_the_published_chart_is_drawn_again_byte_for_byte(tmp_path: Path) -> None:
    """Where the matplotlib that drew the published chart is installed (its PNG says which)."""
    published = (PUBLISHED / "results.png").read_bytes()
    drawn_by = re.search(rb"Software\x00Matplotlib version([^,]+),", published)
    assert drawn_by is not None
    matplotlib = pytest.importorskip("matplotlib")
    if matplotlib.__version__ != drawn_by[1].decode():
        pytest.skip(f"the chart was drawn by matplotlib {drawn_by[1].decode()}, not this one")
    report.chart(report.Results.load(PUBLISHED / "results.json"), tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes() == published


def test_without_matplotlib_the_tables_are_written_and_the_chart_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_matplotlib(results: report.Results, path: Path) -> None:
        raise ModuleNotFoundError("No module named 'matplotlib'")

    monkeypatch.setattr(report, "chart", no_matplotlib)
    args = ["--render-from", str(PUBLISHED / "results.json"), "--output-dir", str(tmp_path)]
    assert main(args) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "results.inc",
        "results.json",
        "results.md",
    ]
    assert "no chart: No module named 'matplotlib'" in capsys.readouterr().out


def test_an_unreadable_results_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results.json").write_text('{"settings": {}}')
    for path in (tmp_path / "results.json", tmp_path / "missing.json"):
        assert main(["--render-from", str(path), "--output-dir", str(tmp_path / "out")]) == 2
        assert f"cannot read {path}: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _page_commands() -> list[list[str]]:
    """The ``python -m benchmarks`` command lines of the Performance page, as argument lists."""
    text = (REPO_ROOT / "docs" / "source" / "performance.rst").read_text(encoding="utf-8")
    text = text.replace("\\\n", " ")  # continued lines
    found = re.findall(r"^\s+\.venv/bin/python -m benchmarks(?: (.*))?$", text, re.M)
    return [shlex.split(arguments) for arguments in found]


def test_the_performance_page_commands_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _page_commands()
    assert len(commands) >= 6, commands
    monkeypatch.chdir(REPO_ROOT)  # the page runs them from the clone's root
    for arguments in commands:
        # The page's worktree stands for any tree holding a micropie/ package.
        arguments = [str(REPO_ROOT) if a == "/tmp/before" else a for a in arguments]
        args = parse_args(arguments)  # exits on an unknown option or value
        if args.render_from is not None:
            assert args.render_from.is_file(), args.render_from


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
    ("workload", "app", "check_all"),
    [
        ("ws_text", _wrong_echo, True),
        ("ws_text", _wrong_echo, False),
        ("ws_handshake", _no_cookie, True),
        ("http_json", _html, True),
    ],
)
def test_a_wrong_answer_fails_the_benchmark(workload: str, app: Any, check_all: bool) -> None:
    harness = _harness()
    timed, check = harness.trial(app, workload, TINY, check_all)
    asyncio.run(timed())
    with pytest.raises(harness.BenchmarkError):
        check()


def test_the_published_figures_are_refused_from_a_changed_tree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import benchmarks.run

    written: list[Path] = []
    monkeypatch.setattr(benchmarks.run, "uncommitted", lambda: [" M micropie/app.py"])
    monkeypatch.setattr(report, "write_all", lambda results, output: written.append(output))
    assert main(["--workloads", "ws_text", "--frameworks", "raw"]) == 2
    error = capsys.readouterr().err
    assert "come from a clean commit" in error and " M micropie/app.py" in error
    assert written == []


def test_a_change_to_what_is_measured_counts_as_uncommitted(tmp_path: Path) -> None:
    from benchmarks.run import uncommitted

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "micropie").mkdir()
    (tmp_path / "micropie" / "app.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert uncommitted(tmp_path) == []
    (tmp_path / "README.md").write_text("changed, but not measured\n")
    assert uncommitted(tmp_path) == []
    (tmp_path / "micropie" / "app.py").write_text("x = 2\n")
    assert uncommitted(tmp_path) == [" M micropie/app.py"]


def test_the_memory_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import memory

    assert memory.main(["--connections", "50", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "50 open WebSockets, median of 1 rounds"
    held = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines[2:]}
    assert list(held) == ["raw", "micropie", "starlette"]
    # Every framework holds something per connection, and more than the bare floor.
    assert 0 < held["raw"] < min(held["micropie"], held["starlette"])
