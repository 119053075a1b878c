"""One import job's steps, for the load stage's runner (``pipeline.load``): create it and upload the
chunk (a new job whenever the pre-signed URL expired, fact 25), start it (waiting while another job
of the account runs, fact 27; replacing one too old to start), poll it (``PollSchedule``) until it
ends, and name the jobs whose logs together settle a chunk's users.

``JobSteps`` is mixed into the runner, which provides target, ledger, policy, tenant, pool_id,
run_id, the per-chunk count of jobs created and ``_event``; every step is recorded in the ledger
before the next side effect.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from pipeline.chunk import ChunkInfo
from pipeline.cognito import CognitoCallError, PreconditionNotMet, UrlExpired
from pipeline.errors import LoadError
from pipeline.harvest import epoch_seconds
from pipeline.ledger import Ledger

JOB_QUOTA_ADVICE = ("Raise load.chunk_rows in the tenant's mapping file (up to 500000 users a file) and rerun: "
                    "the users imported so far stay, the others go in fewer, bigger files. Or ask AWS to raise "
                    "the pool's import-job quota.")
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped", "Expired"})
RUNNING = frozenset({"Pending", "InProgress", "Stopping"})


class PollSchedule:
    """How long to wait before the next DescribeUserImportJob of one job.

    Backoff (``initial`` x1.5 up to ``maximum``), but once the job's counters move, no longer than
    until the job is expected to end at its average rate so far, and never less than ``initial``. A job
    is then seen finished at most ~``initial`` late instead of up to ``maximum`` late: that delay is
    the gap before the next job starts (up to 15 s per job on AWS with plain backoff, up to 1 s
    locally).
    """

    def __init__(self, initial: float, maximum: float, rows: int) -> None:
        self.initial, self.maximum, self.rows = initial, max(initial, maximum), rows
        self._backoff = initial
        self._first: tuple[float, int] | None = None   # (time, users done) when progress was first seen

    def next_wait(self, now: float, done: int) -> float:
        backoff, self._backoff = self._backoff, min(self._backoff * 1.5, self.maximum)
        if self._first is None:
            if done > 0:
                self._first = (now, done)
            return backoff
        since, at = self._first
        if done <= at or now <= since:
            return backoff
        if done >= self.rows:
            return self.initial                      # every row counted: the job is wrapping up
        expected_end = (self.rows - done) * (now - since) / (done - at)
        return min(backoff, max(self.initial, expected_end))


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``: a wait as a person reads it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def job_name(tenant: str, chunk: ChunkInfo) -> str:
    """``<tenant>-<chunk>-<sha8>``, within JobName's pattern ``[\\w\\s+=,.@-]+`` and 128 characters."""
    rest = f"-{chunk.name}-{chunk.sha256[:8]}"          # a remainder's name is 22 characters
    return re.sub(r"[^\w+=,.@-]", "-", tenant)[:128 - len(rest)] + rest


