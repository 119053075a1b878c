"""Data-quality counts gathered partition by partition, in bounded memory.

A tenant is validated one partition at a time, so the report cannot hold every reject: it keeps
counts per (column, rule) and per rule, plus a few masked examples each. A row breaking several rules
has one reject line per rule; it counts once as rejected and once under each rule it broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipeline.masking import mask_email, mask_phone, mask_text, mask_value
from pipeline.reasons import REJECT_COLUMNS

_DETAIL_MAX_CHARS = 200


def safe_example(column: str, value: str) -> str:
    """Return ``value`` if it is already a mask, else mask it for ``column``.

    Rejects arrive masked; this is a second line of defence so that a raw value can never reach a
    report. Every mask in ``pipeline.masking`` is idempotent, so a value that one of them leaves
    unchanged is a mask and reveals nothing more than that mask does.
    """
    if value in (mask_email(value), mask_phone(value), mask_text(value)):
        return value
    return mask_value(column, value)


@dataclass
class RuleStats:
    """Rows that broke one rule on one column, with a few masked examples and details."""

    rows: int = 0
    examples: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@dataclass
class QualityStats:
    """Counts for one tenant's plan: source rows, valid rows, rejected rows, and why.

    ``max_examples`` bounds the examples (and the distinct details) kept per (column, rule).
    """

    max_examples: int = 5
    source_rows: int = 0
    valid_rows: int = 0
    rejected_rows: int = 0
    reject_lines: int = 0
    rules: dict[tuple[str, str], RuleStats] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def add_partition(self, source_rows: int, valid_rows: int, rejects: pd.DataFrame) -> None:
        """Count one validated partition: its source rows, its valid rows and its reject lines."""
        if source_rows < 0 or valid_rows < 0:
            raise ValueError("source_rows and valid_rows must not be negative")
        self.source_rows += int(source_rows)
        self.valid_rows += int(valid_rows)
        self.rejected_rows += self._count_rejects(rejects)

    def remove_valid(self, rejects: pd.DataFrame) -> None:
        """Move rows rejected after validation (whole-tenant duplicates) from valid to rejected."""
        moved = self._count_rejects(rejects)
        if moved > self.valid_rows:
            raise ValueError(f"cannot reject {moved} rows later: only {self.valid_rows} are valid")
        self.valid_rows -= moved
        self.rejected_rows += moved

    @property
    def unaccounted(self) -> int:
        """Source rows neither valid nor rejected (0 when every row is accounted for)."""
        return self.source_rows - self.valid_rows - self.rejected_rows

    def _count_rejects(self, rejects: pd.DataFrame) -> int:
        """Add ``rejects`` to the per-rule counts; return how many distinct rows they reject."""
        missing = [c for c in REJECT_COLUMNS if c not in rejects.columns]
        if missing:
            raise ValueError(f"rejects frame lacks the columns {missing}; expected {REJECT_COLUMNS}")
        if rejects.empty:
            return 0
        rejects = rejects.reset_index(drop=True)
        frame = pd.DataFrame({
            "row": _row_keys(rejects["legacy_id"]),
            "column": rejects["column"].astype("string").fillna(""),
            "reason": rejects["reason"].astype("string").fillna(""),
            "value": rejects["masked_value"].astype("string").fillna(""),
            "detail": rejects["detail"].astype("string").fillna("").str.slice(0, _DETAIL_MAX_CHARS),
        })
        self.reject_lines += len(frame)

        per_rule = frame.groupby(["column", "reason"], sort=False)["row"].nunique()
        for (column, reason), rows in per_rule.items():
            self.rules.setdefault((str(column), str(reason)), RuleStats()).rows += int(rows)
        per_reason = frame.groupby("reason", sort=False)["row"].nunique()
        for reason, rows in per_reason.items():
            self.reasons[str(reason)] = self.reasons.get(str(reason), 0) + int(rows)

        self._keep_samples(frame, "value", "examples")
        self._keep_samples(frame, "detail", "details")
        return int(frame["row"].nunique())

    def _keep_samples(self, frame: pd.DataFrame, source: str, target: str) -> None:
        """Keep up to ``max_examples`` distinct non-empty values of ``source`` per (column, rule)."""
        if self.max_examples <= 0:
            return
        candidates = frame.loc[frame[source].ne(""), ["column", "reason", source]].drop_duplicates()
        candidates = candidates.groupby(["column", "reason"], sort=False).head(self.max_examples)
        for column, reason, value in candidates.itertuples(index=False, name=None):
            kept: list[str] = getattr(self.rules[(str(column), str(reason))], target)
            if len(kept) >= self.max_examples:
                continue
            if source == "value":
                value = safe_example(str(column), str(value))
            if value not in kept:
                kept.append(str(value))


def _row_keys(legacy_ids: pd.Series) -> pd.Series:
    """One key per source row; a line without a legacy id counts as a row of its own."""
    keys = legacy_ids.astype("string").reset_index(drop=True)
    missing = keys.isna()
    if missing.any():
        placeholders = pd.Series([f"\x00line-{i}" for i in range(len(keys))], dtype="string")
        keys = keys.where(~missing, placeholders)
    return keys
