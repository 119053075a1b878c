"""ListUsers served by the local service's own pager: same users, same shape, every page bounded."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.localcognito.conftest import user


def test_paged_listing_returns_every_user_once_in_moto_shape(kit) -> None:
    pool = kit.pool()
    rows = [user(f"u{i}", email=f"u{i}@example.com") for i in range(130)]
    kit.run(pool, rows)
    pages = list(kit.idp.get_paginator("list_users").paginate(UserPoolId=pool, PaginationConfig={"PageSize": 60}))
    assert [len(p["Users"]) for p in pages] == [60, 60, 10]
    names = [u["Username"] for p in pages for u in p["Users"]]
    assert sorted(names) == sorted(f"u{i}" for i in range(130))
    first = pages[0]["Users"][0]
    assert first["UserStatus"] == "RESET_REQUIRED" and first["Enabled"] is True
    assert {a["Name"] for a in first["Attributes"]} >= {"sub", "email", "email_verified"}
    assert first["UserCreateDate"].year >= 2026
    only = kit.idp.list_users(UserPoolId=pool, Limit=5, AttributesToGet=["email"])["Users"]
    assert [{a["Name"] for a in u["Attributes"]} for u in only] == [{"email"}] * 5


def test_filtered_listing_and_bad_tokens(kit) -> None:
    pool = kit.pool()
    kit.run(pool, [user("ann", email="ann@example.com"), user("bob", email="bob@example.com")])
    found = kit.idp.list_users(UserPoolId=pool, Filter='username = "bob"')["Users"]
    assert [u["Username"] for u in found] == ["bob"]
    with pytest.raises(ClientError) as err:
        kit.idp.list_users(UserPoolId=pool, PaginationToken="%%%not-a-token")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
