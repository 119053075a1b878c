"""The job runner against the local Cognito service (in-process), with faults injected in the service."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.chunk import write_chunks
from pipeline.cognito import CognitoTarget
from pipeline.errors import LoadError
from pipeline.jobsteps import job_name
from pipeline.ledger import Ledger
from pipeline.load import run_load
from tests import loadfixtures as fx
from tests.loadfixtures import Recorder, fast_policy, make_chunks, make_target, new_pool, pool_usernames

service, ledger = fx.service, fx.ledger  # fixtures (no conftest.py: see loadfixtures)

MSG_INTERNAL = "An internal error occurred while importing the user."


@pytest.fixture
def target(service: Any) -> CognitoTarget:
    service.reset_faults()
    service.configure(url_ttl_seconds=900, users_per_second=None)
    yield make_target(service)
    service.reset_faults()
    service.configure(url_ttl_seconds=900, users_per_second=None)


def _no_duplicates(target: CognitoTarget, pool_id: str, expected: int) -> None:
    names = pool_usernames(target, pool_id)
    assert len(names) == len(set(names)) == expected


def test_three_chunks_exact_counts_and_outcomes(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 25, chunk_rows=10)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    assert [(c.status, c.imported, c.skipped, c.failed, c.unconfirmed) for c in result.chunks] == [
        ("Succeeded", 10, 0, 0, 0),
        ("Succeeded", 10, 0, 0, 0),
        ("Succeeded", 5, 0, 0, 0),
    ]
    assert result.ok and result.jobs_created == 3 and (result.imported, result.failed) == (25, 0)
    jobs = target.list_import_jobs(pool_id)
    assert len(jobs) == 3 and {j["Status"] for j in jobs} == {"Succeeded"}
    assert [
        (j["ImportedUsers"], j["SkippedUsers"], j["FailedUsers"])
        for j in sorted(jobs, key=lambda j: j["JobName"])
    ] == [(10, 0, 0), (10, 0, 0), (5, 0, 0)]
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert len(out) == 25 and set(out["outcome"]) == {"imported"} and out["confirmed"].eq(1).all()
    assert out.loc["L13", "line"] == 4 and out.loc["L13", "username"] == "user13"
    assert out["sub"].notna().all() and out["sub"].is_unique
    assert all(c["state"] == "verified" for c in ledger.chunks("acme"))
    assert not any(c.csv_path.exists() or c.keys_path.exists() for c in chunks)  # deleted after harvest
    _no_duplicates(target, pool_id, 25)


def test_rerun_after_success_creates_no_jobs_and_no_users(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 12, chunk_rows=6)
    policy = fast_policy(keep_files=True)
    run_load(target, ledger, "acme", pool_id, chunks, policy)
    again = run_load(target, ledger, "acme", pool_id, chunks, policy)
    assert [c.status for c in again.chunks] == ["done-before", "done-before"] and again.jobs_created == 0
    assert len(target.list_import_jobs(pool_id)) == 2
    _no_duplicates(target, pool_id, 12)


def test_existing_users_are_skipped(target: CognitoTarget, ledger: Ledger, tmp_path: Path) -> None:
    pool_id, header = new_pool(target)
    run_load(
        target, ledger, "acme", pool_id, make_chunks(tmp_path / "a", header, 10, chunk_rows=10), fast_policy()
    )
    # a new plan (other users in the file, so another sha256) overlapping users 5..9: those were
    # imported by our first run and are not sent again; the job imports L10-L14 from the remainder
    later = make_chunks(tmp_path / "b", header, 10, chunk_rows=10, start=5)
    result = run_load(target, ledger, "acme", pool_id, later, fast_policy())
    (chunk,) = result.chunks
    assert (chunk.name, chunk.rows) == ("chunk-00001-rest-00001", 5)
    assert (chunk.status, chunk.imported, chunk.skipped, chunk.failed) == ("Succeeded", 5, 0, 0)
    assert not later[0].csv_path.exists()   # the whole file needed no job of its own
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert Counter(out["outcome"]) == {"imported": 15}
    assert (
        out.loc["L7", "outcome"] == "imported" and out.loc["L7", "job_id"] != chunk.job_id
    )  # first import kept
    assert out.loc["L12", "outcome"] == "imported"
    _no_duplicates(target, pool_id, 15)


def test_existing_users_of_another_tool_are_skipped_with_the_message(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user1", MessageAction="SUPPRESS")
    result = run_load(
        target, ledger, "acme", pool_id, make_chunks(tmp_path / "a", header, 4, chunk_rows=10), fast_policy()
    )
    (chunk,) = result.chunks
    assert (chunk.imported, chunk.skipped, chunk.failed) == (3, 1, 0)
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert out.loc["L1", "outcome"] == "skipped" and out.loc["L1", "message"] == "The user already exists."
    assert out.loc["L1", "sub"] is not None
    _no_duplicates(target, pool_id, 4)


def test_a_skipped_user_whose_account_is_gone_by_the_harvest_is_failed_not_counted_in_the_pool(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """Cognito skipped user1 for the account already under its name, which was deleted before the harvest
    looked it up. Counted as skipped, the user was in no account, out of the sub mapping, and never
    imported by a rerun (skipped users are in the pool for every later run; --retry-failed takes failed
    ones): lost while the accounting added up."""
    from pipeline.reasons import IN_POOL

    pool_id, header = new_pool(target)
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user1", MessageAction="SUPPRESS")

    def deleted(info: dict[str, Any]) -> None:
        if info.get("status") == "Succeeded":   # the job has ended; its harvest has not looked up yet
            target._idp.admin_delete_user(UserPoolId=pool_id, Username="user1")

    result = run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "a", header, 4, chunk_rows=10),
                      fast_policy(), progress=Recorder({"job_status": deleted}))
    (chunk,) = result.chunks
    assert (chunk.imported, chunk.skipped, chunk.failed) == (3, 0, 1)
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert out.loc["L1", "outcome"] == "failed" and "no account" in out.loc["L1", "message"]
    assert "L1" not in ledger.in_pool_ids("acme", pool_id) and set(IN_POOL) >= set(out.drop("L1")["outcome"])


def test_a_job_failed_only_by_users_already_in_the_pool_does_not_stop_the_run(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    for name in ("user0", "user1", "user2"):   # accounts of another tool hold 3 of the canary's 4 users
        target._idp.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
    chunks = make_chunks(tmp_path / "a", header, 8, chunk_rows=10, canary_rows=4)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    # U4: 3 skipped of 4 ends the canary's job Failed; every user has an outcome and none failed
    assert not result.stopped and [c.status for c in result.chunks] == ["Failed", "Succeeded"]
    assert result.chunks[0].failed_by_skips and not result.chunks[1].failed_by_skips
    for chunk in chunks:   # both are done (a rerun has nothing to retry) and their files are gone
        assert ledger.chunk_done("acme", pool_id, chunk.sha256) and not chunk.csv_path.exists()
    assert (result.imported, result.skipped, result.failed) == (5, 3, 0)
    out = ledger.outcomes("acme").set_index("legacy_id")["outcome"]
    assert out.to_dict() == {f"L{i}": "skipped" if i < 3 else "imported" for i in range(8)}
    _no_duplicates(target, pool_id, 8)


def test_throttling_and_internal_errors_are_retried(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 9, chunk_rows=3)
    service.configure(
        throttle_rate=0.5,
        throttle_operations={"DescribeUserImportJob", "CreateUserImportJob", "StartUserImportJob"},
        internal_error_rate=0.34,
        internal_error_operations={"DescribeUserImportJob"},
    )
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    assert result.ok and result.imported == 9 and result.jobs_created == 3
    assert target.calls["CreateUserImportJob"] >= 5  # every second call was throttled
    assert len(target.list_import_jobs(pool_id)) == 3
    _no_duplicates(target, pool_id, 9)


@pytest.mark.parametrize("on_failed", ["stop", "continue"])
def test_failed_job_is_reported_with_its_reasons(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path, on_failed: str
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 8, chunk_rows=4)
    service.configure(fail_next_jobs=1)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(on_failed_job=on_failed))
    first = result.chunks[0]
    assert (first.status, first.imported, first.failed) == ("Failed", 0, 4)
    assert first.failure_reasons == ((MSG_INTERNAL, 4),)
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert list(out.loc[["L0", "L1", "L2", "L3"], "message"]) == [MSG_INTERNAL] * 4
    if on_failed == "stop":
        assert (
            result.stopped and "Failed" in (result.stop_reason or "")
            and f"4 x {MSG_INTERNAL.rstrip('.')}. Stopping" in result.stop_reason   # one full stop, not two
        )
        assert len(result.chunks) == 1
        assert len(target.list_import_jobs(pool_id)) == 2  # the next file was prepared, never started
        assert [j["Status"] for j in target.list_import_jobs(pool_id)] == ["Created", "Failed"]
        _no_duplicates(target, pool_id, 0)
        # the rerun retries the failed chunk with a new job, and starts the prepared job of the next
        # one instead of creating another
        assert chunks[0].csv_path.exists()                 # kept for the retry
        service.reset_faults()
        again = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
        assert [c.status for c in again.chunks] == ["Succeeded", "Succeeded"]
        assert again.chunks[1].resumed == "started-created" and again.jobs_created == 1
        assert set(ledger.outcomes("acme")["outcome"]) == {"imported"}
        _no_duplicates(target, pool_id, 8)
    else:
        assert not result.stopped and [c.status for c in result.chunks] == ["Failed", "Succeeded"]
        assert result.imported == 4 and result.failed == 4
        _no_duplicates(target, pool_id, 4)


def test_a_log_line_quoting_a_users_values_is_masked_in_outcomes_and_the_stop_reason(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job log's text went as Cognito wrote it into the ledger (outcomes.csv's detail), the failure
    reasons and the stop message; AWS's messages may quote a value, as its API errors do."""
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 4, chunk_rows=4)
    service.configure(fail_next_jobs=1)
    logged = target.job_log_events

    def quoting(*args: Any) -> list[str] | None:
        lines = logged(*args)
        return [re.sub(r"(Line Number (\d+) - .*)", r"\1 (email: user\2@example.com, phone: +81 90 1234 567\2)",
                       line) for line in lines or []]

    monkeypatch.setattr(target, "job_log_events", quoting)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    assert result.stopped and result.chunks[0].failed == 4
    said = [str(m) for m in ledger.outcomes("acme")["message"]]
    said += [m for m, _ in result.chunks[0].failure_reasons] + [result.stop_reason or ""]
    assert said and not [m for m in said if "@example.com" in m or "1234" in m]
    assert "u***@e***.com" in said[0] and "+81***71" in said[0]


