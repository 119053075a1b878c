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

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import (
    fullmatch,
    has_bytes,
    has_non_ascii,
    non_ascii,
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
    NA and blank stay NA. Built on Arrow kernels over whole columns; each rule works on the subset
    of values it concerns and writes its answers back with ``replace_with_mask``.
    """
    raw = trim_whitespace(string_array(values))
    n = len(raw)
    blank = np.asarray(pc.fill_null(pc.equal(raw, ""), True), dtype=bool)
    norm = raw
    if has_non_ascii(values):          # full-width digits and '+' (０９０-１２３４): NFKC only where needed
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
    out = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), pc.coalesce(out, raw))
    return string_series(out, values.index)


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
