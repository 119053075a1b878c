"""Run one Cognito import job per chunk: create, upload, start, poll, harvest (facts 22-36).

* One job is active per account (fact 27): chunks and tenants queue; a start refused because another
  job runs is retried after a wait. While a job runs, the next chunk's job is created and its file
  uploaded in a background thread, so no time is lost between jobs; a prepared job that got too old
  (URL lifetime, job expiry) or whose URL expired before the upload is replaced by a new job.
* Every step is committed to the ledger before the next side effect. On start the ledger and
  ListUserImportJobs (our job names) decide what to do with earlier jobs: adopt a running one, harvest
  a finished one, start a Created one whose file was uploaded; a chunk already harvested is never
  imported again, and no second job is started for a chunk whose job is running or done. A chunk
  the ledger does not know (the data or the mapping changed since an earlier run) is sent without the
  users earlier jobs imported or met in the pool (``chunk.write_remainder``); one holding only such
  users needs no job. A chunk that needs no job has its files removed, as a harvested one has. A job
  an earlier run started for a chunk this plan no longer has (killed, then the data, the mapping or
  the pool's header changed) is adopted or harvested from its own file first.
* Harvest maps each ``[SUCCEEDED|SKIPPED|FAILED] Line Number N - msg`` log line to row N of the keys
  file (first data row = 1, U6), then confirms against the pool: imported users must exist with the
  expected status and attributes (their ``sub`` is recorded); users without a log line are settled by
  looking them up (``pipeline.harvest``).

One job's own steps (create and upload, start, poll) are ``pipeline.jobsteps``.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.chunk import ChunkInfo, read_keys, retry_sha256, write_remainder
from pipeline.cognito import CognitoTarget
from pipeline.errors import LoadError
from pipeline.harvest import ChunkResult, Harvester, epoch_seconds
from pipeline.jobsteps import JOB_QUOTA_ADVICE, RUNNING, JobSteps, job_name
from pipeline.ledger import Ledger
from pipeline.mapping.model import SHIPPED_IDENTITY, Identity
from pipeline.poolusers import case_insensitive, key_attribute_of


@dataclass(frozen=True)
class LoadPolicy:
    """How the load stage behaves; the defaults suit AWS, tests shorten the waits."""

    on_failed_job: str = "stop"  # "stop" | "continue"
    keep_files: bool = False  # keep chunk CSVs after harvest
    poll_initial_seconds: float = 1.0
    poll_max_seconds: float = 15.0
    active_wait_seconds: float = 10.0  # another job is running in the account: wait this long
    active_wait_timeout_seconds: float = 12 * 3600
    active_wait_notice_seconds: float = 300.0  # while waiting so, say so again this often
    url_ttl_seconds: float = 14 * 60  # a pre-signed URL lives 15 min (fact 25); keep a margin
    job_ttl_seconds: float = 20 * 3600  # a Created job expires after 24-48 h (fact 22)
    max_jobs_per_chunk: int = 5  # new jobs for one chunk (expired URL, lost upload, expired job)
    jobs_per_pool: int = 1000  # import jobs a pool keeps, ever (fact 38; AWS can raise it on request)
    verify: bool = True  # confirm users against the pool at harvest
    # At harvest, look up at most this many logged users per chunk (spread over the file) plus every
    # user the log does not mention; 0 = all. Reconciliation then checks every imported user in one
    # ListUsers pass, so the sample only has to catch a systematic fault (e.g. shifted line numbers)
    # without putting a full pool listing between two jobs.
    verify_sample: int = 200
    expected_status: tuple[str, ...] = ("RESET_REQUIRED",)
    fetch_one_by_one_below: int = 0  # 0 = choose by pool size; else AdminGetUser under this count
    # AdminGetUser calls at once at harvest: 4 at ~50 ms a round trip stay under the account's
    # default user-read rate (a throttled call is retried with backoff like any other)
    lookup_threads: int = 4
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.on_failed_job not in ("stop", "continue"):
            raise ValueError(f"on_failed_job={self.on_failed_job!r}: write 'stop' or 'continue'")


@dataclass(frozen=True)
class LoadResult:
    run_id: str
    tenant: str
    pool_id: str
    chunks: tuple[ChunkResult, ...]
    stopped: bool = False
    stop_reason: str | None = None

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.chunks]

    @property
    def jobs_created(self) -> int:
        return sum(c.jobs_created for c in self.chunks)

    @property
    def imported(self) -> int:
        return sum(c.imported for c in self.chunks)

    @property
    def skipped(self) -> int:
        return sum(c.skipped for c in self.chunks)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.chunks)

    @property
    def ok(self) -> bool:
        return not self.stopped and all(c.status in ("Succeeded", "done-before") for c in self.chunks)


def tell(progress: Any, kind: str, tenant: str, message: str, **info: Any) -> None:
    """A line for the user, through the progress sink's ``event`` (the CLI prints those) and ``note``."""
    if progress is None:
        return
    if hasattr(progress, "event"):
        progress.event(kind, tenant=tenant, message=message, **info)
    if hasattr(progress, "note"):
        progress.note(tenant, message)



