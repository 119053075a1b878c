"""Mapping a source partition: columns, username strategies, policies and the rejects they produce."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import MappingError
from pipeline.mapping import MappedPartition, TenantMapping, apply_mapping, load_mapping
from pipeline.reasons import REJECT_COLUMNS, Reason

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"
COLUMNS = ["id", "tenant_code", "login", "email", "email_confirmed", "phone", "phone_confirmed",
           "first_name", "last_name", "birth_date", "locale", "role", "is_active", "deleted_at",
           "created_at", "updated_at"]
NA = pd.NA


def source(*rows: dict[str, object]) -> pd.DataFrame:
    """A source partition as extract delivers it: every column string[pyarrow], NULL = NA."""
    base = {"tenant_code": "acme-jp", "login": "user", "email": "user@example.jp", "email_confirmed": "t",
            "phone": None, "phone_confirmed": None, "first_name": "Taro", "last_name": "Yamada",
            "birth_date": None, "locale": "ja-JP", "role": "member", "is_active": "1", "deleted_at": None,
            "created_at": "2020-01-01 00:00:00", "updated_at": "2021-03-04 05:06:07"}
    records = [{**base, "id": str(i + 1), **row} for i, row in enumerate(rows)]
    return pd.DataFrame(records, columns=COLUMNS).astype("string[pyarrow]")


def value(mp: MappedPartition, column: str, row: int = 0) -> object:
    v = mp.frame[column].iloc[row]
    return NA if v is NA else v


def check_partition(mp: MappedPartition, frame: pd.DataFrame) -> None:
    """Every source row in exactly one of frame/rejects; every column string[pyarrow]."""
    kept = set(mp.frame["_legacy_id"])
    rejected = set(mp.rejects["legacy_id"])
    assert kept.isdisjoint(rejected)
    assert kept | rejected == set(frame["id"])
    assert len(mp.frame) == len(kept)
    assert list(mp.rejects.columns) == REJECT_COLUMNS
    assert all(str(t) == "string" for t in [*mp.frame.dtypes, *mp.rejects.dtypes])
    assert all(t.storage == "pyarrow" for t in mp.frame.dtypes)
    assert not mp.frame.isin([""]).any().any(), "no value is NA, never the empty string"


@pytest.fixture(scope="module")
def acme() -> TenantMapping:
    return load_mapping(SHIPPED, "acme-jp")


def test_maps_a_row_to_cognito_columns(acme: TenantMapping) -> None:
    frame = source({"login": " taro ", "email": " Taro@Example.COM ", "email_confirmed": "Y",
                    "phone": "090-1234-5678", "phone_confirmed": "0", "birth_date": "1985-02-01",
                    "role": " Admin ", "updated_at": "2021-03-04 05:06:07+00"})
    mp = apply_mapping(acme, frame)
    check_partition(mp, frame)
    assert list(mp.frame.columns) == [*acme.targets, "_legacy_id", "_tenant"]
    assert mp.frame.iloc[0].to_dict() == {
        "cognito:username": "taro", "email": "taro@example.com", "email_verified": "true",
        "phone_number": "+819012345678", "phone_number_verified": "false", "given_name": "Taro",
        "family_name": "Yamada", "name": "Yamada Taro", "birthdate": "02/01/1985", "locale": "ja-JP",
        "updated_at": "1614834367", "cognito:mfa_enabled": "false", "custom:tenant_id": "acme-jp",
        "custom:legacy_id": "1", "custom:role": "admin", "_legacy_id": "1", "_tenant": "acme-jp"}
    assert mp.rejects.empty


def test_null_values_become_no_value_or_the_configured_default(acme: TenantMapping) -> None:
    frame = source({"email_confirmed": None, "phone": None, "first_name": None, "last_name": None,
                    "locale": "", "updated_at": None})
    mp = apply_mapping(acme, frame)
    assert value(mp, "email_verified") == "false"          # boolean default: false
    assert value(mp, "phone_number_verified") == "false"
    for column in ("phone_number", "given_name", "family_name", "name", "locale", "updated_at", "birthdate"):
        assert value(mp, column) is NA, column


def test_values_that_cannot_be_converted_are_kept_for_validation(acme: TenantMapping) -> None:
    frame = source({"phone": " n/a ", "email_confirmed": "maybe", "birth_date": "1985-02-30",
                    "updated_at": "yesterday"}, {"phone": "090-CALL-NOWW"})
    mp = apply_mapping(acme, frame)
    assert (value(mp, "phone_number"), value(mp, "email_verified"), value(mp, "birthdate"),
            value(mp, "updated_at")) == ("n/a", "maybe", "1985-02-30", "yesterday")
    assert value(mp, "phone_number", 1) == "090-CALL-NOWW"


def test_soft_deleted_and_disabled_rows_go_to_rejects(acme: TenantMapping) -> None:
    frame = source({}, {"deleted_at": "2022-05-06 07:08:09"}, {"is_active": "0"},
                   {"is_active": None}, {"is_active": "0", "deleted_at": "2022-01-01"}, {"deleted_at": ""})
    mp = apply_mapping(acme, frame)
    check_partition(mp, frame)
    assert list(mp.frame["_legacy_id"]) == ["1", "6"]           # an empty deleted_at is not a deletion
    lines = mp.rejects.sort_values(["legacy_id", "reason"]).to_dict("records")
    assert [(r["legacy_id"], r["reason"], r["column"], r["masked_value"]) for r in lines] == [
        ("2", Reason.SOFT_DELETED, "deleted_at", "2***"),
        ("3", Reason.DISABLED, "is_active", "0"),
        ("4", Reason.DISABLED, "is_active", ""),
        ("5", Reason.DISABLED, "is_active", "0"),          # one line per policy broken
        ("5", Reason.SOFT_DELETED, "deleted_at", "2***"),
    ]
    assert {r["tenant"] for r in lines} == {"acme-jp"}
    assert all("policies." in r["detail"] for r in lines)


def test_a_databases_no_date_in_the_soft_delete_column_is_not_a_deletion(acme: TenantMapping) -> None:
    """A MySQL ``deleted_at DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'`` holds the zero date for every
    user not deleted: those rows were rejected as soft-deleted (shown as a masked ``0***``), while a date
    zero only in part, or another sentinel, is still a value."""
    frame = source({"deleted_at": "0000-00-00 00:00:00"}, {"deleted_at": "0000-00-00"}, {"deleted_at": "infinity"},
                   {"deleted_at": "2022-05-06 07:08:09"}, {"deleted_at": "1985-00-00"}, {"deleted_at": "0"})
    mp = apply_mapping(acme, frame)
    check_partition(mp, frame)
    assert list(mp.frame["_legacy_id"]) == ["1", "2", "3"]
    assert sorted(mp.rejects["legacy_id"]) == ["4", "5", "6"] and set(mp.rejects["reason"]) == {Reason.SOFT_DELETED}


def test_policies_with_action_import_keep_the_rows(tmp_path: Path, acme: TenantMapping) -> None:
    m = dataclasses.replace(acme, soft_deleted=dataclasses.replace(acme.soft_deleted, action="import"),
                            disabled=None)
    frame = source({"deleted_at": "2022-05-06"}, {"is_active": "0"})
    mp = apply_mapping(m, frame)
    assert list(mp.frame["_legacy_id"]) == ["1", "2"] and mp.rejects.empty


def test_newlines_replace(acme: TenantMapping) -> None:
    frame = source({"first_name": "Hana\nko", "last_name": "Sato \r\n Suzuki", "role": "a\\"})
    mp = apply_mapping(acme, frame)
    check_partition(mp, frame)
    assert (value(mp, "given_name"), value(mp, "family_name"), value(mp, "name")) == \
        ("Hana ko", "Sato Suzuki", "Sato Suzuki Hana ko")
    assert value(mp, "custom:role") == "a\\"             # a trailing backslash is left to validation
    assert mp.rejects.empty


def test_newlines_reject(acme: TenantMapping) -> None:
    m = dataclasses.replace(acme, newlines="reject")
    frame = source({"first_name": "Hana\nko"}, {}, {"email": "x@exam\nple.jp"}, {"role": "a\\"})
    mp = apply_mapping(m, frame)
    check_partition(mp, frame)
    assert list(mp.frame["_legacy_id"]) == ["2"]
    lines = mp.rejects.sort_values(["legacy_id", "column"]).to_dict("records")
    assert [(r["legacy_id"], r["reason"], r["column"], r["masked_value"]) for r in lines] == [
        ("1", Reason.UNCARRIABLE_VALUE, "given_name", "H***"),
        ("1", Reason.UNCARRIABLE_VALUE, "name", "Y***"),           # one line per column
        ("3", Reason.UNCARRIABLE_VALUE, "email", "x***@e***.jp"),
        ("4", Reason.UNCARRIABLE_VALUE, "custom:role", "a***"),     # a trailing backslash, too
    ]
    assert "policies.newlines: replace" in lines[0]["detail"]


def test_email_strategy_puts_the_normalised_email_in_the_username() -> None:
    globex = load_mapping(SHIPPED, "globex-us")
    frame = source({"email": " Jane.Doe@Example.COM ", "phone": "(415) 555-0100"})
    mp = apply_mapping(globex, frame)
    assert value(mp, "cognito:username") == "jane.doe@example.com" == value(mp, "email")
    assert value(mp, "phone_number") == "+14155550100"


def test_initech_phones_use_the_german_region() -> None:
    mp = apply_mapping(load_mapping(SHIPPED, "initech-de"), source({"phone": "030 1234567"}))
    assert value(mp, "phone_number") == "+49301234567"


def _tenant(tmp_path: Path, username: str) -> TenantMapping:
    root = tmp_path / "mappings"
    (root / "tenants").mkdir(parents=True, exist_ok=True)
    default = (SHIPPED / "default.yaml").read_text(encoding="utf-8")
    (root / "default.yaml").write_text(default, encoding="utf-8")
    (root / "tenants" / "acme-jp.yaml").write_text(textwrap.dedent(f"""\
        default_region: JP
        username: {username}
        pool: {{user_pool_id: ap-northeast-1_Abc123}}
        """), encoding="utf-8")
    return load_mapping(root, "acme-jp")


@pytest.mark.parametrize(("username", "expected"), [
    ('{strategy: legacy_id}', "1"),
    ('{strategy: template, template: "{tenant}-{login}", transform: [trim, lower]}', "acme-jp-taro"),
    ('{strategy: phone}', "+819012345678"),
    ('{strategy: column, column: login, transform: upper}', "TARO"),
])
def test_username_strategies(tmp_path: Path, username: str, expected: str) -> None:
    m = _tenant(tmp_path, username)
    mp = apply_mapping(m, source({"login": " Taro ", "phone": "090-1234-5678"}))
    assert value(mp, "cognito:username") == expected


def test_missing_source_column_raises_a_mapping_error(acme: TenantMapping) -> None:
    with pytest.raises(MappingError) as info:
        apply_mapping(acme, source({}).drop(columns=["role"]))
    assert "attributes.custom:role.from" in str(info.value)


def test_an_empty_partition_maps_to_empty_frames(acme: TenantMapping) -> None:
    mp = apply_mapping(acme, source({}).iloc[0:0])
    assert mp.frame.empty and mp.rejects.empty
    assert list(mp.frame.columns) == [*acme.targets, "_legacy_id", "_tenant"]
    assert list(mp.rejects.columns) == REJECT_COLUMNS


def test_a_partition_with_a_repeated_index(acme: TenantMapping) -> None:
    frame = source({"phone": "090-1234-5678"}, {"is_active": "0"}, {"phone": "03-1234-5678"})
    frame.index = [5, 5, 5]
    mp = apply_mapping(acme, frame)
    assert list(mp.frame["phone_number"]) == ["+819012345678", "+81312345678"]
    assert list(mp.rejects["legacy_id"]) == ["2"]
