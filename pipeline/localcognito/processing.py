"""The import worker: one thread per started job, Pending -> InProgress -> Succeeded | Failed.

Whole-job checks first (facts 6, 12, 30; U1, U12): file size, BOM, UTF-8, header, user count. Then
every data row (Line Number 1 = first row after the header, U6) gets one log line
``[SUCCEEDED|SKIPPED|FAILED] Line Number N - <text>`` in CloudWatch Logs (facts 33-34), written in
batches, and the counters move as it goes. Rows are processed in batches under the service lock, which
also serialises moto's own cognito-idp requests, so ListUsers never sees a dict being changed.
U4: the job ends Failed when FailedUsers + SkippedUsers > ImportedUsers (more than half of the rows
did not import), else Succeeded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from moto.cognitoidp.models import CognitoIdpUserPool, cognitoidp_backends

from pipeline.csvdialect import MAX_FILE_BYTES, MAX_FILE_USERS, MAX_ROW_CHARS, decode_line
from pipeline.localcognito.config import Faults, ServiceConfig
from pipeline.localcognito.joblog import JobLog
from pipeline.localcognito.jobs import MSG_SUCCEEDED, MSG_TOO_MANY, Job, JobStore
from pipeline.localcognito.listing import note_change
from pipeline.localcognito.rules import PoolRules, check_row
from pipeline.localcognito.users import PoolIndex

MSG_INTERNAL_ROW = "An internal error occurred while importing the user."
MSG_SUCCEEDED_ROW = "The import succeeded."                                     # fact 34
FULL_SPEED_BATCH = 250   # rows per hold of the service lock: requests wait at most one batch (~25 ms)
_COUNTERS = {"SUCCEEDED": "imported", "SKIPPED": "skipped", "FAILED": "failed"}   # fact 28


class JobFailure(Exception):
    """The whole job fails with this CompletionMessage."""


def read_rows(data: bytes, header: list[str]) -> tuple[list[str], list[str]]:
    """(the file's header, its data lines) or JobFailure for a file that cannot be imported."""
    if len(data) > MAX_FILE_BYTES:                                              # fact 12
        raise JobFailure("The CSV file is larger than 100 MB.")
    if data.startswith(b"\xef\xbb\xbf"):                                        # fact 6
        raise JobFailure("The CSV file starts with a byte order mark; it must be UTF-8 without one.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobFailure(f"The CSV file is not valid UTF-8 (byte {exc.start}).") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()                        # the line end of the last row
    if not lines:
        raise JobFailure("The CSV file is empty; it needs the header row.")
    columns = decode_line(lines[0])
    missing = [c for c in header if c not in columns]
    unknown = sorted({c for c in columns if c not in header})
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or doubled:                                           # U1: strict
        parts = [f"{label}: {', '.join(cols)}" for label, cols in
                 (("missing", missing), ("unknown", unknown), ("repeated", doubled)) if cols]
        raise JobFailure("The CSV header does not match the user pool's CSV header ("
                         + "; ".join(parts) + ").")
    rows = lines[1:]
    if len(rows) > MAX_FILE_USERS:                                              # fact 12
        raise JobFailure(f"The CSV file holds {len(rows)} users; at most {MAX_FILE_USERS} are allowed.")
    if not rows:                                                                # U12
        raise JobFailure("The CSV file holds no users.")
    return columns, rows


class ImportWorker(threading.Thread):
    def __init__(self, job: Job, store: JobStore, config: ServiceConfig, faults: Faults,
                 lock: threading.RLock) -> None:
        super().__init__(name=f"import-worker-{job.job_id}", daemon=True)
        self.job, self.store, self.config, self.lock = job, store, config, lock
        self.inject_failure = faults.take_job_failure()

    def run(self) -> None:
        job = self.job
        try:
            self._run()
        except JobFailure as exc:
            self.store.complete(job, "Failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker must always end its job
            self.store.complete(job, "Failed", f"An internal error occurred ({type(exc).__name__}).")

    def _pool(self) -> CognitoIdpUserPool | None:
        return cognitoidp_backends[self.job.account][self.job.region].user_pools.get(self.job.pool_id)

    def _run(self) -> None:
        job = self.job
        with self.lock:
            pool = self._pool()
            if pool is None:                                                    # fact 30
                raise JobFailure("The user pool was deleted.")
            rules = PoolRules.from_pool(pool)
        columns, rows = read_rows(job.upload or b"", rules.header)
        with self.store.lock:
            if job.status != "Pending":
                return                                                          # stopped meanwhile
            job.status = "InProgress"
        log = JobLog(job)
        with self.lock:
            index = PoolIndex(pool, rules)
        t0, done = time.monotonic(), 0
        for batch in self._batches(rows):
            with self.lock:
                if self._pool() is not pool:
                    log.flush()
                    raise JobFailure("The user pool was deleted.")
                for number, line in batch:
                    if job.stop_event.is_set():
                        break
                    status, text = self._one(rules, index, columns, line)
                    counter = _COUNTERS[status]
                    setattr(job, counter, getattr(job, counter) + 1)
                    log.add(f"[{status}] Line Number {number} - {text}")
                note_change()                                                   # listings see the new users
            log.flush()
            done += len(batch)
            if job.stop_event.is_set():
                return                                                          # already Stopped
            ups = self.config.users_per_second
            if ups:
                delay = t0 + done / ups - time.monotonic()
                if delay > 0 and job.stop_event.wait(delay):
                    return
            else:
                # Let a request waiting for the lock take it: without this the worker takes it straight
                # back (locks are not fair), and AdminGetUser or a log read during a job waited ~50 ms
                # per call, which queued a chunk's harvest behind the following jobs.
                time.sleep(0)
        bad = job.failed + job.skipped
        self.store.complete(job, "Failed" if bad > job.imported else "Succeeded",
                            MSG_TOO_MANY if bad > job.imported else MSG_SUCCEEDED)

    def _batches(self, rows: list[str]) -> Iterator[list[tuple[int, str]]]:
        ups = self.config.users_per_second
        size = FULL_SPEED_BATCH if not ups else max(1, min(FULL_SPEED_BATCH, int(ups / 20)))
        for start in range(0, len(rows), size):
            yield [(start + i + 1, line) for i, line in enumerate(rows[start:start + size])]

    def _one(self, rules: PoolRules, index: PoolIndex, columns: list[str], line: str) -> tuple[str, str]:
        if self.inject_failure:
            return "FAILED", MSG_INTERNAL_ROW
        if len(line) > MAX_ROW_CHARS:                                           # fact 12
            return "FAILED", f"The row is longer than {MAX_ROW_CHARS} characters."
        values = decode_line(line)
        if len(values) != len(columns):                                         # U7
            return "FAILED", (f"The row has {len(values)} values but the header has "
                              f"{len(columns)} columns.")
        row = dict(zip(columns, values, strict=True))
        problem, attrs = check_row(rules, row)
        if problem:
            return "FAILED", problem
        clash = index.conflict(row, attrs)
        if clash:
            return clash
        index.create(row, attrs)
        return "SUCCEEDED", MSG_SUCCEEDED_ROW
