"""``migrate_tenant``: a plan (``pipeline.plan``), the rejection gate, then load, reconcile and the
full run report. Stages hand over files on disk (``runs/<tenant>/<plan id>/``), so a crashed run
resumes from the ledger and the chunk files' sha256, not from memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cognito import CognitoTarget
from pipeline.errors import ValidationGateError
from pipeline.ledger import Ledger
from pipeline.load import LoadPolicy, run_load
from pipeline.plan import PlanResult, Progress, plan_tenant, read_contract, resolve_pool
from pipeline.reconcile import Accounting, reconcile, write_outcomes, write_sub_mapping
from pipeline.report import add_load_outcomes, write_reports
from pipeline.settings import Settings

__all__ = ["MigrateResult", "PlanResult", "Progress", "migrate_tenant", "plan_tenant", "read_contract",
           "resolve_pool"]


@dataclass(frozen=True)
class MigrateResult:
    plan: PlanResult
    accounting: Accounting | None
    report_paths: dict[str, Path]
    sub_mapping: Path | None
    stop_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage: plan, load, reconcile


def migrate_tenant(settings: Settings, tenant: str, *, target: CognitoTarget, ledger: Ledger,
                   policy: LoadPolicy, dry_run: bool = False, progress: Progress | None = None) -> MigrateResult:
    """A plan, the rejection gate, then one import job per chunk, reconciliation and the run report."""
    clock = time.monotonic()
    plan = plan_tenant(settings, tenant, target=target, progress=progress)
    timings = {"plan": time.monotonic() - clock}
    if not plan.gate_passed:
        gate = plan.report["gate"]
        raise ValidationGateError(
            f"{gate['reject_rate']:.1%} of {tenant}'s rows were rejected, over the threshold of "
            f"{gate['reject_threshold']:.1%}. Read {plan.report_paths.get('html')} and fix the data or the "
            "mapping, or raise report.reject_threshold in the tenant's mapping file.", tenant=tenant)
    if dry_run:
        return MigrateResult(plan=plan, accounting=None, report_paths=plan.report_paths, sub_mapping=None,
                             timings=timings)
    clock = time.monotonic()
    result = run_load(target, ledger, tenant, plan.pool_id, plan.chunks, policy, progress=progress)
    timings["load"] = time.monotonic() - clock
    clock = time.monotonic()
    accounting = reconcile(ledger, tenant, plan.source_rows, plan.rejected_ids, pool_id=plan.pool_id,
                           target=target, pages_per_second=settings.target.list_users_pages_per_second)
    sub_path = plan.run_dir / "legacy-id-to-sub.csv"
    outcomes = ledger.outcomes(tenant, plan.pool_id)     # after reconcile: with the subs it confirmed
    write_sub_mapping(ledger, tenant, sub_path, pool_id=plan.pool_id, outcomes=outcomes)
    write_outcomes(ledger, tenant, plan.run_dir / "rejects.csv", plan.run_dir / "outcomes.csv",
                   pool_id=plan.pool_id, outcomes=outcomes)
    del outcomes
    report = add_load_outcomes(plan.report, outcomes=_outcomes(result, accounting))
    paths = write_reports(report, plan.run_dir)
    timings["reconcile"] = time.monotonic() - clock
    return MigrateResult(plan=plan, accounting=accounting, report_paths=paths, sub_mapping=sub_path,
                         stop_reason=result.stop_reason if result.stopped else None, timings=timings)


def _outcomes(result: Any, accounting: Accounting) -> dict[str, Any]:
    return {
        "imported": accounting.imported, "skipped": accounting.skipped, "failed": accounting.failed,
        "rejected": accounting.rejected, "source_rows": accounting.source_rows,
        "failed_by_message": dict(accounting.failed_by_message),
        "jobs": [dict(j) for j in getattr(result, "jobs", [])],
        "accounting_ok": accounting.ok,
    }
