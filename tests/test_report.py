"""The report stage: counts, the JSON contract, the self-contained HTML page and the terminal summary."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.masking import mask_email, mask_phone
from pipeline.reasons import REJECT_COLUMNS, Reason
from pipeline.report import (
    SCHEMA_VERSION,
    QualityStats,
    add_load_outcomes,
    build_plan_report,
    render_html,
    render_terminal,
    write_reports,
)

HOSTILE = "<script>alert(1)</script>"


def rejects(*lines: tuple[str, str, str, str, str]) -> pd.DataFrame:
    """Reject lines as (legacy_id, reason, column, masked_value, detail) for tenant ``acme``."""
    frame = pd.DataFrame(
        [(lid, "acme", reason, column, value, detail) for lid, reason, column, value, detail in lines],
        columns=REJECT_COLUMNS,
    )
    return frame.astype("string[pyarrow]")


def plan_report(stats: QualityStats, threshold: float = 0.2, **overrides: object) -> dict:
    args: dict = dict(
        tenant="acme", run_id="20250101T000000Z-abc123", stats=stats,
        contract_fingerprint="sha256:f1f2f3", mapping_digest="sha256:d1d2d3",
        pool={"id": "eu-west-1_AbCdEf", "name": "acme-users", "header": ["cognito:username", "email"],
              "auto_verified": ["email"], "username_attributes": [], "alias_attributes": ["email"],
              "mfa": "OFF", "case_sensitive": False},
        mapping={"tenant": "acme", "columns": {"email": {"from": "email_address"}}},
        reject_threshold=threshold,
        chunks=[{"name": "chunk-00001.csv", "rows": 7, "bytes": 1234}],
        files={"rejects": Path("runs/acme/p1/rejects.csv"), "chunks_dir": Path("runs/acme/p1/chunks")},
        generated_at="2025-01-01T00:00:00+00:00",
    )
    args.update(overrides)
    return build_plan_report(**args)


def sample_stats() -> QualityStats:
    """10 source rows: row 1 breaks two rules, row 2 one, then row 3 turns out a duplicate."""
    stats = QualityStats(max_examples=2)
    stats.add_partition(6, 4, rejects(
        ("1", Reason.INVALID_EMAIL, "email", mask_email("bad@@x.org"), "not an email address"),
        ("1", Reason.INVALID_PHONE, "phone_number", mask_phone("+4412345"), "not E.164"),
        ("2", Reason.INVALID_EMAIL, "email", mask_email("worse@@y.net"), "not an email address"),
    ))
    stats.add_partition(4, 4, rejects())
    stats.remove_valid(rejects(
        ("3", Reason.DUPLICATE_EMAIL, "email", mask_email("dup@z.com"), "same email as 2 other rows"),
        ("3", Reason.DUPLICATE_USERNAME, "cognito:username", "d***", "same username as 1 other row"),
    ))
    return stats


OUTCOMES = {
    "imported": 5, "skipped": 1, "failed": 1,
    "failed_by_message": {"InvalidParameterException: bad phone": 1},
    "jobs": [{"job_id": "import-abc", "chunk": "chunk-00001.csv", "status": "Succeeded",
              "imported": 5, "skipped": 1, "failed": 1, "completion_message": "done"}],
    "accounting_ok": True,
    "signed_in_since_import": 2,
}


# --- QualityStats -------------------------------------------------------------------------------

def test_a_row_breaking_two_rules_counts_once_as_rejected_but_under_both_rules() -> None:
    stats = QualityStats()
    stats.add_partition(5, 3, rejects(
        ("1", Reason.INVALID_EMAIL, "email", "a***", ""),
        ("1", Reason.INVALID_PHONE, "phone_number", "***", ""),
        ("2", Reason.INVALID_EMAIL, "email", "b***", ""),
    ))
    assert (stats.source_rows, stats.valid_rows, stats.rejected_rows) == (5, 3, 2)
    assert stats.reject_lines == 3
    assert stats.rules[("email", "invalid_email")].rows == 2
    assert stats.rules[("phone_number", "invalid_phone")].rows == 1
    assert stats.reasons == {"invalid_email": 2, "invalid_phone": 1}
    assert stats.unaccounted == 0


def test_one_rule_broken_twice_by_a_row_counts_that_row_once() -> None:
    stats = QualityStats()
    stats.add_partition(2, 1, rejects(
        ("1", Reason.INVALID_EMAIL, "email", "a***", ""),
        ("1", Reason.INVALID_EMAIL, "custom:backup_email", "b***", ""),
    ))
    assert stats.rejected_rows == 1
    assert stats.reasons == {"invalid_email": 1}
    assert stats.rules[("email", "invalid_email")].rows == 1
    assert stats.rules[("custom:backup_email", "invalid_email")].rows == 1


def test_counts_add_up_across_partitions() -> None:
    stats = QualityStats()
    stats.add_partition(3, 2, rejects(("1", Reason.INVALID_EMAIL, "email", "a***", "")))
    stats.add_partition(3, 2, rejects(("9", Reason.INVALID_EMAIL, "email", "z***", "")))
    assert (stats.source_rows, stats.valid_rows, stats.rejected_rows) == (6, 4, 2)
    assert stats.rules[("email", "invalid_email")].rows == 2


def test_remove_valid_moves_rows_from_valid_to_rejected_and_counts_their_rules() -> None:
    stats = sample_stats()
    assert (stats.source_rows, stats.valid_rows, stats.rejected_rows) == (10, 7, 3)
    assert stats.rules[("email", "duplicate_email")].rows == 1
    assert stats.rules[("cognito:username", "duplicate_username")].rows == 1
    assert stats.unaccounted == 0


def test_remove_valid_refuses_to_reject_more_rows_than_are_valid() -> None:
    stats = QualityStats()
    stats.add_partition(1, 1, rejects())
    with pytest.raises(ValueError, match="only 1 are valid"):
        stats.remove_valid(rejects(("1", Reason.DUPLICATE_EMAIL, "email", "a***", ""),
                                   ("2", Reason.DUPLICATE_EMAIL, "email", "b***", "")))


def test_a_rejects_frame_without_the_reject_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks the columns"):
        QualityStats().add_partition(1, 0, pd.DataFrame({"legacy_id": ["1"]}))


def test_lines_without_a_legacy_id_count_one_row_each() -> None:
    frame = rejects(("x", Reason.FILTERED, "", "", ""), ("y", Reason.FILTERED, "", "", ""))
    frame["legacy_id"] = pd.array([None, None], dtype="string[pyarrow]")
    stats = QualityStats()
    stats.add_partition(2, 0, frame)
    assert stats.rejected_rows == 2


def test_examples_are_distinct_bounded_and_never_empty() -> None:
    stats = QualityStats(max_examples=3)
    lines = [(str(i), Reason.INVALID_EMAIL, "email", f"{chr(97 + i % 5)}***@x***.com", "d")
             for i in range(50)]
    lines.append(("99", Reason.INVALID_EMAIL, "email", "", "d"))
    stats.add_partition(100, 49, rejects(*lines))
    stats.add_partition(10, 9, rejects(("200", Reason.INVALID_EMAIL, "email", "q***@x***.com", "d")))
    rule = stats.rules[("email", "invalid_email")]
    assert rule.rows == 52
    assert rule.examples == ["a***@x***.com", "b***@x***.com", "c***@x***.com"]
    assert rule.details == ["d"]


def _counted_line_by_line(partitions: list[pd.DataFrame], max_examples: int) -> tuple[dict, dict, int, dict]:
    """The report's counts as the docstrings define them, one reject line at a time."""
    from pipeline.report.stats import safe_example

    rows_per_rule: dict[tuple[str, str], int] = {}
    rows_per_reason: dict[str, int] = {}
    samples: dict[tuple[str, str], dict[str, list[str]]] = {}
    rejected = 0
    for part in partitions:
        per_rule: dict[tuple[str, str], set] = {}
        per_reason: dict[str, set] = {}
        distinct: dict[tuple[str, str, str], list[str]] = {}
        rows = set()
        for i, line in enumerate(part.astype(object).where(part.notna(), None).to_dict("records")):
            row = line["legacy_id"] if line["legacy_id"] is not None else ("no id", i)
            key = (line["column"] or "", line["reason"] or "")
            rows.add(row)
            per_rule.setdefault(key, set()).add(row)
            per_reason.setdefault(key[1], set()).add(row)
            for target, value in (("examples", line["masked_value"] or ""), ("details", (line["detail"] or "")[:200])):
                seen = distinct.setdefault((*key, target), [])
                if value and value not in seen and len(seen) < max_examples:
                    seen.append(value)
        rejected += len(rows)
        for key, members in per_rule.items():
            rows_per_rule[key] = rows_per_rule.get(key, 0) + len(members)
        for reason, members in per_reason.items():
            rows_per_reason[reason] = rows_per_reason.get(reason, 0) + len(members)
        for (column, reason, target), values in distinct.items():
            kept = samples.setdefault((column, reason), {"examples": [], "details": []})[target]
            for value in values:
                value = safe_example(column, value) if target == "examples" else value
                if len(kept) < max_examples and value not in kept:
                    kept.append(value)
    return rows_per_rule, rows_per_reason, rejected, samples


