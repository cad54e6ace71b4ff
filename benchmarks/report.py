"""The results: medians and ratios, as Markdown, reStructuredText, JSON and a PNG chart."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.frameworks import FRAMEWORKS, LABELS, REPO_ROOT, SERVER_PACKAGES

#: Each workload: its title, and what one operation is.
TITLES = {
    "ws_text": ("Text echo, in process", "message"),
    "ws_binary": ("Binary echo (16 KiB), in process", "message"),
    "ws_handshake": ("Handshake with a session cookie, in process", "handshake"),
    "http_json": ("HTTP GET returning JSON, in process", "request"),
    "e2e_echo": ("Echo through uvicorn, end to end", "message"),
}
DESCRIPTIONS = {
    "ws_text": "{size:,} text messages of 32 characters echoed on one connection",
    "ws_binary": "{size:,} binary messages of 16 KiB echoed on one connection",
    "ws_handshake": "{size:,} connections: accept with a session cookie, echo one message, close",
    "http_json": "{size:,} GET requests answered with a short JSON body",
    "e2e_echo": "{clients} clients, each echoing {messages:,} text messages, one uvicorn worker",
}
#: The multiplication sign of the ratios.
TIMES = "\u00d7"
COLOURS = {
    "raw": "#9e9e9e",
    "micropie": "#d9480f",
    "starlette": "#1971c2",
    "pypi-micropie": "#f59f00",
}


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
        listed = self.settings.get("frameworks", FRAMEWORKS)
        return [name for name in FRAMEWORKS if name in listed]

    @classmethod
    def load(cls, path: Path) -> Results:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


# What the machine and the software are.


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "system": platform.platform(terse=True),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load] if load else None,
    }


def _git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "micropie"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}, with uncommitted changes to micropie/" if dirty else head


def collect_versions(
    frameworks: list[str], harness_versions: dict[str, dict[str, str]], options: dict[str, str]
) -> dict[str, Any]:
    found: dict[str, Any] = {"frameworks": {}, "server": {}, "uvicorn_options": options}
    for name in frameworks:
        reported = harness_versions.get(name, {})
        if name == "starlette":
            version = reported.get("starlette")
        elif name in ("micropie", "pypi-micropie"):
            version = reported.get("micropie")
        else:
            version = None
        found["frameworks"][name] = version
    found["git"] = _git_revision()
    for package in SERVER_PACKAGES:
        try:
            found["server"][package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


# Statistics.


def _median(values: Any) -> float:
    return float(statistics.median(float(value) for value in values))


def median_per_op(cell: dict[str, Any], key: str = "cpu_seconds") -> float:
    return _median(cell[key]) / int(cell["size"])


def spread(cell: dict[str, Any], key: str = "cpu_seconds") -> float:
    """(slowest - fastest) / median of the runs."""
    values = [float(value) for value in cell[key]]
    return (max(values) - min(values)) / _median(values)


def e2e_rate(runs: list[dict[str, Any]]) -> float:
    return _median(run["messages"] / run["seconds"] for run in runs)


def e2e_server_cpu(runs: list[dict[str, Any]]) -> float | None:
    values = [
        run["server_cpu_seconds"] / run["messages"]
        for run in runs
        if run.get("server_cpu_seconds") is not None
    ]
    return _median(values) if values else None


def e2e_client_share(runs: list[dict[str, Any]]) -> float:
    """The clients' CPU time over the wall time: near 1, the clients were the limit."""
    return _median(run["client_cpu_seconds"] / run["seconds"] for run in runs)


def ratios(results: Results, workload: str, key: str = "cpu_seconds") -> dict[str, float]:
    """Each framework's time per operation over the raw ASGI floor's."""
    if workload == "e2e_echo":
        rates = {name: e2e_rate(runs) for name, runs in results.end_to_end.items() if runs}
        if "raw" not in rates:
            return {}
        return {name: rates["raw"] / rate for name, rate in rates.items()}
    cells = results.in_process.get(workload, {})
    if "raw" not in cells:
        return {}
    floor = median_per_op(cells["raw"], key)
    return {name: median_per_op(cell, key) / floor for name, cell in cells.items()}


