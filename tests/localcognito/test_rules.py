"""Per-row rules (facts 4-19, 34): each row's exact log line, the counters and the stored user."""
# ruff: noqa: E501  -- the case table keeps one row and its exact log text per line

from __future__ import annotations

import pytest

from tests.localcognito.conftest import user

AUTO = ("The User Record does not set any of the auto verified attributes to true. "
        "(Example: email_verified to true).")
OK = "The import succeeded."
SCHEMA = [
    {"Name": "name", "AttributeDataType": "String", "Required": True},
    {"Name": "tenant", "AttributeDataType": "String",
     "StringAttributeConstraints": {"MinLength": "2", "MaxLength": "8"}},
    {"Name": "age", "AttributeDataType": "Number", "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "150"}},
    {"Name": "vip", "AttributeDataType": "Boolean"},
    {"Name": "since", "AttributeDataType": "DateTime"},
]


def u(username: str, /, **attrs: str) -> dict[str, str]:
    return user(username, **{"name": "Some Name", **attrs})


CASES = [  # (row, status, message)
    (u("valid1", email_verified="TRUE", phone_number="+14255550100", birthdate="02/01/1985",
       updated_at="1471453471", custom__tenant="acme", custom__age="42", custom__vip="True",
       custom__since="2024-01-02T03:04:05+00:00"), "SUCCEEDED", OK),
    (u(""), "FAILED", "The cognito:username value is missing."),
    (u("a\tb"), "FAILED", "The cognito:username value contains whitespace."),
    (u("x" * 129), "FAILED", "The cognito:username value is longer than 128 characters."),
    (u("zero\u200bwidth"), "FAILED", "The cognito:username value contains a character that is not a "
                                     "letter, mark, symbol, number or punctuation."),
    (u("ユーザー"), "SUCCEEDED", OK),
    (user("noname"), "FAILED", "The required attribute name is missing."),
    (u("boolbad", email_verified="yes"), "FAILED", "The value of email_verified is not a boolean (write true or false)."),
    (u("unverified", email_verified="false"), "FAILED", AUTO),
    (u("blankverified", email_verified=""), "FAILED", AUTO),
    (u("phoneflag", phone_number_verified="true"), "FAILED", "phone_number_verified is true but phone_number is empty."),
    (u("noemail", email=""), "FAILED", "email_verified is true but email is empty."),
    (u("badphone", phone_number="+1 425 555"), "FAILED", "The value of phone_number is not of the form + followed by digits."),
    (u("badphone2", phone_number="14255550100"), "FAILED", "The value of phone_number is not of the form + followed by digits."),
    (u("bademail", email="not-an-email"), "FAILED", "The value of email is not an email address."),
    (u("toolong", address="é" * 1025), "FAILED", "The value of address is longer than 2048 bytes."),
    (u("isodate", birthdate="1985-02-01"), "FAILED", "The value of birthdate is not a real date in mm/dd/yyyy format."),
    (u("feb30", birthdate="02/30/1985"), "FAILED", "The value of birthdate is not a real date in mm/dd/yyyy format."),
    (u("negupd", updated_at="-5"), "FAILED", "The value of updated_at is not a non-negative whole number of epoch seconds."),
    (u("fracupd", updated_at="1.5"), "FAILED", "The value of updated_at is not a non-negative whole number of epoch seconds."),
    (u("short", custom__tenant="a"), "FAILED", "The value of custom:tenant is shorter than its minimum length 2."),
    (u("long", custom__tenant="abcdefghi"), "FAILED", "The value of custom:tenant is longer than its maximum length 8."),
    (u("nan", custom__age="abc"), "FAILED", "The value of custom:age is not a whole number."),
    (u("old", custom__age="151"), "FAILED", "The value of custom:age is greater than its maximum value 150."),
    (u("young", custom__age="-1"), "FAILED", "The value of custom:age is less than its minimum value 0."),
    (u("vipbad", custom__vip="1"), "FAILED", "The value of custom:vip is not a boolean (write true or false)."),
    (u("sincebad", custom__since="yesterday"), "FAILED", "The value of custom:since is not an ISO 8601 date-time."),
    (u("mfaon", **{"cognito:mfa_enabled": "true"}), "FAILED",
     "cognito:mfa_enabled must be false or blank because MFA is off in the user pool."),
    (u("mfablank", **{"cognito:mfa_enabled": ""}), "SUCCEEDED", OK),
    (u("valid1"), "SKIPPED", "The user already exists."),
    (u("  padded  ", name="Doe\\, John", email="padded@example.com"), "SUCCEEDED", OK),
]


def test_every_row_rule_in_one_job(kit):
    pool = kit.pool(Schema=SCHEMA)
    rows = [row for row, _, _ in CASES]
    body = kit.csv(pool, rows)
    header = kit.header(pool)
    extra = [",".join(["a"] * 3), ",".join(["x" * 16_001] + [""] * (len(header) - 1))]
    job, lines = kit.run(pool, body + ("\n".join(extra) + "\n").encode())
    expected = [f"[{s}] Line Number {i} - {m}" for i, (_, s, m) in enumerate(CASES, start=1)]
    n = len(CASES)
    expected += [f"[FAILED] Line Number {n + 1} - The row has 3 values but the header has {len(header)} columns.",
                 f"[FAILED] Line Number {n + 2} - The row is longer than 16000 characters."]
    assert lines == expected
    succeeded = sum(s == "SUCCEEDED" for _, s, _ in CASES)
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (succeeded, 1, n + 1 - succeeded)
    assert job["Status"] == "Failed"                               # U4: more rows failed than imported
    assert job["CompletionMessage"] == "Too many users have failed or been skipped during the import."

    users = kit.users(pool)
    assert set(users) == {"valid1", "ユーザー", "mfablank", "padded"}
    v = users["valid1"]
    assert v["UserStatus"] == "RESET_REQUIRED" and v["Enabled"] is True
    sub = v["attrs"].pop("sub")
    assert len(sub) == 36 and sub != users["padded"]["attrs"]["sub"]
    assert v["attrs"] == {"name": "Some Name", "email": "valid1@example.com", "email_verified": "true",
                          "phone_number": "+14255550100", "birthdate": "02/01/1985",
                          "updated_at": "1471453471", "custom:tenant": "acme", "custom:age": "42",
                          "custom:vip": "true", "custom:since": "2024-01-02T03:04:05+00:00"}
    assert users["padded"]["attrs"]["name"] == "Doe, John"
    got = kit.idp.admin_get_user(UserPoolId=pool, Username="valid1")
    assert got["UserStatus"] == "RESET_REQUIRED"


def test_succeeds_with_a_minority_of_failures_and_duplicates_in_one_file(kit):
    pool = kit.pool()
    job, lines = kit.run(pool, [user("d1"), user("d2"), user("d1"), user("d3", email_verified="false")])
    assert lines == [f"[SUCCEEDED] Line Number 1 - {OK}", f"[SUCCEEDED] Line Number 2 - {OK}",
                     "[SKIPPED] Line Number 3 - The user already exists.", f"[FAILED] Line Number 4 - {AUTO}"]
    assert job["Status"] == "Succeeded"
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (2, 1, 1)


def test_existing_users_are_skipped_and_only_skips_fail_the_job(kit):
    pool = kit.pool()
    kit.idp.admin_create_user(UserPoolId=pool, Username="already")
    job, lines = kit.run(pool, [user("already")])
    assert lines == ["[SKIPPED] Line Number 1 - The user already exists."]
    assert job["Status"] == "Failed" and (job["ImportedUsers"], job["SkippedUsers"]) == (0, 1)


@pytest.mark.parametrize("mfa, value, ok", [
    ("ON", "true", True), ("ON", "", True), ("ON", "false", False),
    ("OPTIONAL", "true", True), ("OPTIONAL", "false", True), ("OPTIONAL", "", True),
    ("OFF", "FALSE", True), ("OFF", "true", False),
])
def test_mfa_rule(kit, mfa, value, ok):                                      # fact 11, U2
    pool = kit.pool(MfaConfiguration=mfa)
    job, lines = kit.run(pool, [user("m", **{"cognito:mfa_enabled": value})])
    assert (job["ImportedUsers"] == 1) is ok
    if not ok:
        assert "cognito:mfa_enabled must be" in lines[0] and lines[0].startswith("[FAILED] Line Number 1 - ")


def test_phone_only_auto_verification(kit):                                  # fact 5
    pool = kit.pool(AutoVerifiedAttributes=["phone_number"])
    job, lines = kit.run(pool, [user("emailonly"),
                                user("phoneok", phone_number="+819012345678", phone_number_verified="true")])
    assert lines == [f"[FAILED] Line Number 1 - {AUTO}", f"[SUCCEEDED] Line Number 2 - {OK}"]


def test_email_as_username_pool(kit):                                        # fact 16, U11
    pool = kit.pool(UsernameAttributes=["email"])
    rows = [{"cognito:username": "ann@example.com", "email": "ann@example.com", "email_verified": "true"},
            {"cognito:username": "bob@example.com", "email": "other@example.com", "email_verified": "true"},
            {"cognito:username": "ann@example.com", "email": "ann@example.com", "email_verified": "true"},
            {"cognito:username": "cid", "email": "cid@example.com", "email_verified": "true"}]
    job, lines = kit.run(pool, rows)
    mismatch = ("cognito:username must equal the email value because the user pool uses email as the "
                "username.")
    assert lines == [f"[SUCCEEDED] Line Number 1 - {OK}", f"[FAILED] Line Number 2 - {mismatch}",
                     "[SKIPPED] Line Number 3 - The user already exists.", f"[FAILED] Line Number 4 - {mismatch}"]
    (name, ann), = kit.users(pool).items()
    assert ann["attrs"]["sub"] == name and len(name) == 36 and ann["attrs"]["email"] == "ann@example.com"
    assert kit.idp.admin_get_user(UserPoolId=pool, Username="ann@example.com")["Username"] == name


def test_alias_pool(kit):                                                    # fact 17, U5
    pool = kit.pool(AliasAttributes=["email", "phone_number", "preferred_username"])
    rows = [user("ann", preferred_username="annie"),
            user("ann2", email="ann@example.com"),                             # verified email taken
            user("ann3", email="ann@example.com", email_verified="false", phone_number="+15550001",
                 phone_number_verified="true"),                                # unverified: allowed
            user("ann4", preferred_username="annie"),
            user("who@example.com", email="who@example.com"),
            user("+15550002", email="p2@example.com")]
    job, lines = kit.run(pool, rows)
    assert lines == [
        f"[SUCCEEDED] Line Number 1 - {OK}",
        "[FAILED] Line Number 2 - The verified email value is already used by another user.",
        f"[FAILED] Line Number 3 - {AUTO}",
        "[FAILED] Line Number 4 - The preferred_username value is already used by another user.",
        "[FAILED] Line Number 5 - cognito:username looks like an email address, which an email-alias "
        "user pool does not allow.",
        "[FAILED] Line Number 6 - cognito:username looks like a phone number, which a phone_number-alias "
        "user pool does not allow.",
    ]


def test_alias_pool_phone_verified_taken(kit):
    pool = kit.pool(AliasAttributes=["phone_number"], AutoVerifiedAttributes=["phone_number"])
    p = {"phone_number": "+15550009", "phone_number_verified": "true"}
    _, lines = kit.run(pool, [user("p1", **p), user("p2", **p)])
    assert lines[1] == "[FAILED] Line Number 2 - The verified phone_number value is already used by another user."


@pytest.mark.parametrize("sensitive, second", [(False, "SKIPPED"), (True, "SUCCEEDED")])
def test_username_case(kit, sensitive, second):                              # fact 46
    pool = kit.pool(UsernameConfiguration={"CaseSensitive": sensitive})
    _, lines = kit.run(pool, [user("John"), user("john", email="j2@example.com")])
    assert lines[1].startswith(f"[{second}] Line Number 2 - ")


def test_admin_get_user_by_email_reads_an_index_that_follows_moto_api_changes(kit, monkeypatch):   # fact 16
    """moto finds a user by email with a scan of the whole pool per call; the service keeps an index,
    checks each hit against the pool, and falls back to moto for users made or changed through its API."""
    from moto.cognitoidp.models import CognitoIdpUserPool

    pool = kit.pool(UsernameAttributes=["email"])
    kit.run(pool, [{"cognito:username": f"u{i}@example.com", "email": f"u{i}@example.com",
                    "email_verified": "true"} for i in range(3)])
    scans: list[str] = []
    scan = CognitoIdpUserPool._get_user
    monkeypatch.setattr(CognitoIdpUserPool, "_get_user", lambda self, name: scans.append(name) or scan(self, name))

    def get(name: str) -> dict:
        found = kit.idp.admin_get_user(UserPoolId=pool, Username=name)
        return {**found, "attrs": {a["Name"]: a["Value"] for a in found["UserAttributes"]}}

    first = get("u0@example.com")
    assert first["attrs"]["email"] == "u0@example.com" and first["Username"] == first["attrs"]["sub"]
    assert get("u1@example.com")["attrs"]["email"] == "u1@example.com"
    assert get(first["Username"])["attrs"]["email"] == "u0@example.com"        # by the real Username (sub)
    assert scans == []                                                         # no scan of the pool
    kit.idp.admin_update_user_attributes(UserPoolId=pool, Username="u2@example.com",
                                         UserAttributes=[{"Name": "email", "Value": "new@example.com"}])
    kit.idp.admin_delete_user(UserPoolId=pool, Username="u1@example.com")
    assert get("new@example.com")["attrs"]["email"] == "new@example.com"
    for gone in ("u2@example.com", "u1@example.com"):
        with pytest.raises(kit.idp.exceptions.UserNotFoundException):
            get(gone)


def test_admin_get_user_finds_a_case_variant_only_in_a_case_insensitive_pool(kit):   # fact 46
    """With CaseSensitive false a username's case variants are the same user, for AdminGetUser as for an
    import; a user deleted or created afterwards is seen; a case-sensitive pool still wants the exact name."""
    loose = kit.pool(UsernameConfiguration={"CaseSensitive": False})
    strict = kit.pool(UsernameConfiguration={"CaseSensitive": True})
    for pool in (loose, strict):
        kit.idp.admin_create_user(UserPoolId=pool, Username="JSmith", MessageAction="SUPPRESS")
    assert kit.idp.admin_get_user(UserPoolId=loose, Username="jsmith")["Username"] == "JSmith"
    assert kit.idp.admin_get_user(UserPoolId=loose, Username="JSMITH")["Username"] == "JSmith"
    with pytest.raises(kit.idp.exceptions.UserNotFoundException):
        kit.idp.admin_get_user(UserPoolId=strict, Username="jsmith")
    kit.idp.admin_delete_user(UserPoolId=loose, Username="JSmith")
    kit.idp.admin_create_user(UserPoolId=loose, Username="AnnaK", MessageAction="SUPPRESS")
    with pytest.raises(kit.idp.exceptions.UserNotFoundException):
        kit.idp.admin_get_user(UserPoolId=loose, Username="jsmith")
    assert kit.idp.admin_get_user(UserPoolId=loose, Username="annak")["Username"] == "AnnaK"
    kit.run(loose, [{"cognito:username": "BoB.Import", "email": "bob@example.com",   # an import adds to it
                     "email_verified": "true"}])
    assert kit.idp.admin_get_user(UserPoolId=loose, Username="bob.import")["Username"] == "BoB.Import"
