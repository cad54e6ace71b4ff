"""The results: medians and ratios, as Markdown, reStructuredText, JSON and a PNG chart."""

import json
import statistics
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

#: The servers of the end-to-end runs, and what each run does: ``e2e_<kind>:<server>``.
SERVERS = ("uvicorn", "hypercorn", "granian")
E2E_WORKLOADS = [f"e2e_{kind}:{server}" for server in SERVERS for kind in ("echo", "handshake")]


def e2e_parts(workload: str) -> tuple[str, str]:
    """The kind (``echo``, ``handshake``) and the server of an end-to-end workload."""
    kind, _, server = workload.removeprefix("e2e_").partition(":")
    return kind, server


#: Each workload: its title, and what one operation is.
WORKLOADS = {
    "ws_text": ("Text echo, in process", "message"),
    "ws_text_2_3": ("Text echo, ASGI 2.3 (hypercorn, granian), in process", "message"),
    "ws_text_2_0": ("Text echo, ASGI 2.0 (daphne), in process", "message"),
    "ws_binary": ("Binary echo (16 KiB), in process", "message"),
    "ws_handshake": ("Handshake with a session cookie, in process", "handshake"),
    "http_json": ("HTTP GET returning JSON, in process", "request"),
    "http_json_sync": ("The same from a def handler (a worker thread), in process", "request"),
    **{
        workload: (
            f"Echo through {e2e_parts(workload)[1]}, end to end"
            if e2e_parts(workload)[0] == "echo"
            else f"Handshakes through {e2e_parts(workload)[1]}, end to end",
            "message" if e2e_parts(workload)[0] == "echo" else "handshake",
        )
        for workload in E2E_WORKLOADS
    },
}
TIMES = "\u00d7"  # the multiplication sign of the ratios
#: The frameworks in the table's order, the floor first: each one's label and colour.
FRAMEWORKS = {
    "raw": ("raw ASGI", "#9e9e9e"),
    "micropie": ("micropie (this repo)", "#d9480f"),
    "starlette": ("Starlette", "#1971c2"),
    "pypi-micropie": ("micropie (PyPI)", "#f59f00"),
}


@dataclass
class Results:
    settings: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, Any]
    #: workload -> framework -> {"size", "wall_seconds": [...], "cpu_seconds": [...]}
    in_process: dict[str, dict[str, Any]]
    #: workload -> framework -> one dict per run (operations, seconds, server_cpu_seconds, ...)
    end_to_end: dict[str, dict[str, list[dict[str, Any]]]]
    duration_seconds: float
    command: str
    date: str

    @property
    def frameworks(self) -> list[str]:
        return [name for name in FRAMEWORKS if name in self.settings["frameworks"]]

    @property
    def workloads(self) -> list[str]:
        return [*self.in_process, *self.end_to_end]

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(float(value) for value in values))


def measured(
    results: Results, workload: str, measure: str = "cpu_seconds"
) -> dict[str, tuple[float, str]]:
    """Each framework's median seconds per operation (*measure*: ``cpu_seconds``, ``wall_seconds``;
    end to end, ``server_cpu`` or else the inverse rate), and its ratio to raw ASGI as shown."""

    def seconds(name: str) -> float | None:
        if workload not in E2E_WORKLOADS:
            cell = results.in_process.get(workload, {}).get(name)
            return None if cell is None else _median(cell[measure]) / int(cell["size"])
        runs = results.end_to_end.get(workload, {}).get(name) or []
        if measure == "server_cpu":
            runs = [r for r in runs if r.get("server_cpu_seconds") is not None]
            return (
                _median(r["server_cpu_seconds"] / r["operations"] for r in runs) if runs else None
            )
        return 1 / _median(r["operations"] / r["seconds"] for r in runs) if runs else None

    raw, found = seconds("raw"), {}
    for name in results.frameworks:
        if (mine := seconds(name)) is not None:
            found[name] = (mine, f"{mine / raw:.2f}{TIMES}" if raw else "n/a")
    return found


def _us(seconds: float) -> str:
    micro = seconds * 1e6
    return f"{micro:.{2 if micro < 10 else 1}f} µs" if micro < 100 else f"{micro:,.0f} µs"