def run_load(
    target: CognitoTarget,
    ledger: Ledger,
    tenant: str,
    pool_id: str,
    chunks: list[ChunkInfo],
    policy: LoadPolicy,
    progress: Any = None,
    identity: Identity = SHIPPED_IDENTITY,
) -> LoadResult:
    """Import ``chunks`` into ``pool_id``, one job at a time, resuming whatever an earlier run left.
    ``identity``: the mapping's attributes that tell a user's own account from someone else's."""
    with ledger.locked(target.account_key):
        return _Loader(target, ledger, tenant, pool_id, policy, progress, identity).run(list(chunks))


class _Loader(JobSteps, Harvester):
    def __init__(
        self,
        target: CognitoTarget,
        ledger: Ledger,
        tenant: str,
        pool_id: str,
        policy: LoadPolicy,
        progress: Any,
        identity: Identity = SHIPPED_IDENTITY,
    ) -> None:
        self.target = target
        self.identity = identity
        self.ledger = ledger
        self.tenant = tenant
        self.pool_id = pool_id
        self.policy = policy
        self.progress = progress
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.created: dict[str, int] = {}  # chunk sha -> jobs created in this run
        self._created_lock = threading.Lock()
        self._done_users: pd.Index | None = None   # see _without_done_users
        self.pool_jobs = 0   # import jobs the pool holds, as _resume_plans last listed them

    # ---- reporting --------------------------------------------------------------------------------

    def _event(self, kind: str, message: str, **info: Any) -> None:
        tell(self.progress, kind, self.tenant, message, **info)

    # ---- the run ----------------------------------------------------------------------------------

    def run(self, chunks: list[ChunkInfo]) -> LoadResult:
        self.ledger.start_run(
            self.run_id, self.tenant, self.target.account_key, self.target.region, self.pool_id
        )
        pool = self.target.describe_user_pool(self.pool_id)
        self.pool_name = str(pool.get("Name", ""))
        self.pool_size = int(pool.get("EstimatedNumberOfUsers", 0) or 0)
        self.key_attribute = key_attribute_of(pool)
        self.fold_case = case_insensitive(pool)
        results: list[ChunkResult] = self._earlier_plans_jobs(chunks)
        pending: list[ChunkInfo] = []
        for chunk in chunks:
            self.ledger.plan_chunk(
                self.tenant,
                self.pool_id,
                chunk.name,
                chunk.sha256,
                chunk.rows,
                self.run_id,
                header=_header_of(chunk),
            )
            if self.ledger.chunk_done(self.tenant, self.pool_id, chunk.sha256):
                results.append(self._done_before(chunk, f"{chunk.name} was imported by an earlier run; skipping it."))
                continue
            rest = self._without_done_users(chunk)
            if rest is None:
                earlier = (self.ledger.chunk(self.tenant, self.pool_id, chunk.sha256) or {}).get("job_id")
                why = (f"This file's own job {earlier} ended before the chunk counted as done." if earlier else
                       "Its file differs from theirs: the data or the mapping changed since. An import job never "
                       "updates a user, so they keep the attributes of that import.")
                results.append(self._done_before(
                    chunk, f"{chunk.name}: its {chunk.rows} users were all imported or met in the pool by earlier "
                    f"jobs; no job needed. ({why})"))
                continue
            if rest is not chunk:
                self._event(
                    "chunk_remainder",
                    f"{chunk.name}: {chunk.rows - rest.rows} of its users were imported or met in the pool by "
                    f"earlier jobs (they keep the attributes of that import); importing the other {rest.rows} "
                    f"from {rest.name}.",
                    chunk=chunk.name,
                )
                self._discard(chunk)
                chunk = rest
                self.ledger.plan_chunk(self.tenant, self.pool_id, chunk.name, chunk.sha256, chunk.rows,
                                       self.run_id, header=_header_of(chunk))
                if self.ledger.chunk_done(self.tenant, self.pool_id, chunk.sha256):   # its failed users remain
                    results.append(self._done_before(chunk, f"{chunk.name} was imported by an earlier run."))
                    continue
            pending.append(chunk)
        plans = self._resume_plans(pending) if pending else {}
        self._warn_of_job_quota(sum(plans.get(c.sha256, ("new", None))[0] == "new" for c in pending))
        stop_reason: str | None = None
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-next")
        prepared: dict[str, Future[dict[str, Any]]] = {}
        harvester = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest")
        harvests: list[Future[ChunkResult]] = []
        try:
            for index, chunk in enumerate(pending):
                action, job = plans.get(chunk.sha256, ("new", None))
                jobs_done: list[dict[str, Any]] = []
                if action == "harvest":
                    final = job
                else:
                    if action == "adopt":
                        running = job
                        self._event(
                            "job_adopted",
                            f"{chunk.name}: adopting job {job['JobId']} "
                            f"({job['Status']}) left running by an earlier run.",
                            chunk=chunk.name,
                            job_id=job["JobId"],
                        )
                    else:
                        if action == "start" and job is not None:
                            ready = job
                        elif chunk.sha256 in prepared:
                            ready = prepared.pop(chunk.sha256).result()
                        else:
                            ready = self._prepare(chunk)
                        running = self._start(chunk, ready)
                    nxt = self._next_new(pending, plans, index)
                    if nxt is not None and not chunk.canary and nxt.sha256 not in prepared:
                        prepared[nxt.sha256] = executor.submit(self._prepare, nxt)
                    final = self._poll(chunk, running)
                jobs_done = self._terminal_jobs(chunk, final)
                resumed = "" if action == "new" else {
                    "adopt": "adopted", "harvest": "harvested", "start": "started-created"}[action]
                # The log is read and the users checked while the next job already runs, so no time
                # is lost between jobs; only a job whose counters may stop the run is waited for.
                harvests.append(harvester.submit(self._harvest, chunk, jobs_done, final, resumed=resumed))
                if self._may_stop(chunk, final):
                    result = harvests[-1].result()
                    stop_reason = self._should_stop(chunk, result)
                    if stop_reason:
                        self._event("run_stopped", stop_reason, chunk=chunk.name, job_id=result.job_id)
                        break
        except BaseException as failure:
            # the loop's error is the one the caller sees; the harvests under way still finish (their
            # outcomes are stored) and one that failed too is told, not raised in its place
            self._wind_down(executor, prepared, harvester)
            for error in self._collect(harvests, results):
                if error is not failure:
                    self._event("harvest_failed", f"A harvest also failed while the run was ending: {error}")
            self.ledger.finish_run(self.run_id, "failed")
            raise
        self._wind_down(executor, prepared, harvester)
        errors = self._collect(harvests, results)
        self.ledger.finish_run(self.run_id, "failed" if errors else "stopped" if stop_reason else "finished")
        if errors:
            raise errors[0]
        return LoadResult(
            self.run_id,
            self.tenant,
            self.pool_id,
            tuple(results),
            stopped=bool(stop_reason),
            stop_reason=stop_reason,
        )

    @staticmethod
    def _wind_down(executor: ThreadPoolExecutor, prepared: dict[str, Future[dict[str, Any]]],
                   harvester: ThreadPoolExecutor) -> None:
        """Wait for the job being prepared (the ledger knows its state, so its error is not needed) and
        for every harvest under way."""
        for future in prepared.values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - the run is ending; the ledger knows the job's state
                pass
        executor.shutdown(wait=True)
        harvester.shutdown(wait=True)

    @staticmethod
    def _collect(harvests: list[Future[ChunkResult]], results: list[ChunkResult]) -> list[BaseException]:
        """Append each finished harvest's result to ``results``; return the errors of those that failed."""
        errors: list[BaseException] = []
        for future in harvests:
            error = future.exception()
            if error is None:
                results.append(future.result())
            else:
                errors.append(error)
        return errors

    def _earlier_plans_jobs(self, chunks: list[ChunkInfo]) -> list[ChunkResult]:
        """Adopt or harvest, before anything else, the jobs an earlier run started for chunks this plan
        no longer has.

        A run killed while a job ran, then planned again after the data, the mapping or the pool's header
        changed, has other files: the job's chunk is not among them, and its users, now in a new chunk,
        were sent in a second job that only skipped them (counted as skipped, their import never
        checked). Such a job is waited for and harvested from its own plan's file, found by name and
        sha256 beside this plan's (``runs/<tenant>/<plan id>/chunks/``), before any remainder is cut;
        without that file it is left as it was.
        """
        if not chunks or len(chunks[0].csv_path.parents) < 3:
            return []
        current = {c.sha256 for c in chunks}
        earlier = [   # by name and sha256 alone (all ``_resume_plans`` reads): files only for jobs to harvest
            ChunkInfo(r["name"], Path(), Path(), int(r["rows"]), 0, r["sha256"])
            for r in self.ledger.chunks(self.tenant, self.pool_id)
            if r["sha256"] not in current and r["state"] in ("uploaded", "started", "finished")
        ]
        plans = self._resume_plans(earlier) if earlier else {}
        results = []
        for record in earlier:
            action, job = plans[record.sha256]
            if action not in ("adopt", "harvest"):
                continue   # never started (its users are in this plan's files), or harvested before
            chunk = _earlier_file(chunks[0].csv_path.parents[2], record, self._jobs_of_users)
            if chunk is None or self._settled_since(chunk, job):
                continue   # its file is gone, or a newer job has its users
            self._event("job_adopted", f"{chunk.name} of an earlier plan (not in this one): "
                        f"{'adopting' if action == 'adopt' else 'harvesting'} its job {job['JobId']} "
                        f"({job['Status']}) first.", chunk=chunk.name, job_id=job["JobId"])
            final = self._poll(chunk, job) if action == "adopt" else job
            results.append(self._harvest(chunk, self._terminal_jobs(chunk, final), final,
                                         resumed="adopted" if action == "adopt" else "harvested"))
        return results

    def _jobs_of_users(self, keys_path: Path) -> list[str]:
        """The job of each ledger outcome of the users a keys file lists (a user without one: none)."""
        outcomes = self.ledger.outcomes(self.tenant, self.pool_id)
        users = outcomes["legacy_id"].astype(str).isin(set(read_keys(keys_path)["legacy_id"]))
        return [str(j) for j in outcomes.loc[users, "job_id"].dropna()]

    def _settled_since(self, chunk: ChunkInfo, job: dict[str, Any]) -> bool:
        """Whether a job newer than ``job`` holds the outcome of one of the chunk's users: a run that did
        not find the chunk's file (or came before such jobs were harvested) sent them again, and their
        outcomes stand."""
        since = epoch_seconds(job.get("CreationDate"))
        return any((record := self.ledger.job(j)) is not None and record.created_at > since
                   for j in set(self._jobs_of_users(chunk.keys_path)))

    def _without_done_users(self, chunk: ChunkInfo) -> ChunkInfo | None:
        """``chunk`` as it still needs importing (``chunk.write_remainder``), from the users the ledger has
        as imported or skipped in this pool (read once per run, and only when a chunk is new to it)."""
        if self._done_users is None:
            self._done_users = self.ledger.in_pool_ids(self.tenant, self.pool_id)
        return write_remainder(chunk, self._done_users) if len(self._done_users) else chunk

    def _done_before(self, chunk: ChunkInfo, message: str) -> ChunkResult:
        """The result of a chunk that needs no job of this run (its files removed, as a harvested one's)."""
        done = self.ledger.chunk(self.tenant, self.pool_id, chunk.sha256) or {}
        self._event("chunk_done_before", message, chunk=chunk.name)
        self._discard(chunk)
        return ChunkResult(chunk.name, chunk.sha256, chunk.rows, chunk.canary, done.get("job_id"), "done-before")

    def _warn_of_job_quota(self, needed: int) -> None:
        """Say before the first job when the pool's jobs and the ``needed`` new ones pass the quota: the run
        would stop at the limit, its later files not imported."""
        quota = self.policy.jobs_per_pool
        if needed and self.pool_jobs <= quota < self.pool_jobs + needed:
            self._event("job_quota", f"pool {self.pool_id} holds {self.pool_jobs} import job(s) and this run needs "
                        f"{needed} more, over Cognito's {quota:,} per pool (fact 38): unless AWS raised that "
                        f"limit, the run stops there. {JOB_QUOTA_ADVICE}")

    def _may_stop(self, chunk: ChunkInfo, final: dict[str, Any]) -> bool:
        """Whether a finished job's status and counters could stop the run (see ``_should_stop``)."""
        status = final.get("Status")
        if chunk.canary and (status != "Succeeded" or int(final.get("FailedUsers") or 0) > 0):
            return True
        return status in ("Failed", "Stopped", "Expired") and self.policy.on_failed_job == "stop"

    def _should_stop(self, chunk: ChunkInfo, result: ChunkResult) -> str | None:
        if result.failed_by_skips:
            # Every user has an outcome (one without a log line and not in the pool counts as failed) and
            # none failed: nothing systematic to stop for; the harvest counted the chunk as done.
            self._event(
                "job_failed_by_skips",
                f"{chunk.name}: job {result.job_id} ended Failed ({result.completion_message}) because "
                f"{result.skipped + result.skipped_as_someone_else} of its users were already in the pool; "
                "none failed, so the run goes on.",
                chunk=chunk.name, job_id=result.job_id or "",
            )
            return None
        reasons = (
            "; ".join(f"{n} x {m.rstrip('.')}" for m, n in result.failure_reasons[:5]) or "no per-user reasons logged"
        )
        # users skipped under another person's account are not a systematic error: the canary passes them
        if chunk.canary and (result.status != "Succeeded" or result.failed > result.skipped_as_someone_else):
            return (
                f"The canary {chunk.name} (job {result.job_id}) ended {result.status} with {result.failed} "
                f"failed user(s): {reasons}. The big files were not imported; fix the data or mapping."
            )
        if result.status in ("Failed", "Stopped", "Expired") and self.policy.on_failed_job == "stop":
            return (
                f"{chunk.name}: job {result.job_id} ended {result.status} ({result.completion_message}); "
                f"{reasons}. Stopping (on_failed_job=stop)."
            )
        return None

    @staticmethod
    def _next_new(
        pending: list[ChunkInfo], plans: dict[str, tuple[str, Any]], index: int
    ) -> ChunkInfo | None:
        for chunk in pending[index + 1 :]:
            if plans.get(chunk.sha256, ("new", None))[0] == "new":
                return chunk
            return None  # the next chunk resumes an earlier job; nothing to prepare
        return None

    # ---- resume -----------------------------------------------------------------------------------

    def _resume_plans(self, pending: list[ChunkInfo]) -> dict[str, tuple[str, Any]]:
        """For each pending chunk: ("adopt"|"harvest"|"start", job) from earlier jobs, else ("new", None)."""
        by_name: dict[str, list[dict[str, Any]]] = {}
        names = {job_name(self.tenant, c): c for c in pending}
        listed = self.target.list_import_jobs(self.pool_id)
        self.pool_jobs = len(listed)
        for job in listed:
            if job.get("JobName") in names:
                by_name.setdefault(str(job["JobName"]), []).append(job)
        plans: dict[str, tuple[str, Any]] = {}
        for name, chunk in names.items():
            known = {r.job_id: r for r in self.ledger.jobs(self.tenant, chunk.sha256)}
            remote = {str(j["JobId"]): j for j in by_name.get(name, [])}
            for job_id in set(known) - set(remote):
                try:
                    remote[job_id] = self.target.describe_import_job(self.pool_id, job_id)
                except LoadError:
                    continue
            for job in remote.values():
                self.ledger.record_job(job, tenant=self.tenant, chunk=chunk.name, chunk_sha256=chunk.sha256)
            newest_first = sorted(remote.values(), key=lambda j: epoch_seconds(j.get("CreationDate")), reverse=True)
            plan: tuple[str, Any] = ("new", None)
            for newer, job in enumerate(newest_first):
                status = job.get("Status")
                if status in RUNNING:
                    plan = ("adopt", job)
                    break
                # a Failed job with a newer job of the chunk was harvested before (a run creates a job
                # for a chunk only once its last one failed and was harvested, or never ran): say the
                # rerun was killed after creating its retry job, before uploading it
                if status == "Failed" and (newer or self._harvested_failure(chunk, job)):
                    break              # already harvested: the rerun retries the chunk with a new job
                if status in ("Succeeded", "Failed"):
                    plan = ("harvest", job)
                    break
                if status == "Created":
                    record = self.ledger.job(str(job["JobId"]))
                    age = time.time() - epoch_seconds(job.get("CreationDate"))
                    if record is not None and record.uploaded and age < self.policy.job_ttl_seconds:
                        plan = ("start", job)
                        break
            plans[chunk.sha256] = plan
        return plans

    def _harvested_failure(self, chunk: ChunkInfo, job: dict[str, Any]) -> bool:
        record = self.ledger.chunk(self.tenant, self.pool_id, chunk.sha256)
        return record is not None and record["state"] == "failed" and record["job_id"] == job.get("JobId")