def test_counts_and_samples_equal_a_line_by_line_count_on_random_rejects() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    rules = [(Reason.INVALID_EMAIL, "email"), (Reason.INVALID_PHONE, "phone_number"),
             (Reason.MISSING_REQUIRED, "cognito:username"), (Reason.DUPLICATE_EMAIL, "email"), (Reason.FILTERED, "")]
    values = ["", "a***@x***.com", "b***@y***.com", "+81*******78", "jane.doe@example.com", "J*** D**"]
    partitions = []
    for size in (0, 1, 40, 300, 300):
        picks = rng.integers(0, len(rules), size)
        lines = [(str(rng.integers(0, 120)), rules[k][0], rules[k][1], values[rng.integers(0, len(values))],
                  f"detail {rng.integers(0, 9)}") for k in picks]
        frame = rejects(*lines) if lines else rejects()
        if size:
            frame.loc[rng.random(size) < 0.05, "legacy_id"] = pd.NA
            frame.loc[rng.random(size) < 0.05, "masked_value"] = pd.NA
        partitions.append(frame)
    for max_examples in (0, 1, 3):
        stats = QualityStats(max_examples=max_examples)
        for frame in partitions:
            stats.add_partition(len(frame), 0, frame)
        per_rule, per_reason, rejected, samples = _counted_line_by_line(partitions, max_examples)
        assert {k: v.rows for k, v in stats.rules.items()} == per_rule
        assert list(stats.rules) == list(per_rule)                 # first-seen order, as the report lists them
        assert stats.reasons == per_reason and stats.rejected_rows == rejected
        assert stats.reject_lines == sum(len(f) for f in partitions)
        for key, rule in stats.rules.items():
            assert (rule.examples, rule.details) == (samples[key]["examples"], samples[key]["details"]), key


