"""The demo generator: deterministic, every messy case for every tenant, loadable into each backend."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline import demo
from pipeline.db import open_source
from pipeline.extract import stream_partitions

pytest_plugins = ["tests.dbfixtures"]

USERS_SQL = Path(__file__).resolve().parent.parent / "sql" / "users.sql"
PHONE_FORMATS = {
    "JP": {"mobile": r"0[789]0-\d{4}-\d{4}", "landline": r"0\d-\d{4}-\d{4}", "e164": r"\+81\d{9,10}"},
    "US": {"paren": r"\(\d{3}\) \d{3}-\d{4}", "dots": r"\d{3}\.\d{3}\.\d{4}", "e164": r"\+1\d{10}"},
    "DE": {"landline": r"0\d{2,3} \d{7}", "mobile": r"01\d\d \d{8}", "e164": r"\+49\d{10,12}"},
}


@pytest.fixture(scope="module")
def minimal() -> pd.DataFrame:
    return demo.generate(demo.SHOWCASE_ROWS)


@pytest.fixture(scope="module")
def default() -> pd.DataFrame:
    return demo.generate(400)


def test_columns_and_types_match_the_table(minimal: pd.DataFrame) -> None:
    assert tuple(minimal.columns) == demo.COLUMN_NAMES
    assert (minimal.dtypes == demo.STRING).all()
    assert minimal["id"].tolist() == [str(i) for i in range(1, len(minimal) + 1)]
    assert minimal["tenant_code"].value_counts().to_dict() == {t.code: demo.SHOWCASE_ROWS
                                                               for t in demo.DEFAULT_TENANTS}


def test_same_seed_same_rows_and_a_prefix_of_larger_runs(minimal: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(demo.generate(demo.SHOWCASE_ROWS, seed=7), minimal)
    larger = demo.generate(demo.SHOWCASE_ROWS + 50)
    pd.testing.assert_frame_equal(larger.iloc[:len(minimal)], minimal)
    assert not demo.generate(demo.SHOWCASE_ROWS, seed=8).equals(minimal)


@pytest.mark.parametrize("size", ["minimal", "default"])
def test_every_messy_case_occurs_for_every_tenant(size: str, request: pytest.FixtureRequest) -> None:
    frame = request.getfixturevalue(size)
    counts = demo.messy_counts(frame)
    assert sorted(counts.index) == sorted(t.code for t in demo.DEFAULT_TENANTS)
    assert (counts > 0).all().all(), counts.T[(counts.T == 0).any(axis=1)]
    for tenant, rows in frame.groupby("tenant_code"):
        for col in ("email_confirmed", "phone_confirmed"):
            tokens = set(rows[col].fillna("<NULL>"))
            assert tokens == {t or "<NULL>" for t in demo.BOOL_TOKENS}, (tenant, col)
        assert {"n/a", "12"} <= set(rows["phone"].dropna())
        assert "Null" in set(rows["last_name"].dropna())
        assert rows["last_name"].str.endswith(", Jr.").any()


def test_phone_formats_are_national_per_country(minimal: pd.DataFrame) -> None:
    for tenant in demo.DEFAULT_TENANTS:
        phones = minimal.loc[minimal["tenant_code"] == tenant.code, "phone"].dropna()
        for name, pattern in PHONE_FORMATS[tenant.country].items():
            assert phones.str.fullmatch(pattern).any(), (tenant.code, name)
        known = pd.concat([phones.str.fullmatch(p) for p in PHONE_FORMATS[tenant.country].values()], axis=1)
        junk = phones.str.count(r"\d") < 6
        assert (known.any(axis=1) | junk).all(), phones[~(known.any(axis=1) | junk)].tolist()


def test_rates_are_realistic(default: pd.DataFrame) -> None:
    counts = demo.messy_counts(default)
    share = counts["email_duplicate_extra"] / counts["rows"]
    assert share.between(0.01, 0.07).all(), share
    assert (counts["soft_deleted"] / counts["rows"]).between(0.005, 0.08).all()
    assert (counts["first_name_newline"] < counts["rows"] * 0.03).all()


def test_dates_and_timestamps_are_consistent_text(default: pd.DataFrame) -> None:
    assert default["birth_date"].dropna().str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    for col in ("created_at", "updated_at", "deleted_at"):
        assert default[col].dropna().str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all(), col
    assert (default["updated_at"] >= default["created_at"]).all()
    assert ((default["deleted_at"] >= default["created_at"]) | default["deleted_at"].isna()).all()
    assert default["birth_date"].dropna().between("1940-01-01", "2006-12-31").all()
    assert set(default["locale"]) == {"ja-JP", "en-US", "de-DE"}
    assert set(default["role"]) == {"admin", "member", "viewer"}
    assert set(default["is_active"]) == {"0", "1"}


def test_blocks_bound_memory_and_join_up() -> None:
    n = demo.BLOCK_ROWS + 30
    blocks = list(demo.iter_blocks(n))
    assert [len(b) for b in blocks] == [demo.BLOCK_ROWS, 30]
    joined = pd.concat(blocks)
    assert joined["id"].tolist() == [str(i) for i in range(1, n + 1)]
    assert list(joined.index) == list(range(n))


def test_messy_counts_follow_their_documented_rules() -> None:
    base = {c: [None] * 5 for c in demo.COLUMN_NAMES}
    base.update({
        "tenant_code": ["a", "a", "a", "b", "b"],
        "login": ["Ann", "ann", "x y", "", None],
        "email": [" A@x.org", "a@x.org", "bob@", "no-at-sign", ""],
        "email_confirmed": ["t", "Y", "no", None, "0"],
        "phone": ["+15551234567", "n/a", "12", "(415) 555-0100", None],
        "first_name": ["Zoë", "a,b", "x\ny", "plain", None],
        "last_name": ["Null", "Smith, Jr.", "x", "y", None],
        "is_active": ["1", "0", "1", "1", "1"],
        "deleted_at": [None, None, "2020-01-01 00:00:00", None, None],
    })
    counts = demo.messy_counts(pd.DataFrame(base, dtype=demo.STRING))
    a, b = counts.loc["a"], counts.loc["b"]
    assert (a["rows"], b["rows"]) == (3, 2)
    assert (a["login_casefold_duplicate"], a["login_mixed_case"], a["login_with_space"]) == (2, 1, 1)
    assert (b["login_empty"], b["login_null"]) == (1, 1)
    assert (a["email_duplicate_rows"], a["email_duplicate_extra"], a["email_surrounding_space"]) == (2, 1, 1)
    assert (a["email_mixed_case"], a["email_invalid"], b["email_invalid"], b["email_empty"]) == (1, 1, 1, 1)
    assert (a["email_confirmed_true"], a["email_confirmed_false"], b["email_confirmed_null"]) == (2, 1, 1)
    assert (a["phone_e164"], a["phone_junk"], b["phone_national"], b["phone_null"]) == (1, 2, 1, 1)
    assert (a["first_name_non_ascii"], a["first_name_comma"], a["first_name_newline"]) == (1, 1, 1)
    assert (a["last_name_null_word"], a["last_name_comma"], a["inactive"], a["soft_deleted"]) == (1, 1, 1, 1)
    assert b["first_name_non_ascii"] == 0


def test_sqlite_demo_is_built_once_and_rebuilt_when_asked_for_other_rows(tmp_path: Path) -> None:
    path = tmp_path / "var" / "demo-legacy.sqlite"
    assert demo.create_sqlite_demo(path, n_per_tenant=demo.SHOWCASE_ROWS) == path
    built = path.stat().st_mtime_ns
    os.utime(path, ns=(built - 10**9, built - 10**9))
    demo.create_sqlite_demo(path, n_per_tenant=demo.SHOWCASE_ROWS)
    assert path.stat().st_mtime_ns == built - 10**9                      # kept, not rebuilt
    with open_source(f"sqlite:///{path}") as source:
        got = pd.concat(stream_partitions(source, USERS_SQL, {"tenant": "globex-us"}))
    expected = demo.generate(demo.SHOWCASE_ROWS)
    expected = expected[expected["tenant_code"] == "globex-us"]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    demo.create_sqlite_demo(path, n_per_tenant=demo.SHOWCASE_ROWS + 1)
    with open_source(f"sqlite:///{path}") as source:
        assert source.scalar("SELECT COUNT(*) FROM app_users") == 3 * (demo.SHOWCASE_ROWS + 1)
    assert [p.name for p in path.parent.iterdir()] == [path.name]       # no temporary file left behind


def test_load_table_fills_each_backend(demo_url: str, demo_expected: pd.DataFrame) -> None:
    with open_source(demo_url) as source:
        assert source.scalar("SELECT COUNT(*) FROM app_users") == len(demo_expected)
        for tenant, count in demo_expected["tenant_code"].value_counts().items():
            by_tenant = "SELECT COUNT(*) FROM app_users WHERE tenant_code = :t"
            assert source.scalar(by_tenant, {"t": tenant}) == count
        assert source.scalar("SELECT COUNT(*) FROM app_users WHERE last_name = 'Null'") == \
            int((demo_expected["last_name"] == "Null").sum())
