"""End-to-end fixtures: the real CLI (``python -m pipeline``) in a child process, against one
in-process local Cognito service, with a private copy of the mappings (pool names made unique per
test, so tests never share a pool) and of the embedded demo database."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.localcognito import LocalCognito

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ["acme-jp", "globex-us", "initech-de"]


@pytest.fixture(scope="session")
def service() -> Iterator[LocalCognito]:
    with LocalCognito(port=0) as svc:
        yield svc


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.demo import create_sqlite_demo

    path = tmp_path_factory.mktemp("demo") / "demo-legacy.sqlite"
    create_sqlite_demo(path)
    return path


@dataclass
class Workspace:
    root: Path
    service: LocalCognito
    suffix: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MIGRATE_RUNS_DIR": str(self.root / "runs"),
                "MIGRATE_MAPPINGS_DIR": str(self.root / "mappings"),
                "COGNITO_ENDPOINT_URL": self.service.endpoint_url, "COGNITO_TARGET": "local",
                "PYTHONPATH": str(ROOT)}

    def run(self, *args: str, timeout: float = 300,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        return subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=self.env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- the pool, seen through the real API -------------------------------------------------
    @property
    def idp(self) -> Any:
        return boto3.client("cognito-idp", endpoint_url=self.service.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def pool_id(self, tenant: str) -> str | None:
        name = self.pool_name(tenant)
        # every page: the e2e tests of one worker share a service, and past 60 pools the first page missed
        # the tenant's, so a test saw no pool and no users
        pages = self.idp.get_paginator("list_user_pools").paginate(MaxResults=60)
        found = [p["Id"] for page in pages for p in page["UserPools"] if p["Name"] == name]
        return found[0] if found else None

    def pool_name(self, tenant: str) -> str:
        text = (self.root / "mappings" / "tenants" / f"{tenant}.yaml").read_text()
        return re.search(r"PoolName:\s*(\S+)", text).group(1)

    def users(self, tenant: str) -> list[dict[str, Any]]:
        pool = self.pool_id(tenant)
        if pool is None:
            return []
        pages = self.idp.get_paginator("list_users").paginate(UserPoolId=pool)
        return [u for page in pages for u in page["Users"]]

    def jobs(self, tenant: str) -> list[dict[str, Any]]:
        pool = self.pool_id(tenant)
        if pool is None:
            return []
        return self.idp.list_user_import_jobs(UserPoolId=pool, MaxResults=60)["UserImportJobs"]

    def wait_for_job(self, tenant: str, status: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job in self.jobs(tenant):
                if job["Status"] == status:
                    return job
            time.sleep(0.1)
        raise AssertionError(f"no {status} job for {tenant} within {timeout} s")

    # --- what the source and the run wrote ---------------------------------------------------
    def source_ids(self, tenant: str) -> set[str]:
        with sqlite3.connect(self.root / "var" / "demo-legacy.sqlite") as db:
            rows = db.execute("SELECT id FROM app_users WHERE tenant_code = ?", (tenant,)).fetchall()
        return {str(r[0]) for r in rows}

    def latest_run(self, tenant: str) -> Path:
        return sorted((self.root / "runs" / tenant).iterdir())[-1]

    def report(self, tenant: str) -> dict[str, Any]:
        return json.loads((self.latest_run(tenant) / "report.json").read_text())

    def outcomes(self, tenant: str) -> dict[str, str]:
        """legacy id -> outcome from the run's outcomes.csv; each id must appear exactly once."""
        with open(self.latest_run(tenant) / "outcomes.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        ids = [r["legacy_id"] for r in rows]
        assert len(ids) == len(set(ids)), "a source user has more than one outcome"
        return {r["legacy_id"]: r["outcome"] for r in rows}

    def rejected_ids(self, tenant: str) -> set[str]:
        with open(self.latest_run(tenant) / "rejects.csv", newline="") as fh:
            return {row["legacy_id"] for row in csv.DictReader(fh)}


@pytest.fixture
def workspace(tmp_path: Path, service: LocalCognito, demo_db: Path) -> Iterator[Workspace]:
    yield make_workspace(tmp_path, service, demo_db)
    service.reset_faults()
    service.configure(users_per_second=None, url_ttl_seconds=900)


def make_workspace(root: Path, service: LocalCognito, demo_db: Path) -> Workspace:
    suffix = uuid.uuid4().hex[:8]
    shutil.copytree(ROOT / "mappings", root / "mappings")
    for path in (root / "mappings" / "tenants").glob("*.yaml"):
        text = path.read_text()
        path.write_text(re.sub(r"(PoolName:\s*)(\S+)", rf"\g<1>\g<2>-{suffix}", text))
    (root / "var").mkdir()
    shutil.copy(demo_db, root / "var" / "demo-legacy.sqlite")
    return Workspace(root=root, service=service, suffix=suffix)


def attrs(user: dict[str, Any]) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in user["Attributes"]}


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