def test_an_unmasked_value_is_masked_before_it_becomes_an_example() -> None:
    stats = QualityStats()
    stats.add_partition(3, 0, rejects(
        ("1", Reason.INVALID_EMAIL, "email", "jane.doe@example.com", ""),
        ("2", Reason.INVALID_PHONE, "phone_number", "+441234567890", ""),
        ("3", Reason.STRING_LENGTH, "name", "Jane Doe", ""),
    ))
    assert stats.rules[("email", "invalid_email")].examples == ["j***@e***.com"]
    assert stats.rules[("phone_number", "invalid_phone")].examples == ["+44***90"]
    assert stats.rules[("name", "string_length")].examples == ["J***"]


# --- the JSON contract --------------------------------------------------------------------------

def test_plan_report_json_content() -> None:
    report = plan_report(sample_stats())
    assert report["schema_version"] == SCHEMA_VERSION
    assert (report["tenant"], report["run_id"]) == ("acme", "20250101T000000Z-abc123")
    assert report["generated_at"] == "2025-01-01T00:00:00+00:00"
    assert report["counts"] == {"source_rows": 10, "valid": 7, "rejected": 3,
                                "imported": None, "skipped": None, "failed": None}
    assert report["plan_accounting_ok"] is True
    assert report["reject_lines"] == 5
    assert [(r["column"], r["reason"], r["rows"]) for r in report["by_rule"]] == [
        ("email", "invalid_email", 2),
        ("cognito:username", "duplicate_username", 1),
        ("email", "duplicate_email", 1),
        ("phone_number", "invalid_phone", 1),
    ]
    email_rule = report["by_rule"][0]
    assert email_rule["examples"] == [mask_email("bad@@x.org"), mask_email("worse@@y.net")]
    assert email_rule["details"] == ["not an email address"]
    assert report["by_reason"] == [
        {"reason": "invalid_email", "rows": 2}, {"reason": "duplicate_email", "rows": 1},
        {"reason": "duplicate_username", "rows": 1}, {"reason": "invalid_phone", "rows": 1},
    ]
    assert report["gate"] == {"reject_threshold": 0.2, "reject_rate": 0.3, "passed": False}
    assert report["notes"] == []                          # no rule took every row, the source was not empty
    assert report["contract_fingerprint"] == "sha256:f1f2f3"
    assert report["mapping_digest"] == "sha256:d1d2d3"
    assert report["mapping"]["columns"]["email"] == {"from": "email_address"}
    assert report["pool"]["id"] == "eu-west-1_AbCdEf"
    assert report["chunks"] == [{"name": "chunk-00001.csv", "rows": 7, "bytes": 1234}]
    assert report["files"] == {"rejects": "runs/acme/p1/rejects.csv", "chunks_dir": "runs/acme/p1/chunks"}
    assert report["load"] is None
    json.dumps(report)  # plain JSON types only


