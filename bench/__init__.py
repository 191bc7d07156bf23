"""Benchmarks: each `bench/bench_*.py` module has `run()` that prints its figures as ratios to a baseline."""
