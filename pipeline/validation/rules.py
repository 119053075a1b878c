"""Vectorised value predicates: each takes a clean string Series and returns a numpy bool mask (True = ok).

"Clean" means what ``prepare_frame`` produces: ``string[pyarrow]``, no NA, trimmed. Regexes run in
pyarrow's RE2 (``pc.match_substring_regex``), which knows Unicode classes such as ``\\p{L}``; only
non-ASCII emails fall back to the email-validator library, one value at a time, because a regex cannot
decide internationalised addresses (performance-notes: 157x per row). Rules whose answer lies in a
value's bytes (a phone number's, a birthdate's, an all-digit column's, a printable-ASCII username's) read
them from the Arrow offsets and data buffer with numpy, without a regex and without the GIL; each is
held to its pattern value by value in ``tests/test_rules.py``.
Empty values are the caller's business: every predicate here judges non-empty values and answers
True for empty ones, so an optional attribute left blank never fails a format rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import (
    CONTROL_BYTES,
    all_empty,
    arrow,
    decimal_fields,
    digits_only,
    fixed_width,
    fullmatch,
    has_bytes,
    has_control_bytes,
    has_non_ascii,
    has_substring,
    non_ascii,
    printable_ascii,
    rows_with_bytes,
    single_chunk,
    string_array,
    value_lengths,
)
from pipeline.calendar_days import real_dates
from pipeline.csvdialect import MAX_VALUE_BYTES, uncarriable
from pipeline.mojibake import double_encoded

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
# A DateTime attribute as the local service reads it (datetime.fromisoformat, U10): these ISO 8601 shapes
# with every field in range (``valid_datetime``). Epoch seconds are not a DateTime there.
DATETIME = (r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
            r"(?:[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.[0-9]+)?)?"
            r"(?:Z|[+-](?P<offset_hours>[0-9]{2}):?(?P<offset_minutes>[0-9]{2}))?)?")


def _np(mask: pd.Series) -> np.ndarray:
    return mask.to_numpy(dtype=bool, na_value=False)


def _np_arrow(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def empty(s: pd.Series) -> np.ndarray:
    return value_lengths(s) == 0


def filled(s: pd.Series) -> np.ndarray:
    return ~empty(s)


def _blank_or(s: pd.Series, ok: np.ndarray) -> np.ndarray:
    return empty(s) | ok


def _passes_unless(s: pd.Series, chars: bytes, check: Callable[[], np.ndarray]) -> np.ndarray:
    """``check()``, or every row True when no value holds a byte of ``chars`` (a scan of the data buffer
    decides, and rows without one of them could not fail ``check``)."""
    return check() if has_bytes(s, chars) else np.ones(len(s), dtype=bool)


def carriable(s: pd.Series) -> np.ndarray:
    """Not ``csvdialect.uncarriable``; columns without a CR, LF or backslash byte skip the regex."""
    return _passes_unless(s, b"\r\n\\", lambda: ~_np(uncarriable(s)))


def no_control_characters(s: pd.Series) -> np.ndarray:
    """No control character (``arrowtext.CONTROL_BYTES``: NUL, ESC, DEL...; a tab is allowed, line
    breaks are ``carriable``'s). The import file would carry one unseen into the pool, and no import
    rule says what Cognito makes of it. Found from the bytes' positions, no per-value pass; columns
    without such a byte skip even that."""
    if not has_control_bytes(s):
        return np.ones(len(s), dtype=bool)
    return ~rows_with_bytes(string_array(s), CONTROL_BYTES)


def not_double_encoded(s: pd.Series) -> np.ndarray:
    """Not UTF-8 text read as Latin-1 / Windows-1252 and stored again (``MÃ¼ller``; ``pipeline.mojibake``).
    Columns whose buffer holds no such byte pattern skip the per-value test."""
    return ~double_encoded(s)


REPLACEMENT_CHARACTER = "\ufffd"


def decodable(s: pd.Series) -> np.ndarray:
    """No U+FFFD, the character the extraction reads each invalid UTF-8 sequence as (and the mark an
    earlier system's failed decoding left in the data): either way the real characters are lost.
    Columns whose buffer holds no U+FFFD bytes skip the per-value test."""
    if not has_substring(s, REPLACEMENT_CHARACTER.encode()):
        return np.ones(len(s), dtype=bool)
    found = pc.fill_null(pc.match_substring(arrow(s), REPLACEMENT_CHARACTER), False)
    return ~found.to_numpy(zero_copy_only=False)


def within_bytes(s: pd.Series, limit: int = MAX_VALUE_BYTES) -> np.ndarray:
    """UTF-8 byte length <= limit (fact 13: 2,048 bytes per value); NA is not within."""
    n = value_lengths(s)
    return (n >= 0) & (n <= limit)


_NOT_PRINTABLE_ASCII = bytes(b for b in range(256) if not 0x21 <= b <= 0x7E)


def valid_username(s: pd.Series) -> np.ndarray:
    """1-128 letters, marks, symbols, numbers or punctuation. A value whose bytes are all printable
    ASCII (0x21-0x7E, which is exactly those classes in ASCII) needs only the length test; the pattern
    runs on the others alone (a byte scan finds them: 0.3 against 3.5 ms for 46,600 logins)."""
    n = value_lengths(s)
    ok = n >= 0                                               # NA: False
    if not printable_ascii(s):     # the pattern only where a value holds another byte (a few, usually)
        arr = string_array(s)
        other = np.flatnonzero(rows_with_bytes(arr, _NOT_PRINTABLE_ASCII) & ok)
        if len(other):
            ok[other] = fullmatch(arr.take(pa.array(other)), USERNAME_CHARS)
    if not (n <= USERNAME_MAX).all():   # bytes bound characters: the count only where bytes exceed it
        ok &= _np(s.str.len().le(USERNAME_MAX))
    return _blank_or(s, ok)


def valid_email(s: pd.Series) -> np.ndarray:
    arr = arrow(s)
    ok = fullmatch(s, EMAIL_ASCII)
    n = value_lengths(s)
    ok &= n <= 254
    # a matching address is ASCII, so bytes are characters; a local part over 64 needs a value over 65
    long = np.flatnonzero(ok & (n > 65))
    if len(long):
        ok[long] = _np_arrow(pc.find_substring(arr.take(pa.array(long)), "@")) <= 64
    wide = non_ascii(arr)     # NA: False, so no library call
    if wide.any():
        # only internationalised addresses pay for the library (one call per such value)
        positions = np.flatnonzero(wide)
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
    """``E164``, judged from the bytes (numpy over the buffer, no regex): 3 to 16 of them, a "+" then a
    digit 1-9, and no other byte that is not an ASCII digit."""
    arr, bounds, raw = single_chunk(s)
    n = value_lengths(arr)
    ok = (n >= 3) & (n <= 16)
    rows = np.flatnonzero(ok)
    if len(rows):
        used = raw[bounds[0]:bounds[-1]]
        other = ((used - np.uint8(ord("0"))) >= 10).view(np.uint8)   # bytes that are not digits
        # an empty last value starts at the end of the data: clipped (and n == 0 keeps it out of rows).
        # Counted in one byte: only values of at most 16 bytes (rows) are read, a longer one's count may wrap
        others = np.add.reduceat(other, np.minimum(bounds[:-1] - bounds[0], len(used) - 1), dtype=np.uint8)
        first, second = raw[bounds[rows]], raw[bounds[rows] + 1]
        ok[rows] = (first == ord("+")) & (second != ord("0")) & (second != ord("+")) & (others[rows] == 1)
    return _blank_or(s, ok)


def valid_boolean(s: pd.Series) -> np.ndarray:
    return in_values(s, ["", "true", "false"])


def in_values(s: pd.Series, allowed: list[str]) -> np.ndarray:
    arr = arrow(s)
    return np.asarray(pc.fill_null(pc.is_in(arr, value_set=pa.array(allowed, type=arr.type)), False), dtype=bool)


def valid_birthdate(s: pd.Series) -> np.ndarray:
    """mm/dd/yyyy and a real calendar date (leap years included), year >= 1 (``BIRTHDATE`` and the
    calendar, judged from each 10-byte value's bytes with numpy)."""
    ok = np.zeros(len(s), dtype=bool)
    rows, b = fixed_width(s, 10)
    if len(rows):
        form, (month, day, year) = decimal_fields(b, (0, 2), (3, 5), (6, 10))
        form &= (b[2] == ord("/")) & (b[5] == ord("/"))
        ok[rows] = form & real_dates(year, month, day)
    return _blank_or(s, ok)


def valid_number(s: pd.Series, integer: bool) -> np.ndarray:
    if digits_only(s):
        return value_lengths(s) >= 0
    return _blank_or(s, fullmatch(s, INTEGER if integer else DECIMAL))


def number_in_range(s: pd.Series, low: int | None, high: int | None) -> np.ndarray:
    """Whole numbers within [low, high]; other values pass (valid_number reports them)."""
    ok = np.ones(len(s), dtype=bool)
    numeric = value_lengths(s) > 0 if digits_only(s) else fullmatch(s, INTEGER)
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
    """``DATETIME`` with a real date, hour < 24, minute and second < 60 and an offset under 24 hours:
    values the service's ``datetime.fromisoformat`` takes (the shape alone let 2024-13-45 through, and the
    import failed it). The fields of the matching values come from one regex extraction."""
    ok = fullmatch(s, DATETIME)
    rows = np.flatnonzero(ok)
    if len(rows):
        parts = pc.extract_regex(arrow(s).take(pa.array(rows)), f"^(?:{DATETIME})$")

        def field(name: str) -> np.ndarray:
            text = pc.struct_field(parts, name)
            return _np_arrow(pc.cast(pc.if_else(pc.equal(text, ""), "0", text), pa.int64()))

        in_range = real_dates(field("year"), field("month"), field("day"))
        for name, limit in (("hour", 24), ("minute", 60), ("second", 60), ("offset_hours", 24),
                            ("offset_minutes", 60)):
            in_range &= field(name) < limit
        ok[rows] = in_range
    return _blank_or(s, ok)


def length_between(s: pd.Series, low: int | None, high: int | None) -> np.ndarray:
    """Character length within [low, high] for non-empty values (an empty value sets nothing). In an
    ASCII column bytes are characters: the lengths come from the offsets, with no pass over the text."""
    if has_non_ascii(s):
        lengths = s.str.len().to_numpy(dtype="int64", na_value=0)
    else:
        lengths = np.maximum(value_lengths(s), 0)
    ok = np.ones(len(s), dtype=bool)
    if low is not None:
        ok &= lengths >= low
    if high is not None:
        ok &= lengths <= high
    return _blank_or(s, ok)


def not_like(s: pd.Series, pattern: str, needs: bytes = b"") -> np.ndarray:
    """Not matching ``pattern``; with ``needs``, every match holds one of those bytes, so a column with
    none of them skips the regex."""
    if needs:
        return _passes_unless(s, needs, lambda: ~fullmatch(s, pattern))
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
            total += value_lengths(s)
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
            bound += 2 * max(int(value_lengths(frame[col]).max(initial=0)), 0)
    if bound <= limit:
        return np.ones(len(frame), dtype=bool)
    return csv_line_length(frame, columns) <= limit

