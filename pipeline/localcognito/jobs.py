"""Import jobs: the record, its state machine (facts 22-24, 28) and the in-memory store.

Statuses: Created -> Pending -> InProgress -> Succeeded | Failed; Pending/InProgress -> Stopped
(a Created job cannot be stopped, U8; StopUserImportJob answers ``Stopped`` at once, so ``Stopping``
is never visible, U9);
Created -> Expired after ``job_ttl_seconds`` (evaluated lazily on every access to the store).
One job per account may be active (Pending, InProgress, Stopping; fact 27).
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pipeline.localcognito.config import ServiceConfig
from pipeline.localcognito.errors import LimitExceeded, PreconditionNotMet, ResourceNotFound

ACTIVE = ("Pending", "InProgress", "Stopping")
FINAL = ("Stopped", "Succeeded", "Failed", "Expired")
MSG_SUCCEEDED = "Import Job Completed Successfully."                           # fact 28
MSG_TOO_MANY = "Too many users have failed or been skipped during the import."
MSG_STOPPED = "The Import Job was stopped by the developer."
MSG_EXPIRED = "The user import job has expired."
_ALPHABET = string.ascii_letters + string.digits


def new_job_id() -> str:
    return "import-" + "".join(secrets.choice(_ALPHABET) for _ in range(10))   # fact 31


@dataclass
class Job:
    job_id: str
    job_name: str
    pool_id: str
    pool_name: str
    region: str
    account: str
    role_arn: str
    creation_date: float
    expires_at: float                # when an unstarted job expires
    url_expires_at: float            # when the upload URL stops working
    presigned_url: str = ""
    status: str = "Created"
    start_date: float | None = None
    completion_date: float | None = None
    completion_message: str | None = None
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    upload: bytes | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    def finish(self, status: str, message: str, when: float | None = None) -> None:
        self.status, self.completion_message = status, message
        self.completion_date = time.time() if when is None else when
        self.upload = None           # fact 31: the CSV is deleted once the job ends

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "JobName": self.job_name, "JobId": self.job_id, "UserPoolId": self.pool_id,
            "PreSignedUrl": self.presigned_url, "CreationDate": self.creation_date,
        }
        if self.start_date is not None:
            out["StartDate"] = self.start_date
        if self.completion_date is not None:
            out["CompletionDate"] = self.completion_date
        out.update({"Status": self.status, "CloudWatchLogsRoleArn": self.role_arn,
                    "ImportedUsers": self.imported, "SkippedUsers": self.skipped,
                    "FailedUsers": self.failed})
        if self.completion_message:
            out["CompletionMessage"] = self.completion_message
        return out


class JobStore:
    """Every job of every pool, keyed by (region, pool id); thread-safe."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._pools: dict[tuple[str, str], OrderedDict[str, Job]] = {}

    def _expire(self, now: float) -> None:
        for jobs in self._pools.values():
            for job in jobs.values():
                if job.status == "Created" and now >= job.expires_at:
                    job.finish("Expired", MSG_EXPIRED, when=job.expires_at)

    def jobs_of(self, region: str, pool_id: str) -> list[Job]:
        """Newest first (fact 31)."""
        with self.lock:
            self._expire(time.time())
            return list(reversed(self._pools.get((region, pool_id), {}).values()))

    def create(self, job: Job) -> Job:
        with self.lock:
            self._expire(time.time())
            jobs = self._pools.setdefault((job.region, job.pool_id), OrderedDict())
            if len(jobs) >= self.config.max_jobs_per_pool:                    # fact 38, U8
                raise LimitExceeded(f"The user pool {job.pool_id} already has "
                                    f"{self.config.max_jobs_per_pool} user import jobs.")
            jobs[job.job_id] = job
            return job

    def get(self, region: str, pool_id: str, job_id: str) -> Job:
        with self.lock:
            self._expire(time.time())
            job = self._pools.get((region, pool_id), OrderedDict[str, Job]()).get(job_id)
            if job is None:
                raise ResourceNotFound(f"Import job {job_id} does not exist in user pool {pool_id}.")
            return job

    def active_job(self, account: str) -> Job | None:
        for jobs in self._pools.values():
            for job in jobs.values():
                if job.account == account and job.status in ACTIVE:
                    return job
        return None

    def start(self, region: str, pool_id: str, job_id: str) -> Job:
        with self.lock:
            job = self.get(region, pool_id, job_id)
            if job.status != "Created":                                       # U8
                raise PreconditionNotMet(f"The import job {job_id} is {job.status}; only a job in "
                                         "Created status can be started.")
            if job.upload is None:                                            # fact 26
                raise PreconditionNotMet(f"No csv file was uploaded for {job_id}")
            active = self.active_job(job.account)
            if active is not None:                                            # fact 27, U8
                raise PreconditionNotMet(f"Another import job ({active.job_id}) is already running "
                                         "in this account; only one job can be active at a time.")
            job.status, job.start_date = "Pending", time.time()
            return job

    def stop(self, region: str, pool_id: str, job_id: str) -> Job:
        with self.lock:
            job = self.get(region, pool_id, job_id)
            if job.status not in ("Pending", "InProgress"):                   # U8
                raise PreconditionNotMet(f"The import job {job_id} is {job.status}; only a Pending "
                                         "or InProgress job can be stopped.")
            job.stop_event.set()
            job.finish("Stopped", MSG_STOPPED)                                # fact 23
            return job

    def complete(self, job: Job, status: str, message: str) -> None:
        """Called by the worker; a job stopped meanwhile stays Stopped."""
        with self.lock:
            if job.status in ("Pending", "InProgress"):
                job.finish(status, message)
