"""Benchmarks (``make bench``): each ``bench/bench_*.py`` has ``main(argv) -> dict`` and prints ratios."""
