"""The service's settings and its fault switches, both changeable while it runs.

``ServiceConfig`` holds what a real pool fixes (URL lifetime, job time-to-live, the job quota) plus the
local speed limit. ``Faults`` holds the switches tests flip to provoke what AWS does rarely: throttling,
internal errors, jobs that end Failed. Throttling and internal errors are deterministic: each
operation keeps an accumulator that grows by the rate on every call and fires when it reaches 1, so a
rate of 0.25 fails exactly every 4th call of that operation and 1.0 fails every call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

ACCOUNT_ID = "123456789012"


@dataclass
class ServiceConfig:
    url_ttl_seconds: float = 900            # fact 25: the upload URL lives 15 minutes
    job_ttl_seconds: float = 86400          # fact 22/24 (U9): an unstarted job expires after 24 h
    users_per_second: float | None = None   # None = as fast as possible
    max_jobs_per_pool: int = 1000           # fact 38
    account_id: str = ACCOUNT_ID


FAULT_KEYS = ("throttle_rate", "throttle_operations", "internal_error_rate",
              "internal_error_operations", "fail_next_jobs", "expire_next_urls")
CONFIG_KEYS = tuple(f.name for f in fields(ServiceConfig) if f.name != "account_id")


@dataclass
class Faults:
    """Injected failures. An empty operation set means every cognito-idp operation."""

    throttle_rate: float = 0.0
    throttle_operations: set[str] = field(default_factory=set)
    internal_error_rate: float = 0.0
    internal_error_operations: set[str] = field(default_factory=set)
    fail_next_jobs: int = 0
    expire_next_urls: int = 0               # the next N jobs get an upload URL that is already expired
    _acc: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _fires(self, kind: str, rate: float, ops: set[str], op: str) -> bool:
        if rate <= 0 or (ops and op not in ops):
            return False
        key = (kind, op)
        acc = self._acc.get(key, 0.0) + rate
        fired = acc >= 1.0 - 1e-9
        self._acc[key] = acc - 1.0 if fired else acc
        return fired

    def check(self, op: str) -> str | None:
        """``"throttle"``, ``"internal"`` or None for one call of ``op``."""
        with self._lock:
            if self._fires("internal", self.internal_error_rate, self.internal_error_operations, op):
                return "internal"
            if self._fires("throttle", self.throttle_rate, self.throttle_operations, op):
                return "throttle"
            return None

    def take_job_failure(self) -> bool:
        """True (once per count) when the next started job must end Failed."""
        with self._lock:
            if self.fail_next_jobs > 0:
                self.fail_next_jobs -= 1
                return True
            return False

    def take_url_expiry(self) -> bool:
        """True (once per count) when the next created job's upload URL must already be expired."""
        with self._lock:
            if self.expire_next_urls > 0:
                self.expire_next_urls -= 1
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self.throttle_rate = self.internal_error_rate = 0.0
            self.throttle_operations, self.internal_error_operations = set(), set()
            self.fail_next_jobs = self.expire_next_urls = 0
            self._acc.clear()


def apply_settings(config: ServiceConfig, faults: Faults, values: dict[str, Any]) -> None:
    """Set any subset of the config and fault keys; raises ValueError naming every unknown key."""
    unknown = sorted(set(values) - set(FAULT_KEYS) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(FAULT_KEYS + CONFIG_KEYS)}")
    with faults._lock:
        for key, value in values.items():
            if key in ("throttle_operations", "internal_error_operations"):
                setattr(faults, key, set(value or ()))
            elif key in ("throttle_rate", "internal_error_rate"):
                setattr(faults, key, float(value))
            elif key in ("fail_next_jobs", "expire_next_urls"):
                setattr(faults, key, int(value))
            elif key == "users_per_second":
                config.users_per_second = None if value is None else float(value)
            elif key == "max_jobs_per_pool":
                config.max_jobs_per_pool = int(value)
            else:
                setattr(config, key, float(value))
        faults._acc.clear()
