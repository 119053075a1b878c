"""The six import operations, as JSON in -> JSON out (facts 1, 22-28, 31, 42-44).

Each handler takes the request's parameters and a ``Context`` (region from the SigV4 scope, the URL
the caller reached us by) and returns the response dict or raises a ``ServiceError``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from moto.cognitoidp.models import CognitoIdpUserPool, cognitoidp_backends

from pipeline.localcognito.config import Faults, ServiceConfig
from pipeline.localcognito.errors import InvalidParameter, PreconditionNotMet, ResourceNotFound
from pipeline.localcognito.header import csv_header
from pipeline.localcognito.jobs import Job, JobStore, new_job_id
from pipeline.localcognito.upload import object_path, presign

OPERATIONS = ("GetCSVHeader", "CreateUserImportJob", "StartUserImportJob", "DescribeUserImportJob",
              "ListUserImportJobs", "StopUserImportJob")

# fact 44; AWS patterns are Java regexes, where \w and \s are ASCII-only.
_ARN = r"arn:[\w+=/,.@-]+:[\w+=/,.@-]+:([\w+=/,.@-]*)?:[0-9]+:[\w+=/,.@-]+(:[\w+=/,.@-]+)?(:[\w+=/,.@-]+)?"
PARAMS = {
    "JobName": ("jobName", 1, 128, r"[\w\s+=,.@-]+"),
    "UserPoolId": ("userPoolId", 1, 55, r"[\w-]+_[0-9a-zA-Z]+"),
    "JobId": ("jobId", 1, 55, r"import-[0-9a-zA-Z-]+"),
    "CloudWatchLogsRoleArn": ("cloudWatchLogsRoleArn", 20, 2048, _ARN),
    "PaginationToken": ("paginationToken", 1, 10_000, r"[\S]+"),
}


@dataclass(frozen=True)
class Context:
    region: str
    base_url: str              # e.g. "http://127.0.0.1:9229", from the request's Host header


@overload
def _param(params: dict[str, Any], name: str) -> str: ...
@overload
def _param(params: dict[str, Any], name: str, required: Literal[False]) -> str | None: ...
def _param(params: dict[str, Any], name: str, required: bool = True) -> str | None:
    """The named request parameter, checked as Cognito checks it (null, length, pattern)."""
    wire, low, high, pattern = PARAMS[name]
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidParameter(f"1 validation error detected: Value null at '{wire}' failed to "
                                   "satisfy constraint: Member must not be null")
        return None
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise InvalidParameter(f"1 validation error detected: Value at '{wire}' failed to satisfy "
                               f"constraint: Member must have length between {low} and {high}")
    if not re.fullmatch(pattern, value, flags=re.ASCII):
        raise InvalidParameter(f"1 validation error detected: Value '{value}' at '{wire}' failed to "
                               f"satisfy constraint: Member must satisfy regular expression pattern: "
                               f"{pattern}")
    return value


class ImportOperations:
    def __init__(self, store: JobStore, config: ServiceConfig, faults: Faults,
                 start_worker: Callable[[Job], None]) -> None:
        self.store, self.config, self.faults = store, config, faults
        self.start_worker = start_worker

    def pool(self, ctx: Context, pool_id: str) -> CognitoIdpUserPool:
        pool = cognitoidp_backends[self.config.account_id][ctx.region].user_pools.get(pool_id)
        if pool is None:
            raise ResourceNotFound(f"User pool {pool_id} does not exist.")
        return pool

    def handle(self, op: str, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        handler = {
            "GetCSVHeader": self.op_get_csv_header, "CreateUserImportJob": self.op_create_user_import_job,
            "StartUserImportJob": self.op_start_user_import_job,
            "StopUserImportJob": self.op_stop_user_import_job,
            "DescribeUserImportJob": self.op_describe_user_import_job,
            "ListUserImportJobs": self.op_list_user_import_jobs,
        }[op]
        return handler(params, ctx)

    def op_get_csv_header(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        pool_id = _param(params, "UserPoolId")
        return {"UserPoolId": pool_id, "CSVHeader": csv_header(self.pool(ctx, pool_id))}

    def op_create_user_import_job(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        name = _param(params, "JobName")
        pool_id = _param(params, "UserPoolId")
        role = _param(params, "CloudWatchLogsRoleArn")
        if params.get("PasswordHashingAlgorithm") is not None:                          # U13
            raise InvalidParameter("PasswordHashingAlgorithm is not supported by the local service "
                                   "(password-hash import is not available for this user pool).")
        pool = self.pool(ctx, pool_id)
        now, account = time.time(), self.config.account_id
        job_id = new_job_id()
        job = Job(job_id=job_id, job_name=name, pool_id=pool_id, pool_name=pool.name,
                  region=ctx.region, account=account, role_arn=role, creation_date=now,
                  expires_at=now + self.config.job_ttl_seconds,
                  url_expires_at=now if self.faults.take_url_expiry() else now + self.config.url_ttl_seconds)
        job.presigned_url = presign(ctx.base_url, object_path(account, pool_id, job_id), ctx.region,
                                    self.config.url_ttl_seconds, now)
        return {"UserImportJob": self.store.create(job).to_json()}

    def op_start_user_import_job(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        pool_id, job_id = _param(params, "UserPoolId"), _param(params, "JobId")
        pool = self.pool(ctx, pool_id)
        self.store.get(ctx.region, pool_id, job_id)
        if not pool.extended_config.get("AutoVerifiedAttributes"):                      # fact 5
            raise PreconditionNotMet(f"The user pool {pool_id} auto-verifies neither email nor "
                                     "phone_number, so an import job cannot start.")
        with self.store.lock:
            job = self.store.start(ctx.region, pool_id, job_id)
            body = job.to_json()
        self.start_worker(job)
        return {"UserImportJob": body}

    def op_stop_user_import_job(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        pool_id, job_id = _param(params, "UserPoolId"), _param(params, "JobId")
        self.pool(ctx, pool_id)
        return {"UserImportJob": self.store.stop(ctx.region, pool_id, job_id).to_json()}

    def op_describe_user_import_job(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        pool_id, job_id = _param(params, "UserPoolId"), _param(params, "JobId")
        self.pool(ctx, pool_id)
        with self.store.lock:
            return {"UserImportJob": self.store.get(ctx.region, pool_id, job_id).to_json()}

    def op_list_user_import_jobs(self, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
        pool_id = _param(params, "UserPoolId")
        limit = params.get("MaxResults")
        if limit is None:                                                               # fact 31: required
            raise InvalidParameter("1 validation error detected: Value null at 'maxResults' failed to "
                                   "satisfy constraint: Member must not be null")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 60:   # fact 31
            raise InvalidParameter("1 validation error detected: Value at 'maxResults' failed to "
                                   "satisfy constraint: Member must have value between 1 and 60")
        token = _param(params, "PaginationToken", required=False)
        self.pool(ctx, pool_id)
        with self.store.lock:
            jobs = self.store.jobs_of(ctx.region, pool_id)
            start = 0
            if token is not None:
                ids = [j.job_id for j in jobs]
                parts = token.split("#")
                if len(parts) != 3 or parts[0] != pool_id or parts[1] not in ids:
                    raise InvalidParameter("The pagination token is not valid.")
                start = ids.index(parts[1])
            page = jobs[start:start + limit]
            out: dict[str, Any] = {"UserImportJobs": [j.to_json() for j in page]}
            if start + limit < len(jobs):
                nxt = jobs[start + limit]            # token form of fact 31: pool#job#millis
                out["PaginationToken"] = f"{pool_id}#{nxt.job_id}#{int(nxt.creation_date * 1000)}"
            return out
