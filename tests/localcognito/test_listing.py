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


SHARDS = [f'sub ^= "{c}"' for c in "0123456789abcdef"]


def _listed(kit, pool: str, flt: str | None = None, **extra) -> list[dict]:
    params = {"UserPoolId": pool, "PaginationConfig": {"PageSize": 7}, **extra}
    if flt:
        params["Filter"] = flt
    return [u for p in kit.idp.get_paginator("list_users").paginate(**params) for u in p["Users"]]


def _moto_filtered(kit, pool: str, flt: str) -> list[str]:
    """What moto's own ListUsers filter selects (its backend, in this process), in pool order."""
    from moto.cognitoidp.models import cognitoidp_backends

    backend = cognitoidp_backends[kit.svc.config.account_id][kit.idp.meta.region_name]
    users, _ = backend.list_users(pool, flt, limit=100_000)
    return [u.username for u in users]


def test_sub_prefix_shards_hold_each_user_once_and_equal_motos_filter(kit) -> None:
    pool = kit.pool()
    kit.run(pool, [user(f"s{i}") for i in range(150)])
    everyone = [u["Username"] for u in _listed(kit, pool)]
    shards = {flt: [u["Username"] for u in _listed(kit, pool, flt)] for flt in SHARDS}
    assert sorted(n for names in shards.values() for n in names) == sorted(everyone)   # exactly once
    for flt, names in shards.items():
        assert names == _moto_filtered(kit, pool, flt)
    subs = [{a["Name"]: a["Value"] for a in u["Attributes"]}["sub"] for u in _listed(kit, pool)]
    two = f'sub ^= "{subs[0][:2]}"'                       # a longer prefix: one bucket, then filtered
    assert [u["Username"] for u in _listed(kit, pool, two)] == _moto_filtered(kit, pool, two)


@pytest.mark.parametrize("flt", ['username = "f3"', 'email ^= "f1"', 'email = "nobody@example.com"',
                                 'cognito:user_status = "RESET_REQUIRED"', 'status = "Enabled"',
                                 'given_name ^= "A"', 'sub ^= ""'])
def test_other_filters_equal_motos(kit, flt: str) -> None:
    pool = kit.pool()
    kit.run(pool, [user(f"f{i}", given_name=("Ann" if i % 3 else "Bo")) for i in range(25)])
    assert [u["Username"] for u in _listed(kit, pool, flt)] == _moto_filtered(kit, pool, flt)


def test_listing_sees_every_change_made_through_moto(kit) -> None:
    pool = kit.pool()
    kit.run(pool, [user(f"c{i}") for i in range(12)])
    before = {u["Username"] for u in _listed(kit, pool)} | {u["Username"] for u in _listed(kit, pool, SHARDS[0])}
    assert len(before) == 12
    kit.idp.admin_delete_user(UserPoolId=pool, Username="c3")
    kit.idp.admin_create_user(UserPoolId=pool, Username="newcomer", MessageAction="SUPPRESS")
    kit.idp.admin_update_user_attributes(UserPoolId=pool, Username="c5",
                                         UserAttributes=[{"Name": "given_name", "Value": "Changed"}])
    after = _listed(kit, pool)
    names = {u["Username"] for u in after}
    assert "c3" not in names and "newcomer" in names and len(names) == 12
    sharded = sorted(u["Username"] for flt in SHARDS for u in _listed(kit, pool, flt))
    assert sharded == sorted(names)
    c5 = next(u for u in after if u["Username"] == "c5")
    assert {"Name": "given_name", "Value": "Changed"} in c5["Attributes"]


def test_page_users_equal_motos_json(kit) -> None:
    from moto.cognitoidp.models import cognitoidp_backends

    from pipeline.localcognito.listing import _plain, user_json

    pool = kit.pool()
    kit.run(pool, [user("m1"), user("m2")])
    backend = cognitoidp_backends[kit.svc.config.account_id][kit.idp.meta.region_name]
    m2 = backend.user_pools[pool].users["m2"]
    m2.sms_mfa_enabled = m2.software_token_mfa_enabled = True
    m2.preferred_mfa_setting = "SMS_MFA"
    for u in backend.user_pools[pool].users.values():
        for wanted in (None, [], ["email", "sub"]):
            moto = {k: _plain(v) for k, v in u.to_json(extended=True, attributes_to_get=wanted).items()}
            assert user_json(u, wanted) == moto


def test_refused_filters_get_motos_error(kit) -> None:
    pool = kit.pool()
    for flt in ("sub starts with 1", 'custom:tenant_id = "x"'):
        with pytest.raises(ClientError) as err:
            kit.idp.list_users(UserPoolId=pool, Filter=flt)
        assert err.value.response["Error"]["Code"] == "InvalidParameterException"


def test_admin_get_user_equals_motos_answer(kit, monkeypatch) -> None:
    """AdminGetUser is answered without moto's HTTP dispatch; boto3 must read the same user as from moto
    (MFA settings included), and a missing user or pool still gets moto's error."""
    from moto.cognitoidp.models import cognitoidp_backends

    from pipeline.localcognito.app import LocalCognitoApp

    pool = kit.pool()
    kit.run(pool, [user("g1"), user("g2", given_name="Gunnar")])
    backend = cognitoidp_backends[kit.svc.config.account_id][kit.idp.meta.region_name]
    g2 = backend.user_pools[pool].users["g2"]
    g2.sms_mfa_enabled = True
    g2.preferred_mfa_setting = "SMS_MFA"

    def answers() -> list:
        out = []
        for name in ("g1", "g2", "nobody"):
            try:
                got = kit.idp.admin_get_user(UserPoolId=pool, Username=name)
                got.pop("ResponseMetadata")
                out.append(got)
            except ClientError as err:
                out.append(err.response["Error"]["Code"])
        return out

    served: list[bool] = []
    original = LocalCognitoApp._admin_get_user

    def counted(self, *args):
        answer = original(self, *args)
        served.append(answer is not None)
        return answer

    monkeypatch.setattr(LocalCognitoApp, "_admin_get_user", counted)
    fast = answers()
    assert served == [True, True, False]     # the two users from the fast path, the missing one from moto
    calls: list[int] = []
    monkeypatch.setattr(LocalCognitoApp, "_admin_get_user", lambda self, *a: calls.append(1))   # declines
    slow = answers()
    assert slow == fast                      # moto's own answers, the fast path made to decline
    assert len(calls) == 3
    assert fast[2] == "UserNotFoundException"
    assert fast[1]["PreferredMfaSetting"] == "SMS_MFA" and fast[1]["UserMFASettingList"] == ["SMS_MFA"]
    assert {a["Name"]: a["Value"] for a in fast[1]["UserAttributes"]}["given_name"] == "Gunnar"
    with pytest.raises(ClientError) as err:
        kit.idp.admin_get_user(UserPoolId=pool[:-1] + "x", Username="g1")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_timestamps_are_utc_epoch_seconds_to_the_millisecond(monkeypatch) -> None:
    """moto keeps naive UTC datetimes; a page must not read them in the machine's time zone."""
    import time
    from datetime import UTC, datetime

    from pipeline.localcognito.listing import _plain

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert _plain(datetime(2026, 1, 1, 0, 0, 0, 123999)) == 1767225600.123
        assert _plain(datetime(2026, 1, 1, 0, 0, 0, 123999, tzinfo=UTC)) == 1767225600.123
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
