"""The plan stage on a 1,000,000-user PostgreSQL table, side by side with a raw ``psql \\copy``.

For each size (250,000 and 1,000,000 rows of one tenant) it times, in the same round:
  * ``psql -c "\\copy (SELECT <the SQL's columns> ...) TO file CSV HEADER"`` (the reference), and
  * ``python -m pipeline report`` (extract, map, validate, write the import CSVs and the report)
    against a saved pool snapshot, in a child process whose peak RSS is read from ``wait4``.
Each size runs ``--repeat=N`` rounds (default 3), the copy and the plan alternating; it reports the
median ratio and its range (target: at most 4x the copy) and the highest peak RSS (target: under
400 MB), in MiB and in MB of 10^6 bytes, since the two readings of the target differ by 19 MB. The
machine is shared and noisy: one round can be off by 20%.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DB = "cm_bench"
TENANT = "acme-jp"


OPTIONS = ("--quick", "--repeat=N")   # what main() reads from argv; python -m bench --help lists them

def _psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql], check=True,
                   capture_output=True)


# Started from this process, a child's ru_maxrss is at least this process's own peak: it is forked
# (vfork) from it, and Linux keeps the larger of the two at exec. After the migrate benchmark, whose
# local service held 500,000 users in this process, every plan "peaked" at 2.5 GB. So a minimal Python
# (no site, ~10 MB) starts the command, times it and reports its ru_maxrss, which is then its own.
_LAUNCH = (
    "import os, sys, time\n"
    "start = time.perf_counter()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    null = os.open(os.devnull, os.O_WRONLY)\n"
    "    os.dup2(null, 1)\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(time.perf_counter() - start, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))\n"
)


def _timed_child(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process (started by ``_LAUNCH``)."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCH, *cmd], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    try:
        elapsed, peak, code = proc.stdout.split()
    except ValueError:
        code = "?"
    if proc.returncode != 0 or code != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return float(elapsed), int(peak)


def _seconds(cmd: list[str], env: dict[str, str]) -> float:
    return _timed_child(cmd, env)[0]


def alternate(reference: Callable[[], float], key: str, env: dict[str, str], snapshot: Path,
              repeat: int) -> dict:
    """``reference()`` (its wall seconds) and the plan (``report`` against ``snapshot``), ``repeat``
    rounds alternating after one untimed reference run (so both measured sides read a warm table), and
    so that a noisy spell hits both alike: the rounds, the median ratio and its range, each side's
    median seconds (the reference's under ``key``) and the plan's highest peak RSS."""
    reference()
    rounds = []
    for _ in range(repeat):
        ref_s = reference()
        plan_s, plan_rss = _timed_child([sys.executable, "-m", "pipeline", "report", "--tenant", TENANT,
                                         "--contract-snapshot", str(snapshot)], env)
        rounds.append({key: round(ref_s, 2), "plan_s": round(plan_s, 2), "ratio": round(plan_s / ref_s, 2),
                       "plan_peak_rss_bytes": plan_rss})
    ratios = sorted(r["ratio"] for r in rounds)
    peak = max(r["plan_peak_rss_bytes"] for r in rounds)
    return {"rounds": rounds, "ratio": statistics.median(ratios), "ratio_range": [ratios[0], ratios[-1]],
            key: statistics.median(r[key] for r in rounds), "plan_s": statistics.median(r["plan_s"] for r in rounds),
            "plan_peak_rss_bytes": peak, "plan_peak_rss_mib": round(peak / 2**20),
            "plan_peak_rss_mb": round(peak / 1e6, 1)}


def _snapshot(path: Path) -> None:
    from pipeline.cognito import CognitoTarget
    from pipeline.localcognito import LocalCognito
    from pipeline.mapping import load_mapping
    from pipeline.plan import read_contract
    from pipeline.settings import TargetSettings

    with LocalCognito(port=0) as svc:
        target = CognitoTarget.from_settings(TargetSettings(), endpoint_url=svc.endpoint_url)
        mapping = load_mapping(ROOT / "mappings", TENANT)
        pool_id = target.find_or_create_local_pool(dict(mapping.pool["local"]))
        read_contract(target, pool_id).to_snapshot(path)


def _copy_sql() -> str:
    """The tenant query on one line (``\\copy`` takes a single line), with the tenant as a literal."""
    from pipeline.extract import strip_comments

    query = " ".join(strip_comments((ROOT / "sql" / "users.sql").read_text()).split()).rstrip(";")
    return query.replace(":tenant", f"'{TENANT}'")  # bench only: a fixed literal, not user input


def main(argv: list[str]) -> dict:
    from pipeline.demo import DEFAULT_TENANTS, load_table

    sizes = [250_000, 1_000_000] if "--quick" not in argv else [20_000, 50_000]
    repeat = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--repeat=")), 3)
    work = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    results: dict = {"sizes": {}}
    try:
        _psql(f"DROP DATABASE IF EXISTS {DB}")
        _psql(f"CREATE DATABASE {DB}")
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DB}"
        snapshot = work / "contract.json"
        _snapshot(snapshot)
        for n in sizes:
            load_table(url, n, tenants=[t for t in DEFAULT_TENANTS if t.code == TENANT])
            _psql("VACUUM ANALYZE app_users", DB)
            env = {**os.environ, "LEGACY_DB_URL": url, "MIGRATE_RUNS_DIR": str(work / f"runs-{n}"),
                   "COGNITO_TARGET": "local"}
            copy_cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qc",
                        f"\\copy ({_copy_sql()}) TO '{work / 'copy.csv'}' CSV HEADER"]
            copy = functools.partial(_seconds, copy_cmd, env)
            row = {"rows": n, **alternate(copy, "copy_s", env, snapshot, repeat)}
            ratios = row["ratio_range"]
            row["plan_rows_per_s"] = round(n / row["plan_s"])
            results["sizes"][n] = row
            print(f"  {n:>9,} rows: psql \\copy {row['copy_s']:6.2f} s | plan {row['plan_s']:6.2f} s | "
                  f"ratio {row['ratio']:.2f}x (range {ratios[0]:.2f}-{ratios[1]:.2f} over {repeat} rounds; "
                  f"target <= 4x) | peak RSS {row['plan_peak_rss_mib']} MiB = {row['plan_peak_rss_mb']} MB "
                  "(target < 400 MB; 400 MiB is 419.4 MB)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _psql(f"DROP DATABASE IF EXISTS {DB}")
    return results