def test_no_raw_value_reaches_the_json() -> None:
    report = plan_report(sample_stats())
    text = json.dumps(report)
    for raw in ("bad@@x.org", "worse@@y.net", "dup@z.com", "+4412345"):
        assert raw not in text


@pytest.mark.parametrize(("rejected", "threshold", "passed"), [
    (20, 0.2, True), (21, 0.2, False), (7, 0.07, True), (8, 0.07, False), (0, 0.0, True), (1, 0.0, False),
])
def test_gate_passes_at_the_threshold_and_fails_just_over_it(rejected: int, threshold: float,
                                                             passed: bool) -> None:
    stats = QualityStats()
    lines = [(str(i), Reason.INVALID_EMAIL, "email", "a***", "") for i in range(rejected)]
    stats.add_partition(100, 100 - rejected, rejects(*lines))
    gate = plan_report(stats, threshold=threshold)["gate"]
    assert gate == {"reject_threshold": threshold, "reject_rate": rejected / 100, "passed": passed}


def test_gate_of_an_empty_tenant_passes() -> None:
    gate = plan_report(QualityStats())["gate"]
    assert gate == {"reject_threshold": 0.2, "reject_rate": 0.0, "passed": True}


def test_add_load_outcomes_adds_the_import_section_without_changing_the_plan_report() -> None:
    plan = plan_report(sample_stats())
    run = add_load_outcomes(plan, OUTCOMES)
    assert plan["load"] is None and plan["counts"]["imported"] is None
    assert run["counts"] == {"source_rows": 10, "valid": 7, "rejected": 3,
                             "imported": 5, "skipped": 1, "failed": 1}
    assert run["load"] == {
        "jobs": OUTCOMES["jobs"],
        "failed_by_message": [{"message": "InvalidParameterException: bad phone", "rows": 1}],
        "accounting_ok": True,
        "problems": [],
        "notes": [],
        "changed_in_pool_since": 0,
        "gone_from_pool_since": 0,
        "signed_in_since_import": 2,
        "accepted_missing": 0,
        "rejected_after_failing": 0,
        "rejected_and_removed_from_pool": 0,
        "unaccounted": 0,
    }
    assert run["by_rule"] == plan["by_rule"] and run["gate"] == plan["gate"]
    problem = "2 user(s) this plan rejects were imported (or met in the pool) by an earlier run."
    broken = add_load_outcomes(plan, {**OUTCOMES, "accounting_ok": False, "problems": [problem]})
    assert broken["load"]["problems"] == [problem] and problem in render_html(broken)
    note = "2 user(s) with an outcome from an earlier run are no longer in the source."
    noted = add_load_outcomes(plan, {**OUTCOMES, "notes": [note]})
    assert noted["load"]["notes"] == [note] and f"Note: {note}" in render_html(noted)