def test_failed_canary_stops_before_the_big_files(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 12, chunk_rows=5, canary_rows=2)
    assert [c.canary for c in chunks] == [True, False, False]
    service.configure(fail_next_jobs=1)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(on_failed_job="continue"))
    assert result.stopped and "canary" in (result.stop_reason or "") and len(result.chunks) == 1
    assert len(target.list_import_jobs(pool_id)) == 1  # nothing prepared behind a canary
    _no_duplicates(target, pool_id, 0)


def test_expired_upload_url_gets_a_new_job(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 6, chunk_rows=6)
    service.configure(url_ttl_seconds=1)
    fired: list[str] = []

    def slow_network(info: dict[str, Any]) -> None:
        if not fired:
            fired.append(info["job_id"])
            time.sleep(2.2)  # the URL (X-Amz-Expires=0) is now stale
            service.configure(url_ttl_seconds=900)

    rec = Recorder({"job_created": slow_network})
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(), progress=rec)
    assert "url_expired" in rec.kinds()
    (chunk,) = result.chunks
    assert chunk.jobs_created == 2 and chunk.job_id != fired[0] and chunk.imported == 6
    statuses = {j["JobId"]: j["Status"] for j in target.list_import_jobs(pool_id)}
    assert statuses == {fired[0]: "Created", chunk.job_id: "Succeeded"}
    _no_duplicates(target, pool_id, 6)