def compare(results: Results, workload: str, name: str, other: str) -> float | None:
    """*name*'s time per operation over *other*'s (for end to end: *other*'s rate over *name*'s)."""
    if workload == "e2e_echo":
        runs = results.end_to_end
        if not runs.get(name) or not runs.get(other):
            return None
        return e2e_rate(runs[other]) / e2e_rate(runs[name])
    cells = results.in_process.get(workload, {})
    if name not in cells or other not in cells:
        return None
    return median_per_op(cells[name]) / median_per_op(cells[other])


# Text.


def _us(seconds: float) -> str:
    micro = seconds * 1e6
    if micro < 10:
        return f"{micro:.2f} µs"
    if micro < 100:
        return f"{micro:.1f} µs"
    return f"{micro:,.0f} µs"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}{TIMES}"


def summary_line(workload: str, cells: dict[str, Any]) -> str:
    floor = median_per_op(cells["raw"]) if "raw" in cells else None
    parts = []
    for name in FRAMEWORKS:
        if name in cells:
            per_op = median_per_op(cells[name])
            ratio = f" ({per_op / floor:.2f}{TIMES})" if floor else ""
            parts.append(f"{LABELS[name]} {_us(per_op)}{ratio}")
    return f"{workload}: " + ", ".join(parts)


def e2e_summary_line(runs: dict[str, list[dict[str, Any]]]) -> str:
    parts = [f"{LABELS[name]} {e2e_rate(r):,.0f} msg/s" for name, r in runs.items() if r]
    return "e2e_echo: " + ", ".join(parts)


def _description(results: Results, workload: str) -> str:
    settings = results.settings
    if workload == "e2e_echo":
        return DESCRIPTIONS[workload].format(
            clients=settings["clients"], messages=settings["client_messages"]
        )
    return DESCRIPTIONS[workload].format(size=settings["sizes"][workload])


def _runs_in_process(results: Results) -> int:
    return int(results.settings["rounds"]) * int(results.settings["repeats"])


def table_rows(results: Results, key: str = "cpu_seconds") -> list[tuple[str, list[str]]]:
    """One row per workload: its title, then each framework's cell."""
    rows = []
    for workload, cells in results.in_process.items():
        ratio = ratios(results, workload, key)
        row = []
        for name in results.frameworks:
            if name in cells:
                value = median_per_op(cells[name], key)
                row.append(f"{_us(value)} ({_ratio(ratio.get(name))})")
            else:
                row.append("not run")
        rows.append((TITLES[workload][0] + f", per {TITLES[workload][1]}", row))
    if results.end_to_end and key == "cpu_seconds":
        ratio = ratios(results, "e2e_echo")
        row = []
        cpu_row = []
        for name in results.frameworks:
            runs = results.end_to_end.get(name)
            if not runs:
                row.append("not run")
                cpu_row.append("not run")
                continue
            row.append(f"{e2e_rate(runs):,.0f} msg/s ({_ratio(ratio.get(name))})")
            cpu = e2e_server_cpu(runs)
            raw_cpu = e2e_server_cpu(results.end_to_end.get("raw") or [])
            cpu_ratio = cpu / raw_cpu if cpu is not None and raw_cpu else None
            cpu_row.append("n/a" if cpu is None else f"{_us(cpu)} ({_ratio(cpu_ratio)})")
        rows.append((TITLES["e2e_echo"][0] + ", messages per second", row))
        rows.append(("… the server's CPU time per message", cpu_row))
    return rows


