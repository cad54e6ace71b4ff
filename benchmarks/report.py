"""The results: medians and ratios, as Markdown, reStructuredText, JSON and a PNG chart."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.frameworks import FRAMEWORKS, LABELS, REPO_ROOT, SERVER_PACKAGES, server_versions

E2E = "e2e_echo"
#: Each workload: its title, what one operation is, and what a run does.
WORKLOADS = {
    "ws_text": ("Text echo, in process", "message",
                "{size:,} text messages of 32 characters echoed on one connection"),
    "ws_binary": ("Binary echo (16 KiB), in process", "message",
                  "{size:,} binary messages of 16 KiB echoed on one connection"),
    "ws_handshake": ("Handshake with a session cookie, in process", "handshake",
                     "{size:,} connections: accept with a session cookie, echo one message, close"),
    "http_json": ("HTTP GET returning JSON, in process", "request",
                  "{size:,} GET requests answered with a short JSON body"),
    E2E: ("Echo through uvicorn, end to end", "message", "{clients} clients, each echoing "
          "{client_messages:,} text messages, one uvicorn worker"),
}  # fmt: skip
TIMES = "\u00d7"  # the multiplication sign of the ratios


@dataclass
class Results:
    settings: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, Any]
    #: workload -> framework -> {"size", "wall_seconds": [...], "cpu_seconds": [...]}
    in_process: dict[str, dict[str, Any]]
    #: framework -> one dict per run (messages, seconds, server_cpu_seconds, ...)
    end_to_end: dict[str, list[dict[str, Any]]]
    duration_seconds: float
    command: str = "python -m benchmarks"
    date: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    )

    @property
    def frameworks(self) -> list[str]:
        return [name for name in FRAMEWORKS if name in self.settings["frameworks"]]

    @property
    def workloads(self) -> list[str]:
        return [*self.in_process, *([E2E] if self.end_to_end else [])]

    @classmethod
    def load(cls, path: Path) -> Results:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((li.split(":")[1].strip() for li in lines if li.startswith("model name")), cpu)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(terse=True),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load] if load else None,
    }


def collect_versions(
    harness: dict[str, dict[str, str]], options: dict[str, str], source: Path = REPO_ROOT
) -> dict[str, Any]:
    """The frameworks' versions as their processes reported them; the server's; git's."""
    try:
        git = ["git", "-C", str(source)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "micropie"], capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
        revision: str | None = head + (", with uncommitted changes to micropie/" * bool(dirty))
    except (OSError, subprocess.CalledProcessError):
        revision = None
    package = {"starlette": "starlette", "micropie": "micropie", "pypi-micropie": "micropie"}
    return {
        "frameworks": {name: got.get(package.get(name, "")) for name, got in harness.items()},
        "server": server_versions(),
        "uvicorn_options": options,
        "git": revision,
        **({"micropie_source": str(source)} if source != REPO_ROOT else {}),
    }


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(float(value) for value in values))


def time_per_op(
    results: Results, workload: str, name: str, measure: str = "cpu_seconds"
) -> float | None:
    """*name*'s median seconds per operation. In process, *measure* is ``cpu_seconds`` or
    ``wall_seconds``; end to end, ``server_cpu`` (per message) or else the inverse rate."""
    if workload != E2E:
        cell = results.in_process.get(workload, {}).get(name)
        return None if cell is None else _median(cell[measure]) / int(cell["size"])
    runs = results.end_to_end.get(name) or []
    if measure == "server_cpu":
        runs = [r for r in runs if r.get("server_cpu_seconds") is not None]
        return _median(r["server_cpu_seconds"] / r["messages"] for r in runs) if runs else None
    return 1 / _median(r["messages"] / r["seconds"] for r in runs) if runs else None


def vs_raw(results: Results, workload: str, name: str, measure: str = "cpu_seconds") -> str:
    """*name*'s time per operation over raw ASGI's, as the tables show it."""
    mine, theirs = (time_per_op(results, workload, n, measure) for n in (name, "raw"))
    return f"{mine / theirs:.2f}{TIMES}" if mine is not None and theirs else "n/a"


def _us(seconds: float) -> str:
    micro = seconds * 1e6
    return f"{micro:.{2 if micro < 10 else 1}f} µs" if micro < 100 else f"{micro:,.0f} µs"


def _rate(seconds: float) -> str:
    return f"{1 / seconds:,.0f} msg/s"


