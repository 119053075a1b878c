"""Fixtures: one in-process LocalCognito per test session, boto3 clients, and a ``kit`` that creates
pools and runs import jobs through the real HTTP path (create, pre-signed PUT, start, poll, log)."""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from pipeline.localcognito import LocalCognito, ServiceConfig

REGION = "ap-northeast-1"
ROLE = "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"
DEFAULTS = {"url_ttl_seconds": 900, "job_ttl_seconds": 86400, "users_per_second": None,
            "max_jobs_per_pool": 1000}
_names = itertools.count(1)


@pytest.fixture(scope="session")
def service() -> Iterator[LocalCognito]:
    with LocalCognito(host="127.0.0.1", port=0, config=ServiceConfig()) as svc:
        yield svc


def client(service: LocalCognito, name: str, validate: bool = True) -> Any:
    """A client that never retries (so fault tests see every error); ``validate=False`` lets
    out-of-range parameters reach the server."""
    return boto3.client(name, endpoint_url=service.endpoint_url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=boto3.session.Config(retries={"total_max_attempts": 1},
                                                    parameter_validation=validate))


@dataclass
class Kit:
    svc: LocalCognito
    idp: Any
    logs: Any
    raw: Any            # cognito-idp without client-side parameter validation

    def pool(self, **kwargs: Any) -> str:
        kwargs.setdefault("AutoVerifiedAttributes", ["email"])
        name = kwargs.pop("PoolName", f"pool{next(_names)}")
        return self.idp.create_user_pool(PoolName=name, **kwargs)["UserPool"]["Id"]

    def header(self, pool: str) -> list[str]:
        return self.idp.get_csv_header(UserPoolId=pool)["CSVHeader"]

    def csv(self, pool: str, rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
        header = header or self.header(pool)
        lines = [",".join(header)] + [",".join(r.get(c, "") for c in header) for r in rows]
        return ("\n".join(lines) + "\n").encode()

    def job(self, pool: str, name: str = "job") -> dict[str, Any]:
        return self.idp.create_user_import_job(JobName=name, UserPoolId=pool,
                                               CloudWatchLogsRoleArn=ROLE)["UserImportJob"]

    def put(self, url: str, body: bytes, headers: dict[str, str] | None = None,
            method: str = "PUT") -> tuple[int, str]:
        hdrs = {"x-amz-server-side-encryption": "aws:kms"} if headers is None else headers
        req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait(self, pool: str, job_id: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.idp.describe_user_import_job(UserPoolId=pool, JobId=job_id)["UserImportJob"]
            if job["Status"] not in ("Pending", "InProgress", "Stopping") or time.monotonic() > deadline:
                return job
            time.sleep(0.02)

    def run(self, pool: str, rows: list[dict[str, str]] | bytes, name: str = "job") -> tuple[dict, list[str]]:
        """Import ``rows`` (dicts or a ready CSV) and return (the finished job, its log messages)."""
        body = rows if isinstance(rows, bytes) else self.csv(pool, rows)
        job = self.job(pool, name)
        assert self.put(job["PreSignedUrl"], body)[0] == 200
        self.idp.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
        done = self.wait(pool, job["JobId"])
        return done, self.log(pool, done)

    def log(self, pool: str, job: dict[str, Any]) -> list[str]:
        pool_name = self.idp.describe_user_pool(UserPoolId=pool)["UserPool"]["Name"]
        group = f"/aws/cognito/userpools/{pool}/{pool_name}"
        stream = f"{job['JobId']}/{job['JobName']}"
        try:
            events = self.logs.get_log_events(logGroupName=group, logStreamName=stream,
                                              startFromHead=True)["events"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    def users(self, pool: str) -> dict[str, dict[str, Any]]:
        users = self.idp.list_users(UserPoolId=pool)["Users"]
        return {u["Username"]: {**u, "attrs": {a["Name"]: a["Value"] for a in u["Attributes"]}}
                for u in users}


@pytest.fixture()
def kit(service: LocalCognito) -> Iterator[Kit]:
    yield Kit(service, client(service, "cognito-idp"), client(service, "logs"),
              client(service, "cognito-idp", validate=False))
    service.reset_faults()
    service.configure(**DEFAULTS)


def user(username: str, /, **attrs: str) -> dict[str, str]:
    """A valid row for a pool that auto-verifies email."""
    row = {"cognito:username": username, "email": f"{username}@example.com", "email_verified": "true",
           "cognito:mfa_enabled": "false"}
    row.update({k.replace("__", ":"): v for k, v in attrs.items()})
    return row