def _earlier_file(tenant_dir: Path, chunk: ChunkInfo, failed_in: Callable[[Path], list[str]]) -> ChunkInfo | None:
    """``chunk`` (known by name and sha256) with the import file and keys file of one of the tenant's plan
    directories that still has them, if any does. A retry file's sha256 also covers the jobs its users
    failed in (``failed_in``: those jobs, by the file's keys, as the ledger has them): a rerun without
    --retry-failed after a killed retry run harvests its job too, so that users it imported do not stay
    failed."""
    for csv_path in sorted(tenant_dir.glob(f"*/chunks/{chunk.name}.csv"), reverse=True):
        keys_path = csv_path.with_name(f"{chunk.name}.keys.csv")
        try:
            with csv_path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            if digest != chunk.sha256 and chunk.name.startswith("retry-") and keys_path.exists():
                digest = retry_sha256(digest, failed_in(keys_path))
            if digest == chunk.sha256 and keys_path.exists():
                return replace(chunk, csv_path=csv_path, keys_path=keys_path, bytes=csv_path.stat().st_size)
        except OSError:   # unreadable: as if it were gone
            continue
    return None


def _header_of(chunk: ChunkInfo) -> list[str] | None:
    try:
        with open(chunk.csv_path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\n").split(",")
    except OSError:
        return None
