"""``migrate_tenant``: a plan (``pipeline.plan``), the rejection gate, then load, reconcile and the
full run report (``start_tenant`` returns the reconcile as a call of its own, for the CLI to overlap
with the next tenant's plan and load). Stages hand over files on disk (``runs/<tenant>/<plan id>/``),
so a crashed run resumes from the ledger and the chunk files' sha256, not from memory.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.chunk import ChunkInfo, read_keys, write_remainder, write_retry_chunks
from pipeline.cognito import CognitoTarget
from pipeline.errors import ValidationGateError
from pipeline.ledger import Ledger
from pipeline.load import LoadPolicy, run_load, tell
from pipeline.plan import (
    LOAD_FILE,
    PlanResult,
    Progress,
    plan_tenant,
    prune_earlier_import_files,
    read_contract,
    resolve_pool,
)
from pipeline.reasons import Outcome
from pipeline.reconcile import Accounting, reconcile, write_outcomes, write_sub_mapping
from pipeline.report import add_load_outcomes, write_reports
from pipeline.settings import Settings

__all__ = ["MigrateResult", "PlanResult", "Progress", "migrate_tenant", "plan_tenant", "read_contract",
           "resolve_pool", "start_tenant"]


@dataclass(frozen=True)
class MigrateResult:
    plan: PlanResult
    accounting: Accounting | None
    report_paths: dict[str, Path]
    sub_mapping: Path | None
    stop_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage: plan, load, reconcile
    already_in_pool: int = 0   # dry run: users of the import files that earlier runs imported or met
    would_send: int = 0        # dry run: users a migrate with the same options would send (retry files too)
    pruned_loads: int = 0      # earlier migrate runs whose left-over import files this load removed


def migrate_tenant(settings: Settings, tenant: str, *, target: CognitoTarget, ledger: Ledger,
                   policy: LoadPolicy, dry_run: bool = False, retry_failed: bool = False,
                   recheck_pool: bool = False, accept_missing: bool = False,
                   progress: Progress | None = None) -> MigrateResult:
    """A plan, the rejection gate, then one import job per chunk, reconciliation and the run report
    (``start_tenant``, then the call it returns)."""
    return start_tenant(settings, tenant, target=target, ledger=ledger, policy=policy, dry_run=dry_run,
                        retry_failed=retry_failed, recheck_pool=recheck_pool, accept_missing=accept_missing,
                        progress=progress)()


def start_tenant(settings: Settings, tenant: str, *, target: CognitoTarget, ledger: Ledger,
                 policy: LoadPolicy, dry_run: bool = False, retry_failed: bool = False,
                 recheck_pool: bool = False, accept_missing: bool = False,
                 progress: Progress | None = None) -> Callable[[], MigrateResult]:
    """The plan, the rejection gate and the load; the returned call reconciles and writes the run's
    files, and may be made on another thread while the next tenant plans and loads (the ledger is
    shared between threads, and this tenant has no import job left by then).

    ``retry_failed``: the users Cognito failed in earlier jobs of this tenant and pool, whose lines are
    unchanged in a chunk that is done, are imported again from ``retry-NNNNN`` files after the chunks
    (``_retry_chunks``). Without it a done chunk is never imported again, failed users included. With
    ``dry_run`` the retry files are written and described, and nothing is imported.

    ``recheck_pool``: look up again the users earlier runs already confirmed in the pool, and note those
    the pool changed or deleted since (``reconcile``'s ``recheck_settled``).

    ``accept_missing``: imported users the final check does not find in the pool were deleted there on
    purpose; they are noted and settled instead of failing the accounting (``reconcile``'s).
    """
    clock = time.monotonic()
    plan = plan_tenant(settings, tenant, target=target, progress=progress)
    timings = {"plan": time.monotonic() - clock}
    # the files' fate: without --keep-files, the next load that runs to its end removes a dry run's files
    # (``prune_loaded_files``) as an interrupted run's, and so does the next plan of a dry run's (they are PII);
    # written before the gate, so that the files of a run the gate stops are removed too, not kept for ever
    try:
        (plan.run_dir / LOAD_FILE).write_text(json.dumps({"keep_files": policy.keep_files, "dry_run": dry_run}))
    except BaseException:   # a full disk: a run without a whole load.json is kept by every prune
        shutil.rmtree(plan.run_dir / "chunks", ignore_errors=True)
        raise
    if not plan.gate_passed:
        gate = plan.report["gate"]
        raise ValidationGateError(
            f"{gate['reject_rate']:.1%} of {tenant}'s rows were rejected, over the threshold of "
            f"{gate['reject_threshold']:.1%}. Read {plan.report_paths.get('html')} and fix the data or the "
            "mapping, or raise report.reject_threshold in the tenant's mapping file."
            + "".join(f" NOTE: {note}" for note in plan.report["notes"]), tenant=tenant)
    if dry_run:
        # retry files are files too: written and described, never imported
        retries = _retry_chunks(ledger, plan, progress) if retry_failed else []
        dry = MigrateResult(plan=plan, accounting=None, report_paths=plan.report_paths, sub_mapping=None,
                            timings=timings, already_in_pool=_already_in_pool(ledger, plan),
                            would_send=_would_send(ledger, plan) + sum(c.rows for c in retries))
        return lambda: dry
    clock = time.monotonic()
    settled = ledger.in_pool_ids(tenant, plan.pool_id, confirmed_only=True)   # before this run's own checks
    chunks = list(plan.chunks)
    if retry_failed:
        chunks += _retry_chunks(ledger, plan, progress)
    result = run_load(target, ledger, tenant, plan.pool_id, chunks, policy, progress=progress,
                      identity=plan.identity)
    timings["load"] = time.monotonic() - clock
    pruned = 0 if result.stopped else prune_loaded_files(plan.run_dir)

    def finish() -> MigrateResult:
        clock = time.monotonic()
        outcomes = ledger.outcomes(tenant, plan.pool_id)     # reconcile adds the subs it confirms
        accounting = reconcile(ledger, tenant, plan.source_rows, plan.rejected_ids, pool_id=plan.pool_id,
                               target=target, pages_per_second=settings.target.list_users_pages_per_second,
                               outcomes=outcomes, source_keys=plan.source_keys, settled=settled,
                               recheck_settled=recheck_pool, accept_missing=accept_missing)
        sub_path = plan.run_dir / "legacy-id-to-sub.csv"
        write_sub_mapping(ledger, tenant, sub_path, pool_id=plan.pool_id, outcomes=outcomes)
        write_outcomes(ledger, tenant, plan.run_dir / "rejects.csv", plan.run_dir / "outcomes.csv",
                       pool_id=plan.pool_id, outcomes=outcomes)
        del outcomes
        report = add_load_outcomes(plan.report, outcomes=_outcomes(result, accounting))
        paths = write_reports(report, plan.run_dir)
        timings["reconcile"] = time.monotonic() - clock
        return MigrateResult(plan=plan, accounting=accounting, report_paths=paths, sub_mapping=sub_path,
                             stop_reason=result.stop_reason if result.stopped else None, timings=timings,
                             pruned_loads=pruned)

    return finish


def prune_loaded_files(run_dir: Path) -> int:
    """After a load that ran to its end: remove the import files earlier migrate runs of the tenant left
    behind (dry runs' included); return how many runs had some.

    A load removes each chunk's files once its job is harvested, but a run killed or stopped before
    that leaves the rest (every valid user's email, phone and name), and a rerun that planned again
    writes files of its own. Once a load has run to its end, no job needs the earlier ones: the load
    adopted or harvested, first, every job an earlier run had started (``load._earlier_plans_jobs``).
    Kept are the files of a run that asked to keep them (``--keep-files``), of runs from before load.json
    recorded that choice, and of a plan still under way (its staging); one migrate at a time holds the
    target's lock, so no other load is using them.
    """
    def not_kept(earlier: Path) -> bool:   # no load.json: a report's run, or one from before it was written
        return json.loads((earlier / LOAD_FILE).read_text())["keep_files"] is False

    return prune_earlier_import_files(run_dir, not_kept)


def _already_in_pool(ledger: Ledger, plan: PlanResult) -> int:
    """How many users of the plan's import files the ledger has as imported or skipped in its pool: the
    ones a migrate would not send again (``load`` sends each file's remainder)."""
    done = ledger.in_pool_ids(plan.tenant, plan.pool_id)
    if not len(done):
        return 0
    return sum(int((done.get_indexer(read_keys(c.keys_path)["legacy_id"]) != -1).sum()) for c in plan.chunks)


def _would_send(ledger: Ledger, plan: PlanResult) -> int:
    """How many users of the plan's import files a migrate would send: those of the files it imports (not
    done, nor holding a done remainder: ``_chunks_done``) that earlier jobs did not import or meet in the pool.
    The users earlier jobs failed in done files are not sent again (but by --retry-failed's retry files).
    Without failed users every user not in the pool is sent, and no remainder file is written to find out."""
    in_pool = ledger.in_pool_ids(plan.tenant, plan.pool_id)
    outcomes = ledger.outcomes(plan.tenant, plan.pool_id)
    done = ({c.sha256 for c in _chunks_done(ledger, plan)} if outcomes["outcome"].eq(Outcome.FAILED.value).any()
            else set())
    return sum(int((in_pool.get_indexer(read_keys(c.keys_path)["legacy_id"]) == -1).sum())
               for c in plan.chunks if c.sha256 not in done)


def _retry_chunks(ledger: Ledger, plan: PlanResult, progress: Progress | None) -> list[ChunkInfo]:
    """Retry files for the failed users of the plan's chunks that this run will not import
    (``_chunks_done``: done, or with a done remainder, as a delta run's chunks often are).

    A failed user whose chunk (or remainder) is new (its data changed) is imported by it anyway; one the
    plan now rejects is not imported at all. Both are left out and counted in the note.
    """
    outcomes = ledger.outcomes(plan.tenant, plan.pool_id)
    failed = outcomes[outcomes["outcome"].eq(Outcome.FAILED.value)]
    if failed.empty:
        tell(progress, "retry", plan.tenant, "--retry-failed: no user failed in an earlier job; nothing to retry.")
        return []
    done = _chunks_done(ledger, plan)
    failed_in = dict(zip(failed["legacy_id"].astype(str), failed["job_id"].fillna("").astype(str), strict=True))
    retries = write_retry_chunks(done, failed_in, plan.run_dir / "chunks", chunk_rows=plan.chunk_rows)
    retried = sum(c.rows for c in retries)
    message = f"--retry-failed: {retried} user(s) that failed in earlier jobs go into {len(retries)} retry file(s)"
    if len(failed) > retried:   # not in a done chunk: their chunk is sent whole, or the plan rejects them now
        rejected = int(failed["legacy_id"].astype(str).isin(plan.rejected_ids).sum())
        resent = len(failed) - retried - rejected
        parts = [f"{resent} are in a chunk this run imports whole (its earlier job failed or stopped, or their data "
                 "changed since)"] if resent else []
        parts += [f"{rejected} are rejected by this plan"] if rejected else []
        message += f"; of the other failed user(s), {' and '.join(parts)}"
    tell(progress, "retry", plan.tenant, message + ".")
    return retries


def _chunks_done(ledger: Ledger, plan: PlanResult) -> list[ChunkInfo]:
    """The plan's chunks this run will not import: done, or holding users earlier jobs imported and a
    remainder without them (``write_remainder``, the file the load would send) that is done. A failed
    user's line is the same in the chunk as in its remainder."""
    in_pool = ledger.in_pool_ids(plan.tenant, plan.pool_id)
    done = []
    for chunk in plan.chunks:
        if ledger.chunk_done(plan.tenant, plan.pool_id, chunk.sha256):
            done.append(chunk)
            continue
        rest = write_remainder(chunk, in_pool) if len(in_pool) else chunk
        if rest is not None and rest is not chunk and ledger.chunk_done(plan.tenant, plan.pool_id, rest.sha256):
            done.append(chunk)
    return done


def _outcomes(result: Any, accounting: Accounting) -> dict[str, Any]:
    return {
        "imported": accounting.imported, "skipped": accounting.skipped, "failed": accounting.failed,
        "rejected": accounting.rejected, "source_rows": accounting.source_rows,
        "failed_by_message": dict(accounting.failed_by_message),
        "jobs": [dict(j) for j in getattr(result, "jobs", [])],
        "accounting_ok": accounting.ok,
        "problems": accounting.problems,
        "notes": accounting.notes,
        "changed_in_pool_since": accounting.changed_since,
        "gone_from_pool_since": accounting.gone_since,
        "signed_in_since_import": accounting.signed_in_since,
        "accepted_missing": accounting.accepted_missing,
        "rejected_after_failing": accounting.rejected_after_failing,
        "rejected_and_removed_from_pool": accounting.rejected_and_removed,
    }