def test_write_reports_writes_json_and_html(tmp_path: Path) -> None:
    report = add_load_outcomes(plan_report(sample_stats()), OUTCOMES)
    paths = write_reports(report, tmp_path / "runs" / "acme" / "p1")
    assert set(paths) == {"json", "html"}
    assert paths["json"].name == "report.json" and paths["html"].name == "report.html"
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in paths["json"].parent.iterdir()) == ["report.html", "report.json"]


def test_a_report_the_disk_cannot_hold_leaves_no_half_written_copy(tmp_path: Path, monkeypatch) -> None:
    """A full disk while report.json or report.html is written: the temporary copy stayed in the run
    directory for good (the previous whole file, if any, stays as it was)."""
    import errno
    import os

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "runs" / "acme" / "p1"
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        write_reports(add_load_outcomes(plan_report(sample_stats()), OUTCOMES), out)
    assert list(out.iterdir()) == []


# --- HTML ----------------------------------------------------------------------------------------

def test_html_has_the_summary_the_failure_tables_and_charts() -> None:
    html = render_html(plan_report(sample_stats()))
    assert "<svg" in html and "<rect" in html
    assert "Gate failed" in html
    assert "sha256:f1f2f3" in html and "sha256:d1d2d3" in html
    assert 'id="rejections"' in html and "<table>" in html
    for cell in ("invalid_email", "duplicate_username", "phone_number", mask_email("bad@@x.org"),
                 "not an email address"):
        assert cell in html
    assert 'id="import"' not in html


def test_html_shows_the_import_outcome_once_loaded() -> None:
    html = render_html(add_load_outcomes(plan_report(sample_stats()), OUTCOMES))
    assert 'id="import"' in html
    for cell in ("import-abc", "chunk-00001.csv", "Succeeded", "InvalidParameterException: bad phone",
                 "Accounting OK"):
        assert cell in html


def test_html_escapes_hostile_values() -> None:
    stats = QualityStats()
    stats.add_partition(2, 0, rejects(
        ("1", Reason.STRING_LENGTH, f"custom:{HOSTILE}", "<***", HOSTILE),
        ("2", Reason.INVALID_EMAIL, "email", "x***", '"><img src=x onerror=alert(1)>'),
    ))
    outcomes = dict(OUTCOMES, failed_by_message={HOSTILE: 1},
                    jobs=[dict(OUTCOMES["jobs"][0], completion_message=HOSTILE)])
    html = render_html(add_load_outcomes(plan_report(stats, tenant=HOSTILE), outcomes))
    assert HOSTILE not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_html_is_self_contained() -> None:
    html = render_html(add_load_outcomes(plan_report(sample_stats()), OUTCOMES))
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for attr in re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', html, flags=re.I):
        assert attr.startswith("#") or attr.startswith("data:"), attr
    assert "@import" not in html and "url(" not in html


def test_html_of_a_clean_tenant_says_nothing_was_rejected() -> None:
    stats = QualityStats()
    stats.add_partition(3, 3, rejects())
    html = render_html(plan_report(stats, chunks=[], files={}))
    assert "No row was rejected." in html and "Gate passed" in html


# --- terminal ------------------------------------------------------------------------------------