def table(results: Results, measure: str = "cpu_seconds") -> list[list[str]]:
    """The header, then a row per workload of each framework's time per operation and
    ratio; end to end, the messages per second and the server's CPU time per message."""
    rows = [(w, "{}, per {}".format(*WORKLOADS[w]), measure, _us) for w in results.in_process]
    for workload in results.end_to_end if measure == "cpu_seconds" else ():
        title, unit = WORKLOADS[workload]
        short = "msg" if unit == "message" else "hs"
        rate = f"{title}, {unit}s per second"
        rows.append((workload, rate, measure, lambda s, short=short: f"{1 / s:,.0f} {short}/s"))
        rows.append((workload, f"… the server's CPU time per {unit}", "server_cpu", _us))
    lines = [["Workload", *(FRAMEWORKS[name][0] for name in results.frameworks)]]
    for workload, title, how, show in rows:
        cells = dict.fromkeys(results.frameworks, "n/a")
        for name, (seconds, ratio) in measured(results, workload, how).items():
            cells[name] = f"{show(seconds)} ({ratio})"
        lines.append([title, *cells.values()])
    return lines


def machine_text(results: Results) -> str:
    machine, load = results.machine, results.machine.get("load_average_before")
    text = f"{machine['cpu']}, {machine['cores']} cores, {machine['system']}, {machine['python']}"
    return text + (f", load average {load[0]:.2f} at the start" if load else "")


def _about(results: Results) -> str:
    """Where it ran, the versions, how long it took: the text above each table."""
    versions, server = results.versions, results.versions.get("server", {})
    parts = []
    for name in (name for name in results.frameworks if name != "raw"):
        git = f" (git {versions['git']})" if name == "micropie" and versions.get("git") else ""
        where = versions.get("micropie_source") if name == "micropie" else None
        version = versions["frameworks"].get(name) or "?"
        parts.append(f"{FRAMEWORKS[name][0]} {version}{git}" + (f" from {where}" if where else ""))
    if "uvicorn" in server:
        used = ", ".join(f"--{k} {v}" for k, v in versions.get("uvicorn_options", {}).items())
        parts.append(f"uvicorn {server['uvicorn']} ({used})")
    parts += [f"{name} {version}" for name, version in server.items() if name != "uvicorn"]
    minutes, rest = divmod(round(results.duration_seconds), 60)
    took = f"{minutes} min {rest} s" if minutes else f"{rest} s"
    about = f"Measured {results.date} on {machine_text(results)}. Versions: {'; '.join(parts)}."
    return f"{about} The whole run took {took}"


def markdown(results: Results) -> str:
    settings = results.settings

    def markdown_table(measure: str) -> list[str]:
        header, *rows = table(results, measure)
        rows = [header, ["---", *["---:"] * len(results.frameworks)], *rows]
        return ["| " + " | ".join(row) + " |" for row in rows]

    e2e_note = (
        " End to end: each server on one core, the load (picows clients) on the other;"
        f" operations per second, median of {settings['e2e_rounds']} runs, and its ratio as"
        " time per operation."
    ) * bool(results.end_to_end)
    sizes = [f"{workload} {settings['sizes'][workload]:,}" for workload in results.in_process]
    if results.end_to_end:
        sizes.append(f"echo {settings['clients']} clients {TIMES} {settings['client_messages']:,}")
        sizes.append(
            f"handshakes {settings['handshake_clients']} loops {TIMES} "
            f"{settings['client_handshakes']:,}"
        )
    lines = [
        "# MicroPie benchmarks", "", f"{_about(results)} (`{results.command}`).", "",
        "Median time per operation; in brackets, the ratio to the raw ASGI floor (lower is "
        "better). In process: the CPU time of the framework's process, median of "
        f"{settings['rounds']} runs.{e2e_note} Operations per run: {'; '.join(sizes)}.", "",
        *markdown_table("cpu_seconds"),
    ]  # fmt: skip
    if results.in_process:
        lines += ["", "## Wall-clock time", "", "The same runs timed by the clock on the wall, "
                  "which other processes on the machine can stretch:", "",
                  *markdown_table("wall_seconds")]  # fmt: skip
    if results.end_to_end:
        lines += ["", "End to end, the load's CPU time over the wall time (well under 100%: "
                  "the load waits for the server; near 100%: the load sets the pace, and the "
                  "server's CPU time per operation is the figure to compare):", ""]  # fmt: skip
        for workload, by_framework in results.end_to_end.items():
            shares = ", ".join(
                f"{FRAMEWORKS[name][0]} "
                f"{_median(r['client_cpu_seconds'] / r['seconds'] for r in runs):.0%}"
                for name, runs in by_framework.items()
            )
            lines.append(f"- {WORKLOADS[workload][0]}: {shares}")
    return "\n".join(lines) + "\n"


