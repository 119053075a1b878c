"""The report as a plain dict: the stable JSON contract (docs/report-format.md) that HTML and terminal render.

Pure functions: no I/O, no clock (the caller passes ``generated_at``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pipeline.report.stats import QualityStats

SCHEMA_VERSION = 1

_JOB_KEYS = ("job_id", "chunk", "status", "imported", "skipped", "failed", "completion_message")


def build_plan_report(*, tenant: str, run_id: str, stats: QualityStats, contract_fingerprint: str,
                      pool: Mapping[str, Any], mapping_digest: str, mapping: Mapping[str, Any],
                      reject_threshold: float, chunks: list[Mapping[str, Any]],
                      files: Mapping[str, Any], generated_at: str) -> dict[str, Any]:
    """Assemble the data-quality report of one tenant's plan (before anything reaches Cognito)."""
    by_rule: list[dict[str, Any]] = [
        {"column": column, "reason": reason, "rows": rule.rows,
         "examples": list(rule.examples), "details": list(rule.details)}
        for (column, reason), rule in stats.rules.items()
    ]
    by_rule.sort(key=lambda r: (-r["rows"], r["column"], r["reason"]))
    by_reason: list[dict[str, Any]] = [{"reason": reason, "rows": rows} for reason, rows in stats.reasons.items()]
    by_reason.sort(key=lambda r: (-r["rows"], r["reason"]))
    warnings: list[dict[str, Any]] = [
        {"column": column, "kind": kind, "rows": found.rows, "examples": list(found.examples)}
        for (column, kind), found in sorted(stats.warnings.items(), key=lambda w: (-w[1].rows, w[0]))]
    report = {
        "schema_version": SCHEMA_VERSION,
        "tenant": tenant,
        "run_id": run_id,
        "generated_at": generated_at,
        "counts": {
            "source_rows": stats.source_rows,
            "valid": stats.valid_rows,
            "rejected": stats.rejected_rows,
            "imported": None,
            "skipped": None,
            "failed": None,
        },
        "plan_accounting_ok": stats.unaccounted == 0,
        "reject_lines": stats.reject_lines,
        "max_examples": stats.max_examples,
        "by_rule": by_rule,
        "by_reason": by_reason,
        "warnings": warnings,
        "gate": gate(stats.rejected_rows, stats.source_rows, reject_threshold),
        "contract_fingerprint": contract_fingerprint,
        "pool": _jsonable(pool),
        "mapping_digest": mapping_digest,
        "mapping": _jsonable(mapping),
        "chunks": [_jsonable(c) for c in chunks],
        "files": _jsonable(files),
        "load": None,
    }
    report["notes"] = plan_notes(report)
    return report


def plan_notes(report: Mapping[str, Any]) -> list[str]:
    """What a person must check before anything else: the tenant's query returned no row (most often a
    filter or database mistake: a run that "succeeds" with zero users), or a rule took every row (a row
    policy's flag the mapping reads otherwise than the database writes it, such as a PostgreSQL
    boolean's ``t``; a validation rule no row meets, which points at the mapping). Each note says what to
    do; none when the plan looks sane."""
    source_rows = report["counts"]["source_rows"]
    if not source_rows:
        source = (report.get("mapping") or {}).get("source") or {}
        query = source.get("query") or "the tenant's SQL file"
        return [f"The source query ({query}) returned no row for tenant {report['tenant']}: check source.params "
                "and the filters in its mapping file, and the database LEGACY_DB_URL names. Nothing will be "
                "imported."]
    policies = (report.get("mapping") or {}).get("policies") or {}
    notes = []
    for rule in report["by_rule"]:
        seen = ", ".join(repr(e) for e in rule["examples"]) or "no value"
        if (rule["reason"] == "number_out_of_range" and rule["column"] == "updated_at"
                and rule["rows"] * 2 >= source_rows):
            # rows without an updated_at break no rule, so "every row" would miss the usual case
            notes.append(
                f"{rule['rows']:,} of {source_rows:,} rows have an updated_at outside 0 to the year 3000 in "
                f"epoch seconds (examples {seen}): a column of epoch milliseconds or microseconds read as "
                "seconds, typically. Write its transform as {epoch: {unit: ms}} (or us) in the mapping.")
            continue
        if rule["rows"] != source_rows:
            continue
        if rule["reason"] == "disabled":
            active = (policies.get("disabled") or {}).get("active_values")
            notes.append(
                f"Every row was rejected as disabled: no row has {rule['column']} in active_values {active} "
                f"(it holds {seen}). If one of those values means an active account (a PostgreSQL boolean "
                "reads 't'), add it, quoted, to policies.disabled.active_values in the tenant's mapping.")
        elif rule["reason"] == "soft_deleted":
            notes.append(
                f"Every row was rejected as soft-deleted: {rule['column']} has a value in every row (such as "
                f"{seen}). Rows that are not deleted must have no value there: if one value means 'not "
                f"deleted' (0, false, N), turn it into NULL in the SQL file (NULLIF({rule['column']}, "
                "...)), or point policies.soft_deleted.column at the right column.")
        elif rule["reason"] == "undecodable_text":
            notes.append(
                f"Every row's {rule['column']} holds bytes that are not UTF-8 (examples {seen}): the source "
                "column is stored in another encoding (Latin-1, Windows-1252, Shift_JIS...). Convert it to "
                "UTF-8 in the legacy database or in the SQL file; the mapping is not the cause.")
        elif rule["reason"] == "double_encoded_text":
            notes.append(
                f"Every row's {rule['column']} is UTF-8 text that was read as Latin-1 and stored again "
                f"(examples {seen}): a MySQL latin1 column holding UTF-8 bytes, typically. Add the "
                "fix_mojibake transform to the column's rule in the mapping, or repair the column in the "
                "legacy database (CONVERT(CAST(CONVERT(col USING latin1) AS BINARY) USING utf8mb4)).")
        else:
            detail = rule["details"][0] if rule["details"] else rule["reason"]
            notes.append(
                f"Every row broke {rule['reason']} on {rule['column']} ({detail}; examples {seen}). A rule "
                "that no row meets points at the mapping rather than the data: check how the tenant's mapping "
                f"fills {rule['column']} (its source column, transform or constant).")
    for warning in report.get("warnings") or []:
        if warning["kind"].startswith("dropped:"):
            seen = ", ".join(repr(e) for e in warning["examples"])
            notes.append(
                f"{warning['rows']:,} valid user(s) have their {warning['column']} left out, which broke "
                f"{warning['kind'].partition(':')[2]} (examples {seen}): policies.invalid_optional is drop. "
                "dropped.csv lists them; correct the values at the source to import them with it. An import "
                "never updates a user: those an earlier run imported without it keep that import, whatever "
                "the source holds now; set the value there with AdminUpdateUserAttributes.")
        if warning["kind"] == "compatibility_characters":
            seen = ", ".join(repr(e) for e in warning["examples"])
            notes.append(
                f"{warning['rows']:,} user(s) of the import files have their {warning['column']} in full-width, "
                f"half-width or other compatibility characters (examples {seen}): Cognito stores it as it is, "
                "and a user who types it on an ordinary keyboard is not found. Add nfkc to its transform in the "
                "mapping (before lower), or correct the values at the source.")
    return notes


