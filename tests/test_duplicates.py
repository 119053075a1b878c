"""Whole-tenant uniqueness across partitions: keep policies, case folding, verified aliases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.reasons import REJECT_COLUMNS
from pipeline.staging import Staging
from pipeline.validate import DuplicatesPolicy, TenantValidator, unique_keys
from tests import poolfixtures as pf

USER = "cognito:username"


_STAGING: list[Staging | None] = [None]


@pytest.fixture(autouse=True, params=["rows kept by the tracker", "rows read back from staging"])
def row_source(request, tmp_path):
    """Every test runs twice: the tracker keeping its rows, and reading them back from a Staging as
    the runner does (the two must resolve identically)."""
    _STAGING[0] = Staging(tmp_path) if request.param.endswith("staging") else None
    yield
    _STAGING[0] = None


def validate_all(kind: str, partitions: list[list[dict]], policy=None):
    """Validate partitions in order; return (validator, staged valid ids, per-row reject ids, dup rejects)."""
    staging = _STAGING[0]
    validator = TenantValidator(pf.contract(kind), policy, rows=staging)
    staged: list[str] = []
    rejected: list[str] = []
    for rows in partitions:
        part = validator.validate(pf.frame(rows))
        if staging is not None:
            staging.write(part.valid)
        staged += list(part.valid["_legacy_id"])
        rejected += list(part.rejects["legacy_id"].unique())
    return validator, staged, rejected, validator.duplicate_rejects()


def row(kind: str, i: int, **kw) -> dict:
    return pf.good_row(kind, i, **kw)


def test_keep_first_across_partitions() -> None:
    _, staged, _, dups = validate_all("plain", [
        [row("plain", 1, **{USER: "ann"}), row("plain", 2)],
        [row("plain", 3, **{USER: "ann"}), row("plain", 4)],
    ])
    assert staged == ["1", "2", "3", "4"]
    assert list(dups.columns) == REJECT_COLUMNS
    assert dups.to_dict("records") == [{
        "legacy_id": "3", "tenant": "acme", "reason": "duplicate_username", "column": USER,
        "masked_value": "a***", "detail": "same username as legacy id 1, which is kept (first)"}]


def test_keep_latest_by_order_column() -> None:
    policy = {"keep": "latest", "order_by": "updated_at"}
    _, _, _, dups = validate_all("plain", [
        [row("plain", 1, **{USER: "ann", "updated_at": "100"})],
        [row("plain", 2, **{USER: "ann", "updated_at": "300"}),
         row("plain", 3, **{USER: "ann", "updated_at": "200"}),
         row("plain", 4, **{USER: "ann", "updated_at": None})],      # no order value never wins
    ], policy)
    assert sorted(dups["legacy_id"]) == ["1", "3", "4"]
    assert set(dups["detail"]) == {"same username as legacy id 2, which is kept (latest)"}


def test_keep_latest_tie_goes_to_the_later_row() -> None:
    _, _, _, dups = validate_all("plain", [
        [row("plain", 1, **{USER: "ann", "updated_at": "100"})],
        [row("plain", 2, **{USER: "ann", "updated_at": "100"})],
    ], DuplicatesPolicy(keep="latest", order_by="updated_at"))
    assert list(dups["legacy_id"]) == ["1"]


def test_keep_latest_by_iso_datetime() -> None:
    policy = {"keep": "latest", "order_by": "custom:joined"}
    _, _, _, dups = validate_all("custom", [
        [row("custom", 1, **{USER: "ann", "custom:joined": "2024-05-01T10:00:00Z"})],
        [row("custom", 2, **{USER: "ann", "custom:joined": "2023-12-31"})],
    ], policy)
    assert list(dups["legacy_id"]) == ["2"]
    assert "legacy id 1" in dups["detail"].iloc[0]


def test_keep_none_rejects_every_member() -> None:
    _, _, _, dups = validate_all("plain", [
        [row("plain", 1, **{USER: "ann"}), row("plain", 2, **{USER: "bob"})],
        [row("plain", 3, **{USER: "ann"})],
    ], {"keep": "none"})
    assert list(dups["legacy_id"]) == ["1", "3"]
    assert set(dups["detail"]) == {"all members rejected"}


def test_case_sensitive_pool_keeps_case_variants() -> None:
    _, _, _, dups = validate_all("plain", [[row("plain", 1, **{USER: "Ann"})],
                                           [row("plain", 2, **{USER: "ann"})]])
    assert dups.empty


def test_case_insensitive_pool_folds_usernames() -> None:
    _, _, _, dups = validate_all("mfa_on", [[row("mfa_on", 1, **{USER: "Ann"})],
                                            [row("mfa_on", 2, **{USER: "aNN"})]])
    assert list(dups["legacy_id"]) == ["2"]
    assert dups["masked_value"].iloc[0] == "a***"


def test_folding_is_the_same_for_an_ascii_partition_and_a_unicode_one() -> None:
    """An ASCII-only partition is folded byte by byte, one with other letters by Unicode's rules: a
    name met in each is still one key."""
    _, _, _, dups = validate_all("mfa_on", [[row("mfa_on", 1, **{USER: "ANN"}), row("mfa_on", 2, **{USER: "ÉMILE"})],
                                            [row("mfa_on", 3, **{USER: "ann"})],
                                            [row("mfa_on", 4, **{USER: "émile"}), row("mfa_on", 5, **{USER: "Ann"})]])
    assert sorted(dups["legacy_id"]) == ["3", "4", "5"]


def test_email_username_pool_folds_case() -> None:
    _, _, _, dups = validate_all("email_username", [
        [row("email_username", 1, **{USER: "Ann@Example.com", "email": "Ann@Example.com"})],
        [row("email_username", 2, **{USER: "ann@example.COM", "email": "ann@example.COM"})],
    ])
    # the row loses once (on the username); it takes no part in later keys
    assert dups[["legacy_id", "reason"]].values.tolist() == [["2", "duplicate_username"]]
    assert dups["masked_value"].iloc[0] == "a***"


def test_email_username_pool_email_unique_even_unverified() -> None:
    keys = unique_keys(pf.contract("email_username"))
    assert [(k.column, k.verified_flag) for k in keys] == [(USER, None), ("email", None)]


def test_verified_email_must_be_unique_in_alias_pool() -> None:
    _, _, _, dups = validate_all("alias", [
        [row("alias", 1, email="Shared@Example.com")],
        [row("alias", 2, email="shared@example.com")],
    ])
    assert dups.to_dict("records") == [{
        "legacy_id": "2", "tenant": "acme", "reason": "duplicate_email", "column": "email",
        "masked_value": "s***@e***.com",
        "detail": "same verified email as legacy id 1, which is kept (first)"}]


def test_each_key_names_its_own_losers_winners_and_values() -> None:
    """Losers of two keys in one tenant: each line carries its own row's id, value and winner."""
    _, _, _, dups = validate_all("alias", [
        [row("alias", 1, **{USER: "ann"}, email="one@example.com"),
         row("alias", 2, **{USER: "bob"}, email="two@example.com")],
        [row("alias", 3, **{USER: "ann"}, email="three@example.com"),
         row("alias", 4, **{USER: "cid"}, email="Two@Example.com"),
         row("alias", 5, **{USER: "dan"}, email="zed@example.org")],
        [row("alias", 6, **{USER: "eve"}, email="zed@example.org")],
    ])
    assert dups[["legacy_id", "reason", "masked_value", "detail"]].to_dict("records") == [
        {"legacy_id": "3", "reason": "duplicate_username", "masked_value": "a***",
         "detail": "same username as legacy id 1, which is kept (first)"},
        {"legacy_id": "4", "reason": "duplicate_email", "masked_value": "T***@E***.com",
         "detail": "same verified email as legacy id 2, which is kept (first)"},
        {"legacy_id": "6", "reason": "duplicate_email", "masked_value": "z***@e***.org",
         "detail": "same verified email as legacy id 5, which is kept (first)"},
    ]


