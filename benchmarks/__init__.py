"""Benchmarks: how fast the core reconciles, and how fast the harness fuzzes and simulates.

Run them with ``python -m benchmarks`` (or ``tox -e bench``). The machines these run on are
shared and noisy, so every figure is a ratio against a baseline measured in the same
process, in the same run, interleaved with the subject (see :mod:`benchmarks.measure`);
a bare time would say more about the neighbours than about the code.
"""
