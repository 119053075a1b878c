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
    decimal_fields,
    fast_then_rest,
    fixed_width,
    from_fixed_width,
    has_bytes,
    has_non_ascii,
    has_substring,
    lower_case,
    lower_text,
    may_be_padded,
    non_ascii,
    repeated_text,
    replace_rows,
    string_array,
    string_series,
    trim_whitespace,
)
from pipeline.calendar_days import days_since_epoch, real_dates
from pipeline.mapping.phones import to_e164
from pipeline.mojibake import repairs

STRING = "string[pyarrow]"

TRUE_WORDS = ("true", "t", "1", "yes", "y", "on")
FALSE_WORDS = ("false", "f", "0", "no", "n", "off")

# Transform name -> {argument name: kind}; kinds are checked by pipeline.mapping.spec.
ARGUMENTS: dict[str, dict[str, str]] = {
    "trim": {},
    "lower": {},
    "upper": {},
    "nfkc": {},
    "fix_mojibake": {},
    "collapse_spaces": {},
    "phone": {"region": "region"},
    "boolean": {"default": "boolean_or_null"},
    "date": {"zone": "time_zone"},
    "epoch": {"unit": "epoch_unit", "zone": "time_zone"},
}
# The units ``epoch`` takes all-digit values in, with the most digits such a value has before the year
# 33658 (12 in seconds: a 14-digit ``20240501100000`` is a compact timestamp, for the parser)
EPOCH_UNITS = {"s": 12, "ms": 15, "us": 18}

_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
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
    return lower_case(as_string(values))


def upper(values: pd.Series) -> pd.Series:
    return as_string(values).str.upper()


def nfkc(values: pd.Series) -> pd.Series:
    """Unicode NFKC (full-width letters and digits to ASCII), only on values that need it."""
    s = as_string(values)
    if not has_non_ascii(s):
        return s
    wide = pd.Series(non_ascii(s), index=s.index)
    return s.where(~wide, s[wide].str.normalize("NFKC")) if wide.any() else s


def fix_mojibake(values: pd.Series) -> pd.Series:
    """Double-encoded text (``MÃ¼ller``) back to what it read (``Müller``), also when it was encoded
    twice over or only in part; any other value as it is (``pipeline.mojibake``: a byte scan picks the
    rows, ftfy repairs them one by one)."""
    s = as_string(values)
    rows, fixed = repairs(s)
    if not len(rows):
        return s
    arr = string_array(s)
    return string_series(replace_rows(arr, rows, pa.array(fixed, arr.type)), s.index)


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
    key = lower_text(s)
    out = pc.if_else(pc.is_in(key, pa.array(TRUE_WORDS)), "true",
                     pc.if_else(pc.is_in(key, pa.array(FALSE_WORDS)), "false", s))
    fill = pa.scalar(None if default is None else ("true" if default else "false"), pa.string())
    out = pc.if_else(pc.fill_null(pc.equal(s, ""), True), fill, out)
    return string_series(out, values.index)


# "no date" as legacy databases store it: MySQL's zero date, PostgreSQL's infinity and -infinity
_NO_DATE = r"^(?:0000-00-00(?:[ T]00:00:00(?:\.0+)?)?|-?infinity)$"


def _without_no_dates(arr: pa.Array) -> pa.Array:
    """MySQL's zero date (``0000-00-00``, ``0000-00-00 00:00:00``) and PostgreSQL's ``infinity`` and
    ``-infinity``, which applications write for "no date", "never" or "unknown", as no value: they name
    no day to carry over, and kept, they rejected the user as an impossible date or a non-integer epoch
    with only a masked ``0***`` or ``i***`` to show why. A date that is zero only in part
    (``1985-00-00``) is still left for validation."""
    if not has_substring(arr, b"0000-00-00", b"infinity"):
        return arr
    return pc.if_else(pc.match_substring_regex(arr, _NO_DATE), pa.scalar(None, arr.type), arr)


def without_no_dates(values: pd.Series) -> pd.Series:
    """``values`` with the databases' "no date" values as NA (``_without_no_dates``)."""
    return string_series(_without_no_dates(string_array(values)), values.index)


