"""The plan stage on the sources read through a server-side cursor (MariaDB, SQLite), beside each
database's own command-line client dumping the same query to a file.

For 300,000 rows of one tenant in each, every round times the client (``mariadb --batch``,
``sqlite3 -csv``) and ``python -m pipeline report`` against a saved pool snapshot, alternating; it
reports the median ratio and the highest peak RSS. There is no target (the issue's is for
PostgreSQL, ``bench_plan``): it keeps the cursor path measurable. That path pays for its driver's
Python on every row (PyMySQL parses each value in Python), which a client written in C does not.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_plan import TENANT, _copy_sql, _snapshot, alternate

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
DB = "cm_bench_cursor"


OPTIONS = ("--quick", "--repeat=N")   # what main() reads from argv; python -m bench --help lists them

def _dump(cmd: list[str], out: Path) -> float:
    """Wall seconds of a client writing the query's rows to ``out``."""
    start = time.perf_counter()
    with out.open("wb") as handle:
        subprocess.run(cmd, stdout=handle, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - start


def main(argv: list[str]) -> dict:
    import sqlalchemy as sa

    from pipeline.demo import DEFAULT_TENANTS, load_table

    n = 30_000 if "--quick" in argv else 300_000
    repeat = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--repeat=")), 3)
    work = Path(tempfile.mkdtemp(prefix="bench-cursor-"))
    admin = sa.create_engine(MARIADB_ADMIN)
    results: dict = {"rows": n, "backends": {}}
    try:
        snapshot = work / "contract.json"
        _snapshot(snapshot)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB}"))
            conn.execute(sa.text(f"CREATE DATABASE {DB}"))
        query = _copy_sql()
        sqlite_db = work / "legacy.sqlite"
        backends = {
            "mariadb": (f"{MARIADB_ADMIN}{DB}",
                        ["mariadb", "-h", "127.0.0.1", "-u", "root", DB, "--batch", "-e", query]),
            "sqlite": (f"sqlite:///{sqlite_db}", ["sqlite3", "-csv", "-header", str(sqlite_db), query]),
        }
        tenants = [t for t in DEFAULT_TENANTS if t.code == TENANT]
        for name, (url, client) in backends.items():
            load_table(url, n, tenants=tenants)
            env = {**os.environ, "LEGACY_DB_URL": url, "MIGRATE_RUNS_DIR": str(work / f"runs-{name}"),
                   "COGNITO_TARGET": "local"}
            row = alternate(functools.partial(_dump, client, work / "dump.txt"), "client_s", env, snapshot, repeat)
            ratios = row["ratio_range"]
            results["backends"][name] = row
            print(f"  {name:>8} {n:,} rows: client dump {row['client_s']:5.2f} s | plan {row['plan_s']:6.2f} s | "
                  f"ratio {row['ratio']:.2f}x (range {ratios[0]:.2f}-{ratios[1]:.2f} over {repeat} rounds) | "
                  f"peak RSS {row['plan_peak_rss_mib']} MiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB}"))
        admin.dispose()
    return results

