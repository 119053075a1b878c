"""Shape checks for ``pool.local`` (CreateUserPool parameters) and the mapping's fit to that pool.

The pool definition is passed through to CreateUserPool untouched; we check only what would make it
fail there, or make the import fail later (import-rules facts 5, 13, 16, 17, 45, 46).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Problem = Callable[[tuple[str | int, ...], str], None]

CREATE_USER_POOL_PARAMETERS = (
    "PoolName", "Policies", "DeletionProtection", "LambdaConfig", "AutoVerifiedAttributes",
    "AliasAttributes", "UsernameAttributes", "SmsVerificationMessage", "EmailVerificationMessage",
    "EmailVerificationSubject", "VerificationMessageTemplate", "SmsAuthenticationMessage",
    "MfaConfiguration", "UserAttributeUpdateSettings", "DeviceConfiguration", "EmailConfiguration",
    "SmsConfiguration", "UserPoolTags", "AdminCreateUserConfig", "Schema", "UserPoolAddOns",
    "UsernameConfiguration", "AccountRecoverySetting", "UserPoolTier",
)
SCHEMA_KEYS = ("Name", "AttributeDataType", "DeveloperOnlyAttribute", "Mutable", "Required",
               "NumberAttributeConstraints", "StringAttributeConstraints")
_CONSTRAINTS = {"StringAttributeConstraints": ("MinLength", "MaxLength"),
                "NumberAttributeConstraints": ("MinValue", "MaxValue")}
DATA_TYPES = ("String", "Number", "DateTime", "Boolean")
_LISTS = {
    "AutoVerifiedAttributes": ("phone_number", "email"),
    "AliasAttributes": ("phone_number", "email", "preferred_username"),
    "UsernameAttributes": ("phone_number", "email"),
}


def _unknown_keys(data: dict, allowed: Any, what: str, at: tuple[str | int, ...], problem: Problem,
                  suggest: Callable[[str, Any], str]) -> None:
    for key in data:
        if key not in allowed:
            problem((*at, key), f"'{key}' is not {what}{suggest(key, allowed)}")


def check_local_pool(local: Any, at: tuple[str | int, ...], problem: Problem,
                     standard: tuple[str, ...], suggest: Callable[[str, Any], str]) -> None:
    """Problems in the CreateUserPool parameters of ``pool.local``."""
    if not isinstance(local, dict):
        problem(at, "must be a mapping of CreateUserPool parameters (PoolName, Schema, ...)")
        return
    _unknown_keys(local, CREATE_USER_POOL_PARAMETERS, "a CreateUserPool parameter", at, problem, suggest)
    if not isinstance(local.get("PoolName"), str) or not local.get("PoolName"):
        problem((*at, "PoolName"), "required: the name of the pool to create, e.g. PoolName: acme-jp-users")
    for key, allowed in _LISTS.items():
        value = local.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problem((*at, key), f"must be a list drawn from {list(allowed)}")
            continue
        for i, v in enumerate(value):
            if v not in allowed:
                problem((*at, key, i), f"'{v}' is not allowed here; choose from {list(allowed)}"
                        f"{suggest(v, allowed)}")
    if local.get("AliasAttributes") and local.get("UsernameAttributes"):
        problem((*at, "UsernameAttributes"), "a pool has either AliasAttributes or UsernameAttributes, "
                "not both; remove one of them")
    auto_verified = local.get("AutoVerifiedAttributes")
    if not isinstance(auto_verified, list) or not {"email", "phone_number"} & {   # a nested list is no name
            v for v in auto_verified if isinstance(v, str)}:
        problem((*at, "AutoVerifiedAttributes"), "an import job needs a pool that auto-verifies email or "
                "phone_number (import-rules fact 5); add AutoVerifiedAttributes: [email]")
    mfa = local.get("MfaConfiguration")
    if isinstance(mfa, bool):
        problem((*at, "MfaConfiguration"), f"YAML reads unquoted OFF/ON as a boolean; quote it: "
                f"MfaConfiguration: \"{'ON' if mfa else 'OFF'}\"")
    elif mfa is not None and mfa not in ("OFF", "ON", "OPTIONAL"):
        problem((*at, "MfaConfiguration"), f"'{mfa}' is not valid; write OFF, ON or OPTIONAL")
    config = local.get("UsernameConfiguration")
    if config is not None and (not isinstance(config, dict) or set(config) != {"CaseSensitive"}
                               or not isinstance(config["CaseSensitive"], bool)):
        problem((*at, "UsernameConfiguration"),
                "write UsernameConfiguration: {CaseSensitive: false} (or true)")
    schema = local.get("Schema")
    if schema is not None:
        _check_schema(schema, (*at, "Schema"), problem, standard, suggest)


def _check_schema(schema: Any, at: tuple[str | int, ...], problem: Problem,
                  standard: tuple[str, ...], suggest: Callable[[str, Any], str]) -> None:
    if not isinstance(schema, list):
        problem(at, "must be a list of attributes like {Name: tenant_id, AttributeDataType: String}")
        return
    for i, attr in enumerate(schema):
        here = (*at, i)
        if not isinstance(attr, dict):
            problem(here, "must be a mapping like {Name: tenant_id, AttributeDataType: String}")
            continue
        _unknown_keys(attr, SCHEMA_KEYS, "a SchemaAttributeType field", here, problem, suggest)
        name = attr.get("Name")
        if not isinstance(name, str) or not name:
            problem((*here, "Name"), "required: the attribute name, e.g. Name: tenant_id")
            continue
        if name.startswith("custom:"):
            problem((*here, "Name"), f"write Name: {name[7:]}; Cognito adds the 'custom:' prefix itself "
                    f"(this would create 'custom:{name}')")
        elif name not in standard and not 1 <= len(name) <= 20:
            problem((*here, "Name"), f"a custom attribute name has 1-20 characters; '{name}' has {len(name)}")
        dtype = attr.get("AttributeDataType")
        if name not in standard and dtype not in DATA_TYPES:
            problem((*here, "AttributeDataType"), f"a custom attribute needs one of {list(DATA_TYPES)}")
        for ckey in ("StringAttributeConstraints", "NumberAttributeConstraints"):
            constraints = attr.get(ckey)
            if constraints is None:
                continue
            if not isinstance(constraints, dict):
                problem((*here, ckey), "must be a mapping")
                continue
            _unknown_keys(constraints, _CONSTRAINTS[ckey], f"a {ckey} field", (*here, ckey), problem, suggest)
            for k, v in constraints.items():
                if not isinstance(v, str) or not v.lstrip("-").isdigit():
                    problem((*here, ckey, k), f"Cognito takes constraint values as strings of digits; "
                            f"write {k}: \"{v}\"")


def custom_names(local: dict[str, Any]) -> set[str]:
    """``custom:<name>`` of every custom attribute the pool's Schema declares."""
    schema = local.get("Schema") if isinstance(local, dict) else None
    names: set[str] = set()
    for attr in schema if isinstance(schema, list) else ():
        if isinstance(attr, dict) and isinstance(attr.get("Name"), str):
            names.add(attr["Name"] if attr["Name"].startswith("custom:") else "custom:" + attr["Name"])
    return names


def check_username_fit(local: dict[str, Any], strategy: str | None, at: tuple[str | int, ...],
                       problem: Problem) -> None:
    """The username strategy must suit the pool's sign-in options (facts 16, 17)."""
    username_attrs = local.get("UsernameAttributes") or []
    alias_attrs = local.get("AliasAttributes") or []
    if not isinstance(username_attrs, list) or not isinstance(alias_attrs, list) or strategy is None:
        return
    wanted = {"email": "email", "phone_number": "phone"}
    if username_attrs:
        fits = [wanted[a] for a in username_attrs if a in wanted]
        if fits and strategy not in fits:
            problem((*at, "strategy"), f"the pool signs in with UsernameAttributes {username_attrs}, so "
                    f"cognito:username must hold that value; write strategy: {fits[0]}")
    for attr, strat in wanted.items():
        if attr in alias_attrs and strategy == strat:
            problem((*at, "strategy"), f"the pool has {attr} as an alias, and Cognito rejects a username "
                    f"that looks like one (import-rules fact 17); use strategy: column or legacy_id")