def date(values: pd.Series, zone: str | None = None) -> pd.Series:
    """ISO dates ('1985-02-01', also the date part of a timestamp) to ``mm/dd/yyyy`` (fact 8).
    MySQL's zero date and PostgreSQL's ``-infinity``/``infinity`` are no value (``_without_no_dates``).

    A timestamp with an offset is an instant, and its date depends on the zone: a birthdate kept as
    local midnight in Tokyo reads ``1990-01-30 15:00:00+00`` from PostgreSQL (UTC). With ``zone``
    (an IANA name) such a value takes its date there (``_local_dates``); without, the date as written.

    The calendar is checked with integer arithmetic, so year 0001 or 9999 is no problem; other
    spellings ('01/02/1985' could be either day) and dates before the common era (PostgreSQL's
    ``0044-03-15 BC``) are left for validation. A value of exactly
    ``yyyy-mm-dd`` (what a DATE column gives) has its bytes moved with numpy; only the others go
    through the regex (``_date_by_pattern``): 14 -> ~3 ms a 50,000-row partition.
    """
    s = trim(values)
    arr = _without_no_dates(string_array(s))
    if zone is not None:
        arr = _local_dates(arr, zone)
    rows, b = fixed_width(arr, 10)
    form, (year, month, day) = decimal_fields(b, (0, 4), (5, 7), (8, 10))
    fast = form & (b[4] == ord("-")) & (b[7] == ord("-")) & real_dates(year, month, day)
    slash = np.full(int(fast.sum()), ord("/"), dtype=np.uint8)
    mdy = np.stack([b[5][fast], b[6][fast], slash, b[8][fast], b[9][fast], slash, *(b[j][fast] for j in range(4))],
                   axis=1)
    return string_series(fast_then_rest(arr, rows[fast], from_fixed_width(mdy), _date_by_pattern), s.index)


def _local_dates(arr: pa.Array, zone: str) -> pa.Array:
    """``arr`` with each timestamp that has an offset replaced by its ``yyyy-mm-dd`` date in ``zone``;
    the other values (dates, naive timestamps, what does not parse) as they are."""
    has_offset = pc.fill_null(pc.match_substring_regex(arr, _OFFSET), False)
    instants = np.flatnonzero(has_offset.to_numpy(zero_copy_only=False))
    if not len(instants):
        return arr
    given = pd.Series(arr.take(pa.array(instants)).to_pylist(), dtype=object)
    parsed = pd.to_datetime(given, format="ISO8601", utc=True, errors="coerce")
    local = parsed.dt.tz_convert(zone).dt.strftime("%Y-%m-%d")
    dates = pa.array(local.where(parsed.notna(), given).tolist(), pa.string())
    return replace_rows(arr, instants, dates)


def _date_by_pattern(arr: pa.Array) -> pa.Array:
    """``date`` of any value, by a regex over each and numpy for the calendar."""
    parts = pc.extract_regex(arr, r"^(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})(?:[ T].*)?$")
    fields = [pc.struct_field(parts, [i]) for i in range(3)]     # null where the pattern did not match
    y, m, d = (np.nan_to_num(pc.cast(f, pa.float64()).to_numpy(zero_copy_only=False)).astype(np.int64)
               for f in fields)
    # PostgreSQL writes a date before the common era with " BC" after it: not that year of our era
    ok = pc.and_(pa.array(real_dates(y, m, d)), pc.invert(pc.fill_null(pc.ends_with(arr, " BC"), False)))
    yy, mm, dd = (f.cast(pa.string()) for f in fields)
    formatted = pc.binary_join_element_wise(pc.utf8_lpad(mm, 2, "0"), pc.utf8_lpad(dd, 2, "0"), yy, "/")
    return pc.if_else(ok, formatted, arr)