def _crash_after_start(target: CognitoTarget, ledger: Ledger, pool_id: str, chunk: Any, record: bool) -> str:
    """What a run killed right after StartUserImportJob leaves behind."""
    job = target.create_import_job(pool_id, job_name("acme", chunk), target.logs_role_arn)
    if record:
        ledger.plan_chunk("acme", pool_id, chunk.name, chunk.sha256, chunk.rows, "dead-run")
        ledger.record_job(job, tenant="acme", chunk=chunk.name, chunk_sha256=chunk.sha256)
    target.upload(job["PreSignedUrl"], chunk.csv_path)
    target.start_import_job(pool_id, job["JobId"])
    if record:
        ledger.mark_uploaded(job["JobId"])
        ledger.set_chunk_state("acme", pool_id, chunk.sha256, "started", job["JobId"])
    return str(job["JobId"])


def test_a_job_left_running_for_a_chunk_the_new_plan_no_longer_has_is_adopted_from_its_own_file(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """Killed while chunk-00002's job ran, then the data (or the mapping, or the pool's header) changed:
    the new plan's chunk-00002 has another sha256. The job left running is still adopted and harvested
    from its own plan's file, so its users count as imported by it, not as skipped by a second job
    (which also left their attributes unchecked)."""
    from pipeline.chunk import write_chunks
    from tests.loadfixtures import full_frame

    pool_id, header = new_pool(target)
    frame = full_frame(header, 8)
    old = write_chunks([frame], header, tmp_path / "acme" / "plan-1" / "chunks", chunk_rows=4)
    run_load(target, ledger, "acme", pool_id, old[:1], fast_policy())
    service.configure(users_per_second=40)
    running = _crash_after_start(target, ledger, pool_id, old[1], record=True)
    service.configure(users_per_second=None)
    frame.loc[5, "name"] = "Doe, Corrected 5"
    new = write_chunks([frame], header, tmp_path / "acme" / "plan-2" / "chunks", chunk_rows=4)
    assert new[0].sha256 == old[0].sha256 and new[1].sha256 != old[1].sha256

    result = run_load(target, ledger, "acme", pool_id, new, fast_policy())
    assert (result.imported, result.skipped, result.failed, result.jobs_created) == (4, 0, 0, 0)
    outcomes = ledger.outcomes("acme", pool_id).set_index("legacy_id")
    assert list(outcomes.loc[["L4", "L5", "L6", "L7"], "outcome"]) == ["imported"] * 4
    assert set(outcomes.loc[["L4", "L5", "L6", "L7"], "job_id"]) == {running}
    assert len(target.list_import_jobs(pool_id)) == 2
    _no_duplicates(target, pool_id, 8)


def test_a_job_of_an_earlier_plan_whose_users_a_newer_job_settled_is_left_alone(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """An earlier plan's unharvested job (Failed here) whose users a newer job has settled since (a run
    that could not find its file, or of a version before such jobs were harvested) is not harvested
    over their outcomes: those users stay imported, not failed by the older job's log."""
    from pipeline.chunk import write_chunks
    from tests.loadfixtures import full_frame

    pool_id, header = new_pool(target)
    frame = full_frame(header, 8)
    old = write_chunks([frame], header, tmp_path / "acme" / "plan-1" / "chunks", chunk_rows=4)
    run_load(target, ledger, "acme", pool_id, old[:1], fast_policy())
    service.configure(fail_next_jobs=1)
    _crash_after_start(target, ledger, pool_id, old[1], record=True)
    while target.list_import_jobs(pool_id)[0]["Status"] != "Failed":
        time.sleep(0.05)
    service.reset_faults()
    frame.loc[5, "name"] = "Doe, Corrected 5"
    new = write_chunks([frame], header, tmp_path / "acme" / "plan-2" / "chunks", chunk_rows=4)
    ledger.set_chunk_state("acme", pool_id, old[1].sha256, "harvested")    # as if its file had been gone
    assert run_load(target, ledger, "acme", pool_id, new, fast_policy(keep_files=True)).imported == 4
    ledger.set_chunk_state("acme", pool_id, old[1].sha256, "finished")

    again = run_load(target, ledger, "acme", pool_id, new, fast_policy())
    assert (again.imported, again.failed, again.jobs_created) == (0, 0, 0)
    outcomes = ledger.outcomes("acme", pool_id).set_index("legacy_id")
    assert list(outcomes.loc[["L4", "L5", "L6", "L7"], "outcome"]) == ["imported"] * 4


@pytest.mark.parametrize("ledger_knows", [True, False])
def test_resume_adopts_the_running_job(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path, ledger_knows: bool
) -> None:
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 30, chunk_rows=20)
    service.configure(users_per_second=40)  # the first job runs for ~0.5 s
    running = _crash_after_start(target, ledger, pool_id, chunks[0], record=ledger_knows)
    assert target.describe_import_job(pool_id, running)["Status"] in ("Pending", "InProgress")
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    first, second = result.chunks
    assert (first.job_id, first.resumed, first.jobs_created, first.imported) == (running, "adopted", 0, 20)
    assert (second.resumed, second.jobs_created, second.imported) == ("", 1, 10)
    assert len(target.list_import_jobs(pool_id)) == 2
    assert len(ledger.outcomes("acme")) == 30
    _no_duplicates(target, pool_id, 30)


def _another_job_running(service: Any, target: CognitoTarget, tmp_path: Path, name: str,
                         users: int) -> tuple[str, dict[str, Any]]:
    """A job of another pool in the account, started as a person would by hand, importing 20 users a
    second: its pool id and the job."""
    other_pool, other_header = new_pool(target)
    other = make_chunks(tmp_path / "o", other_header, users, chunk_rows=users, tenant="other")[0]
    service.configure(users_per_second=20)
    job = target.create_import_job(other_pool, name, target.logs_role_arn)
    target.upload(job["PreSignedUrl"], other.csv_path)
    target.start_import_job(other_pool, job["JobId"])
    return other_pool, job


def test_waits_while_another_job_runs_in_the_account(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    other_pool, job = _another_job_running(service, target, tmp_path, "someone-else", users=30)  # ~1.5 s
    pool_id, header = new_pool(target)
    rec = Recorder()
    result = run_load(
        target,
        ledger,
        "acme",
        pool_id,
        make_chunks(tmp_path / "c", header, 3, chunk_rows=3),
        fast_policy(),
        progress=rec,
    )
    assert "waiting" in rec.kinds() and result.ok and result.imported == 3
    assert target.describe_import_job(other_pool, job["JobId"])["Status"] == "Succeeded"


def test_a_long_wait_for_another_job_is_told_once_then_now_and_then(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """Waiting for a job someone else started (a hand-run CLI import, another tool) is told once, with
    Cognito's reason (the local service names that job) and the bound, then only every
    ``active_wait_notice_seconds`` with the time waited: not a line per retry for hours."""
    _, job = _another_job_running(service, target, tmp_path, "by-hand", users=40)   # runs for ~2 s
    pool_id, header = new_pool(target)
    rec = Recorder()
    started = time.monotonic()
    result = run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "c", header, 3, chunk_rows=3),
                      fast_policy(active_wait_seconds=0.02, active_wait_notice_seconds=0.5), progress=rec)
    waited = time.monotonic() - started
    assert result.ok and result.imported == 3
    told = [info["message"] for kind, info in rec.events if kind == "waiting"]
    assert told and job["JobId"] in told[0] and "30 s" in told[0]
    assert len(told) <= 1 + waited / 0.5
    assert all("still waiting" in m for m in told[1:])


def test_names_with_private_use_characters_are_imported_and_harvested(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """Gaiji (the extra kanji of Japanese legacy systems, mapped to U+E000 on) are ordinary data: the job
    imports them, and the harvest reads the file back with them, escaped commas beside them included."""
    pool_id, header = new_pool(target)
    frame = fx.full_frame(header, 6)
    names = ["\ue000", "高\ue000橋, 太郎", "\ue000\ue001, \ue002", "Doe", "\uf8ff", "a,\ue000b"]
    frame["name"] = pd.Series(names, dtype="string[pyarrow]")
    chunks = write_chunks([frame], header, tmp_path / "c", chunk_rows=6)
    result = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(verify_sample=0))
    assert result.ok and (result.imported, result.failed) == (6, 0)
    (chunk,) = result.chunks
    assert chunk.unconfirmed == 0
    users = {u["Username"]: {a["Name"]: a["Value"] for a in u["Attributes"]}
             for u in target._idp.list_users(UserPoolId=pool_id)["Users"]}
    assert {users[f"user{i}"]["name"] for i in range(6)} == set(names)


def test_a_run_past_the_pools_job_quota_is_warned_and_says_what_to_do(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """A pool keeps every import job it ran, 1,000 at most (fact 38; lowered here). A run whose files need
    more is told so before its first job, and where Cognito refuses the next job it says what to do,
    not just Cognito's refusal; a rerun with bigger files imports the rest, none twice."""
    pool_id, header = new_pool(target)
    service.configure(max_jobs_per_pool=3)
    try:
        policy = fast_policy(jobs_per_pool=3)
        rec = Recorder()
        with pytest.raises(LoadError) as raised:
            run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "a", header, 12, chunk_rows=2),
                     policy, progress=rec)
        kinds = rec.kinds()
        assert "job_quota" in kinds and kinds.index("job_quota") < kinds.index("job_created")
        warned = dict(rec.events)["job_quota"]["message"]
        assert "needs 6 more" in warned and "load.chunk_rows" in warned
        assert "load.chunk_rows" in raised.value.message and "LimitExceededException" in raised.value.message
        assert len(target.list_import_jobs(pool_id)) == 3
    finally:
        service.configure(max_jobs_per_pool=1000)
    result = run_load(target, ledger, "acme", pool_id, make_chunks(tmp_path / "b", header, 12, chunk_rows=12),
                      policy)
    assert result.ok and result.imported == 12 - 6
    _no_duplicates(target, pool_id, 12)


