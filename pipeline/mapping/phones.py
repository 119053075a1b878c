"""Phone numbers to E.164, vectorised, with libphonenumber only for what the rules cannot decide.

Why not ``phonenumbers`` on every row: it costs ~54 µs a value (22× a vectorised rule, see
/work/shared/design/performance-notes.md), and it reads letters as keypad digits, so ``090-CALL-NOW``
would become a valid-looking number. The rules here check *format* only (country code, trunk prefix,
length of the national number); libphonenumber is consulted for the rest: national numbers of regions
without a rule, national numbers that break their region's rule, and international numbers whose
country code has no rule; there a number must be *valid* (allocated), not merely well-formed.

A value that cannot be normalised is returned trimmed and otherwise unchanged, so that validation
rejects it as ``invalid_phone`` with the value the user recognises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import (
    empty_as_null,
    fast_then_rest,
    from_fixed_width,
    fullmatch,
    has_bytes,
    has_empty,
    has_non_ascii,
    non_ascii,
    single_chunk,
    string_array,
    string_series,
    trim_whitespace,
)

STRING = "string[pyarrow]"
# Patterns avoid \s, \S, \d and look-arounds: with those, pandas leaves pyarrow's RE2 for Python's
# re, one value at a time (one such replace: 0.75 s on 300k values, against ~0.06 s in RE2).


@dataclass(frozen=True)
class _Rule:
    country_code: str
    national: str                       # regex for the national significant number (no trunk prefix)
    trunk: str = "0"                    # national trunk prefix, dropped when present
    trunk_optional: bool = False        # NANP: the leading 1 may be omitted
    international: tuple[str, ...] = ("00",)   # international call prefixes dialled from the region


_NANP = _Rule("1", r"[2-9][0-9]{2}[2-9][0-9]{6}", trunk="1", trunk_optional=True, international=("011",))
RULES: dict[str, _Rule] = {
    "JP": _Rule("81", r"[1-9][0-9]{8,9}", international=("010", "00")),
    "US": _NANP,
    "CA": _NANP,
    "DE": _Rule("49", r"[1-9][0-9]{5,12}"),
    "GB": _Rule("44", r"[1-9][0-9]{8,9}"),
    "FR": _Rule("33", r"[1-9][0-9]{8}"),
}
# The same rules by country code, for international numbers ("+81 90-...", "0049 30 ...").
_BY_CODE: dict[str, _Rule] = {r.country_code: r for r in RULES.values()}

_ALLOWED = r"\+?[0-9 \-().\/]+"        # after NFKC: anything else (letters, '#', '*', ext.) is refused


def _starts(arr: pa.Array, prefix: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.starts_with(arr, prefix), False), dtype=bool)


def _digits(arr: pa.Array) -> pa.Array:
    """The digits of values made only of digits and ``+ -().\\/`` (the shapes ``_ALLOWED`` admits):
    a plain replace per separator present, instead of a regex over every value."""
    for sep in ("+", " ", "-", "(", ")", ".", "/"):
        if has_bytes(arr, sep.encode()):
            arr = pc.replace_substring(arr, sep, "")
    return arr


def to_e164(values: pd.Series, region: str) -> pd.Series:
    """E.164 (``+819012345678``) where the value is a phone number, else the trimmed original.

    ``region`` is the ISO 3166 code national numbers belong to (the tenant's ``default_region``).
    NA and blank stay NA. The usual spellings (``_usual_shapes``: digits and hyphens at the same
    places, or ``+`` and the region's country code) are read from their bytes with numpy; the rest
    goes through ``_by_rules``: Arrow kernels over the column, each rule on the subset of values it
    concerns, written back with ``replace_with_mask``. 16 -> ~8 ms a 46,600-row partition of the
    demo's Japanese numbers.
    """
    raw = trim_whitespace(string_array(values))
    rows, numbers = _usual_shapes(raw, region)
    if len(rows) < len(raw) // 2:      # mostly unusual spellings: splitting the column would cost more
        return string_series(_by_rules(raw, region), values.index)
    out = fast_then_rest(raw, rows, numbers, lambda rest: _by_rules(rest, region))
    return string_series(empty_as_null(out) if has_empty(out) else out, values.index)   # blank: no value


def _usual_shapes(raw: pa.Array, region: str) -> tuple[np.ndarray, pa.Array]:
    """The rows (ascending) that ``_by_rules`` would decide by the region's own rule alone, and their
    answers, read from fixed-width bytes: a national number written as ASCII digits and hyphens at
    fixed places (``090-1234-5678``, ``03-1234-5678``: each shape a group), starting with the trunk
    prefix 0 and with no international prefix, whose national part meets the rule (one that breaks it
    is left to ``_by_rules``, which asks libphonenumber); and ``+`` with the region's country code and
    digits only (E.164 as written), whose answer is that number, or the value itself when the rule
    refuses its length. Only lengths, and places of hyphens, that at least ``_USUAL_SHARE`` of the values
    have are looked at: a column of hyphens anywhere costs no loop over thousands of shapes.
    Regions without a rule of the form ``[d-9][0-9]{m,n}``, or whose trunk prefix is not 0 (NANP),
    have none."""
    rule = RULES.get(region)
    national = _SIMPLE_NATIONAL.fullmatch(rule.national) if rule is not None else None
    none = (np.zeros(0, dtype=np.int64), pa.array([], pa.string()))
    if rule is None or national is None or rule.trunk != "0" or rule.trunk_optional or not len(raw):
        return none
    first, shortest = int(national[1]), int(national[2]) + 1
    longest = int(national[3]) + 1 if national[3] else shortest
    cc = ("+" + rule.country_code).encode()
    arr, bounds, data = single_chunk(raw)
    lengths = np.diff(bounds)
    if arr.null_count:
        lengths[~np.asarray(arr.is_valid())] = -1
    counts = np.bincount(lengths[(lengths >= shortest + 1) & (lengths <= 2 * longest + 1)], minlength=1)
    found: list[tuple[np.ndarray, pa.Array]] = []
    enough = max(1, _USUAL_SHARE * len(arr))
    for width in np.flatnonzero(counts >= enough).tolist():
        rows = np.flatnonzero(lengths == width)
        b = np.empty((width, len(rows)), dtype=np.uint8)
        for j in range(width):
            np.take(data, bounds[rows] + j, out=b[j])
        digit = (b - np.uint8(ord("0"))) < 10                # wraps around below "0": one comparison
        hyphen = b == ord("-")
        national_form = (digit | hyphen).all(axis=0) & (b[0] == ord("0"))
        packed = np.packbits(hyphen, axis=0, bitorder="little").astype(np.int64)
        shape = np.zeros(len(rows), dtype=np.int64)
        for i, byte in enumerate(packed):
            shape |= byte << (8 * i)
        keys, held = np.unique(shape[national_form], return_counts=True)
        for key in keys[held >= enough].tolist():     # hyphens anywhere else: a few values each, _by_rules
            places = [j for j in range(width) if not (key >> j) & 1]
            if not shortest <= len(places) - 1 <= longest:
                continue                                      # the rule refuses the length: _by_rules
            at = np.flatnonzero(national_form & (shape == key))
            digits = b[places][:, at]                         # (digits, rows): the trunk 0 first
            keep = digits[1] >= ord(str(first))
            for prefix in rule.international:                # "010 ..." and "00 ..." dial abroad
                if len(prefix) <= len(places):
                    keep &= ~np.logical_and.reduce([digits[i] == ord(c) for i, c in enumerate(prefix)])
            found.append((rows[at[keep]], _joined(cc, digits[1:, keep])))
        if width > len(cc) and shortest <= width - len(cc) <= longest:
            e164 = digit[1:].all(axis=0) & (b[len(cc)] >= ord(str(first)))
            for i, c in enumerate(cc):
                e164 &= b[i] == c
            at = np.flatnonzero(e164)
            found.append((rows[at], _joined(b"", b[:, at])))  # E.164 as written: the value itself
    found = [f for f in found if len(f[0])]
    if not found:
        return none
    rows = np.concatenate([f[0] for f in found])
    order = np.argsort(rows, kind="stable")
    return rows[order], pa.concat_arrays([f[1] for f in found]).take(pa.array(order))


# the national rules of the form [d-9][0-9]{m,n} (or {m}), whose test is a first digit and a length
_SIMPLE_NATIONAL = re.compile(r"\[([1-9])-9\]\[0-9\]\{(\d+)(?:,(\d+))?\}")
_USUAL_SHARE = 0.02     # a length or a shape held by fewer values is left to _by_rules


def _joined(prefix: bytes, columns: np.ndarray) -> pa.Array:
    """``prefix`` and then each column's bytes (``columns``: bytes by position, one column per value)."""
    width, rows = columns.shape
    out = np.empty((rows, len(prefix) + width), dtype=np.uint8)
    out[:, :len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, len(prefix):] = columns.T
    return from_fixed_width(out)


def _by_rules(raw: pa.Array, region: str) -> pa.Array:
    """``to_e164`` of trimmed values, by the rules and libphonenumber (see the module's docstring)."""
    n = len(raw)
    blank = np.asarray(pc.fill_null(pc.equal(raw, ""), True), dtype=bool)
    norm = raw
    if has_non_ascii(raw):             # full-width digits and '+' (０９０-１２３４): NFKC only where needed
        wide = pa.array(non_ascii(raw))
        norm = pc.replace_with_mask(raw, wide, pc.utf8_normalize(raw.filter(wide), form="NFKC"))
    if has_bytes(norm, b"("):          # "+49 (0)30 ..." writes the trunk prefix in brackets: drop it
        norm = pc.replace_substring_regex(norm, r"^\+ *([0-9]{1,3}) *\(0\)", r"+\1")
    shaped = fullmatch(norm, _ALLOWED) & ~blank
    plus = _starts(norm, "+")
    digits = _digits(norm)             # meaningful where shaped; nothing else reads it

    out = pa.nulls(n, pa.string())
    decided = ~shaped                  # refused shapes are decided: they stay as they are
    rule = RULES.get(region)

    # International numbers: '+' or an international prefix of the region (or '00').
    intl = digits                      # the digits after the international prefix, where has_intl
    has_intl = plus.copy()
    for prefix in rule.international if rule else ("00",):
        take = shaped & ~has_intl & _starts(digits, prefix)
        if take.any():
            intl = pc.replace_with_mask(intl, pa.array(take), pc.utf8_slice_codeunits(
                digits.filter(pa.array(take)), len(prefix)))
            has_intl |= take
    is_intl = shaped & has_intl
    for code, r in _BY_CODE.items():
        hit = is_intl & ~decided & _starts(intl, code)
        if not hit.any():
            continue
        nsn = pc.utf8_slice_codeunits(intl.filter(pa.array(hit)), len(code))
        if r.trunk == "0":             # "+81 090-..." repeats the trunk 0 after the country code
            nsn = pc.replace_substring_regex(nsn, "^0", "")
        good = pa.array(fullmatch(nsn, r.national))
        out = pc.replace_with_mask(out, pa.array(hit), pc.if_else(good, pc.binary_join_element_wise(
            "+" + code, nsn, ""), pa.scalar(None, pa.string())))
        decided |= hit                 # a known country code with a bad length is decided: invalid

    # National numbers of the region, by its rule.
    national = shaped & ~is_intl
    if rule is not None and national.any():
        d = digits.filter(pa.array(national))
        with_trunk = _starts(d, rule.trunk)
        nsn = pc.if_else(pa.array(with_trunk), pc.utf8_slice_codeunits(d, len(rule.trunk)), d)
        good = fullmatch(nsn, rule.national)
        if not rule.trunk_optional:
            good &= with_trunk         # no trunk prefix: not for the rule to decide
        out = pc.replace_with_mask(out, pa.array(national), pc.if_else(pa.array(good), pc.binary_join_element_wise(
            "+" + rule.country_code, nsn, ""), pa.scalar(None, pa.string())))
        decided[national] |= good

    # What the rules could not decide: libphonenumber, once per distinct value.
    rest = shaped & ~decided
    if rest.any():
        mask = pa.array(rest)
        ask = pc.if_else(pa.array(is_intl[rest]), pc.binary_join_element_wise("+", intl.filter(mask), ""),
                         norm.filter(mask))
        answers = _lookup_cache(region, pc.unique(ask).to_pylist())
        out = pc.replace_with_mask(out, mask, pa.array([answers.get(v) for v in ask.to_pylist()], pa.string()))
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), pc.coalesce(out, raw))


def _lookup_cache(region: str, uniques: Iterable[object]) -> dict[str, str | None]:
    return {v: _lookup(v, region) for v in uniques if isinstance(v, str)}


def _lookup(value: str, region: str) -> str | None:
    """libphonenumber's answer for one value already known to hold no letters."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):     # stricter than the rules: it only sees the odd ones
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164_per_row(values: pd.Series, region: str) -> pd.Series:
    """The naive reference (libphonenumber on every value), kept for the benchmark and tests only."""
    def one(v: object) -> object:
        if not isinstance(v, str) or not v.strip():
            return pd.NA
        return _lookup(v, region) or v.strip()
    return values.map(one).astype(STRING)
