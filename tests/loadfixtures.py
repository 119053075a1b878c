"""Fixtures and builders for the chunk, ledger, load and reconcile tests (imported, not a conftest).

The load tests talk to the project's own local Cognito service in-process (``LocalCognito``), with
small pools and fault injection in the service rather than patched clients.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.chunk import ChunkInfo, write_chunks
from pipeline.cognito import CognitoTarget, RetryPolicy
from pipeline.ledger import Ledger
from pipeline.load import LoadPolicy
from pipeline.settings import TargetSettings

POOL_PARAMS: dict[str, Any] = {
    "AutoVerifiedAttributes": ["email"],
    "Schema": [
        {
            "Name": "tenant_id",
            "AttributeDataType": "String",
            "Mutable": True,
            "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "64"},
        }
    ],
}


def valid_frame(n: int, start: int = 0, tenant: str = "acme") -> pd.DataFrame:
    """A valid partition of ``n`` users: header columns as clean strings plus ``_legacy_id``/``_tenant``."""
    ids = [str(i) for i in range(start, start + n)]
    data = {
        "name": [f"Doe, User {i}" for i in ids],
        "email": [f"user{i}@example.com" for i in ids],
        "email_verified": ["true"] * n,
        "custom:tenant_id": [tenant] * n,
        "cognito:mfa_enabled": ["false"] * n,
        "cognito:username": [f"user{i}" for i in ids],
        "_legacy_id": [f"L{i}" for i in ids],
        "_tenant": [tenant] * n,
    }
    return pd.DataFrame({k: pd.Series(v, dtype="string[pyarrow]") for k, v in data.items()})


def full_frame(header: list[str], n: int, start: int = 0, tenant: str = "acme") -> pd.DataFrame:
    """``valid_frame`` widened to every column of a pool's header (empty where we have no value)."""
    base = valid_frame(n, start, tenant)
    out = pd.DataFrame(
        {c: (base[c] if c in base else pd.Series([""] * n, dtype="string[pyarrow]")) for c in header}
    )
    out["_legacy_id"] = base["_legacy_id"]
    out["_tenant"] = base["_tenant"]
    return out


@pytest.fixture(scope="module")
def service() -> Iterator[Any]:
    from pipeline.localcognito import LocalCognito

    with LocalCognito(port=0) as svc:
        yield svc


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=10, base_seconds=0.01, cap_seconds=0.05)


def make_target(service: Any, retry: RetryPolicy | None = None) -> CognitoTarget:
    return CognitoTarget.from_settings(
        TargetSettings(),
        endpoint_url=service.endpoint_url,
        retry=retry or RetryPolicy(max_attempts=10, base_seconds=0.01, cap_seconds=0.05),
    )


def new_pool(target: CognitoTarget) -> tuple[str, list[str]]:
    """A fresh pool (unique name) and its CSV header."""
    pool_id = target.find_or_create_local_pool({"PoolName": f"t-{uuid.uuid4().hex[:10]}", **POOL_PARAMS})
    return pool_id, target.get_csv_header(pool_id)


def make_chunks(
    out_dir: Path,
    header: list[str],
    n: int,
    chunk_rows: int,
    canary_rows: int = 0,
    start: int = 0,
    tenant: str = "acme",
) -> list[ChunkInfo]:
    return write_chunks(
        [full_frame(header, n, start, tenant)],
        header,
        out_dir,
        chunk_rows=chunk_rows,
        canary_rows=canary_rows,
    )


def fast_policy(**overrides: Any) -> LoadPolicy:
    values: dict[str, Any] = {
        "poll_initial_seconds": 0.02,
        "poll_max_seconds": 0.1,
        "active_wait_seconds": 0.05,
        "active_wait_timeout_seconds": 30,
    }
    values.update(overrides)
    return LoadPolicy(**values)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.sqlite") as led:
        yield led


class Recorder:
    """A progress sink that records events and can run a hook on one of them."""

    def __init__(self, hooks: dict[str, Any] | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.hooks = dict(hooks or {})

    def event(self, kind: str, **info: Any) -> None:
        self.events.append((kind, info))
        hook = self.hooks.get(kind)
        if hook is not None:
            hook(info)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


def pool_usernames(target: CognitoTarget, pool_id: str) -> list[str]:
    return [u["Username"] for u in target.list_users(pool_id)]
