"""Masking of personal data for reports, logs and error messages.

Emails keep their first character and the top-level domain, phone numbers their country prefix and
last two digits, anything else its first character. The masks are deterministic so that the same
value masks the same way in every report, and they never reveal the length of the original beyond a
fixed-width filler.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import rows_with_bytes, string_array, string_series

_FILL = "***"
# A mask keeps a value's first character, which can be a control character (a damaged name's NUL or
# ESC): it is shown as its Unicode picture (NUL as U+2400, ESC as U+241B, DEL as U+2421), so that no
# report, log or terminal receives the raw byte and the reader sees which one it was.
_CONTROLS = bytes([*range(0x20), 0x7F])
_PICTURES = str.maketrans({c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421})
# Flags carry no personal data, and masking them would hide the very value a report must show; a flag
# column that holds an address or a phone number (a mapping that reads the wrong column) is scrubbed.
_PLAIN_COLUMNS = frozenset({"cognito:mfa_enabled", "email_verified", "phone_number_verified", "is_active"})


def _plain(column: str) -> bool:
    return column in _PLAIN_COLUMNS or column.endswith("_verified")


def mask_email(value: str | None) -> str:
    if value is None or value == "":
        return ""
    local, sep, domain = str(value).partition("@")
    if not sep:
        return mask_text(value)
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return (f"{local[:1]}{_FILL}@{domain[:1]}{_FILL}" + (f".{tld}" if tld else "")).translate(_PICTURES)


def mask_phone(value: str | None) -> str:
    if value is None or value == "":
        return ""
    s = str(value)
    if len(s) <= 5:
        return _FILL
    head = s[:3] if s.startswith("+") else s[:1]
    return f"{head}{_FILL}{s[-2:]}".translate(_PICTURES)


def mask_text(value: str | None) -> str:
    if value is None or value == "":
        return ""
    return f"{str(value)[:1]}{_FILL}".translate(_PICTURES)


def mask_value(column: str, value: str | None) -> str:
    """Mask ``value`` the way its column calls for (email, phone, anything else)."""
    if _plain(column):
        return "" if value is None else scrub_text(str(value))[:16].translate(_PICTURES)
    if "email" in column:
        return mask_email(value)
    if "phone" in column:
        return mask_phone(value)
    return mask_text(value)


def mask_series(column: str, values: pd.Series) -> pd.Series:
    """Vectorised ``mask_value`` for a whole column (string dtype, NA allowed), built by Arrow kernels:
    hundreds of thousands of rejected values are masked per run, where Python string methods would
    cost ~10 µs a value."""
    s = pc.fill_null(string_array(values), "")
    if _plain(column):
        out = pc.utf8_slice_codeunits(s, 0, 16)
        scrub = pc.match_substring_regex(s, _SCRUBBED)   # the rare values scrub_text would change
        if pc.any(scrub).as_py():
            fixed = [scrub_text(v)[:16] for v in s.filter(scrub).to_pylist()]
            out = pc.replace_with_mask(out, scrub, pa.array(fixed, out.type))
    elif "email" in column:
        out = _mask_emails(s)
    elif "phone" in column:
        head = pc.if_else(pc.starts_with(s, "+"), pc.utf8_slice_codeunits(s, 0, 3), pc.utf8_slice_codeunits(s, 0, 1))
        masked = pc.binary_join_element_wise(head, _FILL, pc.utf8_slice_codeunits(s, -2), "")
        out = pc.if_else(pc.greater(pc.utf8_length(s), 5), masked, _FILL)
    else:
        out = pc.binary_join_element_wise(pc.utf8_slice_codeunits(s, 0, 1), _FILL, "")
    out = pc.if_else(pc.equal(s, ""), "", out)
    return string_series(_pictured(out), values.index)


def _pictured(out: pa.Array) -> pa.Array:
    """``out`` with the control characters a mask kept shown as their pictures (``_PICTURES``); a
    byte scan finds the rare masks that hold one, and only those are rewritten."""
    hit = rows_with_bytes(out, _CONTROLS)
    if not hit.any():
        return out
    mask = pa.array(hit)
    fixed = pa.array([v.translate(_PICTURES) for v in out.filter(mask).to_pylist()], out.type)
    return pc.replace_with_mask(out, mask, fixed)


def _mask_emails(s: pa.Array) -> pa.Array:
    """``mask_email`` over an array: split at the first "@", keep the first character of each side
    and the text after the domain's last dot."""
    parts = pc.extract_regex(s, r"(?s)^(?P<local>[^@]*)@(?P<domain>.*)$")   # null where there is no "@"
    local = pc.fill_null(pc.struct_field(parts, [0]), "")
    domain = pc.fill_null(pc.struct_field(parts, [1]), "")
    tld = pc.fill_null(pc.struct_field(pc.extract_regex(domain, r"(?s)\.(?P<tld>[^.]*)$"), [0]), "")
    dotted = pc.if_else(pc.equal(tld, ""), "", pc.binary_join_element_wise(".", tld, ""))
    masked = pc.binary_join_element_wise(pc.utf8_slice_codeunits(local, 0, 1), _FILL + "@",
                                         pc.utf8_slice_codeunits(domain, 0, 1), _FILL, dotted, "")
    no_at = pc.invert(pc.match_substring(s, "@"))
    return pc.if_else(no_at, pc.binary_join_element_wise(pc.utf8_slice_codeunits(s, 0, 1), _FILL, ""), masked)