def test_terminal_summary_has_counts_top_rules_the_gate_and_files() -> None:
    text = render_terminal(plan_report(sample_stats()))
    assert "acme" in text
    assert re.search(r"Source rows 10\s+valid 7\s+rejected 3", text)
    assert "Gate FAILED" in text and "30.00%" in text and "20.00%" in text
    assert "invalid_email" in text and mask_email("bad@@x.org") in text
    assert "runs/acme/p1/rejects.csv" in text
    assert "\x1b[" not in text  # no terminal escapes: fine in a pipe or a log file


def test_a_tenant_without_source_rows_says_what_to_check() -> None:
    empty = plan_report(QualityStats(), chunks=[], files={},
                        mapping={"source": {"query": "users.sql", "params": {"tenant": "{tenant}"}}})
    note = "The source query (users.sql) returned no row for tenant acme"
    assert empty["notes"][0].startswith(note)                       # in the JSON, the contract
    assert f"NOTE: {note}" in render_terminal(empty) and note in render_html(empty)
    assert "LEGACY_DB_URL" in render_terminal(empty)
    stats = QualityStats()
    stats.add_partition(3, 3, rejects())
    some = plan_report(stats, chunks=[], files={})
    assert "returned no row" not in render_terminal(some) + render_html(some)


def test_a_row_policy_that_takes_every_row_says_what_to_check() -> None:
    def report(deleted: int) -> dict:
        stats = QualityStats()
        lines = [(str(i), Reason.SOFT_DELETED, "deleted_at", "0000-00-00", "soft-deleted") for i in range(deleted)]
        stats.add_partition(3, 3 - deleted, rejects(*lines))
        return plan_report(stats, chunks=[], files={})

    every = report(3)
    text = render_terminal(every)
    examples = ", ".join(repr(e) for e in every["by_rule"][0]["examples"])   # as masked for the report
    assert "NOTE: Every row was rejected as soft-deleted: deleted_at has a value in every row (such as " \
           f"{examples})" in text and "NULLIF(deleted_at" in text
    assert "Every row was rejected as soft-deleted" in html.unescape(render_html(every))
    assert "NOTE" not in render_terminal(report(2))          # some rows deleted: nothing odd
    assert len(every["notes"]) == 1 and report(2)["notes"] == []   # the notes are part of the JSON


def test_a_validation_rule_that_every_row_breaks_points_at_the_mapping() -> None:
    stats = QualityStats()
    stats.add_partition(2, 0, rejects(("1", Reason.INVALID_PHONE, "phone_number", "***", "not an E.164 number"),
                                      ("2", Reason.INVALID_PHONE, "phone_number", "***", "not an E.164 number"),
                                      ("2", Reason.INVALID_EMAIL, "email", "***", "not an email address")))
    text = " ".join(render_terminal(plan_report(stats, chunks=[], files={})).split())   # lines wrap at 100
    assert ("NOTE: Every row broke invalid_phone on phone_number (not an E.164 number; examples '***'). A rule "
            "that no row meets points at the mapping") in text
    assert "broke invalid_email" not in text                   # one row of two: the data's business


def test_an_updated_at_in_milliseconds_in_most_rows_names_the_epoch_unit() -> None:
    """Rows without an updated_at break no rule, so a column of milliseconds is seldom "every row"."""
    def report(out_of_range: int) -> dict:
        stats = QualityStats()
        stats.add_partition(4, 4 - out_of_range, rejects(*[
            (str(i), Reason.NUMBER_OUT_OF_RANGE, "updated_at", "1***", "outside 0..32503680000 epoch seconds")
            for i in range(out_of_range)]))
        return plan_report(stats, chunks=[], files={})

    text = " ".join(render_terminal(report(3)).split())
    assert "NOTE: 3 of 4 rows have an updated_at outside 0 to the year 3000 in epoch seconds (examples '1***')" \
        in text and "{epoch: {unit: ms}}" in text and "points at the mapping" not in text
    assert report(1)["notes"] == []                                 # one row of four: the data's business


