"""Realistic GetCSVHeader / DescribeUserPool responses (as boto3 returns them) and frame builders.

Shapes follow import-rules facts 1-2 and 45-46 and the AWS CLI describe-user-pool example: standard
attributes with their real constraints, datetimes as ``datetime`` objects, ``ResponseMetadata``.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pandas as pd

from pipeline.contract import PoolContract

STRING = pd.StringDtype("pyarrow")

STANDARD_HEADER = [
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
    "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale",
    "phone_number", "phone_number_verified", "address", "updated_at",
]
TAIL = ["cognito:mfa_enabled", "cognito:username"]


def _string(name: str, lo: str = "0", hi: str = "2048", required: bool = False, mutable: bool = True) -> dict:
    return {"Name": name, "AttributeDataType": "String", "DeveloperOnlyAttribute": False,
            "Mutable": mutable, "Required": required,
            "StringAttributeConstraints": {"MinLength": lo, "MaxLength": hi}}


def standard_schema(required: tuple[str, ...] = ()) -> list[dict]:
    out = [_string("sub", "1", "2048", required=True, mutable=False)]
    for name in STANDARD_HEADER:
        if name in ("email_verified", "phone_number_verified"):
            out.append({"Name": name, "AttributeDataType": "Boolean", "DeveloperOnlyAttribute": False,
                        "Mutable": True, "Required": False})
        elif name == "updated_at":
            out.append({"Name": name, "AttributeDataType": "Number", "DeveloperOnlyAttribute": False,
                        "Mutable": True, "Required": False,
                        "NumberAttributeConstraints": {"MinValue": "0"}})
        elif name == "birthdate":
            out.append(_string(name, "10", "10", required=name in required))
        else:
            out.append(_string(name, required=name in required))
    out.append({"Name": "identities", "AttributeDataType": "String", "DeveloperOnlyAttribute": False,
                "Mutable": True, "Required": False, "StringAttributeConstraints": {}})
    return out


def _responses(pool_id: str, name: str, *, schema: list[dict], header: list[str],
               auto_verified: list[str], alias: list[str] | None = None,
               username_attrs: list[str] | None = None, mfa: str = "OFF",
               case_sensitive: bool | None = None) -> tuple[dict, dict]:
    when = dt.datetime(2024, 3, 1, 9, 30, 12, 123000, tzinfo=dt.UTC)
    meta = {"RequestId": "5e1d0f5c-0000-4000-8000-000000000000", "HTTPStatusCode": 200,
            "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"}, "RetryAttempts": 0}
    pool: dict[str, Any] = {
        "Id": pool_id, "Name": name,
        "Policies": {"PasswordPolicy": {"MinimumLength": 8, "RequireUppercase": True,
                                        "RequireLowercase": True, "RequireNumbers": True,
                                        "RequireSymbols": True, "TemporaryPasswordValidityDays": 7}},
        "DeletionProtection": "ACTIVE",
        "LambdaConfig": {},
        "LastModifiedDate": when, "CreationDate": when,
        "SchemaAttributes": schema,
        "AutoVerifiedAttributes": auto_verified,
        "VerificationMessageTemplate": {"DefaultEmailOption": "CONFIRM_WITH_CODE"},
        "UserAttributeUpdateSettings": {"AttributesRequireVerificationBeforeUpdate": []},
        "MfaConfiguration": mfa,
        "EstimatedNumberOfUsers": 1234,
        "EmailConfiguration": {"EmailSendingAccount": "COGNITO_DEFAULT"},
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
        "Arn": f"arn:aws:cognito-idp:eu-west-1:123456789012:userpool/{pool_id}",
        "AccountRecoverySetting": {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    }
    if alias:
        pool["AliasAttributes"] = alias
    if username_attrs:
        pool["UsernameAttributes"] = username_attrs
    if case_sensitive is not None:
        pool["UsernameConfiguration"] = {"CaseSensitive": case_sensitive}
    header_resp = {"UserPoolId": pool_id, "CSVHeader": header, "ResponseMetadata": dict(meta)}
    return header_resp, {"UserPool": pool, "ResponseMetadata": dict(meta)}


def plain_pool() -> tuple[dict, dict]:
    """Plain username sign-in, email auto-verified, MFA off, no UsernameConfiguration (case-sensitive)."""
    return _responses("eu-west-1_Plain0001", "acme-plain", schema=standard_schema(),
                      header=STANDARD_HEADER + TAIL, auto_verified=["email"])


def email_alias_pool() -> tuple[dict, dict]:
    """Username sign-in with email and phone_number as aliases, both auto-verified."""
    return _responses("eu-west-1_Alias0002", "acme-alias", schema=standard_schema(),
                      header=STANDARD_HEADER + TAIL, auto_verified=["email", "phone_number"],
                      alias=["email", "phone_number"], case_sensitive=True)


def email_username_pool() -> tuple[dict, dict]:
    """Email as the username, case-insensitive usernames."""
    return _responses("eu-west-1_Email0003", "acme-email", schema=standard_schema(),
                      header=STANDARD_HEADER + TAIL, auto_verified=["email"],
                      username_attrs=["email"], case_sensitive=False)


def mfa_on_pool() -> tuple[dict, dict]:
    """MFA required, phone auto-verified, family_name required; header in a non-default order (fact 2)."""
    header = ["profile", "address", "birthdate", "gender", "preferred_username", "updated_at", "website",
              "picture", "phone_number", "phone_number_verified", "zoneinfo", "locale", "email",
              "email_verified", "given_name", "family_name", "middle_name", "name", "nickname"] + TAIL
    return _responses("eu-west-1_MfaOn0004", "acme-mfa", schema=standard_schema(required=("family_name",)),
                      header=header, auto_verified=["phone_number"], mfa="ON", case_sensitive=False)


def custom_pool() -> tuple[dict, dict]:
    """Custom String/Number/Boolean/DateTime attributes with constraints, both auto-verified, MFA optional."""
    schema = standard_schema() + [
        {"Name": "custom:tenant_id", "AttributeDataType": "String", "DeveloperOnlyAttribute": False,
         "Mutable": True, "Required": False,
         "StringAttributeConstraints": {"MinLength": "3", "MaxLength": "36"}},
        {"Name": "custom:code", "AttributeDataType": "String", "DeveloperOnlyAttribute": False,
         "Mutable": True, "Required": False, "StringAttributeConstraints": {"MaxLength": "8"}},
        {"Name": "custom:score", "AttributeDataType": "Number", "DeveloperOnlyAttribute": False,
         "Mutable": True, "Required": False,
         "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "100"}},
        {"Name": "custom:vip", "AttributeDataType": "Boolean", "DeveloperOnlyAttribute": False,
         "Mutable": True, "Required": False},
        {"Name": "custom:joined", "AttributeDataType": "DateTime", "DeveloperOnlyAttribute": False,
         "Mutable": True, "Required": False},
        {"Name": "dev:custom:internal", "AttributeDataType": "String", "DeveloperOnlyAttribute": True,
         "Mutable": True, "Required": False, "StringAttributeConstraints": {"MaxLength": "2048"}},
    ]
    header = STANDARD_HEADER + ["custom:tenant_id", "custom:code", "custom:score", "custom:vip",
                                "custom:joined"] + TAIL
    return _responses("eu-west-1_Custm0005", "acme-custom", schema=schema, header=header,
                      auto_verified=["email", "phone_number"], mfa="OPTIONAL")


POOLS = {
    "plain": plain_pool,
    "alias": email_alias_pool,
    "email_username": email_username_pool,
    "mfa_on": mfa_on_pool,
    "custom": custom_pool,
}


def responses(kind: str) -> tuple[dict, dict]:
    return copy.deepcopy(POOLS[kind]())


def contract(kind: str) -> PoolContract:
    return PoolContract.from_responses(*responses(kind))


def good_row(kind: str, i: int = 1, **overrides: str | None) -> dict[str, str | None]:
    """A row every pool of this kind accepts; ``overrides`` replace or (None) blank a column."""
    row: dict[str, str | None] = {"_legacy_id": str(i), "_tenant": "acme",
                                  "cognito:username": f"user{i}", "email": f"user{i}@example.com",
                                  "email_verified": "true", "cognito:mfa_enabled": "false",
                                  "given_name": "Ann", "updated_at": "1700000000"}
    if kind == "email_username":
        row["cognito:username"] = f"user{i}@example.com"
    if kind == "mfa_on":
        row.update({"phone_number": f"+4420795{i:05d}", "phone_number_verified": "true",
                    "cognito:mfa_enabled": "true", "family_name": "Smith"})
    if kind == "custom":
        row.update({"custom:tenant_id": "acme", "custom:score": "42", "cognito:mfa_enabled": "true"})
    row.update(overrides)
    return row


def frame(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    """A mapped partition: the given columns, ``string[pyarrow]``, None -> <NA>."""
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    return pd.DataFrame({c: pd.array([r.get(c) for r in rows], dtype=STRING) for c in columns})