# What a service's own error text may echo of a request: AWS's validation messages quote the value
# ("Value 'jane@example.com' at 'username' failed to satisfy constraint"), and any text may hold an
# address or a long run of digits (a phone number).
_QUOTED = re.compile(r"Value '(?P<value>[^']*)' at '(?P<field>[^']*)'")
_EMAIL = re.compile(r"[^\s'\"<>(),;:@]+@[^\s'\"<>(),;:]+")
_DIGITS = re.compile(r"\+?\d[\d ().-]{6,}\d")
_SCRUBBED = r"@|Value '|\p{Nd}[\p{Nd} ().-]{6,}\p{Nd}"   # where _EMAIL or _DIGITS may match, for Arrow's regex


def scrub_text(text: str) -> str:
    """``text`` from outside (an AWS error message) with every value it may quote masked: a quoted
    request value by its field, then any email address or phone-like run of 8 or more digits."""
    text = _QUOTED.sub(lambda m: f"Value '{_mask_quoted(m['field'], m['value'])}' at '{m['field']}'", text)
    text = _EMAIL.sub(lambda m: mask_email(m[0]), text)
    return _DIGITS.sub(lambda m: mask_phone(m[0]) if sum(c.isdigit() for c in m[0]) >= 8 else m[0], text)


def scrub_values(value: Any) -> Any:
    """``value`` (a configuration value: text, a number, a list or mapping of them) with every text in it
    scrubbed (``scrub_text``): a filter in a mapping file may name an address or a phone number."""
    if isinstance(value, str):
        return value if _iso_date(value) else scrub_text(value)   # a date's 8 digits are not a phone number
    if isinstance(value, dict):
        return {k: scrub_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_values(v) for v in value]
    return value


def _iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _mask_quoted(field: str, value: str) -> str:
    return mask_email(value) if "@" in value else mask_value(field, value)


# Words after which a database's message quotes a name from the SQL or the schema, which is kept:
# PostgreSQL's ``column "x" does not exist``, ``syntax error at or near "SELEC"``; MariaDB's
# ``Unknown column 'x' in 'field list'``; SQLite's ``no such column: x``. Any other quoted text may be a
# row's value (``invalid input syntax for type bigint: "070-3311-4687"``) and is masked.
_NAME_BEFORE = re.compile(   # whole words: "format" or "within" before a quoted value is not "at"/"in"
    r"\b(?:column|relation|table|function|type|schema|database|role|user|encoding|operator|constraint|index|"
    r"sequence|view|parameter|extension|collation|domain|near|cursor|statement|savepoint|tablespace|"
    r"server|host|aggregate|trigger|procedure|variable|option|alias|field|at|in)\s*$", re.IGNORECASE)
# A quote opens after a non-word character, and a quote inside a word (O'Brien, O"Brien) does not close
# it; one left open runs to the end of the text (a value cut at its line break or at 400 characters).
_ANY_QUOTED = re.compile(r'(?<!\w)(?:"(?:[^"]|"(?=\w))*(?:"(?!\w)|$)|\'(?:[^\']|\'(?=\w))*(?:\'(?!\w)|$))')


def scrub_quoted(text: str) -> str:
    """A database's error message with every quoted text masked that is not a name (``_NAME_BEFORE``):
    a failed cast or a value that cannot be decoded quotes the row's value, a name or a phone number."""
    def mask(m: re.Match[str]) -> str:
        if _NAME_BEFORE.search(text, 0, m.start()) or m.start() and text[m.start() - 1] == "@":
            return m[0]
        quote, closed = m[0][0], len(m[0]) > 1 and m[0].endswith(m[0][0])
        return f"{quote}{mask_text(m[0][1:-1] if closed else m[0][1:])}{quote}"

    return _ANY_QUOTED.sub(mask, text)