def _versions_text(results: Results) -> str:
    versions = results.versions
    parts = []
    for name in results.frameworks:
        version = versions["frameworks"].get(name)
        if name == "raw":
            continue
        text = f"{LABELS[name]} {version or '?'}"
        if name == "micropie" and versions.get("git"):
            text += f" (git {versions['git']})"
        parts.append(text)
    server = versions.get("server", {})
    options = versions.get("uvicorn_options", {})
    if "uvicorn" in server:
        used = ", ".join(f"--{k} {v}" for k, v in options.items())
        parts.append(f"uvicorn {server['uvicorn']} ({used})")
    parts.extend(f"{name} {server[name]}" for name in SERVER_PACKAGES[1:] if name in server)
    return "; ".join(parts)


def machine_text(results: Results) -> str:
    machine = results.machine
    load = machine.get("load_average_before")
    load_text = f", load average {load[0]:.2f} at the start" if load else ""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['system']}, "
        f"{machine['python']}{load_text}"
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def targets(results: Results) -> list[tuple[str, float | None, float, bool]]:
    """MicroPie's targets: (what, measured ratio, limit, whether higher is better)."""
    if "micropie" not in results.frameworks:
        return []
    measured = results.in_process

    def versus(workload: str, other: str) -> float | None:
        return compare(results, workload, "micropie", other)

    rows: list[tuple[str, float | None, float, bool]] = []
    for workload, kind in (("ws_text", "text echo"), ("ws_binary", "binary echo")):
        if workload in measured:
            raw = ratios(results, workload).get("micropie")
            rows.append((f"{kind}: per message vs raw ASGI", raw, 1.15, False))
            rows.append(
                (f"{kind}: per message vs Starlette", versus(workload, "starlette"), 0.7, False)
            )
    if "ws_handshake" in measured:
        rows.append(("per handshake vs Starlette", versus("ws_handshake", "starlette"), 0.8, False))
        pypi = versus("ws_handshake", "pypi-micropie")
        rows.append(("per handshake vs micropie (PyPI)", pypi, 1.0, False))
    if results.end_to_end:
        slower = versus("e2e_echo", "starlette")
        faster = None if slower is None else 1 / slower
        rows.append(("end to end: messages per second vs Starlette", faster, 1.0, True))
    if "http_json" in measured:
        rows.append(
            ("HTTP JSON: per request vs Starlette", versus("http_json", "starlette"), 1.0, False)
        )
    return rows


def _met(value: float | None, limit: float, higher: bool) -> str:
    if value is None:
        return "n/a"
    return "yes" if (value >= limit if higher else value <= limit) else "no"


