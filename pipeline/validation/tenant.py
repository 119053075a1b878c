"""Validate one tenant's mapped partitions against its pool: valid rows vs rejects with reasons.

Per partition: ``prepare_frame`` -> ``schema.validate(lazy=True)`` -> every failed check mapped back to
rows through its name (the Reason), ``title`` (the column) and ``description`` (the detail). The rows
come from each ``SchemaError``'s ``check_output`` (the boolean mask the check computed) rather than
from ``failure_cases``: that is the same information, complete even where pandera keeps only a few
examples (row checks, see ``schema._check``), and needs no reshaping.
Every input row ends in exactly one of ``valid`` / ``rejects`` (a row breaking several rules has
several reject lines). Rows that pass are recorded for whole-tenant duplicate resolution, which
``duplicate_rejects()`` performs after the last partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pandera_pa
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import all_empty, filter_rows, string_array, string_frame, string_series
from pipeline.contract import MFA_ENABLED, USERNAME, VERIFIABLE, PoolContract
from pipeline.errors import ConfigError
from pipeline.masking import mask_series
from pipeline.reasons import REJECT_COLUMNS, Reason
from pipeline.validation.backend import passes_blank
from pipeline.validation.duplicates import DuplicatesPolicy, DuplicateTracker, RowSource
from pipeline.validation.schema import META_COLUMNS, STRING, build_schema, prepare_frame

_REASONS = {r.value for r in Reason}


@dataclass(frozen=True)
class ValidatedPartition:
    valid: pd.DataFrame      # header columns in header order ("" for empty) + _legacy_id, _tenant
    rejects: pd.DataFrame    # REJECT_COLUMNS, one line per (row, rule broken)
    dropped: pd.DataFrame | None = None   # REJECT_COLUMNS: values left out (policies.invalid_optional: drop)

    @property
    def rejected_rows(self) -> int:
        return int(self.rejects["legacy_id"].nunique()) if len(self.rejects) else 0


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=STRING) for c in REJECT_COLUMNS})


def _check_order(schema: pandera_pa.DataFrameSchema) -> dict[tuple[str, int], int]:
    """Rank of every check (column checks in header order, then row checks) to sort reject lines."""
    keys = [(name, i) for name, column in schema.columns.items() for i in range(len(column.checks))]
    keys += [("", i) for i in range(len(schema.checks))]
    return {k: rank for rank, k in enumerate(keys)}


class TenantValidator:
    """Validates every partition of one tenant; ``duplicate_rejects()`` after the last one."""

    def __init__(self, contract: PoolContract, duplicates_policy: Any = None, rows: RowSource | None = None,
                 invalid_optional: str = "reject") -> None:
        """``rows``: where the valid rows of every partition can be read back at the end (the runner's
        staged partitions); without it the duplicate tracker keeps the columns it needs in memory.
        ``invalid_optional`` "drop": a value that breaks its column's rules, in a column the user can do
        without (``droppable_columns``), is left out instead of rejecting the user."""
        self.contract = contract
        self.droppable = droppable_columns(contract) if invalid_optional == "drop" else frozenset()
        self.policy = DuplicatesPolicy.coerce(duplicates_policy)
        order_by = self.policy.order_by
        if order_by is not None and order_by not in (*contract.csv_header, *META_COLUMNS):
            raise ConfigError("Invalid duplicates policy", [
                f"duplicates.order_by names {order_by!r}, which is not a column of pool "
                f"{contract.user_pool_id}'s CSV header; use one of {', '.join(contract.csv_header)}"])
        self.schema = build_schema(contract)
        self._rank = _check_order(self.schema)
        # the columns that no check of theirs can fail when left empty, and the schema without each
        # set of them found empty in a partition (a pool's unused attributes: the same set every time)
        self._blank_passing = [name for name, column in self.schema.columns.items() if passes_blank(column)]
        self._without: dict[frozenset[str], pandera_pa.DataFrameSchema] = {}
        self._tracker = DuplicateTracker(contract, self.policy, rows)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` as ``validate`` checks it (``prepare_frame``): it reads only the contract, so the
        runner calls it on its mapping thread, ahead of ``validate``."""
        return prepare_frame(frame, self.contract)

    def validate(self, frame: pd.DataFrame, prepared: bool = False) -> ValidatedPartition:
        """Split one mapped partition into clean valid rows and reject lines (``prepared``: ``frame``
        is what ``prepare`` gave for it, so the mapped frame could be let go earlier)."""
        prepared_frame = frame if prepared else prepare_frame(frame, self.contract)
        dropped = None
        try:
            self._schema_for(prepared_frame).validate(prepared_frame, lazy=True, inplace=True)
            rejects, bad = empty_rejects(), np.zeros(len(prepared_frame), dtype=bool)
        except pandera.errors.SchemaErrors as err:
            errors = err.schema_errors
            droppable = [e for e in errors
                         if isinstance(e.schema, pandera_pa.Column) and e.schema.name in self.droppable]
            if droppable:
                prepared_frame, dropped, rejects, bad = self._drop(prepared_frame, droppable, errors)
            else:
                rejects, bad = self._rejects(prepared_frame, errors)
        valid = filter_rows(prepared_frame, ~bad)
        self._tracker.add(valid)
        valid.index = frame.index[~bad]
        return ValidatedPartition(valid=valid, rejects=rejects, dropped=dropped)

    def _schema_for(self, frame: pd.DataFrame) -> pandera_pa.DataFrameSchema:
        """The schema without the columns that ``frame`` leaves empty (no value, no null, the declared
        dtype) and whose every check passes an empty value: none of them can fail there, and pandera's
        own work on a column (its name, nulls, dtype, the checks' scaffolding) cost ~0.1 ms each, for a
        pool's 9 unused attributes of 24 about a fifth of a partition's validation outside the checks."""
        empty = frozenset(name for name in self._blank_passing
                          if name in frame.columns and frame[name].dtype == STRING and all_empty(frame[name]))
        if not empty:
            return self.schema
        schema = self._without.get(empty)
        if schema is None:
            schema = self._without[empty] = self.schema.remove_columns(sorted(empty))
        return schema

    def _drop(self, prepared: pd.DataFrame, droppable: list[pandera.errors.SchemaError],
              errors: list[pandera.errors.SchemaError]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
        """``policies.invalid_optional: drop``: the values ``droppable`` (failed column checks) found are
        left out (a dropped email or phone number takes its verified flag with it, to false), and the rows
        that held one are validated again as they now are, since a row rule may fail without the value (no
        auto-verified attribute left true). The other rows keep their verdict. Returns the new frame, the
        lines of the values dropped from rows that stay valid, the reject lines and the rejected rows."""
        affected = np.zeros(len(prepared), dtype=bool)
        blank: dict[str, np.ndarray] = {}
        for err in droppable:
            assert err.check_output is not None   # _rejects has refused a check without one
            failed = ~np.asarray(err.check_output, dtype=bool)
            column = str(err.schema.name)
            blank[column] = blank.get(column, np.zeros(len(prepared), dtype=bool)) | failed
            affected |= failed
        changed = prepared.copy(deep=False)
        for column, rows in blank.items():
            changed[column] = _set_where(changed[column], rows, "")
            flag = _VERIFIED_FLAG.get(column)
            if flag is not None and flag in changed.columns:
                was_true = changed[flag].eq("true").fillna(False).to_numpy(dtype=bool)
                changed[flag] = _set_where(changed[flag], rows & was_true, "false")
        still_bad = np.zeros(len(prepared), dtype=bool)   # rows that fail even without their dropped values
        again = filter_rows(changed, affected)
        try:
            self.schema.validate(again, lazy=True, inplace=True)
        except pandera.errors.SchemaErrors as err:
            still_bad[np.flatnonzero(affected)[self._rejects(again, err.schema_errors)[1]]] = True
        # those are rejected as without the policy, for every rule they broke as they were: a dropped email
        # that leaves no auto-verified attribute true rejects the user for the email, its cause
        others = [e for e in errors if not any(e is d for d in droppable)]
        rejects, bad = self._rejects(prepared, others, among=~affected)
        if still_bad.any():
            more, _ = self._rejects(prepared, errors, among=still_bad)
            rejects = pd.concat([rejects, more], ignore_index=True)
            bad |= still_bad
        lines, _ = self._rejects(prepared, droppable, among=affected & ~still_bad)   # of the users imported
        return changed, lines, rejects, bad

    def duplicate_rejects(self) -> pd.DataFrame:
        """Rows to remove from the staged valid rows: losers of whole-tenant duplicate groups."""
        return self._tracker.rejects()

    def duplicate_rows(self) -> np.ndarray:
        """Those rows' numbers among the valid rows of every partition, in order (``Staging``'s rows)."""
        return self._tracker.loser_rows()

    def _rejects(self, prepared: pd.DataFrame, errors: list[pandera.errors.SchemaError],
                 among: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """Reject lines from pandera's errors: each failed check's boolean output names its rows (of those
        ``among`` marks, when given).

        The check's name is the Reason, a column check files the line under its column, a row check
        under its ``title``; the check's ``description`` is the detail.
        """
        row_parts, rank_parts, columns, details, reasons = [], [], [], [], []
        for err in errors:
            check = err.check
            output = err.check_output
            if not isinstance(check, pandera_pa.Check) or check.name not in _REASONS or output is None:
                # a check that raised, or a structural failure prepare_frame should make impossible
                raise RuntimeError(f"validation schema failed internally: {err}")
            if isinstance(err.schema, pandera_pa.Column):
                column, key = str(err.schema.name), str(err.schema.name)
            else:
                column, key = check.title or "", ""
            failed = ~np.asarray(output, dtype=bool)
            rows = np.flatnonzero(failed if among is None else failed & among)
            row_parts.append(rows)
            rank_parts.append(np.full(len(rows), self._rank[(key, err.check_index)]))
            columns.append(column)
            details.append(check.description or "")
            reasons.append(check.name)
        if not sum(len(r) for r in row_parts):
            return empty_rejects(), np.zeros(len(prepared), dtype=bool)
        which = np.repeat(np.arange(len(row_parts)), [len(r) for r in row_parts])
        rows = np.concatenate(row_parts)
        order = np.lexsort((np.concatenate(rank_parts), rows))
        rows, which = rows[order], which[order]
        # every column built by Arrow kernels: no Python string per reject line
        pieces, positions = [], []
        for col in sorted(set(columns)):
            at = np.flatnonzero(np.isin(which, [i for i, c in enumerate(columns) if c == col]))
            if col in prepared.columns:
                pieces.append(string_array(mask_series(col, string_series(string_array(prepared[col]).take(rows[at])))))
            else:
                pieces.append(pa.repeat(pa.scalar("", pa.string()), len(at)))
            positions.append(at)
        back = np.empty(len(rows), dtype=np.int64)
        back[np.concatenate(positions)] = np.arange(len(rows))
        masked = pa.concat_arrays(pieces).take(pa.array(back))

        def labels(names: list[str]) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(which, pa.int32()),
                                                  pa.array(names, pa.string())).dictionary_decode()

        taken = pa.array(rows)
        rejects = string_frame({
            "legacy_id": pd.arrays.ArrowStringArray(string_array(prepared["_legacy_id"]).take(taken)),
            "tenant": pd.arrays.ArrowStringArray(string_array(prepared["_tenant"]).take(taken)),
            "reason": pd.arrays.ArrowStringArray(labels(reasons)),
            "column": pd.arrays.ArrowStringArray(labels(columns)),
            "masked_value": pd.arrays.ArrowStringArray(masked),
            "detail": pd.arrays.ArrowStringArray(labels(details)),
        }, pd.RangeIndex(len(rows)))
        bad = np.zeros(len(prepared), dtype=bool)
        bad[rows] = True
        return rejects, bad


_VERIFIED_FLAG = dict(VERIFIABLE)   # email -> email_verified, phone_number -> phone_number_verified


def droppable_columns(contract: PoolContract) -> frozenset[str]:
    """The header columns whose invalid value ``policies.invalid_optional: drop`` leaves out: not the
    username, not an attribute the pool requires or signs users in by, not a verified flag or the MFA
    setting (what a user signs in with, or how, is never changed in silence)."""
    kept = {USERNAME, MFA_ENABLED, *contract.required_columns, *contract.username_attributes,
            *(flag for _, flag in VERIFIABLE)}
    return frozenset(c for c in contract.csv_header if c not in kept)


def _set_where(values: pd.Series, rows: np.ndarray, to: str) -> pd.Series:
    """``values`` (a string column) with ``to`` in the ``rows`` marked."""
    if not rows.any():
        return values
    arr = string_array(values)
    out = pc.if_else(pa.array(rows), pa.scalar(to, arr.type), arr)
    return pd.Series(STRING.__from_arrow__(out), index=values.index, name=values.name)
