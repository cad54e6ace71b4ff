"""MicroPie's benchmark suite: ``python -m benchmarks`` (see docs/source/performance.rst)."""
