"""The CSV header of a pool (facts 1-2) and a fix-up of moto's CreateUserPool schema.

moto keeps only the schema entries a CreateUserPool request names, so a pool created with one custom
attribute would have no standard attributes at all. Real Cognito always has the standard ones, so the
service completes every CreateUserPool request's ``Schema`` before moto sees it
(``complete_schema``): standard attributes first, in Cognito's order, with the request's overrides
(e.g. ``Required``), then the request's custom attributes in their order.
"""

from __future__ import annotations

from typing import Any

from moto.cognitoidp.models import CognitoIdpUserPool, CognitoIdpUserPoolAttribute

STANDARD = CognitoIdpUserPoolAttribute.STANDARD_SCHEMA
NOT_IN_HEADER = {"sub", "identities"}          # fact 1
TRAILER = ["cognito:mfa_enabled", "cognito:username"]


MAX_SCHEMA_ENTRIES = 50           # fact 13: at most 50 custom attributes; the request's list, max 50 (fact 45)
MAX_CUSTOM_NAME = 20              # fact 13, 45: a custom attribute name has 1-20 characters


def schema_problem(schema: list[dict[str, Any]] | None) -> str | None:
    """What CreateUserPool's own validation says of a ``Schema`` moto would take (fact 13): more than 50
    entries, or a custom attribute name over 20 characters (moto takes both, Cognito does not)."""
    entries = schema if isinstance(schema, list) else []
    if len(entries) > MAX_SCHEMA_ENTRIES:
        return ("1 validation error detected: Value at 'schema' failed to satisfy constraint: Member must "
                f"have length less than or equal to {MAX_SCHEMA_ENTRIES}")
    for i, entry in enumerate(entries, start=1):
        name = entry.get("Name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name not in STANDARD and len(name) > MAX_CUSTOM_NAME:
            return (f"1 validation error detected: Value '{name}' at 'schema.{i}.member.name' failed to "
                    f"satisfy constraint: Member must have length less than or equal to {MAX_CUSTOM_NAME}")
    return None


def complete_schema(schema: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    given = {s.get("Name"): s for s in schema or []}
    full = []
    for name, default in STANDARD.items():
        entry = {"Name": name, **default}
        if name in given:
            entry.update({k: v for k, v in given[name].items() if v is not None})
        full.append(entry)
    full += [s for s in schema or [] if s.get("Name") not in STANDARD]
    return full


def csv_header(pool: CognitoIdpUserPool) -> list[str]:
    """Standard attributes in schema order, minus sub/identities, then custom:*, then the trailer.

    Developer-only attributes (``dev:custom:x``) are left out (decision U10).
    """
    names = [a.name for a in pool.schema_attributes.values()]
    standard = [n for n in names if n in STANDARD and n not in NOT_IN_HEADER]
    custom = [n for n in names if n.startswith("custom:")]
    return standard + custom + TRAILER
