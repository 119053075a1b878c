"""PoolContract: parsing the two responses, the fingerprint, snapshots and pool-level problems."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipeline.contract import AttributeSpec, PoolContract
from pipeline.errors import ContractError
from tests import poolfixtures as pf


def test_plain_pool_is_parsed() -> None:
    c = pf.contract("plain")
    assert c.user_pool_id == "eu-west-1_Plain0001"
    assert c.pool_name == "acme-plain"
    assert c.csv_header == tuple(pf.STANDARD_HEADER + pf.TAIL)
    assert c.auto_verified == frozenset({"email"})
    assert c.alias_attributes == frozenset()
    assert c.username_attributes == frozenset()
    assert c.mfa == "OFF"
    assert c.case_sensitive is True          # no UsernameConfiguration in the response
    assert c.attributes["birthdate"] == AttributeSpec("birthdate", "String", min_length=10, max_length=10)
    assert c.attributes["updated_at"].data_type == "Number"
    assert c.attributes["updated_at"].min_value == 0
    assert c.attributes["updated_at"].max_value is None
    assert c.attributes["sub"].required and not c.attributes["sub"].mutable
    assert c.attributes["email_verified"].data_type == "Boolean"
    assert c.attributes["identities"].min_length is None
    assert c.problems() == []


def test_sign_in_configuration_of_each_pool() -> None:
    alias = pf.contract("alias")
    assert alias.alias_attributes == frozenset({"email", "phone_number"})
    email = pf.contract("email_username")
    assert email.username_attributes == frozenset({"email"}) and email.case_sensitive is False
    mfa = pf.contract("mfa_on")
    assert mfa.mfa == "ON" and mfa.auto_verified == frozenset({"phone_number"})
    assert mfa.csv_header[:3] == ("profile", "address", "birthdate")     # header order kept exactly
    assert mfa.attributes["family_name"].required


def test_custom_attribute_constraints_are_ints() -> None:
    c = pf.contract("custom")
    assert c.attributes["custom:tenant_id"].min_length == 3
    assert c.attributes["custom:tenant_id"].max_length == 36
    assert c.attributes["custom:code"].min_length is None            # MinLength omitted
    assert c.attributes["custom:code"].max_length == 8
    assert (c.attributes["custom:score"].min_value, c.attributes["custom:score"].max_value) == (0, 100)
    assert c.attributes["custom:joined"].data_type == "DateTime"
    assert c.attributes["dev:custom:internal"].developer_only
    assert c.csv_header.index("custom:tenant_id") == c.csv_header.index("updated_at") + 1
    assert c.mfa == "OPTIONAL"


def test_pool_from_moto_describe_user_pool() -> None:
    with mock_aws():
        client = boto3.client("cognito-idp", region_name="eu-west-1")
        pool = client.create_user_pool(
            PoolName="moto-pool", AutoVerifiedAttributes=["email"], AliasAttributes=["email"],
            UsernameConfiguration={"CaseSensitive": False}, MfaConfiguration="OFF",
            Schema=[{"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True,
                     "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "36"}}])["UserPool"]
        described = client.describe_user_pool(UserPoolId=pool["Id"])
    header = {"UserPoolId": pool["Id"],
              "CSVHeader": pf.STANDARD_HEADER + ["custom:tenant_id"] + pf.TAIL}
    c = PoolContract.from_responses(header, described)
    assert c.user_pool_id == pool["Id"] and c.pool_name == "moto-pool"
    assert c.attributes["custom:tenant_id"].max_length == 36
    assert c.case_sensitive is False and c.alias_attributes == {"email"}
    # moto lists no standard attributes; their real types still apply
    assert c.spec("updated_at").data_type == "Number"
    assert c.spec("email_verified").data_type == "Boolean"
    assert c.problems() == []


def test_fingerprint_is_stable_and_ignores_volatile_fields() -> None:
    header, pool = pf.responses("alias")
    first = PoolContract.from_responses(header, pool).fingerprint
    assert first == pf.contract("alias").fingerprint
    pool["UserPool"]["EstimatedNumberOfUsers"] = 99999
    pool["UserPool"]["LastModifiedDate"] = "2030-01-01T00:00:00+00:00"
    pool["UserPool"]["Arn"] = "arn:aws:cognito-idp:eu-west-1:999999999999:userpool/x"
    pool["ResponseMetadata"] = {"RequestId": "other"}
    assert PoolContract.from_responses(header, pool).fingerprint == first
    assert len(first) == 64


@pytest.mark.parametrize("change", [
    lambda h, p: p["UserPool"].__setitem__("MfaConfiguration", "ON"),
    lambda h, p: p["UserPool"].__setitem__("AutoVerifiedAttributes", ["phone_number"]),
    lambda h, p: p["UserPool"].__setitem__("AliasAttributes", ["email"]),
    lambda h, p: p["UserPool"].__setitem__("UsernameConfiguration", {"CaseSensitive": False}),
    lambda h, p: p["UserPool"]["SchemaAttributes"][1]["StringAttributeConstraints"].update(MaxLength="100"),
    lambda h, p: p["UserPool"]["SchemaAttributes"][1].__setitem__("Required", True),
    lambda h, p: h.__setitem__("CSVHeader", list(reversed(h["CSVHeader"]))),
], ids=["mfa", "auto-verified", "alias", "case", "max-length", "required", "header-order"])
def test_fingerprint_changes_with_a_rule(change) -> None:
    header, pool = pf.responses("alias")
    before = PoolContract.from_responses(header, pool).fingerprint
    change(header, pool)
    assert PoolContract.from_responses(header, pool).fingerprint != before


def test_snapshot_round_trip(tmp_path) -> None:
    c = pf.contract("custom")
    path = tmp_path / "plan" / "contract.json"
    c.to_snapshot(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["describe_user_pool"]["UserPool"]["CreationDate"] == "2024-03-01T09:30:12.123000+00:00"
    assert "ResponseMetadata" not in doc["describe_user_pool"]
    back = PoolContract.from_snapshot(path)
    assert back == c
    assert back.fingerprint == c.fingerprint
    assert back.attributes["custom:score"].max_value == 100


def test_snapshot_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ContractError) as exc:
        PoolContract.from_snapshot(path)
    assert str(path) in str(exc.value) and "does not exist" in str(exc.value)
    assert "snapshot" in str(exc.value)


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ('{"some": "thing"}', "not a pool contract snapshot"),
    ('{"format": "cognito-migrate/pool-contract", "version": 7}', "version 7"),
    ('{"format": "cognito-migrate/pool-contract", "version": 1, "get_csv_header": {}}', "incomplete"),
])
def test_snapshot_broken_file(tmp_path, content, words) -> None:
    path = tmp_path / "contract.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ContractError) as exc:
        PoolContract.from_snapshot(path)
    assert str(path) in str(exc.value) and words in str(exc.value)
    assert "fresh snapshot" in str(exc.value)        # says what to do


def test_snapshot_edited_by_hand(tmp_path) -> None:
    path = tmp_path / "contract.json"
    pf.contract("plain").to_snapshot(path)
    doc = json.loads(path.read_text())
    doc["describe_user_pool"]["UserPool"]["MfaConfiguration"] = "ON"
    path.write_text(json.dumps(doc))
    with pytest.raises(ContractError, match="edited"):
        PoolContract.from_snapshot(path)


def test_malformed_responses_list_every_problem() -> None:
    header, pool = pf.responses("plain")
    del header["CSVHeader"]
    pool["UserPool"]["SchemaAttributes"][1]["StringAttributeConstraints"]["MaxLength"] = "lots"
    pool["UserPool"]["MfaConfiguration"] = "SOMETIMES"
    with pytest.raises(ContractError) as exc:
        PoolContract.from_responses(header, pool)
    text = str(exc.value)
    assert "CSVHeader" in text and "'lots'" in text and "SOMETIMES" in text


def test_problems_that_stop_an_import() -> None:
    header, pool = pf.responses("plain")
    pool["UserPool"]["AutoVerifiedAttributes"] = []
    pool["UserPool"]["UsernameAttributes"] = ["email", "phone_number"]
    pool["UserPool"]["SchemaAttributes"].append(
        {"Name": "custom:must", "AttributeDataType": "String", "Required": True})
    problems = PoolContract.from_responses(header, pool).problems()
    assert len(problems) == 3
    assert any("auto-verifies neither" in p and "fact 5" in p for p in problems)
    assert any("both email and phone_number" in p for p in problems)
    assert any("custom:must" in p for p in problems)


def test_problem_when_header_lacks_username_or_verified_flag() -> None:
    header, pool = pf.responses("plain")
    header["CSVHeader"] = [c for c in header["CSVHeader"] if c not in ("cognito:username", "email_verified")]
    problems = PoolContract.from_responses(header, pool).problems()
    assert any("cognito:username" in p for p in problems)
    assert any("email_verified" in p for p in problems)


def test_a_snapshot_the_disk_cannot_hold_leaves_no_half_written_copy(tmp_path: Path, monkeypatch) -> None:
    """A full disk while the snapshot is written: a ContractError that says to check the room, and no
    contract.json.tmp left behind."""
    import errno

    def full(self: Path, *_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(ContractError, match="its disk has room"):
        pf.contract("plain").to_snapshot(tmp_path / "contract.json")
    assert list(tmp_path.iterdir()) == []
