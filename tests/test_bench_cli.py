"""`make bench ARGS=...`: help lists every benchmark's options, and an option no chosen benchmark
reads stops before anything runs (it used to be ignored, and ``--help`` ran every benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_help_lists_each_benchmark_and_its_options_without_running_any() -> None:
    done = _bench("--help")
    assert done.returncode == 0, done.stderr
    listed = {}
    lines = done.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("options:"):
            listed[lines[i - 1].split()[0]] = line.split("options:")[1].strip()
    assert listed == {"cursor": "--quick, --repeat=N", "localcognito": "--users=N",
                      "migrate": "--quick, --chunk-rows=N, --rate=N", "plan": "--quick, --repeat=N"}
    assert "== bench" not in done.stdout                 # nothing ran


def test_an_option_the_benchmark_does_not_read_stops_before_it_runs() -> None:
    done = _bench("plan", "--users=3")
    assert done.returncode == 2
    assert "bench plan does not take --users=3" in done.stderr
    assert "== bench" not in done.stdout
    assert _bench("--no-such-option").returncode == 2
