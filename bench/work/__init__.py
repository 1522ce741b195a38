"""Measured processes: ``python -m bench.work <job> '<json params>'``, one fresh process per scenario.

Each job prints one ``BENCH_RESULT {json}`` line; the runner reads it.
"""
