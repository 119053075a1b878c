"""Pure, vectorised value transforms: a string column in, a ``string[pyarrow]`` column out.

Every transform keeps NA as NA and leaves a value it cannot convert as it was (trimmed), so that
validation rejects it with its own reason and the value the user recognises; nothing here guesses.
``ARGUMENTS`` is what the spec checker allows for each transform name.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import (
    arrow,
    has_bytes,
    has_non_ascii,
    has_substring,
    may_be_padded,
    non_ascii,
    string_array,
    string_series,
    trim_whitespace,
)
from pipeline.mapping.phones import to_e164

STRING = "string[pyarrow]"

TRUE_WORDS = ("true", "t", "1", "yes", "y", "on")
FALSE_WORDS = ("false", "f", "0", "no", "n", "off")

# Transform name -> {argument name: kind}; kinds are checked by pipeline.mapping.spec.
ARGUMENTS: dict[str, dict[str, str]] = {
    "trim": {},
    "lower": {},
    "upper": {},
    "nfkc": {},
    "collapse_spaces": {},
    "phone": {"region": "region"},
    "boolean": {"default": "boolean_or_null"},
    "date": {},
    "epoch": {},
}

_EPOCH = pd.Timestamp(0, tz="UTC")
# Runs of horizontal whitespace (not line breaks). Spelt out, not [^\S\r\n]: pandas runs patterns with
# \s, \S or \d through Python's re value by value instead of pyarrow's RE2.
SPACES = "[ \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+"
# The non-ASCII characters of SPACES as UTF-8 bytes, to scan a column's buffer for them.
UNICODE_SPACE_BYTES = tuple(c.encode() for c in "\u00a0\u1680\u202f\u205f\u3000"
                            + "".join(map(chr, range(0x2000, 0x200B))))


def as_string(values: pd.Series) -> pd.Series:
    return values if values.dtype == STRING else values.astype(STRING)


def trim(values: pd.Series) -> pd.Series:
    s = as_string(values)
    return s.str.strip() if may_be_padded(arrow(s)) else s


def lower(values: pd.Series) -> pd.Series:
    return as_string(values).str.lower()


def upper(values: pd.Series) -> pd.Series:
    return as_string(values).str.upper()


def nfkc(values: pd.Series) -> pd.Series:
    """Unicode NFKC (full-width letters and digits to ASCII), only on values that need it."""
    s = as_string(values)
    if not has_non_ascii(s):
        return s
    wide = pd.Series(non_ascii(s), index=s.index)
    return s.where(~wide, s[wide].str.normalize("NFKC")) if wide.any() else s


def collapse_spaces(values: pd.Series) -> pd.Series:
    """Runs of spaces and tabs become one space, then trim. Line breaks are left to the newline policy.

    The regex runs only on columns that may hold such a run (a tab-like byte, two spaces, or one of
    the Unicode spaces, each found by a byte scan of the column's buffer); elsewhere it could not change
    a value. Japanese or German names are non-ASCII but seldom hold a Unicode space."""
    s = as_string(values)
    if (has_bytes(s, b"\t\f\v") or has_substring(s, b"  ")
            or (has_non_ascii(s) and has_substring(s, *UNICODE_SPACE_BYTES))):
        s = s.str.replace(SPACES, " ", regex=True)
    return trim(s)


def phone(values: pd.Series, region: str) -> pd.Series:
    """E.164 by the rules of ``region`` (see ``pipeline.mapping.phones``)."""
    return to_e164(values, region)


def boolean(values: pd.Series, default: bool | None = None) -> pd.Series:
    """Legacy encodings (t/f, 1/0, yes/no, Y/N, true/false, on/off; any case) to "true"/"false".

    NA and blank become ``default`` ("true"/"false", or NA when None). Any other value is kept,
    trimmed, so that validation rejects it as an invalid boolean instead of it turning into false.
    """
    s = trim_whitespace(string_array(values))
    key = pc.utf8_lower(s)
    out = pc.if_else(pc.is_in(key, pa.array(TRUE_WORDS)), "true",
                     pc.if_else(pc.is_in(key, pa.array(FALSE_WORDS)), "false", s))
    fill = pa.scalar(None if default is None else ("true" if default else "false"), pa.string())
    out = pc.if_else(pc.fill_null(pc.equal(s, ""), True), fill, out)
    return string_series(out, values.index)


def date(values: pd.Series) -> pd.Series:
    """ISO dates ('1985-02-01', also the date part of a timestamp) to ``mm/dd/yyyy`` (fact 8).

    The calendar is checked with integer arithmetic, so year 0001 or 9999 is no problem; other
    spellings ('01/02/1985' could be either day) are left for validation.
    """
    s = trim(values)
    # pyarrow's extract_regex directly: pandas' str.extract runs Python's re row by row.
    arr = pa.array(s.array)                                   # zero-copy: the column's Arrow data
    parts = pc.extract_regex(arr, r"^(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})(?:[ T].*)?$")
    fields = [pc.struct_field(parts, [i]) for i in range(3)]     # null where the pattern did not match
    y, m, d = (pc.cast(f, pa.float64()).to_numpy(zero_copy_only=False) for f in fields)
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype="float64")
    in_month = (m >= 1) & (m <= 12)
    dim = np.where(in_month, month_days[np.where(in_month, m, 0).astype(int)], 0) + (leap & (m == 2))
    ok = pa.array(in_month & (d >= 1) & (d <= dim) & (y >= 1))
    yy, mm, dd = (f.cast(pa.string()) for f in fields)
    formatted = pc.binary_join_element_wise(pc.utf8_lpad(mm, 2, "0"), pc.utf8_lpad(dd, 2, "0"), yy, "/")
    return string_series(pc.if_else(ok, formatted, arr), s.index)


def epoch(values: pd.Series) -> pd.Series:
    """Timestamps to epoch seconds (fact 9). Naive timestamps are taken as UTC; a value that is
    already all digits is taken as epoch seconds. ISO 8601 is parsed in C; only the rest goes
    through the slower ``format="mixed"`` parser."""
    s = trim(values)
    digits = s.str.fullmatch(r"[0-9]{1,12}").fillna(False)
    todo = s.notna() & s.ne("").fillna(False) & ~digits
    parsed = pd.to_datetime(s.where(todo), format="ISO8601", utc=True, errors="coerce")
    again = todo & parsed.isna()
    if again.any():
        parsed = parsed.where(~again, pd.to_datetime(s[again], format="mixed", utc=True, errors="coerce"))
    seconds = (parsed - _EPOCH) // pd.Timedelta(seconds=1)
    text = seconds.astype("Int64").astype(STRING)
    return text.where(parsed.notna(), s).astype(STRING)


STEPS: dict[str, Callable[..., pd.Series]] = {
    "trim": trim, "lower": lower, "upper": upper, "nfkc": nfkc, "collapse_spaces": collapse_spaces,
    "phone": phone, "boolean": boolean, "date": date, "epoch": epoch,
}


def run_steps(values: pd.Series, steps: list[tuple[str, Mapping[str, Any]]]) -> pd.Series:
    """Apply named steps in order (arguments already checked and completed by the spec)."""
    out = as_string(values)
    for name, kwargs in steps:
        out = STEPS[name](out, **kwargs)
    return out


def template_fields(template: str) -> list[str]:
    """The ``{names}`` a template uses, in order (raises ValueError on bad braces)."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def render_template(template: str, columns: Mapping[str, pd.Series], index: pd.Index) -> pd.Series:
    """Fill ``{name}`` from ``columns`` (each value trimmed; NA counts as empty), then collapse runs of
    spaces and trim.

    The result is NA when every column the template names is NA (so "{first_name} {last_name}" of a
    user with no name is no value, not a lone space). One Arrow join for the whole template.
    """
    parts: list[Any] = []
    present = None
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pa.scalar(literal, pa.string()))
        if field is not None:
            col = trim_whitespace(string_array(columns[field]))
            present = pc.is_valid(col) if present is None else pc.or_(present, pc.is_valid(col))
            parts.append(pc.fill_null(col, ""))
    if present is None:      # literals only: the same text on every row
        return collapse_spaces(constant("".join(p.as_py() for p in parts), index))
    joined = string_series(pc.binary_join_element_wise(*parts, ""), index)
    out = collapse_spaces(joined)
    return string_series(pc.if_else(present, string_array(out), pa.scalar(None, pa.string())), index)


def constant(value: str, index: pd.Index) -> pd.Series:
    return pd.Series(value, index=index, dtype=STRING)
