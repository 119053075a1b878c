"""The CLI's Arrow memory pool: jemalloc, with the same decays in every arena (``cli._arrow_memory_pool``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# every arena is made by a thread's first allocation; the CLI's plan allocates on four threads
_ALLOCATE_ON_THREADS = """
import sys, threading
from pipeline.cli import _arrow_memory_pool
_arrow_memory_pool()
import pyarrow as pa
if pa.default_memory_pool().backend_name != "jemalloc":
    print("no jemalloc")
    sys.exit(0)
held, ready = [], threading.Barrier(4)
def allocate():
    held.append(pa.allocate_buffer(1 << 22))
    ready.wait()
threads = [threading.Thread(target=allocate) for _ in range(3)]
for t in threads:
    t.start()
allocate()
for t in threads:
    t.join()
sys.stderr.flush()
pa.default_memory_pool().print_stats()
"""


def _arena_decays(stats: str) -> dict[str, tuple[str, str]]:
    """Arena number -> (dirty, muzzy) decay in ms, from jemalloc's statistics ("N/A" is the merged view)."""
    decays = {}
    for arena, block in re.findall(r"^arenas\[(\d+)\]:\n(.*?)(?=^arenas\[|\Z)", stats, re.M | re.S):
        dirty = re.search(r"^\s+dirty:\s+(\S+)", block, re.M)
        muzzy = re.search(r"^\s+muzzy:\s+(\S+)", block, re.M)
        assert dirty and muzzy, f"arena {arena}: no decay lines in jemalloc's statistics"
        decays[arena] = (dirty.group(1), muzzy.group(1))
    return decays


def test_every_arena_returns_freed_pages_after_300_ms_and_muzzy_pages_at_once():
    env = {k: v for k, v in os.environ.items() if k not in ("JE_ARROW_MALLOC_CONF", "ARROW_DEFAULT_MEMORY_POOL")}
    proc = subprocess.run([sys.executable, "-c", _ALLOCATE_ON_THREADS], env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    if "no jemalloc" in proc.stdout:
        pytest.skip("this pyarrow build has no jemalloc pool")
    decays = _arena_decays(proc.stderr)
    assert len(decays) >= 2, proc.stderr[-2000:]   # arena 0 (jemalloc's start) and the threads' arenas
    assert decays == {arena: ("300", "0") for arena in decays}


def test_a_decay_the_user_set_is_kept():
    env = {**os.environ, "JE_ARROW_MALLOC_CONF": "dirty_decay_ms:250,muzzy_decay_ms:250"}
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    proc = subprocess.run([sys.executable, "-c", _ALLOCATE_ON_THREADS], env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    if "no jemalloc" in proc.stdout:
        pytest.skip("this pyarrow build has no jemalloc pool")
    decays = _arena_decays(proc.stderr)
    assert decays and set(decays.values()) == {("250", "250")}


_THREADS_AFTER_NUMPY = """
import os
from pipeline.cli import _no_blas_threads
_no_blas_threads()
import numpy
print(len(os.listdir("/proc/self/task")), os.environ["OPENBLAS_NUM_THREADS"])
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_numpy_starts_no_blas_threads_unless_the_user_asks_for_them():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", _THREADS_AFTER_NUMPY], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["1", "1"]           # the main thread alone: OpenBLAS spun one per core beside it
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", _THREADS_AFTER_NUMPY], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out[1] == "2"
