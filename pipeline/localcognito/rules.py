"""Per-row rules of a CSV user import (facts 4-17), as pure functions of the pool's rules and a row.

``PoolRules.from_pool`` reads what the rules need from the moto pool once per job; ``check_row``
returns the first broken rule's log text (``None`` when the row is valid) and the attributes to store.
Uniqueness against the pool (users, aliases) is ``users.PoolIndex``'s job. Decisions for the open
points (U2, U3, U10, U11) are listed in docs/local-cognito.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from moto.cognitoidp.models import CognitoIdpUserPool

from pipeline.csvdialect import MAX_VALUE_BYTES
from pipeline.localcognito.header import csv_header

USERNAME = "cognito:username"
MFA = "cognito:mfa_enabled"
VERIFIED = {"email": "email_verified", "phone_number": "phone_number_verified"}
PHONE = re.compile(r"\+[0-9]+")                                     # fact 14
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")                     # U10: a basic shape, strict
DATE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")                    # fact 8
WHOLE = re.compile(r"-?[0-9]+")
_USERNAME_CATEGORIES = ("L", "M", "S", "N", "P")                    # fact 7
MSG_AUTO_VERIFIED = ("The User Record does not set any of the auto verified attributes to true. "
                     "(Example: email_verified to true).")          # fact 34, exactly


@dataclass(frozen=True)
class PoolRules:
    header: list[str]
    required: tuple[str, ...] = ()
    auto_verified: tuple[str, ...] = ()
    aliases: frozenset[str] = frozenset()
    username_attributes: tuple[str, ...] = ()
    case_sensitive: bool = True
    mfa: str = "OFF"
    types: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_pool(cls, pool: CognitoIdpUserPool) -> PoolRules:
        cfg = pool.extended_config
        types = {}
        for a in pool.schema_attributes.values():
            constraints = (a.string_constraints if a.data_type == "String" else a.number_constraints)
            types[a.name] = (a.data_type, dict(constraints or {}))
        header = csv_header(pool)
        return cls(
            header=header,
            required=tuple(a.name for a in pool.schema_attributes.values()
                           if a.required and a.name in header),                     # fact 18
            auto_verified=tuple(cfg.get("AutoVerifiedAttributes") or ()),
            aliases=frozenset(cfg.get("AliasAttributes") or ()),
            username_attributes=tuple(cfg.get("UsernameAttributes") or ()),
            case_sensitive=(cfg.get("UsernameConfiguration") or {}).get("CaseSensitive", True),
            mfa=pool.mfa_config or "OFF",
            types=types,
        )

    def fold(self, value: str) -> str:
        """Usernames, preferred_username and email compare case-insensitively when so configured."""
        return value if self.case_sensitive else value.lower()


def parse_bool(value: str) -> bool | None:
    """U3: true/false in any case; blank is None (false for the verified flags). Else ValueError."""
    low = value.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if value == "":
        return None
    raise ValueError(value)


def username_problem(name: str) -> str | None:
    if not name:
        return "The cognito:username value is missing."
    if any(c.isspace() for c in name):
        return "The cognito:username value contains whitespace."
    if len(name) > 128:
        return "The cognito:username value is longer than 128 characters."
    ok = (all("!" <= c <= "~" for c in name) if name.isascii()
          else all(unicodedata.category(c)[0] in _USERNAME_CATEGORIES for c in name))
    if not ok:
        return ("The cognito:username value contains a character that is not a letter, mark, symbol, "
                "number or punctuation.")
    return None


def _typed_problem(col: str, value: str, kind: str, cons: dict[str, Any]) -> str | None:
    if col == "birthdate":                                                          # fact 8
        try:
            if not DATE.fullmatch(value):
                raise ValueError
            date(int(value[6:]), int(value[:2]), int(value[3:5]))
        except ValueError:
            return "The value of birthdate is not a real date in mm/dd/yyyy format."
        return None
    if col == "updated_at" and not (value.isascii() and value.isdigit()):
        return "The value of updated_at is not a non-negative whole number of epoch seconds."  # fact 9
    if kind == "String":
        low, high = cons.get("MinLength"), cons.get("MaxLength")
        if low is not None and len(value) < int(low):
            return f"The value of {col} is shorter than its minimum length {low}."
        if high is not None and len(value) > int(high):
            return f"The value of {col} is longer than its maximum length {high}."
    elif kind == "Number":
        if not WHOLE.fullmatch(value):
            return f"The value of {col} is not a whole number."
        low, high = cons.get("MinValue"), cons.get("MaxValue")
        if low not in (None, "") and int(value) < int(low):
            return f"The value of {col} is less than its minimum value {low}."
        if high not in (None, "") and int(value) > int(high):
            return f"The value of {col} is greater than its maximum value {high}."
    elif kind == "DateTime":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"The value of {col} is not an ISO 8601 date-time."
    return None


def check_row(rules: PoolRules, row: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """(first broken rule's text or None, the attributes to store).

    Stored: the non-empty values except cognito:username and cognito:mfa_enabled; booleans lowercase.
    """
    username = row.get(USERNAME, "")
    problem = username_problem(username)
    if problem:
        return problem, {}
    attrs: dict[str, str] = {}
    flags: dict[str, bool | None] = {}
    for col, value in row.items():
        if len(value) > MAX_VALUE_BYTES // 4 and len(value.encode()) > MAX_VALUE_BYTES:   # fact 13
            return f"The value of {col} is longer than {MAX_VALUE_BYTES} bytes.", {}
        kind = rules.types.get(col, ("String", {}))[0] if col != MFA else "Boolean"
        if kind == "Boolean":
            try:
                flags[col] = parse_bool(value)
            except ValueError:
                return f"The value of {col} is not a boolean (write true or false).", {}
            if flags[col] is not None and col != MFA:
                attrs[col] = "true" if flags[col] else "false"
        elif value and col != USERNAME:
            attrs[col] = value
    for col in rules.required:                                                      # facts 4, 18
        if not row.get(col):
            return f"The required attribute {col} is missing.", {}
    for attr, flag in VERIFIED.items():                                             # fact 4
        if flags.get(flag) and not row.get(attr):
            return f"{flag} is true but {attr} is empty.", {}
    if not any(flags.get(VERIFIED[a]) for a in rules.auto_verified):                # facts 5, 34
        return MSG_AUTO_VERIFIED, {}
    if row.get("phone_number") and not PHONE.fullmatch(row["phone_number"]):       # fact 14
        return "The value of phone_number is not of the form + followed by digits.", {}
    if row.get("email") and not EMAIL.fullmatch(row["email"]):                      # U10
        return "The value of email is not an email address.", {}
    for col, value in attrs.items():
        kind, cons = rules.types.get(col, ("String", {}))
        if kind != "Boolean":
            problem = _typed_problem(col, value, kind, cons)
            if problem:
                return problem, {}
    mfa = flags.get(MFA)                                                            # fact 11, U2
    if rules.mfa == "ON" and mfa is False:
        return "cognito:mfa_enabled must be true or blank because the user pool requires MFA.", {}
    if rules.mfa == "OFF" and mfa is True:
        return "cognito:mfa_enabled must be false or blank because MFA is off in the user pool.", {}
    return _sign_in_problem(rules, username, row), attrs


def _sign_in_problem(rules: PoolRules, username: str, row: dict[str, str]) -> str | None:
    if rules.username_attributes:                                                   # fact 16, U11
        for attr in rules.username_attributes:
            if row.get(attr) and row[attr] == username:
                return None
        names = " or ".join(rules.username_attributes)
        return (f"cognito:username must equal the {names} value because the user pool uses "
                f"{names} as the username.")
    if "email" in rules.aliases and EMAIL.fullmatch(username):                      # fact 17
        return "cognito:username looks like an email address, which an email-alias user pool does not allow."
    if "phone_number" in rules.aliases and PHONE.fullmatch(username):
        return ("cognito:username looks like a phone number, which a phone_number-alias user pool "
                "does not allow.")
    return None