def epoch(values: pd.Series, unit: str = "s", zone: str | None = None) -> pd.Series:
    """Timestamps to epoch seconds (fact 9). Naive timestamps (no offset) are wall-clock times in
    ``zone`` (an IANA name, ``_from_wall_time``), UTC by default; a value that is already all digits is
    taken as epoch ``unit``s (with a minus sign: before 1970): seconds by default, or ``ms``/``us`` (what
    Java's ``currentTimeMillis`` or JavaScript's ``Date.now()`` stored), floored to seconds, also with a
    fraction (``1700000000.25``, as a DECIMAL or DOUBLE column keeps it: ``_FRACTION``). MySQL's zero
    date and PostgreSQL's ``infinity`` are no value (``_without_no_dates``). A value that names no year
    (a time alone, ``now``, ``24-05-01``) is left for validation (``_NAMES_A_YEAR``), not completed by
    the parser.

    A millisecond value taken as seconds would be a date tens of thousands of years ahead, which
    Cognito's schema allows (MinValue 0, no documented upper bound); validation rejects an
    ``updated_at`` after the year 3000 instead (``EPOCH_SECONDS_MAX``), naming this argument.

    A value of exactly ``yyyy-mm-dd hh:mm:ss`` (or with a ``T``; what a TIMESTAMP column gives) is
    computed from its bytes with numpy; the others are parsed by pandas (``_epoch_by_parser``):
    15 -> ~4.5 ms a 50,000-row partition.
    """
    s = trim(values)
    arr = _without_no_dates(string_array(s))
    rows, b = fixed_width(arr, 19)
    form, (year, month, day, hour, minute, second) = decimal_fields(
        b, (0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19))
    fast = (form & (b[4] == ord("-")) & (b[7] == ord("-")) & ((b[10] == ord(" ")) | (b[10] == ord("T")))
            & (b[13] == ord(":")) & (b[16] == ord(":")) & real_dates(year, month, day)
            & (hour < 24) & (minute < 60) & (second < 60))
    seconds = (days_since_epoch(year[fast], month[fast], day[fast]) * 86400
               + hour[fast] * 3600 + minute[fast] * 60 + second[fast])
    text = pc.cast(pa.array(seconds, pa.int64()), pa.string())
    out = fast_then_rest(arr, rows[fast], text, lambda rest: _epoch_by_parser(string_series(rest), unit))
    return string_series(out if zone is None else _from_wall_time(arr, out, zone), s.index)


# The fraction an epoch kept in a DECIMAL, a DOUBLE or a REAL carries (PHP's microtime(true), Python's
# time.time(), MySQL's UNIX_TIMESTAMP(NOW(3))): dropped, which floors a value that is not negative
_FRACTION = r"(\.[0-9]*)?"

# An explicit offset or zone after a timestamp's time: such a value is an instant, not a wall-clock time
# (a date alone, 2024-07-01, ends in "-01" but has none)
_OFFSET = r"(?i)[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)? ?(z|utc|gmt|[+-][0-9]{2}(:?[0-9]{2})?)$"


def _from_wall_time(given: pa.Array, seconds: pa.Array, zone: str) -> pa.Array:
    """``seconds`` (``epoch`` of ``given``, naive times read as UTC) with every naive time read in ``zone``
    instead. A wall time that a clock change skips is taken as the time after the gap, and one that
    it repeats as the first of the two (summer time): an ``updated_at`` an hour off, not a rejected user.
    All-digit values (already epoch) and values with an offset keep their seconds."""
    # what the parser turned into seconds (a value left as it was, "-5" say, was not), but epoch digits
    parsed = pc.and_(pc.and_(pc.not_equal(given, seconds), pc.match_substring_regex(seconds, r"^-?[0-9]+$")),
                     pc.invert(pc.match_substring_regex(given, r"^-?[0-9]+" + _FRACTION + "$")))
    naive = pc.fill_null(pc.and_(parsed, pc.invert(pc.match_substring_regex(given, _OFFSET))), False)
    rows = np.flatnonzero(naive.to_numpy(zero_copy_only=False))
    if not len(rows):
        return seconds
    wall = pd.DatetimeIndex(
        np.asarray(pc.cast(seconds.take(pa.array(rows)), pa.int64())).astype("datetime64[s]"))
    local = wall.tz_localize(zone, ambiguous=np.ones(len(rows), dtype=bool), nonexistent="shift_forward")
    utc = pc.cast(pa.array(local.as_unit("s").asi8), pa.string())
    return replace_rows(seconds, rows, utc)


