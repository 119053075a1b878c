"""Map one source partition to Cognito columns, applying the row policies.

Every input row ends up in exactly one place: ``MappedPartition.frame`` (to be validated) or
``MappedPartition.rejects`` (excluded by a policy, one line per policy broken, with its Reason and a
masked value). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import (
    empty_as_null,
    filter_rows,
    has_bytes,
    has_empty,
    repeated_text,
    rows_with_bytes,
    string_array,
    string_frame,
    string_series,
    trim_whitespace,
)
from pipeline.csvdialect import uncarriable
from pipeline.mapping import transforms as tf
from pipeline.mapping.spec import USERNAME, AttributeRule, Step, TenantMapping, check_source_columns
from pipeline.masking import mask_series
from pipeline.reasons import REJECT_COLUMNS, Reason

STRING = tf.STRING
_LINE_BREAK = f"{tf.SPACES[:-1]}*[\r\n]+{tf.SPACES[:-1]}*"     # a line break and the spaces around it

_DETAIL = {
    Reason.SOFT_DELETED: "soft-deleted in the legacy system ({column} is set); "
                         "policies.soft_deleted.action: import would migrate it",
    Reason.DISABLED: "inactive account ({column} is not one of {values}); "
                     "policies.disabled.action: import would migrate it",
    Reason.UNCARRIABLE_VALUE: "contains a line break or ends with a backslash, which Cognito's CSV "
                              "cannot carry; policies.newlines: replace would turn line breaks into spaces",
}


@dataclass(frozen=True)
class MappedPartition:
    frame: pd.DataFrame      # USERNAME, attributes, _legacy_id, _tenant; string[pyarrow], NA = no value
    rejects: pd.DataFrame    # REJECT_COLUMNS, rows excluded by a mapping policy


def apply_mapping(m: TenantMapping, frame: pd.DataFrame) -> MappedPartition:
    """Map ``frame`` (a source partition) for tenant ``m``; raises MappingError if columns are missing."""
    check_source_columns(m, list(frame.columns))
    frame = frame.reset_index(drop=True)
    legacy = tf.as_string(frame[m.primary_key])
    rejects: list[pd.DataFrame] = []
    excluded = pd.Series(False, index=frame.index)

    if m.soft_deleted is not None and m.soft_deleted.action == "reject":
        # MySQL's zero date (the default of many a NOT NULL deleted_at) names no deletion, as in ``date``
        col = tf.without_no_dates(tf.trim(frame[m.soft_deleted.column]))
        hit = (col.notna() & col.ne("")).fillna(False)
        detail = _DETAIL[Reason.SOFT_DELETED].format(column=m.soft_deleted.column)
        rejects.append(_lines(m, legacy, hit, Reason.SOFT_DELETED, m.soft_deleted.column, col, detail))
        excluded |= hit
    if m.disabled is not None and m.disabled.action == "reject":
        col = tf.trim(frame[m.disabled.column])
        hit = ~col.isin(m.disabled.active_values).fillna(False)
        detail = _DETAIL[Reason.DISABLED].format(column=m.disabled.column,
                                                 values=list(m.disabled.active_values))
        rejects.append(_lines(m, legacy, hit, Reason.DISABLED, m.disabled.column, col, detail))
        excluded |= hit

    kept = filter_rows(frame, ~excluded.to_numpy())
    kept_legacy = legacy[~excluded.to_numpy()]
    out = _map_columns(m, kept, kept_legacy)

    if m.newlines != "replace":
        bad = np.zeros(len(kept), dtype=bool)
        for name, values in out.items():
            if not has_bytes(values, b"\r\n\\"):
                continue
            hit = uncarriable(values).to_numpy(dtype=bool)
            if hit.any():
                rejects.append(_lines(m, kept_legacy, pd.Series(hit, index=values.index),
                                      Reason.UNCARRIABLE_VALUE, name, values, _DETAIL[Reason.UNCARRIABLE_VALUE]))
                bad |= hit
        if bad.any():
            out = {name: values[~bad] for name, values in out.items()}
            kept_legacy = kept_legacy[~bad]

    index = pd.RangeIndex(len(kept_legacy))
    # column by column, each source column let go as soon as it is finished (peak memory: one frame)
    columns = {name: _finish(out.pop(name), m.newlines == "replace") for name in list(out)}
    columns["_legacy_id"] = pd.arrays.ArrowStringArray(string_array(kept_legacy))   # Arrow to Arrow: no Python strings
    columns["_tenant"] = pd.arrays.ArrowStringArray(repeated_text(m.tenant, len(index)))
    out = string_frame(columns, index)
    rejected = (pd.concat(rejects, ignore_index=True) if rejects
                else pd.DataFrame({c: pd.Series(dtype=STRING) for c in REJECT_COLUMNS}))
    return MappedPartition(frame=out, rejects=rejected)


def _finish(values: pd.Series, replace_newlines: bool) -> pd.arrays.ArrowStringArray:
    """A mapped column as the mapped frame holds it: line breaks replaced by a space and the value
    trimmed (``newlines: replace``), and no value as NA, never "" (one pass of Arrow kernels)."""
    arr = string_array(values)
    if replace_newlines:
        if has_bytes(arr, b"\r\n"):          # a byte scan of the buffer first: line breaks are rare
            broken = rows_with_bytes(arr, b"\r\n")                  # and the regex only where they are
            if broken.any():
                mask = pa.array(broken)
                arr = pc.replace_with_mask(arr, mask, pc.replace_substring_regex(arr.filter(mask), _LINE_BREAK, " "))
        arr = trim_whitespace(arr)
    if has_empty(arr):
        arr = empty_as_null(arr)
    return pd.arrays.ArrowStringArray(arr)


def _map_columns(m: TenantMapping, frame: pd.DataFrame, legacy: pd.Series) -> dict[str, pd.Series]:
    """The mapped columns by target name, the username first (a dict: a frame's ``pop`` of each column
    as it is finished costs a rebuild of its block index every time)."""
    values: dict[str, pd.Series] = {}
    for rule in m.attributes:
        values[rule.target] = _rule(m, rule, frame)
    return {USERNAME: _username(m, frame, legacy, values), **values}


def _rule(m: TenantMapping, rule: AttributeRule, frame: pd.DataFrame) -> pd.Series:
    if rule.source is not None:
        base = frame[rule.source]
    elif rule.template is not None:
        base = _template(m, rule.template, frame)
    else:
        base = tf.constant(rule.constant or "", frame.index)
    return _steps(base, rule.steps)


def _username(m: TenantMapping, frame: pd.DataFrame, legacy: pd.Series,
              mapped: dict[str, pd.Series]) -> pd.Series:
    u = m.username
    if u.strategy == "column":
        base = frame[u.column]
    elif u.strategy == "template":
        base = _template(m, u.template or "", frame)
    elif u.strategy == "email":
        base = mapped["email"]
    elif u.strategy == "phone":
        base = mapped["phone_number"]
    else:
        base = legacy
    return _steps(base, u.steps)


def _template(m: TenantMapping, template: str, frame: pd.DataFrame) -> pd.Series:
    columns = {name: (tf.constant(m.tenant, frame.index) if name == "tenant" else frame[name])
               for name in tf.template_fields(template)}
    return tf.render_template(template, columns, frame.index)


def _steps(values: pd.Series, steps: tuple[Step, ...]) -> pd.Series:
    return tf.run_steps(values, [(s.name, s.kwargs) for s in steps])


def _lines(m: TenantMapping, legacy: pd.Series, hit: pd.Series, reason: Reason, column: str,
           values: pd.Series, detail: str) -> pd.DataFrame:
    """Reject lines (REJECT_COLUMNS) for the rows where ``hit`` is true."""
    mask = hit.to_numpy(dtype=bool)
    n, rows = int(mask.sum()), pa.array(mask)

    def text(value: pa.Array | str) -> pd.arrays.ArrowStringArray:
        return pd.arrays.ArrowStringArray(repeated_text(value, n) if isinstance(value, str) else value)

    masked = string_array(mask_series(column, string_series(string_array(values).filter(rows))))
    return string_frame({
        "legacy_id": text(string_array(legacy).filter(rows)),
        "tenant": text(m.tenant),
        "reason": text(str(reason)),
        "column": text(column),
        "masked_value": text(masked),
        "detail": text(detail),
    }, pd.RangeIndex(n))
