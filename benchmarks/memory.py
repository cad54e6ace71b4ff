"""Memory per open WebSocket: what each framework holds for a connection that waits.

``python -m benchmarks.memory [--connections N] [--rounds R]``: in a process of its own,
each framework's benchmark application accepts N WebSockets (10,000 by default) whose
handlers then wait for a message; the Python memory they hold (tracemalloc) is divided by
N. The raw ASGI floor holds what the harness makes for each connection and what the least
handler adds; each framework's overhead is its figure less the floor's. The rounds take
turns; each framework's figure is its median.
"""

import argparse
import statistics
import sys

from benchmarks.run import BenchmarkFailed, get_framework, run_harness

FRAMEWORKS = ("raw", "micropie", "starlette")


def measure(connections: int, rounds: int) -> dict[str, float]:
    """Each framework's median bytes per open connection."""
    figures: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
    for _ in range(rounds):
        for name in FRAMEWORKS:
            outcome = run_harness(get_framework(name), {"open_connections": connections})
            figures[name].append(float(outcome["bytes_per_connection"]))
    return {name: statistics.median(values) for name, values in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    if min(options.connections, options.rounds) < 1:
        parser.error("--connections and --rounds take whole numbers above 0")
    try:
        bytes_per = measure(options.connections, options.rounds)
    except BenchmarkFailed as exc:
        print(f"memory: {exc}", file=sys.stderr)
        return 1
    floor = bytes_per["raw"]
    print(f"{options.connections:,} open WebSockets, median of {options.rounds} rounds")
    print(f"{'framework':<10} {'bytes/connection':>17} {'over the floor':>15} {'vs starlette':>13}")
    starlette_over = bytes_per["starlette"] - floor
    for name, held in bytes_per.items():
        over = held - floor
        ratio = f"{over / starlette_over:.2f}x" if name != "raw" and starlette_over > 0 else "-"
        print(f"{name:<10} {held:>17,.0f} {over:>15,.0f} {ratio:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
