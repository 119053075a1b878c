"""Masking of personal data for reports, logs and error messages.

Emails keep their first character and the top-level domain, phone numbers their country prefix and
last two digits, anything else its first character. The masks are deterministic so that the same
value masks the same way in every report, and they never reveal the length of the original beyond a
fixed-width filler.
"""

from __future__ import annotations

import pandas as pd

_FILL = "***"
# Flags carry no personal data, and masking them would hide the very value a report must show.
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
    return f"{local[:1]}{_FILL}@{domain[:1]}{_FILL}" + (f".{tld}" if tld else "")


def mask_phone(value: str | None) -> str:
    if value is None or value == "":
        return ""
    s = str(value)
    if len(s) <= 5:
        return _FILL
    head = s[:3] if s.startswith("+") else s[:1]
    return f"{head}{_FILL}{s[-2:]}"


def mask_text(value: str | None) -> str:
    if value is None or value == "":
        return ""
    return f"{str(value)[:1]}{_FILL}"


def mask_value(column: str, value: str | None) -> str:
    """Mask ``value`` the way its column calls for (email, phone, anything else)."""
    if _plain(column):
        return "" if value is None else str(value)[:16]
    if "email" in column:
        return mask_email(value)
    if "phone" in column:
        return mask_phone(value)
    return mask_text(value)


def mask_series(column: str, values: pd.Series) -> pd.Series:
    """Vectorised ``mask_value`` for a whole column (string dtype, NA allowed)."""
    s = values.astype("string").fillna("")
    empty = s.eq("")
    if _plain(column):
        out = s.str.slice(0, 16)
    elif "email" in column:
        local = s.str.split("@", n=1).str[0].str.slice(0, 1)
        domain = s.str.split("@", n=1).str[1].astype("string").fillna("")
        tld = domain.str.extract(r"\.([^.]*)$", expand=False).fillna("")
        out = local + _FILL + "@" + domain.str.slice(0, 1) + _FILL + ("." + tld).where(tld.ne(""), "")
        no_at = ~s.str.contains("@", regex=False)
        out = out.where(~no_at, s.str.slice(0, 1) + _FILL)
    elif "phone" in column:
        head = s.str.slice(0, 3).where(s.str.startswith("+"), s.str.slice(0, 1))
        out = (head + _FILL + s.str.slice(-2)).where(s.str.len().gt(5), _FILL)
    else:
        out = s.str.slice(0, 1) + _FILL
    return out.where(~empty, "")
