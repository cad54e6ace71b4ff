"""MicroPie's benchmark suite: ``python -m benchmarks`` (not part of the test run).

See ``docs/source/performance.rst`` for the method, and ``benchmarks/run.py``
for the options.
"""
