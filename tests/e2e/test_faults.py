"""Faults during ``migrate``: each ends with the accounting exact to the user and no duplicates.

Faults are switched in the local Cognito service (no client is patched); the migrate is the real CLI
in a child process, so SIGKILL is a real kill -9.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import ROOT, Workspace, attrs, kill

pytestmark = pytest.mark.slow
TENANT = "acme-jp"


def assert_exact(ws: Workspace, tenant: str = TENANT) -> dict:
    users = ws.users(tenant)
    imported = [attrs(u)["custom:legacy_id"] for u in users]
    assert len(imported) == len(set(imported)), "a legacy user was imported twice"
    outcomes = ws.outcomes(tenant)
    assert set(outcomes) == ws.source_ids(tenant)            # every source user, exactly one outcome
    assert {i for i, o in outcomes.items() if o == "imported"} == set(imported)
    assert {i for i, o in outcomes.items() if o == "rejected"} == ws.rejected_ids(tenant)
    counts = ws.report(tenant)["counts"]
    for outcome in ("imported", "skipped", "rejected", "failed"):
        assert counts[outcome] == sum(o == outcome for o in outcomes.values()), outcome
    assert counts["imported"] + counts["skipped"] + counts["rejected"] + counts["failed"] == counts["source_rows"]
    assert counts["source_rows"] == len(ws.source_ids(tenant))
    return counts


def test_sigkill_during_the_load_then_rerun_completes(workspace: Workspace) -> None:
    workspace.service.configure(users_per_second=150)
    proc = workspace.popen("migrate", "--tenant", TENANT)
    try:
        workspace.wait_for_job(TENANT, "InProgress")
        jobs = workspace.jobs(TENANT)
        kill(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert proc.returncode == -9
    workspace.service.configure(users_per_second=None)
    rerun = workspace.run("migrate", "--tenant", TENANT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0 and counts["skipped"] == 0
    # the job that was running at the kill was adopted, not imported a second time
    started = {j["JobId"] for j in jobs if j["Status"] != "Created"}
    assert started <= {j["JobId"] for j in workspace.jobs(TENANT) if j["Status"] == "Succeeded"}
    # the killed run's import files (PII) that no job needs now are gone, as a harvested chunk's are
    runs = workspace.root / "runs" / TENANT
    assert not list(runs.glob("*/chunks/*.csv"))
    assert "earlier interrupted or dry migrate run(s) of acme-jp left behind" in rerun.stdout


def test_sigkill_during_a_remainders_job_then_rerun_adopts_it(workspace: Workspace) -> None:
    first = workspace.run("migrate", "--tenant", TENANT)
    assert first.returncode == 0, first.stdout + first.stderr
    with sqlite3.connect(workspace.root / "var" / "demo-legacy.sqlite") as db:   # 60 new legacy users
        db.execute(
            "INSERT INTO app_users SELECT id + 900000, tenant_code, 'new' || login, 'new' || id || '@example.jp', "
            "email_confirmed, NULL, NULL, first_name, last_name, birth_date, locale, role, is_active, deleted_at, "
            "created_at, updated_at FROM app_users WHERE tenant_code = ? AND is_active = 1 AND email_confirmed = 't' "
            "AND deleted_at IS NULL AND login IS NOT NULL ORDER BY id LIMIT 60", (TENANT,))
    workspace.service.configure(users_per_second=20)
    proc = workspace.popen("migrate", "--tenant", TENANT)
    try:
        running = workspace.wait_for_job(TENANT, "InProgress")
        kill(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert "-rest-00001-" in running["JobName"]      # the job of the new users' remainder file
    workspace.service.configure(users_per_second=None)
    rerun = workspace.run("migrate", "--tenant", TENANT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0 and counts["skipped"] == 0
    jobs = workspace.jobs(TENANT)                     # the rerun wrote the same remainder and adopted its job
    assert [j["JobName"] for j in jobs].count(running["JobName"]) == 1
    assert {j["Status"] for j in jobs} == {"Succeeded"}


def _signalled_during_the_load(workspace: Workspace, signum: int) -> tuple[int, str]:
    """The migrate's exit code and stderr after ``signum`` while its job imports; then the rerun, which
    must end exact with nothing failed or skipped."""
    workspace.service.configure(users_per_second=150)
    proc = workspace.popen("migrate", "--tenant", TENANT)
    try:
        workspace.wait_for_job(TENANT, "InProgress")
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill(proc)
    with sqlite3.connect(workspace.root / "runs" / "ledger.sqlite") as db:
        runs = db.execute("SELECT status FROM runs").fetchall()
    workspace.service.configure(users_per_second=None)
    rerun = workspace.run("migrate", "--tenant", TENANT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0 and counts["skipped"] == 0
    assert runs == [("failed",)], runs                 # the stopped run is recorded as ended, not running
    return proc.returncode, stderr


def test_ctrl_c_during_the_load_says_so_then_rerun_completes(workspace: Workspace) -> None:
    code, stderr = _signalled_during_the_load(workspace, signal.SIGINT)
    assert code == 130
    assert "interrupted; rerun the same command" in stderr and "Traceback" not in stderr


def test_throttling_and_internal_errors_are_retried(workspace: Workspace) -> None:
    workspace.service.configure(throttle_rate=0.5, throttle_operations=set(),
                                internal_error_rate=0.2, internal_error_operations=set())
    proc = workspace.run("migrate", "--tenant", TENANT)
    workspace.service.reset_faults()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0


def test_a_failed_job_is_reported_with_its_reasons_and_retried_by_the_rerun(workspace: Workspace) -> None:
    workspace.service.configure(fail_next_jobs=1)
    proc = workspace.run("migrate", "--tenant", TENANT)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "the load stopped" in proc.stdout
    assert "An internal error occurred while importing the user." in proc.stdout + proc.stderr
    report = workspace.report(TENANT)
    (failure,) = report["load"]["failed_by_message"]
    assert failure["message"].endswith("An internal error occurred while importing the user.")
    canary_rows = report["chunks"][0]["rows"]
    assert failure["rows"] == report["counts"]["failed"] == canary_rows
    assert report["counts"]["imported"] == 0 and workspace.users(TENANT) == []   # nothing behind the canary
    outcomes = workspace.outcomes(TENANT)
    assert sum(o == "failed" for o in outcomes.values()) == canary_rows
    assert "N not imported yet".replace("N", str(len(workspace.source_ids(TENANT)) - len(outcomes))) in proc.stdout

    preview = workspace.run("migrate", "--tenant", TENANT, "--retry-failed", "--dry-run")
    assert preview.returncode == 0, preview.stdout + preview.stderr       # it said their data had changed
    assert (f"--retry-failed: 0 user(s) that failed in earlier jobs go into 0 retry file(s); of the other failed "
            f"user(s), {canary_rows} are in a chunk this run imports whole (its earlier job failed or stopped") \
        in preview.stderr, preview.stderr
    rerun = workspace.run("migrate", "--tenant", TENANT)     # the canary's file is sent again, retry or not
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0 and counts["skipped"] == 0
    assert [j["Status"] for j in workspace.jobs(TENANT)].count("Failed") == 1


def test_an_expired_upload_url_gets_a_new_job(workspace: Workspace) -> None:
    workspace.service.configure(expire_next_urls=1)
    proc = workspace.run("migrate", "--tenant", TENANT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = assert_exact(workspace)
    assert counts["failed"] == 0
    statuses = sorted(j["Status"] for j in workspace.jobs(TENANT))
    assert statuses.count("Created") == 1                    # the job whose URL died is never started
    assert statuses.count("Succeeded") == len(workspace.report(TENANT)["chunks"])


def test_a_second_concurrent_run_is_refused_cleanly(workspace: Workspace) -> None:
    # slow enough that the first run still holds the lock while the second starts on a loaded machine
    # (at 100 users/s the first had finished its 259 users first, once, under a full suite on 2 cores)
    workspace.service.configure(users_per_second=20)
    first = workspace.popen("migrate", "--tenant", TENANT)
    try:
        workspace.wait_for_job(TENANT, "InProgress")
        second = workspace.run("migrate", "--tenant", TENANT)
        assert second.returncode == 4, second.stdout + second.stderr
        assert "Traceback" not in second.stderr
        assert "another migrate run" in second.stderr.lower()
        workspace.service.configure(users_per_second=None)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            kill(first)
    assert first.returncode == 0, out + err
    assert_exact(workspace)


def _batch_waiting_for_a_check(workspace: Workspace, act: Callable[[subprocess.Popen[str]], None]) -> tuple[
        int, str, float]:
    """A paced batch, acme-jp then globex-us, whose mapping names a SQL file that is not there: once acme-jp
    has loaded and globex-us has failed, the batch waits for acme-jp's final check (>= 16 pages at 0.5 a
    second: >= 32 s), and ``act(process)`` runs. The exit code, the stderr and the seconds after ``act``."""
    globex = workspace.root / "mappings" / "tenants" / "globex-us.yaml"
    globex.write_text(globex.read_text() + "\nsource: {query: gone.sql, primary_key: id}\n")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "migrate", "--tenant", "acme-jp,globex-us"],
                            env={**workspace.env, "COGNITO_LIST_USERS_RPS": "0.5"},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        while len([j for j in workspace.jobs(TENANT) if j["Status"] == "Succeeded"]) < 2:   # acme-jp loaded
            assert proc.poll() is None and time.monotonic() - started < 120
            time.sleep(0.1)
        time.sleep(3)                  # globex-us has failed; the batch waits for acme-jp's check
        assert proc.poll() is None
        acted = time.monotonic()
        act(proc)
        _, stderr = proc.communicate(timeout=120)
        return proc.returncode, stderr, time.monotonic() - acted
    finally:
        if proc.poll() is None:
            kill(proc)


def test_ctrl_c_while_a_batch_waits_for_the_previous_check_after_a_tenants_error_stops_at_once(
        workspace: Workspace) -> None:
    """Ctrl-C while the batch, stopped by globex-us's error, waits for acme-jp's final check running in the
    background, to print its result: it went unheeded until the check had listed the whole pool (on AWS
    minutes per tenant; here >= 32 s), since the interrupt came up through the error's own handling; it
    now stops at once."""
    code, stderr, waited = _batch_waiting_for_a_check(workspace, lambda proc: proc.send_signal(signal.SIGINT))
    assert code == 130 and waited < 10, (waited, stderr)
    assert "interrupted; rerun the same command" in stderr and "Traceback" not in stderr


def test_sigterm_during_the_load_stops_as_ctrl_c_does_then_rerun_completes(workspace: Workspace) -> None:
    """SIGTERM (kill, a scheduler or CI stopping the job) killed the run outright, as kill -9 does: no word,
    the run left 'running' in the ledger, a plan's staged rows (PII) on disk until the tenant's next plan.
    It now stops through Ctrl-C's clean-up, says how to resume, and exits 143."""
    code, stderr = _signalled_during_the_load(workspace, signal.SIGTERM)
    assert code == 143, stderr
    assert "terminated (SIGTERM); rerun the same command" in stderr and "Traceback" not in stderr


def test_an_earlier_tenants_failed_final_check_stays_the_exit_code_when_a_later_tenant_errs(
        workspace: Workspace) -> None:
    """While the batch, stopped by globex-us's error, waits for acme-jp's final check, acme-jp's pool is
    deleted, so the check fails (6). The batch exited 2, for globex-us's mistake alone, and the check's
    error did not say which tenant's it was."""
    code, stderr, _ = _batch_waiting_for_a_check(
        workspace, lambda proc: workspace.idp.delete_user_pool(UserPoolId=workspace.pool_id(TENANT)))
    assert code == 6, stderr
    assert "gone.sql" in stderr and "ResourceNotFoundException" in stderr, stderr
    assert "tenant=acme-jp" in stderr and "The final check of acme-jp failed" in stderr, stderr
    assert "Traceback" not in stderr