def test_unverified_email_duplicates_allowed_in_alias_pool() -> None:
    phone = {"phone_number_verified": "true"}
    _, staged, rejected, dups = validate_all("alias", [
        [row("alias", 1, email="shared@example.com")],                                   # verified
        [row("alias", 2, email="shared@example.com", email_verified="false",
             phone_number="+447946000002", **phone),
         row("alias", 3, email="SHARED@example.com", email_verified="false",
             phone_number="+447946000003", **phone)],
    ])
    assert rejected == [] and staged == ["1", "2", "3"]
    assert dups.empty


def test_verified_phone_must_be_unique_in_alias_pool() -> None:
    phone = {"phone_number": "+447946000009", "phone_number_verified": "true"}
    _, _, _, dups = validate_all("alias", [[row("alias", 1, **phone)], [row("alias", 2, **phone)]])
    assert dups[["legacy_id", "reason", "column", "masked_value"]].values.tolist() == [
        ["2", "duplicate_phone", "phone_number", "+44***09"]]


def test_plain_pool_allows_duplicate_emails() -> None:
    _, _, _, dups = validate_all("plain", [[row("plain", 1, email="a@example.com")],
                                           [row("plain", 2, email="a@example.com")]])
    assert dups.empty


def test_rejected_row_never_wins() -> None:
    _, staged, rejected, dups = validate_all("plain", [
        [row("plain", 1, **{USER: "ann", "email": "broken"})],
        [row("plain", 2, **{USER: "ann"})],
    ])
    assert rejected == ["1"] and staged == ["2"]
    assert dups.empty