class JobSteps:
    """Mixed into the job runner (``pipeline.load._Loader``); see the module's docstring."""

    target: Any
    ledger: Ledger
    policy: Any
    tenant: str
    pool_id: str
    run_id: str
    created: dict[str, int]   # chunk sha256 -> jobs created in this run
    _created_lock: threading.Lock

    def _event(self, kind: str, message: str, **info: Any) -> None:
        raise NotImplementedError   # the job runner's

    def _prepare(self, chunk: ChunkInfo) -> dict[str, Any]:
        """Create a job for the chunk and upload its file; a new job whenever the URL has expired."""
        for _ in range(self.policy.max_jobs_per_chunk):
            try:
                job = self.target.create_import_job(
                    self.pool_id, job_name(self.tenant, chunk), self.target.logs_role_arn
                )
            except CognitoCallError as exc:
                if exc.code != "LimitExceededException":
                    raise
                raise LoadError(
                    f"{chunk.name}: no import job could be created ({exc.message}). A pool keeps every import "
                    f"job it ran, {self.policy.jobs_per_pool:,} at most unless AWS raised that limit (fact 38), "
                    f"and each file left needs one. {JOB_QUOTA_ADVICE}",
                    tenant=self.tenant, chunk=chunk.name,
                ) from None
            deadline = time.monotonic() + self.policy.url_ttl_seconds
            job_id = str(job["JobId"])
            url = str(job.pop("PreSignedUrl", ""))
            with self._created_lock:
                self.created[chunk.sha256] = self.created.get(chunk.sha256, 0) + 1
            self.ledger.record_job(
                job, tenant=self.tenant, chunk=chunk.name, chunk_sha256=chunk.sha256, run_id=self.run_id
            )
            self.ledger.set_chunk_state(self.tenant, self.pool_id, chunk.sha256, "job_created", job_id)
            self._event(
                "job_created", f"{chunk.name}: created job {job_id}.", chunk=chunk.name, job_id=job_id
            )
            if time.monotonic() > deadline:
                self._event(
                    "url_expired",
                    f"{chunk.name}: the upload URL of job {job_id} is too old; creating a new job.",
                    chunk=chunk.name,
                    job_id=job_id,
                )
                continue
            try:
                self.target.upload(url, chunk.csv_path)
            except UrlExpired:
                self._event(
                    "url_expired",
                    f"{chunk.name}: the upload URL of job {job_id} expired; creating a new job.",
                    chunk=chunk.name,
                    job_id=job_id,
                )
                continue
            self.ledger.mark_uploaded(job_id)
            self.ledger.set_chunk_state(self.tenant, self.pool_id, chunk.sha256, "uploaded", job_id)
            job["_prepared_at"] = time.monotonic()
            return job
        raise LoadError(
            f"{chunk.name}: could not upload the file in {self.policy.max_jobs_per_chunk} jobs; "
            "the upload URLs kept expiring (is the connection very slow?).",
            tenant=self.tenant,
            chunk=chunk.name,
        )

    def _start(self, chunk: ChunkInfo, job: dict[str, Any]) -> dict[str, Any]:
        """Start the job; wait while another job of the account runs; replace a job that got too old."""
        waited_since = time.monotonic()
        told_at: float | None = None   # when the user was last told of the wait
        replaced = 0
        while True:
            job_id = str(job["JobId"])
            age = time.time() - epoch_seconds(job.get("CreationDate"))
            if age > self.policy.job_ttl_seconds:
                job, replaced = self._replace(chunk, job, "is too old to start", replaced)
                continue
            try:
                started = self.target.start_import_job(self.pool_id, job_id)
            except PreconditionNotMet as exc:
                current = self.target.describe_import_job(self.pool_id, job_id)
                status = current.get("Status")
                if status in RUNNING or status in ("Succeeded", "Failed", "Stopped"):
                    started = current  # an earlier attempt of ours did start it
                elif status == "Expired" or "uploaded" in exc.message:
                    job, replaced = self._replace(chunk, job, f"cannot be started ({status})", replaced)
                    continue
                else:
                    if time.monotonic() - waited_since > self.policy.active_wait_timeout_seconds:
                        raise LoadError(
                            f"{chunk.name}: another import job has kept the account busy for "
                            f"{_duration(self.policy.active_wait_timeout_seconds)} ({exc.message}); job "
                            f"{job_id} was not started. Rerun once that job has ended; the ledger resumes.",
                            tenant=self.tenant,
                            chunk=chunk.name,
                            job_id=job_id,
                        ) from None
                    now = time.monotonic()
                    if told_at is None or now - told_at >= self.policy.active_wait_notice_seconds:
                        self._event("waiting", self._waiting_message(chunk, job_id, exc, now - waited_since,
                                                                     first=told_at is None),
                                    chunk=chunk.name, job_id=job_id)
                        told_at = now
                    self.policy.sleep(self.policy.active_wait_seconds)
                    continue
            self.ledger.record_job(
                started, tenant=self.tenant, chunk=chunk.name, chunk_sha256=chunk.sha256, run_id=self.run_id
            )
            self.ledger.set_chunk_state(self.tenant, self.pool_id, chunk.sha256, "started", job_id)
            self._event(
                "job_started", f"{chunk.name}: started job {job_id}.", chunk=chunk.name, job_id=job_id
            )
            return started

    def _waiting_message(self, chunk: ChunkInfo, job_id: str, refusal: PreconditionNotMet, waited: float,
                         first: bool) -> str:
        """What a wait for the account's active job is told: Cognito's reason (the local service names the
        job), how often it asks again and for how long; then, now and then, how long it has waited."""
        limit = _duration(self.policy.active_wait_timeout_seconds)
        if first:
            return (f"{chunk.name}: job {job_id} cannot start yet ({refusal.message}); Cognito runs one "
                    f"import job per account at a time. Trying again every "
                    f"{_duration(self.policy.active_wait_seconds)}, for up to {limit}.")
        return f"{chunk.name}: still waiting to start job {job_id} ({_duration(waited)} of at most {limit})."

    def _replace(
        self, chunk: ChunkInfo, job: dict[str, Any], why: str, replaced: int
    ) -> tuple[dict[str, Any], int]:
        if replaced >= self.policy.max_jobs_per_chunk:
            raise LoadError(
                f"{chunk.name}: replaced its job {replaced} times and job {job['JobId']} still {why}.",
                tenant=self.tenant,
                chunk=chunk.name,
                job_id=str(job["JobId"]),
            )
        self._event(
            "job_replaced",
            f"{chunk.name}: job {job['JobId']} {why}; creating a new job.",
            chunk=chunk.name,
            job_id=str(job["JobId"]),
        )
        return self._prepare(chunk), replaced + 1

    def _poll(self, chunk: ChunkInfo, job: dict[str, Any]) -> dict[str, Any]:
        job_id = str(job["JobId"])
        schedule = PollSchedule(self.policy.poll_initial_seconds, self.policy.poll_max_seconds, chunk.rows)
        seen: tuple[Any, ...] | None = None
        while True:
            current = self.target.describe_import_job(self.pool_id, job_id)
            asked = time.monotonic()
            state = (
                current.get("Status"),
                current.get("ImportedUsers"),
                current.get("SkippedUsers"),
                current.get("FailedUsers"),
            )
            if state != seen:
                self.ledger.record_job(
                    current, tenant=self.tenant, chunk=chunk.name, chunk_sha256=chunk.sha256
                )
                self._event(
                    "job_status",
                    f"{chunk.name}: job {job_id} {state[0]} (imported {state[1]}, "
                    f"skipped {state[2]}, failed {state[3]}).",
                    chunk=chunk.name,
                    job_id=job_id,
                    status=state[0],
                    done=sum(int(n or 0) for n in state[1:]),
                    rows=chunk.rows,
                )
                seen = state
            if current.get("Status") in TERMINAL:
                self.ledger.set_chunk_state(self.tenant, self.pool_id, chunk.sha256, "finished", job_id)
                return current
            done = sum(int(current.get(k) or 0) for k in ("ImportedUsers", "SkippedUsers", "FailedUsers"))
            self.policy.sleep(schedule.next_wait(asked, done))

    def _terminal_jobs(self, chunk: ChunkInfo, final: dict[str, Any]) -> list[dict[str, Any]]:
        """Every job of this chunk that ran (oldest first): their logs together settle each user."""
        jobs = []
        for record in self.ledger.jobs(self.tenant, chunk.sha256):
            if record.job_id == final["JobId"]:
                continue
            if record.status in ("Succeeded", "Failed", "Stopped"):
                jobs.append({"JobId": record.job_id, "JobName": record.job_name, "Status": record.status})
        return [*jobs, final]
