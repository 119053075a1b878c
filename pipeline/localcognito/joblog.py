"""A job's log in moto's CloudWatch Logs (fact 33): group ``/aws/cognito/userpools/<pool id>/<pool
name>``, stream ``<job id>/<job name>``, current timestamps, PutLogEvents-sized batches."""

from __future__ import annotations

import time

from moto.logs.exceptions import ResourceAlreadyExistsException
from moto.logs.models import logs_backends

from pipeline.localcognito.jobs import Job

MAX_EVENTS = 10_000                 # PutLogEvents: at most 10,000 events ...
MAX_BYTES = 1_048_576               # ... and 1 MB (each event counts 26 bytes extra)


def group_name(job: Job) -> str:
    return f"/aws/cognito/userpools/{job.pool_id}/{job.pool_name}"


def stream_name(job: Job) -> str:
    return f"{job.job_id}/{job.job_name}"


class JobLog:
    def __init__(self, job: Job) -> None:
        self.backend = logs_backends[job.account][job.region]
        self.group, self.stream = group_name(job), stream_name(job)
        try:
            self.backend.create_log_group(self.group, {})
        except ResourceAlreadyExistsException:
            pass
        try:
            self.backend.create_log_stream(self.group, self.stream)
        except ResourceAlreadyExistsException:
            pass
        self.events: list[dict[str, object]] = []
        self.size = 0
        self.last = 0

    def add(self, message: str) -> None:
        stamp = max(int(time.time() * 1000), self.last)      # chronological within a call
        self.last = stamp
        cost = len(message.encode()) + 26
        if len(self.events) >= MAX_EVENTS or self.size + cost > MAX_BYTES:
            self.flush()
        self.events.append({"timestamp": stamp, "message": message})
        self.size += cost

    def flush(self) -> None:
        if self.events:
            self.backend.put_log_events(self.group, self.stream, self.events)
            self.events, self.size = [], 0