def markdown(results: Results) -> str:
    frameworks = results.frameworks
    labels = [LABELS[name] for name in frameworks]
    lines = [
        "# MicroPie benchmarks",
        "",
        f"Measured {results.date} on {machine_text(results)}.",
        f"Versions: {_versions_text(results)}.",
        f"The whole run took {_duration(results.duration_seconds)} (`{results.command}`).",
        "",
        "Median time per operation; in brackets, the ratio to the raw ASGI floor "
        "(lower is better). In process: the CPU time of the framework's process, median "
        f"of {_runs_in_process(results)} runs. End to end: messages per second, median of "
        f"{results.settings['e2e_rounds']} runs, and its ratio as time per message.",
        "",
        "| Workload | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for title, row in table_rows(results):
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    lines += ["", "What each workload does:", ""]
    for workload in [*results.in_process, *(["e2e_echo"] if results.end_to_end else [])]:
        lines.append(f"- {TITLES[workload][0]}: {_description(results, workload)}.")
    rows = targets(results)
    if rows:
        lines += [
            "",
            "## MicroPie against its targets",
            "",
            "| Ratio | Measured | Target | Met |",
            "|---|---:|---:|---|",
        ]
        for what, value, limit, higher in rows:
            sign = "≥" if higher else "≤"
            met = _met(value, limit, higher)
            lines.append(f"| {what} | {_ratio(value)} | {sign} {limit:.2f}{TIMES} | {met} |")
    if results.in_process:
        lines += [
            "",
            "## Wall-clock time",
            "",
            "The same runs timed by the clock on the wall, which other processes on the "
            "machine can stretch:",
            "",
            "| Workload | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels),
        ]
        for title, row in table_rows(results, "wall_seconds"):
            lines.append(f"| {title} | " + " | ".join(row) + " |")
        lines += [
            "",
            "Spread of the in-process runs, (slowest - fastest) / median of CPU time:",
            "",
            "| Workload | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels),
        ]
        for workload, cells in results.in_process.items():
            row = [f"{spread(cells[n]):.0%}" if n in cells else "not run" for n in frameworks]
            lines.append(f"| {TITLES[workload][0]} | " + " | ".join(row) + " |")
    if results.end_to_end:
        lines += [
            "",
            "End to end, the clients' CPU time over the wall time (near 100%, the "
            "clients, not the server, set the pace): "
            + ", ".join(
                f"{LABELS[n]} {e2e_client_share(r):.0%}" for n, r in results.end_to_end.items() if r
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def rst_fragment(results: Results) -> str:
    """The table for the docs page (``.. include::``), with the machine and versions."""
    frameworks = results.frameworks
    lines = [
        f"Measured {results.date} on {_rst_escape(machine_text(results))}. "
        f"Versions: {_rst_escape(_versions_text(results))}. "
        f"The whole run took {_duration(results.duration_seconds)}.",
        "",
        ".. list-table:: Median time per operation, and its ratio to raw ASGI (lower is better)",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
        "   * - Workload",
    ]
    lines += [f"     - {LABELS[name]}" for name in frameworks]
    for title, row in table_rows(results):
        lines.append(f"   * - {_rst_escape(title)}")
        lines += [f"     - {_rst_escape(cell)}" for cell in row]
    lines.append("")
    return "\n".join(lines)


# The chart.

#: The chart's size: one column of panels, as wide as the Performance page's
#: text (about 800 CSS pixels), drawn at twice that for sharp high-DPI screens.
CHART_WIDTH_INCHES = 8.0
CHART_DPI = 200
#: Font sizes in points; at the page's width one point is about 1.4 CSS pixels,
#: so that the smallest text stays above 12 pixels.
FONT_SIZES = {"title": 14.0, "panel": 12.0, "label": 11.0, "value": 11.0, "note": 10.0}
# The layout, in inches: the header, then per panel its title and a row per bar.
_HEADER_INCHES = 1.0
_PANEL_TITLE_INCHES = 0.66  # two lines: what ran, and what is measured
_BAR_INCHES = 0.33
_PANEL_GAP_INCHES = 0.2
_LABELS_INCHES = 2.0  # left of the bars: the frameworks' names
_MARGIN_INCHES = 0.1


def _chart_bars(results: Results, workload: str) -> list[tuple[str, float, str]]:
    """(framework, value, its label) for each framework measured in *workload*."""
    ratio = ratios(results, workload)
    bars = []
    for name in results.frameworks:
        if workload == "e2e_echo":
            runs = results.end_to_end.get(name)
            if not runs:
                continue
            value = e2e_rate(runs) / 1000
            text = f"{value:,.1f}k msg/s"
        else:
            cell = results.in_process[workload].get(name)
            if cell is None:
                continue
            value = median_per_op(cell) * 1e6
            text = _us(value / 1e6)
        if name in ratio:
            text += f"  ({ratio[name]:.2f}{TIMES})"
        bars.append((name, value, text))
    return bars


def chart(results: Results, path: Path) -> None:
    """One horizontal bar chart per workload, stacked, each bar labelled with its value."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(results.in_process) + (["e2e_echo"] if results.end_to_end else [])
    panels = [(workload, _chart_bars(results, workload)) for workload in workloads]
    rows = [_BAR_INCHES * max(len(bars), 1) for _, bars in panels]
    height = _HEADER_INCHES + sum(rows) + len(rows) * (_PANEL_TITLE_INCHES + _PANEL_GAP_INCHES)
    width = CHART_WIDTH_INCHES
    figure = plt.figure(figsize=(width, height))
    left = _MARGIN_INCHES / width

    figure.text(left, 1 - 0.12 / height, f"MicroPie benchmarks, {results.date}",
                fontsize=FONT_SIZES["title"], fontweight="bold", va="top")  # fmt: skip
    note = textwrap.fill(
        f"In brackets, each bar's ratio to raw ASGI (1.00{TIMES} is the floor). "
        f"{machine_text(results)}.",
        width=105,
    )
    figure.text(left, 1 - 0.45 / height, note, fontsize=FONT_SIZES["note"], va="top",
                color="#495057", linespacing=1.3)  # fmt: skip

    top = height - _HEADER_INCHES  # inches from the bottom, going down
    for (workload, bars), row in zip(panels, rows, strict=True):
        title, unit = TITLES[workload]
        if workload == "e2e_echo":
            measure = "Thousand messages per second; higher is better."
        else:
            measure = f"CPU time per {unit}; lower is better."
        figure.text(left, (top - 0.06) / height, title,
                    fontsize=FONT_SIZES["panel"], fontweight="bold", va="top")  # fmt: skip
        figure.text(left, (top - 0.33) / height, measure,
                    fontsize=FONT_SIZES["note"], color="#495057", va="top")  # fmt: skip
        top -= _PANEL_TITLE_INCHES
        axis = figure.add_axes(
            (
                _LABELS_INCHES / width,
                (top - row) / height,
                1 - (_LABELS_INCHES + _MARGIN_INCHES) / width,
                row / height,
            )
        )
        top -= row + _PANEL_GAP_INCHES
        names = [name for name, _, _ in bars]
        values = [value for _, value, _ in bars]
        drawn = axis.barh(range(len(bars)), values, color=[COLOURS[n] for n in names], height=0.72)
        axis.bar_label(
            drawn, labels=[text for _, _, text in bars], padding=4, fontsize=FONT_SIZES["value"]
        )
        axis.set_yticks(range(len(bars)), [LABELS[n] for n in names])
        axis.tick_params(axis="y", length=0, labelsize=FONT_SIZES["label"])
        for tick, name in zip(axis.get_yticklabels(), names, strict=True):
            if name == "micropie":
                tick.set_fontweight("bold")
        axis.set_ylim(len(bars) - 0.5, -0.5)  # top to bottom in the table's order
        # Room on the right for the longest label; the labels give the values.
        axis.set_xlim(0, max(values, default=1) * 1.5)
        axis.set_xticks([])
        axis.spines[["top", "right", "bottom"]].set_visible(False)
    figure.savefig(path, dpi=CHART_DPI)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report``: draw the chart again from a results.json, nothing else."""
    import argparse

    default = REPO_ROOT / "docs" / "source" / "_static" / "benchmarks" / "results.json"
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Draw results.png from a results.json, without running or rewriting anything.",
    )
    parser.add_argument("results", type=Path, nargs="?", default=default, help="a results.json")
    parser.add_argument(
        "--chart", type=Path, help="where to write the PNG (default: results.png beside it)"
    )
    args = parser.parse_args(argv)
    output = args.chart or args.results.with_name("results.png")
    chart(Results.load(args.results), output)
    print(f"wrote {output}")
    return 0


def write_all(results: Results, directory: Path, *, chart_png: bool = True) -> list[Path]:
    """Write results.json, results.md, results.inc and (unless told not to) results.png."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    path = directory / "results.json"
    path.write_text(json.dumps(asdict(results), indent=1) + "\n", encoding="utf-8")
    written.append(path)
    path = directory / "results.md"
    path.write_text(markdown(results), encoding="utf-8")
    written.append(path)
    path = directory / "results.inc"
    path.write_text(rst_fragment(results), encoding="utf-8")
    written.append(path)
    if chart_png:
        path = directory / "results.png"
        chart(results, path)
        written.append(path)
    return written


if __name__ == "__main__":
    raise SystemExit(main())