def gate(rejected: int, source_rows: int, reject_threshold: float) -> dict[str, Any]:
    """Pass when the share of rejected source rows is at most the threshold (the boundary passes).

    Compared exactly in decimal, so 20 rejected of 100 passes a 0.2 threshold whatever float says.
    """
    threshold = Decimal(str(reject_threshold))
    passed = Decimal(rejected) <= threshold * Decimal(source_rows)
    rate = rejected / source_rows if source_rows else 0.0
    return {"reject_threshold": reject_threshold, "reject_rate": round(rate, 6), "passed": passed}


def add_load_outcomes(report: Mapping[str, Any], outcomes: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``report`` with the import outcomes of ``make migrate`` joined in."""
    out = copy.deepcopy(dict(report))
    imported, skipped, failed = (int(outcomes.get(k, 0)) for k in ("imported", "skipped", "failed"))
    out["counts"].update(imported=imported, skipped=skipped, failed=failed)
    by_message: list[dict[str, Any]] = [{"message": str(m), "rows": int(n)}
                                        for m, n in dict(outcomes.get("failed_by_message") or {}).items()]
    by_message.sort(key=lambda r: (-r["rows"], r["message"]))
    out["load"] = {
        "jobs": [{k: _jsonable(job.get(k)) for k in _JOB_KEYS} for job in outcomes.get("jobs") or []],
        "failed_by_message": by_message,
        "accounting_ok": bool(outcomes.get("accounting_ok", False)),
        "problems": [str(p) for p in outcomes.get("problems") or []],
        "notes": [str(n) for n in outcomes.get("notes") or []],
        # users an earlier run imported and confirmed that the pool has changed or deleted since (notes)
        "changed_in_pool_since": int(outcomes.get("changed_in_pool_since", 0)),
        "gone_from_pool_since": int(outcomes.get("gone_from_pool_since", 0)),
        # imported users not confirmed before who have reset their password since: confirmed (a note)
        "signed_in_since_import": int(outcomes.get("signed_in_since_import", 0)),
        # imported users not in the pool that --accept-missing settled as deleted there (a note)
        "accepted_missing": int(outcomes.get("accepted_missing", 0)),
        # users this plan rejects that an earlier job failed, or that were deleted from the pool since their
        # import: counted as rejected (notes)
        "rejected_after_failing": int(outcomes.get("rejected_after_failing", 0)),
        "rejected_and_removed_from_pool": int(outcomes.get("rejected_and_removed_from_pool", 0)),
        "unaccounted": out["counts"]["valid"] - imported - skipped - failed,
    }
    return out


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: paths become strings, tuples lists, numpy scalars Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item"):  # numpy / pandas scalar
        return _jsonable(value.item())
    return str(value)