def table_rows(results: Results, measure: str = "cpu_seconds") -> list[tuple[str, list[str]]]:
    """(title, each framework's cell): time per operation and ratio to raw ASGI."""
    rows = [
        (w, f"{WORKLOADS[w][0]}, per {WORKLOADS[w][1]}", measure, _us) for w in results.in_process
    ]
    if results.end_to_end and measure == "cpu_seconds":
        rows.append((E2E, f"{WORKLOADS[E2E][0]}, messages per second", measure, _rate))
        rows.append((E2E, "… the server's CPU time per message", "server_cpu", _us))
    table = []
    for workload, title, how, show in rows:
        cells = []
        for name in results.frameworks:
            value = time_per_op(results, workload, name, how)
            ratio = vs_raw(results, workload, name, how)
            cells.append("n/a" if value is None else f"{show(value)} ({ratio})")
        table.append((title, cells))
    return table


def machine_text(results: Results) -> str:
    machine, load = results.machine, results.machine.get("load_average_before")
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['system']}, {machine['python']}"
        + (f", load average {load[0]:.2f} at the start" if load else "")
    )


def _about(results: Results) -> str:
    """Where it ran, the versions, how long it took: the text above each table."""
    versions, server = results.versions, results.versions.get("server", {})
    parts = []
    for name in (name for name in results.frameworks if name != "raw"):
        git = f" (git {versions['git']})" if name == "micropie" and versions.get("git") else ""
        where = versions.get("micropie_source") if name == "micropie" else None
        version = versions["frameworks"].get(name) or "?"
        parts.append(f"{LABELS[name]} {version}{git}" + (f" from {where}" if where else ""))
    if "uvicorn" in server:
        used = ", ".join(f"--{k} {v}" for k, v in versions.get("uvicorn_options", {}).items())
        parts.append(f"uvicorn {server['uvicorn']} ({used})")
    parts += [f"{name} {server[name]}" for name in SERVER_PACKAGES[1:] if name in server]
    minutes, rest = divmod(round(results.duration_seconds), 60)
    took = f"{minutes} min {rest} s" if minutes else f"{rest} s"
    return (
        f"Measured {results.date} on {machine_text(results)}. Versions: {'; '.join(parts)}. "
        f"The whole run took {took}"
    )