# What the parser is given must name its year: four digits of their own (not a time's fraction, nor
# part of a longer number), or a compact timestamp (all digits, or ISO 8601's basic 20240501T100000Z).
# The parser fills what a value leaves out from the clock or from year 1: "now" and "today" were the
# run's time, a time alone ("10:00:00", a TIME column) that time on the run's day, "24-05-01" the year 2001.
_NAMES_A_YEAR = r"(?:^|[^0-9:.,])[0-9]{4}(?:[^0-9]|$)|^[0-9]{13,}$|^[0-9]{8}T[0-9]"


def _day_or_month_first(s: pd.Series) -> pd.Series:
    """Where a value starts with two numbers either of which could be the month, and which differ
    (``01/05/2024``: 1 May or January 5). The parser took the month first there, and the day first where
    the first number is over 12, so a column written day first (``25/12/2024``) read its days up to the
    12th as months, each an updated_at months off; the date transform leaves them too."""
    parts = pc.extract_regex(string_array(s), r"^(?P<a>[0-9]{1,2})[/.-](?P<b>[0-9]{1,2})[/.-]")
    a, b = (np.nan_to_num(pc.cast(pc.struct_field(parts, [i]), pa.float64()).to_numpy(zero_copy_only=False))
            for i in range(2))
    return pd.Series((a >= 1) & (a <= 12) & (b >= 1) & (b <= 12) & (a != b), index=s.index)


def _epoch_by_parser(s: pd.Series, unit: str = "s") -> pa.Array:
    """``epoch`` of trimmed values: all digits as ``unit``s, ISO 8601 parsed in C, only the rest by the
    slower ``format="mixed"``."""
    digits = s.str.fullmatch(f"-?[0-9]{{1,{EPOCH_UNITS[unit]}}}{_FRACTION}").fillna(False)
    todo = s.notna() & s.ne("").fillna(False) & ~digits & s.str.contains(_NAMES_A_YEAR, regex=True).fillna(False)
    todo &= ~_day_or_month_first(s)
    parsed = pd.to_datetime(s.where(todo), format="ISO8601", utc=True, errors="coerce")
    again = todo & parsed.isna()
    if again.any():
        parsed = parsed.where(~again, pd.to_datetime(s[again], format="mixed", utc=True, errors="coerce"))
    # whole seconds from the parser's own ticks, floored: through a nanosecond Timedelta, a year
    # outside 1678-2261 (which pandas parses at microseconds) overflowed and raised
    ticks = np.asarray(parsed.array.asi8, dtype=np.int64) // _TICKS_PER_SECOND[parsed.dt.unit]
    text = pd.Series(ticks, index=s.index).astype(STRING)
    out = string_array(text.where(parsed.notna(), s).astype(STRING))
    if digits.any() and has_bytes(out, b"."):      # 1700000000.250: its whole units, floored
        point = np.flatnonzero((digits & s.str.contains(".", regex=False).fillna(False)).to_numpy(bool))
        given = out.take(pa.array(point))
        whole = pc.replace_substring_regex(given, r"\..*", "")
        # below zero a fraction floors to one less than the whole part (-1.5: -2, not -1)
        below = pc.and_(pc.starts_with(given, "-"), pc.match_substring_regex(given, r"\.[0-9]*[1-9]"))
        if pc.any(below).as_py():
            whole = pc.cast(pc.subtract(pc.cast(whole, pa.int64()), pc.cast(below, pa.int64())), pa.string())
        out = replace_rows(out, point, whole)
    if unit == "s" or not digits.any():
        return out
    rows = np.flatnonzero(digits.to_numpy(bool))
    units = pc.cast(out.take(pa.array(rows)), pa.int64()).to_numpy(zero_copy_only=False)
    seconds = np.floor_divide(units, _TICKS_PER_SECOND[unit])     # floored below zero too (-1 ms: -1 s)
    return replace_rows(out, rows, pc.cast(pa.array(seconds, pa.int64()), pa.string()))


STEPS: dict[str, Callable[..., pd.Series]] = {
    "trim": trim, "lower": lower, "upper": upper, "nfkc": nfkc, "fix_mojibake": fix_mojibake,
    "collapse_spaces": collapse_spaces,
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
    return pd.Series(pd.arrays.ArrowStringArray(repeated_text(value, len(index))), index=index)
