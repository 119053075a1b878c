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
