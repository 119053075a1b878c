"""A 500,000-user tenant through the full ``migrate`` against the local Cognito service.

Reports the wall time and the share of it during which an import job was active (from the jobs'
StartDate..CompletionDate, read back through ListUserImportJobs): the gaps are the pipeline's own
overhead, since Cognito's import speed is not ours to change. Two shares are given: of the whole run
(plan stage included) and of the load stage (first job start to last job end: the gaps between jobs).

``--quick`` runs 50,000 users; ``--rate=N`` caps the local service at N users/s to mimic a slower
Cognito (the default is the local service's full speed, which makes the share a worst case).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme-jp"


OPTIONS = ("--quick", "--chunk-rows=N", "--rate=N")   # what main() reads from argv; python -m bench --help lists them

def _arg(argv: list[str], name: str, default: float | None) -> float | None:
    for a in argv:
        if a.startswith(name + "="):
            return float(a.split("=", 1)[1])
    return default


def _active_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def main(argv: list[str]) -> dict:
    from pipeline.cognito import isolated_session
    from pipeline.demo import DEFAULT_TENANTS, load_table
    from pipeline.localcognito import LocalCognito

    n = 50_000 if "--quick" in argv else 500_000
    chunk_rows = int(_arg(argv, "--chunk-rows", 100_000 if n >= 200_000 else 10_000))
    rate = _arg(argv, "--rate", None)
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        shutil.copytree(ROOT / "mappings", work / "mappings")
        tenant_file = work / "mappings" / "tenants" / f"{TENANT}.yaml"
        text = re.sub(r"(PoolName:\s*)(\S+)", r"\g<1>\g<2>-bench", tenant_file.read_text())
        tenant_file.write_text(text + f"\nload: {{chunk_rows: {chunk_rows}, canary_rows: 100}}\n")
        db = work / "legacy.sqlite"
        t0 = time.perf_counter()
        load_table(f"sqlite:///{db}", n, tenants=[t for t in DEFAULT_TENANTS if t.code == TENANT])
        print(f"  generated {n:,} legacy rows in {time.perf_counter() - t0:.1f} s", flush=True)
        with LocalCognito(port=0) as svc:
            svc.configure(users_per_second=rate)
            env = {**os.environ, "LEGACY_DB_URL": f"sqlite:///{db}", "MIGRATE_RUNS_DIR": str(work / "runs"),
                   "MIGRATE_MAPPINGS_DIR": str(work / "mappings"), "COGNITO_TARGET": "local",
                   "COGNITO_ENDPOINT_URL": svc.endpoint_url}
            start = time.time()
            proc = subprocess.run([sys.executable, "-m", "pipeline", "migrate", "--tenant", TENANT], env=env,
                                  cwd=ROOT, capture_output=True, text=True)
            wall = time.time() - start
            if proc.returncode != 0:
                raise RuntimeError(f"migrate failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            # a session that reads no AWS profile or config: an AWS_PROFILE naming no profile crashed the bench
            idp = isolated_session("us-east-1").client("cognito-idp", endpoint_url=svc.endpoint_url)
            pool = next(p["Id"] for p in idp.list_user_pools(MaxResults=60)["UserPools"]
                        if p["Name"].endswith("-bench"))
            jobs = idp.list_user_import_jobs(UserPoolId=pool, MaxResults=60)["UserImportJobs"]
        intervals = [(j["StartDate"].timestamp(), j["CompletionDate"].timestamp())
                     for j in jobs if j.get("StartDate") and j.get("CompletionDate")]
        active = _active_seconds(intervals)
        ordered = sorted(intervals)
        gaps = [round(max(0.0, b[0] - a[1]), 2) for a, b in itertools.pairwise(ordered)]
        durations = [round(e - s, 1) for s, e in ordered]
        load_window = max(e for _, e in intervals) - min(s for s, _ in intervals)
        accounting = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("source ")]
        stages = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("time: ")]
        stage_s = {name: float(sec) for name, sec in re.findall(r"(\w+) ([0-9.]+) s", stages[0])} if stages else {}
        result = {"users": n, "chunk_rows": chunk_rows, "service_rate": rate, "wall_s": round(wall, 1),
                  "jobs": len(intervals), "job_active_s": round(active, 1),
                  "share_of_wall": round(active / wall, 3), "share_of_load_stage": round(active / load_window, 3),
                  "job_seconds": durations, "gaps_between_jobs_s": gaps,
                  "accounting": accounting, "stages": stages, "stage_s": stage_s}
        print(f"  {n:,} users, {len(intervals)} jobs: wall {wall:.1f} s, a job active {active:.1f} s = "
              f"{active / wall:.0%} of the run, {active / load_window:.0%} of the load stage (target >= 90%)")
        print(f"  jobs (s): {', '.join(map(str, durations))}; gaps between them (s): {', '.join(map(str, gaps))}")
        print(f"  {accounting[0] if accounting else 'no accounting line'}")
        print(f"  {stages[0] if stages else 'no timing line'}", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