def rst_fragment(results: Results) -> str:
    """The table for the docs page (``.. include::``), with the machine and versions."""
    escape = str.maketrans({special: "\\" + special for special in "\\*`|"})
    lines = [
        _about(results).translate(escape) + ".", "",
        ".. list-table:: Median time per operation, and its ratio to raw ASGI (lower is better)",
        "   :header-rows: 1", "   :stub-columns: 1", "",
    ]  # fmt: skip
    for first, *rest in table(results):
        lines.append(f"   * - {first.translate(escape)}")
        lines += [f"     - {cell.translate(escape)}" for cell in rest]
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [measured(results, workload) for workload in results.workloads]
    width = CHART_WIDTH_INCHES
    height = HEADER + sum(BAR * len(bars) for bars in panels) + len(panels) * (PANEL_TITLE + GAP)
    figure = plt.figure(figsize=(width, height))

    def text(top: float, words: str, size: str, **style: Any) -> None:
        x, y = MARGIN / width, top / height
        figure.text(x, y, words, fontsize=FONT_SIZES[size], va="top", **style)

    text(height - 0.12, f"MicroPie benchmarks, {results.date}", "title", fontweight="bold")
    note = f"In brackets, each bar's ratio to raw ASGI (1.00{TIMES} is the floor). "
    note = textwrap.fill(note + machine_text(results) + ".", width=105)
    text(height - 0.45, note, "note", color="#495057", linespacing=1.3)
    top = height - HEADER  # inches from the bottom, going down
    for workload, bars in zip(results.workloads, panels, strict=True):
        (title, unit), e2e = WORKLOADS[workload], workload in E2E_WORKLOADS
        what = f"Thousand {unit}s per second; higher" if e2e else f"CPU time per {unit}; lower"
        text(top - 0.06, title, "panel", fontweight="bold")
        text(top - 0.33, f"{what} is better.", "note", color="#495057")
        row = BAR * len(bars)
        top -= PANEL_TITLE + row
        axis = figure.add_axes(
            (NAMES / width, top / height, 1 - (NAMES + MARGIN) / width, row / height)
        )
        top -= GAP
        names, values, labels = list(bars), [], []
        for seconds, ratio in bars.values():
            values.append(1 / seconds / 1000 if e2e else seconds * 1e6)
            shown = f"{values[-1]:,.2f}k/s" if e2e else _us(seconds)
            labels.append(f"{shown}  ({ratio})")
        colours = [FRAMEWORKS[name][1] for name in names]
        drawn = axis.barh(range(len(bars)), values, color=colours, height=0.72)
        axis.bar_label(drawn, labels=labels, padding=4, fontsize=FONT_SIZES["value"])
        axis.set_yticks(range(len(bars)), [FRAMEWORKS[name][0] for name in names])
        axis.tick_params(axis="y", length=0, labelsize=FONT_SIZES["label"])
        for tick, name in zip(axis.get_yticklabels(), names, strict=True):
            tick.set_fontweight("bold" if name == "micropie" else "normal")
        axis.set_ylim(len(bars) - 0.5, -0.5)  # top to bottom in the table's order
        # Room on the right for the longest label; the labels give the values.
        axis.set_xlim(0, max(values) * 1.5)
        axis.set_xticks([])
        axis.spines[["top", "right", "bottom"]].set_visible(False)
    figure.savefig(path, dpi=CHART_DPI)
    plt.close(figure)


def write_all(results: Results, directory: Path) -> None:
    """Write results.json, results.md, results.inc and, where matplotlib is, results.png."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "results.json": json.dumps(asdict(results), indent=1) + "\n",
        "results.md": markdown(results),
        "results.inc": rst_fragment(results),
    }
    for name, content in texts.items():
        (directory / name).write_text(content, encoding="utf-8")
        print(f"wrote {directory / name}")
    try:
        chart(results, directory / "results.png")
        print(f"wrote {directory / 'results.png'}")
    except ModuleNotFoundError as exc:  # matplotlib comes with the bench extra
        print(f"no chart: {exc}")