def test_users_missing_from_the_log_are_settled_by_the_pool(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    pool_id, header = new_pool(target)
    target._idp.admin_create_user(UserPoolId=pool_id, Username="user0", MessageAction="SUPPRESS")
    pool_name = target.describe_user_pool(pool_id)["Name"]

    def lose_the_log(info: dict[str, Any]) -> None:  # as if every PutLogEvents had been rejected
        if info.get("status") in ("Succeeded", "Failed"):
            job = target.describe_import_job(pool_id, info["job_id"])
            target._logs.delete_log_stream(
                logGroupName=f"/aws/cognito/userpools/{pool_id}/{pool_name}",
                logStreamName=f"{job['JobId']}/{job['JobName']}",
            )

    result = run_load(
        target,
        ledger,
        "acme",
        pool_id,
        make_chunks(tmp_path / "c", header, 4, chunk_rows=4),
        fast_policy(),
        progress=Recorder({"job_status": lose_the_log}),
    )
    (chunk,) = result.chunks
    assert (chunk.unlogged, chunk.imported, chunk.skipped, chunk.failed) == (4, 3, 1, 0)
    out = ledger.outcomes("acme").set_index("legacy_id")
    assert (
        out.loc["L0", "outcome"] == "skipped"
        and out.loc["L0", "message"] == "No log line; the user already existed."
    )
    assert (
        list(out.loc[["L1", "L2", "L3"], "message"]) == ["No log line; the user was created by the job."] * 3
    )
    _no_duplicates(target, pool_id, 4)


def test_poll_schedule_backs_off_until_the_counters_move() -> None:
    from pipeline.jobsteps import PollSchedule

    schedule = PollSchedule(initial=1.0, maximum=4.0, rows=1_000)
    waits = [schedule.next_wait(now=float(t), done=0) for t in range(6)]
    assert waits == [1.0, 1.5, 2.25, 3.375, 4.0, 4.0]


def test_poll_schedule_asks_again_when_the_job_should_end() -> None:
    from pipeline.jobsteps import PollSchedule

    schedule = PollSchedule(initial=1.0, maximum=15.0, rows=1_000)
    assert schedule.next_wait(now=0.0, done=0) == 1.0          # Pending: plain backoff
    assert schedule.next_wait(now=1.0, done=100) == 1.5        # first progress: no rate yet
    # 100 users/s since t=1: 750 left -> 7.5 s, but the backoff (2.25 s) still caps the wait
    assert schedule.next_wait(now=2.5, done=250) == 2.25
    assert schedule.next_wait(now=4.75, done=475) == 3.375
    # 350 left at 100/s: 3.5 s, sooner than the backoff's 5.06 s
    assert schedule.next_wait(now=6.5, done=650) == pytest.approx(3.5)
    # 20 left: the end is 0.2 s away, but polls stay at least `initial` apart
    assert schedule.next_wait(now=10.8, done=980) == 1.0
    # every row counted, the job not yet terminal
    assert schedule.next_wait(now=11.0, done=1_000) == 1.0


def test_harvest_looks_users_up_several_at_once_in_order() -> None:
    """AdminGetUser calls at harvest wait a round trip each (or, locally, a job's batch): they run
    ``lookup_threads`` at once, and the users come back in the order asked, the absent ones left out."""
    import threading

    from pipeline.load import LoadPolicy, _Loader

    together = threading.Barrier(4, timeout=10)      # passes only if four calls are under way at once

    class Pool:
        def admin_get_user(self, pool_id: str, name: str) -> dict[str, Any] | None:
            if name in {"u0", "u1", "u2", "u3"}:
                together.wait()
            if name == "u5":
                return None
            return {"Username": name, "UserStatus": "RESET_REQUIRED",
                    "Attributes": [{"Name": "sub", "Value": f"sub-{name}"}]}

    loader = _Loader(Pool(), None, "acme", "pool_1", LoadPolicy(lookup_threads=4), None)  # type: ignore[arg-type]
    loader.pool_size, loader.key_attribute = 0, None
    frame = loader._fetch_users([f"u{i}" for i in range(8)], [])
    assert list(frame.index) == ["u0", "u1", "u2", "u3", "u4", "u6", "u7"]
    assert frame.loc["u6", "sub"] == "sub-u6"


def test_a_lookup_still_throttled_after_its_retries_goes_once_more_alone() -> None:
    from pipeline.errors import TransientLoadError
    from pipeline.load import LoadPolicy, _Loader

    calls: Counter[str] = Counter()

    class Pool:
        def admin_get_user(self, pool_id: str, name: str) -> dict[str, Any] | None:
            calls[name] += 1
            if name == "u2" and calls[name] == 1:
                raise TransientLoadError("AdminGetUser still failing after 8 attempts (TooManyRequestsException)")
            return {"Username": name, "Attributes": [{"Name": "sub", "Value": f"sub-{name}"}]}

    loader = _Loader(Pool(), None, "acme", "pool_1", LoadPolicy(lookup_threads=4), None)  # type: ignore[arg-type]
    loader.pool_size, loader.key_attribute = 0, None
    frame = loader._fetch_users(["u0", "u1", "u2", "u3"], [])
    assert list(frame.index) == ["u0", "u1", "u2", "u3"] and calls["u2"] == 2


class _Killed(BaseException):
    """Stands in for kill -9 at a chosen point: nothing after it in that code path runs."""


def test_a_kill_while_a_harvest_is_stored_leaves_the_chunk_to_be_harvested_again(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's outcomes and its done state are one transaction. Stored apart, a kill between them left
    the outcomes without the state: the rerun took the chunk's failed user for its remainder and sent it
    in a new job, which failed, on every rerun."""
    import uuid

    import pipeline.ledger as ledger_module
    from tests.loadfixtures import POOL_PARAMS

    pool_id = target.find_or_create_local_pool(
        {"PoolName": f"alias-{uuid.uuid4().hex[:10]}", **POOL_PARAMS, "AliasAttributes": ["email"]})
    header = target.get_csv_header(pool_id)
    target._idp.admin_create_user(   # a pool user holds user1's verified email: row 2 fails, the job succeeds
        UserPoolId=pool_id, Username="holder", MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": "user1@example.com"}, {"Name": "email_verified", "Value": "true"}])
    (chunk,) = make_chunks(tmp_path / "c", header, 4, chunk_rows=4)

    state_update = ledger_module._chunk_state

    def killed(*args: Any, **kwargs: Any) -> Any:
        if args[3] in ledger_module.DONE_STATES:
            raise _Killed()           # inside the harvest's transaction: nothing of it is committed
        return state_update(*args, **kwargs)

    monkeypatch.setattr(ledger_module, "_chunk_state", killed)
    with pytest.raises(_Killed):
        run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    monkeypatch.setattr(ledger_module, "_chunk_state", state_update)
    assert ledger.outcomes("acme").empty
    assert not ledger.chunk_done("acme", pool_id, chunk.sha256)
    (first_job,) = [j["JobId"] for j in target.list_import_jobs(pool_id)]

    again = run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    assert (again.jobs_created, again.stopped) == (0, False)
    assert (again.chunks[0].job_id, again.chunks[0].imported, again.chunks[0].failed) == (first_job, 3, 1)
    assert ledger.chunk_done("acme", pool_id, chunk.sha256)
    outcomes = ledger.outcomes("acme").set_index("legacy_id").sort_index()
    assert list(outcomes["outcome"]) == ["imported", "failed", "imported", "imported"]
    assert set(outcomes["job_id"]) == {first_job}
    third = run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    assert (third.jobs_created, third.stopped) == (0, False)
    assert len(target.list_import_jobs(pool_id)) == 1


def test_a_kill_before_a_retry_job_is_uploaded_does_not_bring_the_old_failure_back(
    service: Any, target: CognitoTarget, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose job failed is retried by the rerun with a new job. A kill after that job was created
    and before its file was uploaded pointed the chunk at the new job: the next rerun harvested the old
    failed job again and stopped, instead of retrying the chunk."""
    pool_id, header = new_pool(target)
    (chunk,) = make_chunks(tmp_path / "c", header, 4, chunk_rows=4)
    service.configure(fail_next_jobs=1)
    first = run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    assert first.stopped and first.chunks[0].status == "Failed"
    service.reset_faults()

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed()               # after CreateUserImportJob and its ledger rows, before the PUT

    monkeypatch.setattr(target, "upload", killed)
    with pytest.raises(_Killed):
        run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    monkeypatch.undo()

    again = run_load(target, ledger, "acme", pool_id, [chunk], fast_policy(keep_files=True))
    assert not again.stopped, again.stop_reason
    assert (again.chunks[0].status, again.chunks[0].imported, again.chunks[0].jobs_created) == ("Succeeded", 4, 1)
    assert ledger.chunk_done("acme", pool_id, chunk.sha256)
    _no_duplicates(target, pool_id, 4)


def test_a_killed_retry_run_resumes_its_retry_job_after_another_retry_file_was_harvested(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """``--retry-failed`` killed while its second retry file's job runs, after the first file's job was
    harvested: the rerun writes the second file again with the same identity and harvests its job. With
    every failed user's job in each file's identity, the first file's harvest changed the second's: a
    second job was sent for the same users, and the first job's user was recorded as skipped."""
    import uuid
    from types import SimpleNamespace

    from pipeline.runner import _retry_chunks
    from tests.loadfixtures import POOL_PARAMS

    pool_id = target.find_or_create_local_pool(
        {"PoolName": f"alias-{uuid.uuid4().hex[:10]}", **POOL_PARAMS, "AliasAttributes": ["email"]})
    header = target.get_csv_header(pool_id)
    for n in (1, 5):   # pool users hold user1's and user5's verified emails: those two rows fail
        target._idp.admin_create_user(
            UserPoolId=pool_id, Username=f"holder{n}", MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": f"user{n}@example.com"},
                            {"Name": "email_verified", "Value": "true"}])
    chunks = make_chunks(tmp_path / "c", header, 8, chunk_rows=4)
    policy = fast_policy(keep_files=True)
    first = run_load(target, ledger, "acme", pool_id, chunks, policy)
    assert [(c.status, c.failed) for c in first.chunks] == [("Succeeded", 1), ("Succeeded", 1)]
    for n in (1, 5):   # the cause is fixed; the operator runs migrate --retry-failed
        target._idp.admin_delete_user(UserPoolId=pool_id, Username=f"holder{n}")
    plan = SimpleNamespace(tenant="acme", pool_id=pool_id, chunks=chunks, run_dir=tmp_path / "run", chunk_rows=1)
    retries = _retry_chunks(ledger, plan, None)
    assert [c.name for c in retries] == ["retry-00001", "retry-00002"]

    started: dict[str, str] = {}

    def kill_once_the_second_runs(info: dict[str, Any]) -> None:
        started[info["chunk"]] = info["job_id"]
        if info["chunk"] == "retry-00002":
            raise _Killed()

    with pytest.raises(_Killed):
        run_load(target, ledger, "acme", pool_id, [*chunks, *retries], policy,
                 progress=Recorder({"job_started": kill_once_the_second_runs}))
    running = started["retry-00002"]

    plan.run_dir = tmp_path / "run2"
    again = run_load(target, ledger, "acme", pool_id, [*chunks, *_retry_chunks(ledger, plan, None)], policy)
    assert again.jobs_created == 0 and not again.stopped
    outcomes = ledger.outcomes("acme").set_index("legacy_id")
    assert (outcomes.loc["L5", "outcome"], outcomes.loc["L5", "job_id"]) == ("imported", running)
    assert list(outcomes.sort_index()["outcome"]) == ["imported"] * 8
    _no_duplicates(target, pool_id, 8)


def test_job_names_stay_within_cognitos_128_characters(tmp_path: Path) -> None:
    from dataclasses import replace

    (chunk,) = make_chunks(tmp_path / "c", ["cognito:username", "email"], 1, chunk_rows=1)
    rest = replace(chunk, name="chunk-00001-rest-00001")
    for tenant in ("acme", "t" * 97, "x y/z" * 40):
        name = job_name(tenant, rest)
        assert len(name) <= 128 and name.endswith(f"-chunk-00001-rest-00001-{chunk.sha256[:8]}"), name
        assert re.fullmatch(r"[\w\s+=,.@-]+", name)


def _fail_harvest_of(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from pipeline.errors import LoadError
    from pipeline.load import _Loader

    harvest = _Loader._harvest

    def failing(self: Any, chunk: Any, *args: Any, **kwargs: Any) -> Any:
        if chunk.name == name:
            raise LoadError(f"{chunk.name}: the harvest broke")
        return harvest(self, chunk, *args, **kwargs)

    monkeypatch.setattr(_Loader, "_harvest", failing)


def test_an_error_of_the_job_loop_is_not_replaced_by_a_failed_harvest(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A harvest that fails while the loop is failing too is told as an event; the loop's own error is
    the one raised, and the run is recorded as failed, not left running."""
    from pipeline.errors import LoadError
    from pipeline.load import _Loader

    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 9, chunk_rows=3)
    _fail_harvest_of(monkeypatch, chunks[0].name)
    poll = _Loader._poll

    def poll_breaks_on_the_second(self: Any, chunk: Any, job: Any) -> Any:
        if chunk.name == chunks[1].name:
            raise LoadError("the poll of the second chunk broke")
        return poll(self, chunk, job)

    monkeypatch.setattr(_Loader, "_poll", poll_breaks_on_the_second)
    events = Recorder()
    with pytest.raises(LoadError, match="the poll of the second chunk broke"):
        run_load(target, ledger, "acme", pool_id, chunks, fast_policy(), progress=events)
    told = [info["message"] for kind, info in events.events if kind == "harvest_failed"]
    assert told == [f"A harvest also failed while the run was ending: {chunks[0].name}: the harvest broke"]
    assert [r["status"] for r in ledger.runs("acme")] == ["failed"]


def test_a_failed_harvest_fails_the_run_after_the_other_harvests_are_stored(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.errors import LoadError

    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 6, chunk_rows=3)
    _fail_harvest_of(monkeypatch, chunks[0].name)
    with pytest.raises(LoadError, match="the harvest broke"):
        run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    assert [r["status"] for r in ledger.runs("acme")] == ["failed"]
    assert sorted(ledger.outcomes("acme")["legacy_id"]) == ["L3", "L4", "L5"]   # the second chunk's users
    monkeypatch.undo()
    again = run_load(target, ledger, "acme", pool_id, chunks, fast_policy())
    assert (again.ok, again.jobs_created, again.imported) == (True, 0, 3)   # the first job, harvested now
    out = ledger.outcomes("acme")
    assert len(out) == 6 and set(out["outcome"]) == {"imported"}
    assert [r["status"] for r in ledger.runs("acme")] == ["failed", "finished"]


def test_a_finished_load_removes_only_the_files_earlier_migrate_runs_left_without_keeping_them(tmp_path: Path) -> None:
    import json

    from pipeline.plan import LOAD_FILE
    from pipeline.runner import prune_loaded_files

    tenant = tmp_path / "acme-jp"

    def run(name: str, load: dict | None, staging: bool = False) -> Path:
        chunks = tenant / name / "chunks"
        chunks.mkdir(parents=True)
        (chunks / "chunk-00001.csv").write_text("cognito:username\nalice\n")
        if load is not None:
            (tenant / name / LOAD_FILE).write_text(json.dumps(load))
        if staging:
            (tenant / name / "staging").mkdir()
        return chunks

    killed = run("20260101T000000Z", {"keep_files": False})
    kept = run("20260102T000000Z", {"keep_files": True})
    older = run("20260103T000000Z", None)             # a report's run, or a migrate's from before load.json
    planning = run("20260104T000000Z", {"keep_files": False}, staging=True)
    current = run("20260105T000000Z", {"keep_files": False})
    later = run("20260106T000000Z", {"keep_files": False})
    assert prune_loaded_files(current.parent) == 1
    assert not killed.exists()
    assert all(any(c.iterdir()) for c in (kept, older, planning, current, later))


def test_a_chunk_whose_own_job_ended_short_is_not_said_to_have_changed(
    target: CognitoTarget, ledger: Ledger, tmp_path: Path
) -> None:
    """All of a chunk's users are in the pool, but its own job ended before the chunk counted as done (a
    job that ended Failed once its users were in): the rerun needs no job, and says why without
    claiming the data or the mapping changed, which it said after every stopped or failed job."""
    pool_id, header = new_pool(target)
    chunks = make_chunks(tmp_path / "c", header, 4, chunk_rows=4)
    first = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(keep_files=True))
    job_id = first.chunks[0].job_id
    ledger.set_chunk_state("acme", pool_id, chunks[0].sha256, "failed", job_id=job_id)   # as a Failed job leaves it
    events = Recorder()
    again = run_load(target, ledger, "acme", pool_id, chunks, fast_policy(), progress=events)
    assert [c.status for c in again.chunks] == ["done-before"] and again.jobs_created == 0
    (told,) = [info["message"] for kind, info in events.events if kind == "chunk_done_before"]
    assert f"This file's own job {job_id} ended before the chunk counted as done" in told
    assert "changed since" not in told