def markdown(results: Results) -> str:
    settings = results.settings
    header = ["Workload", *(LABELS[name] for name in results.frameworks)]

    def table(measure: str) -> list[str]:
        rows = [header, ["---", *["---:"] * len(results.frameworks)]]
        rows += [[title, *cells] for title, cells in table_rows(results, measure)]
        return ["| " + " | ".join(row) + " |" for row in rows]

    e2e_note = (
        f" End to end: messages per second, median of {settings['e2e_rounds']} runs, and its "
        "ratio as time per message."
    ) * bool(results.end_to_end)
    lines = [
        "# MicroPie benchmarks", "", f"{_about(results)} (`{results.command}`).", "",
        "Median time per operation; in brackets, the ratio to the raw ASGI floor (lower is "
        "better). In process: the CPU time of the framework's process, median of "
        f"{settings['rounds'] * settings['repeats']} runs.{e2e_note}", "",
        *table("cpu_seconds"), "", "What each workload does:", "",
    ]  # fmt: skip
    for workload in results.workloads:
        title, _, does = WORKLOADS[workload]
        lines.append(f"- {title}: {does.format(size=settings['sizes'].get(workload), **settings)}.")
    if results.in_process:
        lines += ["", "## Wall-clock time", "", "The same runs timed by the clock on the wall, "
                  "which other processes on the machine can stretch:", ""]  # fmt: skip
        lines += table("wall_seconds")
    if results.end_to_end:
        shares = ", ".join(
            f"{LABELS[name]} {_median(r['client_cpu_seconds'] / r['seconds'] for r in runs):.0%}"
            for name, runs in results.end_to_end.items()
        )
        lines += ["", "End to end, the clients' CPU time over the wall time (near 100%, the "
                  f"clients, not the server, set the pace): {shares}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def rst_fragment(results: Results) -> str:
    """The table for the docs page (``.. include::``), with the machine and versions."""

    def escape(text: str) -> str:
        for special in "\\*`|":
            text = text.replace(special, "\\" + special)
        return text

    lines = [
        escape(_about(results)) + ".", "",
        ".. list-table:: Median time per operation, and its ratio to raw ASGI (lower is better)",
        "   :header-rows: 1", "   :stub-columns: 1", "", "   * - Workload",
        *(f"     - {LABELS[name]}" for name in results.frameworks),
    ]  # fmt: skip
    for title, cells in table_rows(results):
        lines += [f"   * - {escape(title)}", *(f"     - {escape(cell)}" for cell in cells)]
    return "\n".join(lines) + "\n"


#: The chart: one column of panels as wide as the Performance page's text (about
#: 800 CSS pixels), drawn at twice that for sharp high-DPI screens. Font sizes in
#: points: at the page's width a point is about 1.4 CSS pixels, so the smallest
#: text stays above 12 pixels.
CHART_WIDTH_INCHES = 8.0
CHART_DPI = 200
FONT_SIZES = {"title": 14.0, "panel": 12.0, "label": 11.0, "value": 11.0, "note": 10.0}
# In inches: the header; per panel its title (what ran, what is measured), a row
# per bar and a gap; left of the bars, the frameworks' names; the margin.
HEADER, PANEL_TITLE, BAR, GAP, NAMES, MARGIN = 1.0, 0.66, 0.33, 0.2, 2.0, 0.1


def chart(results: Results, path: Path) -> None:
    """One horizontal bar chart per workload, stacked, each bar labelled with its value."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for workload in results.workloads:
        bars = []  # (framework, value, its label)
        for name in results.frameworks:
            if (seconds := time_per_op(results, workload, name)) is not None:
                e2e = workload == E2E
                label = f"{1 / seconds / 1000:,.1f}k msg/s" if e2e else _us(seconds)
                ratio = vs_raw(results, workload, name)
                bars.append(
                    (name, 1 / seconds / 1000 if e2e else seconds * 1e6, f"{label}  ({ratio})")
                )
        panels.append((workload, bars))
    rows = [BAR * max(len(bars), 1) for _, bars in panels]
    width, height = CHART_WIDTH_INCHES, HEADER + sum(rows) + len(rows) * (PANEL_TITLE + GAP)
    figure = plt.figure(figsize=(width, height))

    def text(top: float, words: str, size: str, **style: Any) -> None:
        figure.text(
            MARGIN / width, top / height, words, fontsize=FONT_SIZES[size], va="top", **style
        )

    text(height - 0.12, f"MicroPie benchmarks, {results.date}", "title", fontweight="bold")
    note = f"In brackets, each bar's ratio to raw ASGI (1.00{TIMES} is the floor). "
    note = textwrap.fill(note + machine_text(results) + ".", width=105)
    text(height - 0.45, note, "note", color="#495057", linespacing=1.3)
    top = height - HEADER  # inches from the bottom, going down
    for (workload, bars), row in zip(panels, rows, strict=True):
        title, unit, _ = WORKLOADS[workload]
        text(top - 0.06, title, "panel", fontweight="bold")
        what = (
            "Thousand messages per second; higher"
            if workload == E2E
            else f"CPU time per {unit}; lower"
        )
        text(top - 0.33, f"{what} is better.", "note", color="#495057")
        top -= PANEL_TITLE + row
        axis = figure.add_axes(
            (NAMES / width, top / height, 1 - (NAMES + MARGIN) / width, row / height)
        )
        top -= GAP
        names, values, labels = zip(*bars, strict=True) if bars else ((), (), ())
        drawn = axis.barh(
            range(len(bars)), values, color=[FRAMEWORKS[n].colour for n in names], height=0.72
        )
        axis.bar_label(drawn, labels=labels, padding=4, fontsize=FONT_SIZES["value"])
        axis.set_yticks(range(len(bars)), [LABELS[name] for name in names])
        axis.tick_params(axis="y", length=0, labelsize=FONT_SIZES["label"])
        for tick, name in zip(axis.get_yticklabels(), names, strict=True):
            tick.set_fontweight("bold" if name == "micropie" else "normal")
        axis.set_ylim(len(bars) - 0.5, -0.5)  # top to bottom in the table's order
        # Room on the right for the longest label; the labels give the values.
        axis.set_xlim(0, max(values, default=1) * 1.5)
        axis.set_xticks([])
        axis.spines[["top", "right", "bottom"]].set_visible(False)
    figure.savefig(path, dpi=CHART_DPI)
    plt.close(figure)


def write_all(results: Results, directory: Path, *, chart_png: bool = True) -> list[Path]:
    """Write results.json, results.md, results.inc and (unless told not to) results.png."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "results.json": json.dumps(asdict(results), indent=1) + "\n",
        "results.md": markdown(results),
        "results.inc": rst_fragment(results),
    }
    for name, content in texts.items():
        (directory / name).write_text(content, encoding="utf-8")
    if chart_png:
        chart(results, directory / "results.png")
    return [directory / name for name in [*texts, *(["results.png"] if chart_png else [])]]
