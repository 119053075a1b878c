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

from dataclasses import dataclass

import pandas as pd
import phonenumbers

from pipeline.arrowtext import has_non_ascii, non_ascii

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


def to_e164(values: pd.Series, region: str) -> pd.Series:
    """E.164 (``+819012345678``) where the value is a phone number, else the trimmed original.

    ``region`` is the ISO 3166 code national numbers belong to (the tenant's ``default_region``).
    NA and blank stay NA.
    """
    index = values.index               # work on a RangeIndex: the caller's may repeat labels
    raw = values.astype(STRING).str.strip().reset_index(drop=True)
    blank = raw.isna() | raw.eq("").fillna(True)
    norm = raw
    if has_non_ascii(raw):             # full-width digits and '+' (０９０-１２３４): NFKC only where needed
        wide = pd.Series(non_ascii(raw), index=raw.index)
        norm = raw.where(~wide, raw[wide].str.normalize("NFKC"))
    # "+49 (0)30 ..." writes the trunk prefix in brackets after the country code: drop it.
    norm = norm.str.replace(r"^\+ *([0-9]{1,3}) *\(0\)", r"+\1", regex=True)
    shaped = norm.str.fullmatch(_ALLOWED).fillna(False) & ~blank
    plus = norm.str.startswith("+").fillna(False)
    digits = norm.str.replace(r"[^0-9]", "", regex=True)

    out = pd.Series(pd.NA, index=raw.index, dtype=STRING)
    decided = ~shaped                  # refused shapes are decided: they stay as they are
    rule = RULES.get(region)

    # International numbers: '+' or an international prefix of the region (or '00').
    intl_prefixes = rule.international if rule else ("00",)
    intl_digits = digits.where(plus)
    for prefix in intl_prefixes:
        take = shaped & ~plus & intl_digits.isna() & digits.str.startswith(prefix).fillna(False)
        intl_digits = intl_digits.where(~take, digits.str.slice(len(prefix)))
    is_intl = shaped & intl_digits.notna()
    for code, r in _BY_CODE.items():
        hit = is_intl & ~decided & intl_digits.str.startswith(code).fillna(False)
        if not hit.any():
            continue
        nsn = intl_digits[hit].str.slice(len(code))
        if r.trunk == "0":             # "+81 090-..." repeats the trunk 0 after the country code
            nsn = nsn.str.replace(r"^0", "", regex=True)
        good = nsn.str.fullmatch(r.national).fillna(False)
        out[good[good].index] = "+" + code + nsn[good]
        decided |= hit                 # a known country code with a bad length is decided: invalid

    # National numbers of the region, by its rule.
    national = shaped & ~is_intl
    if rule is not None and national.any():
        d = digits[national]
        with_trunk = d.str.startswith(rule.trunk).fillna(False)
        nsn = d.where(~with_trunk, d.str.slice(len(rule.trunk)))
        if not rule.trunk_optional:
            nsn = nsn.where(with_trunk)             # no trunk prefix: not for the rule to decide
        good = nsn.str.fullmatch(rule.national).fillna(False)
        out[good[good].index] = "+" + rule.country_code + nsn[good]
        decided |= good.reindex(raw.index, fill_value=False)

    # What the rules could not decide: libphonenumber, once per distinct value.
    rest = shaped & ~decided
    if rest.any():
        ask = ("+" + intl_digits).where(is_intl, norm)[rest]   # '00'/'010' prefixes spelt as '+'
        out[rest] = ask.map(_lookup_cache(region, ask.unique())).astype(STRING)
    out = out.where(out.notna(), raw).where(~blank, pd.NA)
    out.index = index
    return out


def _lookup_cache(region: str, uniques: object) -> dict[str, str | None]:
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