def test_sign_in_values_in_full_width_are_counted_masked_and_named_in_a_note() -> None:
    """A full-width ``ｅｖｅ@example.com`` (a Japanese input method in full-width mode) passes every rule
    and Cognito keeps it, but the user types ``eve@example.com`` and is not found: the import files' users
    whose sign-in values Unicode NFKC changes are counted per column, with masked examples, and a note says
    what to do. Names are not sign-in values; ordinary Japanese and accented text is its own NFKC."""
    stats = QualityStats(max_examples=2)
    first = pd.DataFrame({
        "cognito:username": ["eve", "ｅｖｅ", "ｱﾘｽ", "アリス", "re\u0301ne", "rené"],
        "email": ["eve@example.com", "ｅｖｅ@example.com", "ａｌｉｃｅ@example.com", "ｂｏｂ@example.jp",
                  "アリス@example.jp", None],
        "given_name": ["Ｅｖｅ"] * 6,
    }).astype("string[pyarrow]")
    stats.add_warnings(first)
    stats.add_warnings(first.iloc[1:2])                        # a later partition adds to the count
    stats.add_partition(7, 7, rejects())
    report = plan_report(stats, chunks=[], files={})
    assert [(w["column"], w["kind"], w["rows"]) for w in report["warnings"]] == [
        ("cognito:username", "compatibility_characters", 4), ("email", "compatibility_characters", 4)]
    email = report["warnings"][1]
    assert email["examples"] == [mask_email("ｅｖｅ@example.com"), mask_email("ａｌｉｃｅ@example.com")]
    assert "ｅｖｅ@example.com" not in json.dumps(report, ensure_ascii=False)
    text = " ".join(render_terminal(report).split())
    assert ("NOTE: 4 user(s) of the import files have their email in full-width, half-width or other "
            f"compatibility characters (examples {email['examples'][0]!r}, {email['examples'][1]!r})") in text
    assert "Add nfkc to its transform" in text and "cognito:username in full-width" in text
    clean = QualityStats()
    clean.add_warnings(pd.DataFrame({"cognito:username": ["アリス", "rené", "eve"],
                                     "email": ["アリス@example.jp", None, "eve@example.com"]}, dtype="string[pyarrow]"))
    assert clean.warnings == {}


def test_text_that_no_row_could_decode_points_at_the_source_encoding() -> None:
    stats = QualityStats()
    stats.add_partition(2, 0, rejects(*[(str(i), Reason.UNDECODABLE_TEXT, "family_name", "M\ufffdller",
                                        "holds bytes that are not UTF-8") for i in (1, 2)]))
    text = " ".join(render_terminal(plan_report(stats, chunks=[], files={})).split())
    assert "NOTE: Every row's family_name holds bytes that are not UTF-8 (examples 'M***')" in text
    assert "another encoding" in text and "points at the mapping" not in text


def test_a_column_double_encoded_in_every_row_points_at_the_latin1_column() -> None:
    stats = QualityStats()
    stats.add_partition(2, 0, rejects(*[(str(i), Reason.DOUBLE_ENCODED_TEXT, "family_name", "MÃ¼ller",
                                        "UTF-8 text that was once read as Latin-1") for i in (1, 2)]))
    text = " ".join(render_terminal(plan_report(stats, chunks=[], files={})).split())
    assert "NOTE: Every row's family_name is UTF-8 text that was read as Latin-1 and stored again" in text
    assert "fix_mojibake" in text and "points at the mapping" not in text


def test_terminal_summary_after_load_shows_the_outcomes() -> None:
    text = render_terminal(add_load_outcomes(plan_report(sample_stats()), OUTCOMES))
    assert re.search(r"Imported 5\s+skipped 1\s+failed 1\s+accounting OK", text)
    assert "InvalidParameterException: bad phone" in text


def test_terminal_does_not_interpret_markup_in_values() -> None:
    stats = QualityStats()
    stats.add_partition(1, 0, rejects(("1", Reason.STRING_LENGTH, "[bold]name[/bold]", "[***", "")))
    text = render_terminal(plan_report(stats))
    assert "[bold]name[/bold]" in text