def test_loser_on_username_takes_no_part_in_email() -> None:
    _, _, _, dups = validate_all("alias", [
        [row("alias", 1, **{USER: "ann", "email": "a@example.com"})],
        [row("alias", 2, **{USER: "ann", "email": "b@example.com"})],
        [row("alias", 3, **{USER: "bob", "email": "b@example.com"})],
    ])
    assert dups[["legacy_id", "reason"]].values.tolist() == [["2", "duplicate_username"]]


def test_duplicate_rejects_is_recomputed_after_more_partitions() -> None:
    validator = TenantValidator(pf.contract("plain"))
    validator.validate(pf.frame([row("plain", 1, **{USER: "ann"})]))
    assert validator.duplicate_rejects().empty
    validator.validate(pf.frame([row("plain", 2, **{USER: "ann"})]))
    first = validator.duplicate_rejects()
    assert list(first["legacy_id"]) == ["2"]
    pd.testing.assert_frame_equal(first, validator.duplicate_rejects())


def test_every_row_accounted_for_exactly_once_against_a_reference() -> None:
    rng = np.random.default_rng(7)
    n = 6000
    users = rng.integers(0, 4000, n)
    emails = rng.integers(0, 4500, n)
    verified = rng.random(n) < 0.8
    broken = rng.random(n) < 0.05
    rows = [row("alias", i, **{USER: f"User{users[i]}", "email": f"p{emails[i]}@example.com",
                               "email_verified": "true" if verified[i] else "false",
                               "phone_number": f"+4479{i:08d}", "phone_number_verified": "true",
                               "birthdate": "1985" if broken[i] else None})
            for i in range(n)]
    partitions = [rows[s:s + 1000] for s in range(0, n, 1000)]
    _, staged, rejected, dups = validate_all("alias", partitions)
    assert not set(staged) & set(rejected)
    assert len(staged) + len(rejected) == n
    final = set(staged) - set(dups["legacy_id"])
    assert set(dups["legacy_id"]) <= set(staged)
    assert dups["legacy_id"].is_unique                       # sequential keys: one loss per row
    # reference: pandas, first seen wins, username first then verified email among the survivors
    ref = pd.DataFrame({"id": [str(i) for i in range(n)], "user": [f"user{u}" for u in users],
                        "email": [f"p{e}@example.com" for e in emails], "verified": verified})
    ref = ref[~broken]
    ref = ref[~ref["user"].duplicated()]
    ver = ref[ref["verified"]]
    ref = ref.drop(ver.index[ver["email"].duplicated()])
    assert final == set(ref["id"])


@dataclass
class _Policy:
    keep: str
    order_by: str | None = None


def test_policy_forms_and_errors() -> None:
    assert DuplicatesPolicy.coerce(None) == DuplicatesPolicy("first")
    assert DuplicatesPolicy.coerce({"keep": "none"}).keep == "none"
    assert DuplicatesPolicy.coerce(_Policy("latest", "updated_at")).order_by == "updated_at"
    with pytest.raises(ConfigError, match="duplicates.keep"):
        DuplicatesPolicy.coerce({"keep": "random"})
    with pytest.raises(ConfigError, match="order_by"):
        DuplicatesPolicy.coerce({"keep": "latest"})
    with pytest.raises(ConfigError, match="'last_login'"):
        TenantValidator(pf.contract("plain"), {"keep": "latest", "order_by": "last_login"})


def test_mapping_keys_add_uniqueness_the_pool_does_not_enforce() -> None:
    """A plain pool accepts two users with one email; the mapping's duplicates.keys can forbid it."""
    partitions = [[row("plain", 1, email="Ann@Example.com")], [row("plain", 2, email="ann@example.com")]]
    _, _, _, pool_only = validate_all("plain", partitions)
    assert pool_only.empty
    _, _, _, dups = validate_all("plain", partitions, {"keep": "first", "keys": ["username", "email"]})
    assert dups[["legacy_id", "reason", "column"]].to_dict("records") == [
        {"legacy_id": "2", "reason": "duplicate_email", "column": "email"}]
