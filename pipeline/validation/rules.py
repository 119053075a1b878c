"""Vectorised value predicates: each takes a clean string Series and returns a numpy bool mask (True = ok).

"Clean" means what ``prepare_frame`` produces: ``string[pyarrow]``, no NA, trimmed. Regexes run in
pyarrow's RE2 (``Series.str.fullmatch`` on pyarrow strings), which knows Unicode classes such as
``\\p{L}``; only non-ASCII emails fall back to the email-validator library, one value at a time,
because a regex cannot decide internationalised addresses (performance-notes: 157x per row).
Empty values are the caller's business: every predicate here judges non-empty values and answers
True for empty ones, so an optional attribute left blank never fails a format rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import all_empty, arrow, has_bytes
from pipeline.csvdialect import MAX_VALUE_BYTES, uncarriable

# fact 7: API UsernameType, 1-128 characters of letters, marks, symbols, numbers, punctuation
USERNAME_CHARS = r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+"
USERNAME_MAX = 128
E164 = r"\+[1-9][0-9]{1,14}"                           # fact 14 plus E.164's 15-digit cap
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# An ASCII address as email-validator accepts it: dot-atom local part, a dotted domain whose last
# label starts with a letter (no all-numeric TLD). Lengths are checked separately.
EMAIL_ASCII = rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
LOOKS_LIKE_EMAIL = r"[^@]+@[^@]+"                      # fact 17: broad on purpose
LOOKS_LIKE_PHONE = r"\+[0-9]+"
BIRTHDATE = r"(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[0-9]{4}"   # fact 8: mm/dd/yyyy
INTEGER = r"-?[0-9]+"
DECIMAL = r"-?[0-9]+(\.[0-9]+)?"
DATETIME = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
            r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?|[0-9]+")
_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _np(mask: pd.Series) -> np.ndarray:
    return mask.to_numpy(dtype=bool, na_value=False)


def _np_arrow(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def empty(s: pd.Series) -> np.ndarray:
    return _np(s.eq(""))


def filled(s: pd.Series) -> np.ndarray:
    return ~empty(s)


def fullmatch(s: pd.Series, pattern: str) -> np.ndarray:
    """True where the whole value matches ``pattern`` (RE2 syntax)."""
    return _np(s.str.fullmatch(pattern))


def _blank_or(s: pd.Series, ok: np.ndarray) -> np.ndarray:
    return empty(s) | ok


def carriable(s: pd.Series) -> np.ndarray:
    """Not ``csvdialect.uncarriable``; columns without a CR, LF or backslash byte skip the regex."""
    if not has_bytes(s, b"\r\n\\"):
        return np.ones(len(s), dtype=bool)
    return ~_np(uncarriable(s))


def byte_lengths(s: pd.Series) -> np.ndarray:
    return _np_arrow(pc.binary_length(arrow(s))).astype(np.int64)


def within_bytes(s: pd.Series, limit: int = MAX_VALUE_BYTES) -> np.ndarray:
    """UTF-8 byte length <= limit (fact 13: 2,048 bytes per value)."""
    return byte_lengths(s) <= limit


def valid_username(s: pd.Series) -> np.ndarray:
    n = _np(s.str.len().le(USERNAME_MAX))
    return _blank_or(s, n & fullmatch(s, USERNAME_CHARS))


def valid_email(s: pd.Series) -> np.ndarray:
    ok = fullmatch(s, EMAIL_ASCII)
    local_len = s.str.find("@")
    ok &= _np(local_len.le(64)) & _np(s.str.len().le(254))
    non_ascii = ~_np_arrow(pc.string_is_ascii(arrow(s))).astype(bool)
    if non_ascii.any():
        # only internationalised addresses pay for the library (one call per such value)
        positions = np.flatnonzero(non_ascii)
        ok[positions] = [_idn_email_ok(v) for v in s.iloc[positions]]
    return _blank_or(s, ok)


def _idn_email_ok(value: str) -> bool:
    from email_validator import EmailNotValidError, validate_email  # only internationalised addresses need it

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def valid_phone(s: pd.Series) -> np.ndarray:
    return _blank_or(s, fullmatch(s, E164))


def valid_boolean(s: pd.Series) -> np.ndarray:
    return _np(s.isin(["", "true", "false"]))


def in_values(s: pd.Series, allowed: list[str]) -> np.ndarray:
    return _np(s.isin(allowed))


def valid_birthdate(s: pd.Series) -> np.ndarray:
    """mm/dd/yyyy and a real calendar date (leap years included), year >= 1."""
    ok = fullmatch(s, BIRTHDATE)
    if ok.any():
        sub = arrow(s).filter(pa.array(ok))

        def part(start: int, stop: int) -> np.ndarray:
            return _np_arrow(pc.cast(pc.utf8_slice_codeunits(sub, start, stop), pa.int64()))

        month, day, year = part(0, 2), part(3, 5), part(6, 10)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        limit = _DAYS[month] - ((month == 2) & ~leap)
        ok[np.flatnonzero(ok)] = (day <= limit) & (year >= 1)
    return _blank_or(s, ok)


def valid_number(s: pd.Series, integer: bool) -> np.ndarray:
    return _blank_or(s, fullmatch(s, INTEGER if integer else DECIMAL))


def number_in_range(s: pd.Series, low: int | None, high: int | None) -> np.ndarray:
    """Numbers within [low, high]; values that are not numbers pass (valid_number reports them)."""
    ok = np.ones(len(s), dtype=bool)
    numeric = fullmatch(s, DECIMAL)
    values = np.full(len(s), np.nan)
    if numeric.any():
        values[numeric] = _np_arrow(pc.cast(arrow(s).filter(pa.array(numeric)), pa.float64()))
    with np.errstate(invalid="ignore"):
        if low is not None:
            ok &= ~(values < low)
        if high is not None:
            ok &= ~(values > high)
    return ok


def valid_datetime(s: pd.Series) -> np.ndarray:
    return _blank_or(s, fullmatch(s, DATETIME))


def length_between(s: pd.Series, low: int | None, high: int | None) -> np.ndarray:
    """Character length within [low, high] for non-empty values (an empty value sets nothing)."""
    lengths = s.str.len().to_numpy(dtype="int64", na_value=0)
    ok = np.ones(len(s), dtype=bool)
    if low is not None:
        ok &= lengths >= low
    if high is not None:
        ok &= lengths <= high
    return _blank_or(s, ok)


def not_like(s: pd.Series, pattern: str) -> np.ndarray:
    return ~fullmatch(s, pattern)


def csv_line_length(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Characters of each row as Cognito's dialect writes it: values, ``\\,`` escapes, separators.

    Byte length bounds character length from above, so the exact count (characters plus one per
    escaped comma) is only computed for columns that hold a comma or a non-ASCII byte at all.
    """
    total = np.full(len(frame), max(len(columns) - 1, 0), dtype="int64")
    for col in columns:
        s = frame[col]
        if all_empty(s):
            continue
        arr = arrow(s)
        if not pc.all(pc.string_is_ascii(arr)).as_py():
            total += _np_arrow(pc.utf8_length(arr)).astype(np.int64)
        else:
            total += byte_lengths(s)
        if has_bytes(s, b","):
            total += _np_arrow(pc.count_substring(arr, ",")).astype(np.int64)
    return total


def row_fits(frame: pd.DataFrame, columns: list[str], limit: int) -> np.ndarray:
    """``csv_line_length(frame, columns) <= limit``, skipping the per-row sum when no row can reach it.

    A value written in Cognito's dialect takes at most two characters per UTF-8 byte (a comma becomes
    ``\\,``), so the longest value of each column, doubled, plus the separators bounds every row.
    With real data that bound is far below 16,000 and one reduction per column decides.
    """
    bound = max(len(columns) - 1, 0)
    for col in columns:
        if not all_empty(frame[col]):
            bound += 2 * int(pc.max(pc.binary_length(arrow(frame[col]))).as_py() or 0)
    if bound <= limit:
        return np.ones(len(frame), dtype=bool)
    return csv_line_length(frame, columns) <= limit