# --- a sample to look at -------------------------------------------------------------------------

def test_a_realistic_run_shows_its_figures_in_the_html_and_the_terminal(tmp_path: Path) -> None:
    """A run of 25,000 rows with seven rules broken and a load with skipped and failed users: every count,
    rule, chunk and Cognito message reaches both renderings. (To look at it: ``pytest -k realistic
    --basetemp=DIR`` keeps report.html and terminal.txt under DIR.)"""
    stats = QualityStats(max_examples=5)
    rules = [(Reason.INVALID_EMAIL, "email", "j***@e***.com", "not a valid email address", 412),
             (Reason.INVALID_PHONE, "phone_number", "+44***90", "cannot be read as E.164", 230),
             (Reason.MISSING_REQUIRED, "email", "", "the pool requires email", 121),
             (Reason.DUPLICATE_EMAIL, "email", "a***@g***.com", "same email as another row", 64),
             (Reason.VERIFIED_WITHOUT_VALUE, "email_verified", "t***", "email_verified without email", 40),
             (Reason.SOFT_DELETED, "", "", "deleted_at is set", 310),
             (Reason.STRING_LENGTH, "custom:department", "R***", "longer than 64 characters", 12)]
    lines, lid = [], 0
    for reason, column, value, detail, n in rules:
        for i in range(n):
            varied = value[:-2] + f"{i % 89 + 10}" if column.startswith("phone") else (
                chr(97 + (i * 7) % 26) + value[1:] if value else value)
            lines.append((str(lid), reason, column, varied, detail))
            lid += 1
    stats.add_partition(25_000, 25_000 - lid, rejects(*lines))
    chunks = [{"name": f"chunk-{i:05d}.csv", "rows": 5_000, "bytes": 1_850_000, "sha256": f"{i:x}" * 64}
              for i in range(1, 5)]
    chunks.append({"name": "chunk-00005.csv", "rows": 25_000 - lid - 20_000, "bytes": 1_400_000,
                   "sha256": "e" * 64})
    report = plan_report(stats, threshold=0.1, chunks=chunks)
    valid = report["counts"]["valid"]
    report = add_load_outcomes(report, {
        "imported": valid - 57, "skipped": 40, "failed": 17,
        "failed_by_message": {"InvalidParameterException: phone_number format": 12,
                              "UsernameExistsException: alias already in use": 5},
        "jobs": [{"job_id": f"import-{i:04x}abcd", "chunk": c["name"], "status": "Succeeded",
                  "imported": c["rows"] - (57 if i == 5 else 0), "skipped": 40 if i == 5 else 0,
                  "failed": 17 if i == 5 else 0, "completion_message": "Import Job Completed Successfully."}
                 for i, c in enumerate(chunks, start=1)],
        "accounting_ok": True,
    })
    paths = write_reports(report, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    text = render_terminal(report)
    (tmp_path / "terminal.txt").write_text(text, encoding="utf-8")

    assert "Source rows 25,000   valid 23,811   rejected 1,189" in text
    assert "Imported 23,754   skipped 40   failed 17   accounting OK" in text
    assert "Gate PASSED: reject rate 4.76% (threshold 10.00%)" in text
    top = [line.split()[:3] for line in text.splitlines()[6:11]]
    assert top == [["412", "email", "invalid_email"], ["310", "(row)", "soft_deleted"],
                   ["230", "phone_number", "invalid_phone"], ["121", "email", "missing_required"],
                   ["64", "email", "duplicate_email"]]
    assert "(and 2 more in the report)" in text
    for reason, _, _, _, n in rules:
        assert f"{reason.value}: {n}" in page, reason       # its bar in the chart
    for chunk in chunks:
        assert chunk["name"] in page
    for message in ("InvalidParameterException: phone_number format", "UsernameExistsException: alias already in use"):
        assert message in page and message in text
    examples = set(re.findall(r"[a-z]\*\*\*@[a-z]\*\*\*\.com", page))
    assert len(examples) >= 5 and not re.search(r"[a-z]{2,}@", page)     # masked, never a raw address
