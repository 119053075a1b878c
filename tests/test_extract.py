"""Extraction against real PostgreSQL (COPY path), MariaDB and SQLite (server-side cursor path)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from pipeline.db import TableColumn, open_source, replace_table
from pipeline.errors import ExtractError
from pipeline.extract import STRING, read_query, stream_partitions, strip_comments

pytest_plugins = ["tests.dbfixtures"]

USERS_SQL = Path(__file__).resolve().parent.parent / "sql" / "users.sql"
TENANTS = ("acme-jp", "globex-us", "initech-de")

# Values that a careless reader turns into NULL, or mangles.
TRICKY = [None, "", "NULL", "null", "Null", "n/a", "N/A", "NA", "nan", "NaN", "None", "#N/A", "-", " ",
          "\\N", "a,b", 'quote " inside', "line1\nline2", "cr\r\nlf", "日本語の名前", "Müller Groß é",
          "  padded  ", "0123", "1e5", "TRUE"]


def _extract(url: str, sql: Path, params: dict[str, object], rows: int = 50_000) -> list[pd.DataFrame]:
    with open_source(url) as source:
        return list(stream_partitions(source, sql, params, rows))


@pytest.mark.parametrize("tenant", TENANTS)
def test_each_tenant_gets_exactly_its_rows_cell_for_cell(demo_url: str, demo_expected: pd.DataFrame,
                                                         tenant: str) -> None:
    got = pd.concat(_extract(demo_url, USERS_SQL, {"tenant": tenant}))
    expected = demo_expected[demo_expected["tenant_code"] == tenant].reset_index(drop=True)
    assert set(got["tenant_code"]) == {tenant}
    assert (got.dtypes == STRING).all()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


def test_a_missing_sql_file_names_the_mapping_key_that_points_at_it(tmp_path: Path) -> None:
    # the message said to fix "the mapping's sql_file", a key no mapping has (it is source.query)
    with pytest.raises(ExtractError) as info:
        read_query(tmp_path / "nothere.sql")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'nothere.sql'}: no such SQL file")
    assert "point the mapping's source.query (or MIGRATE_SQL_DIR) at an existing one" in message


def test_a_number_from_the_mapping_is_bound_as_a_number_on_every_backend(demo_url: str, tmp_path: Path) -> None:
    """``filters: {first: 3}`` with ``LIMIT :first``: the mapping loader keeps how each number was written
    (an int subclass), which PyMySQL escaped as the text '3', a syntax error after LIMIT."""
    from pipeline.mapping import load_mapping

    mappings = tmp_path / "mappings"
    shutil.copytree(USERS_SQL.parent.parent / "mappings", mappings)
    with (mappings / "tenants" / "acme-jp.yaml").open("a") as handle:
        handle.write("\nfilters: {first: 3, above: 0.5}\n")
    params = load_mapping(mappings, "acme-jp").params
    sql = tmp_path / "first.sql"
    sql.write_text("SELECT id FROM app_users WHERE tenant_code = :tenant AND id > :above ORDER BY id LIMIT :first")
    (part,) = _extract(demo_url, sql, params)
    assert len(part) == 3


def test_tenant_is_a_bound_parameter_not_text(demo_url: str) -> None:
    parts = _extract(demo_url, USERS_SQL, {"tenant": "acme-jp' OR '1'='1"})
    assert len(parts) == 1 and len(parts[0]) == 0          # one empty frame that still names its columns
    assert list(parts[0].columns)[:3] == ["id", "tenant_code", "login"]
    assert (parts[0].dtypes == STRING).all()



def test_a_list_filter_selects_in_its_values_on_every_backend(demo_url: str, demo_expected: pd.DataFrame,
                                                              tmp_path: Path) -> None:
    """``filters: {roles: [admin, staff]}`` with ``role IN :roles``: before, only MariaDB's driver wrote a
    list as ``('admin', 'staff')``; PostgreSQL failed on ``IN ARRAY[...]`` and SQLite refused the list."""
    sql = tmp_path / "roles.sql"
    sql.write_text("SELECT id, role FROM app_users WHERE tenant_code = :tenant AND role IN :roles ORDER BY id")
    roles = sorted(set(demo_expected["role"].dropna()))[:2]
    got = pd.concat(_extract(demo_url, sql, {"tenant": "acme-jp", "roles": roles}))
    mine = demo_expected[(demo_expected["tenant_code"] == "acme-jp") & demo_expected["role"].isin(roles)]
    assert len(got) == len(mine) > 0 and set(got["role"]) == set(roles)
    assert got["id"].tolist() == mine["id"].tolist()


@pytest.mark.postgres
def test_a_list_filter_stays_one_array_where_postgres_takes_an_array(pg_url: str, demo_expected: pd.DataFrame,
                                                                   tmp_path: Path) -> None:
    from pipeline import demo

    demo.load_table(pg_url, len(demo_expected))
    url = pg_url
    sql = tmp_path / "roles.sql"
    sql.write_text("SELECT id FROM app_users WHERE tenant_code = :tenant AND role = any (:roles) ORDER BY id")
    roles = sorted(set(demo_expected["role"].dropna()))[:2]
    got = pd.concat(_extract(url, sql, {"tenant": "acme-jp", "roles": roles}))
    mine = demo_expected[(demo_expected["tenant_code"] == "acme-jp") & demo_expected["role"].isin(roles)]
    assert got["id"].tolist() == mine["id"].tolist() and len(mine) > 0

def test_partitions_have_the_requested_size(demo_url: str, demo_expected: pd.DataFrame) -> None:
    n = int((demo_expected["tenant_code"] == "globex-us").sum())
    parts = _extract(demo_url, USERS_SQL, {"tenant": "globex-us"}, rows=7)
    assert [len(p) for p in parts[:-1]] == [7] * (len(parts) - 1)
    assert 1 <= len(parts[-1]) <= 7 and sum(map(len, parts)) == n
    assert list(pd.concat(parts).index) == list(range(n))      # the index continues across partitions


def test_null_empty_and_lookalike_strings_survive(backend_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [str(i) for i in range(len(TRICKY))], "v": TRICKY}, dtype=STRING)
    replace_table(backend_url, "cm_tricky",
                  [TableColumn("id", "integer", nullable=False, primary_key=True), TableColumn("v", "text")],
                  [frame])
    sql = tmp_path / "tricky.sql"
    sql.write_text("-- :unused in a comment is not a parameter\nSELECT id, v FROM cm_tricky ORDER BY id;\n")
    got = pd.concat(_extract(backend_url, sql, {}, rows=4)).reset_index(drop=True)
    assert got["v"].isna().tolist() == [v is None for v in TRICKY]
    assert got["v"].tolist()[1:] == TRICKY[1:]
    pd.testing.assert_frame_equal(got, frame)


def test_partitions_larger_than_a_driver_fetch_are_cut_exactly(backend_url: str, tmp_path: Path) -> None:
    """The cursor path reads the driver 5,000 rows at a time and cuts partitions from the Arrow batches:
    a partition spans several fetches, and a fetch several partitions, with every row in order once."""
    n = 27_001
    frame = pd.DataFrame({"id": [str(i) for i in range(n)], "v": [f"v{i * 7919 % n}" for i in range(n)]},
                         dtype=STRING)
    replace_table(backend_url, "cm_many", [TableColumn("id", "integer", nullable=False, primary_key=True),
                                           TableColumn("v", "text")], [frame])
    sql = tmp_path / "many.sql"
    sql.write_text("SELECT id, v FROM cm_many ORDER BY id")
    parts = _extract(backend_url, sql, {}, rows=12_000)
    assert [len(p) for p in parts] == [12_000, 12_000, 3_001]
    got = pd.concat(parts)
    assert list(got.index) == list(range(n))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), frame)


@pytest.mark.mariadb
def test_mariadb_values_arrive_as_the_server_writes_them(mariadb_url: str, admin_execute: Callable[[str, str], None],
                                                        tmp_path: Path) -> None:
    """Dates, times and decimals are the server's text, as PostgreSQL's COPY gives them (the driver's
    Python objects turned a TIME into ``3:04:05`` and dropped a DATETIME(6)'s zero fraction). The
    pooled connection reads typed values again afterwards."""
    admin_execute(mariadb_url, "DROP TABLE IF EXISTS cm_types")
    admin_execute(mariadb_url, "CREATE TABLE cm_types (id INT PRIMARY KEY, at DATETIME, at6 DATETIME(6), d DATE, "
                               "t TIME, amount DECIMAL(10,2), ratio DOUBLE, flag TINYINT(1), raw VARBINARY(8))")
    admin_execute(mariadb_url, "INSERT INTO cm_types VALUES (1, '2024-05-01 10:00:00', '2024-05-01 10:00:00', "
                               "'2024-05-01', '03:04:05', 12.5, 0.1, 1, 'ab'), "
                               "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    sql = tmp_path / "types.sql"
    sql.write_text("SELECT id, at, at6, d, t, amount, ratio, flag, raw FROM cm_types ORDER BY id")
    with open_source(mariadb_url) as source:
        got = pd.concat(list(stream_partitions(source, sql, {}, 10)))
        assert source.scalar("SELECT COUNT(*) FROM cm_types") == 2
    assert got.iloc[0].tolist() == ["1", "2024-05-01 10:00:00", "2024-05-01 10:00:00.000000", "2024-05-01",
                                    "03:04:05", "12.50", "0.1", "1", "ab"]
    assert got.iloc[1].tolist()[0] == "2" and got.iloc[1].isna().sum() == 8


@pytest.mark.mariadb
def test_a_mariadb_timestamp_arrives_in_utc_whatever_the_servers_zone(
        mariadb_url: str, admin_execute: Callable[[str, str], None], tmp_path: Path) -> None:
    """A TIMESTAMP is an instant, and MariaDB writes it in the session's zone: by default the server's
    own (``SYSTEM``), with no offset, which ``epoch`` reads as UTC (hours off on a server in Tokyo).
    The source session is UTC, as PostgreSQL's is; a DATETIME has no zone and comes as stored."""
    from pipeline.mapping import transforms

    admin_execute(mariadb_url, "DROP TABLE IF EXISTS cm_instants")
    admin_execute(mariadb_url, "CREATE TABLE cm_instants (id INT PRIMARY KEY, at TIMESTAMP NULL, wall DATETIME)")
    admin_execute(mariadb_url, "INSERT INTO cm_instants VALUES (1, FROM_UNIXTIME(1714525200), '2024-05-01 10:00:00')")
    sql = tmp_path / "instants.sql"
    sql.write_text("SELECT id, at, wall FROM cm_instants")
    with open_source(mariadb_url) as source:
        assert source.scalar("SELECT @@session.time_zone") == "+00:00"
        got = pd.concat(list(stream_partitions(source, sql, {}, 10)))
    assert got.iloc[0].tolist() == ["1", "2024-05-01 01:00:00", "2024-05-01 10:00:00"]
    assert transforms.epoch(got["at"]).tolist() == ["1714525200"]


@pytest.mark.parametrize(("backend", "limit", "sleep"), [
    pytest.param("postgresql", "ALTER ROLE {user} SET statement_timeout = '200ms'", "pg_sleep(0.6)::text",
                 marks=pytest.mark.postgres),
    pytest.param("mariadb", "ALTER USER {user} WITH MAX_STATEMENT_TIME 0.2", "SLEEP(0.6)", marks=pytest.mark.mariadb)])
def test_a_time_limit_the_role_sets_does_not_cut_the_extraction_short(
        backend: str, limit: str, sleep: str, request: pytest.FixtureRequest,
        admin_execute: Callable[[str, str], None], tmp_path: Path) -> None:
    """Production databases often cap their application role's statements (PostgreSQL's statement_timeout,
    MariaDB's max_statement_time): the tenant's one streaming query runs for as long as its rows take,
    and was cancelled mid-stream. The extraction's session lifts the cap, as pg_dump does; a limit the
    source URL sets itself still holds, and its error says where it comes from."""
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    user = f"cm_limited_{uuid.uuid4().hex[:8]}"
    name = user if backend == "postgresql" else f"'{user}'@'%'"
    u = urllib.parse.urlsplit(url)
    limited = u._replace(netloc=f"{user}@{u.hostname}:{u.port}").geturl()
    if backend == "postgresql":
        admin_execute(url, f"CREATE ROLE {user} LOGIN")
    else:
        admin_execute(url, f"CREATE USER {name}")
        admin_execute(url, f"GRANT SELECT ON `{u.path.lstrip('/')}`.* TO {name}")
    sql = tmp_path / "slow.sql"
    sql.write_text(f"SELECT 1 AS id, {sleep} AS slept")
    try:
        admin_execute(url, limit.format(user=name))
        assert len(pd.concat(_extract(limited, sql, {}))) == 1
        if backend == "postgresql":
            own = limited + "?options=" + urllib.parse.quote("-c statement_timeout=200ms")
            with pytest.raises(ExtractError, match="a time limit that LEGACY_DB_URL sets"):
                _extract(own, sql, {})
    finally:
        admin_execute(url, f"DROP ROLE {user}" if backend == "postgresql" else f"DROP USER {name}")


@pytest.mark.mariadb
@pytest.mark.parametrize("charset", ["utf8", "latin1", "utf8mb3"])
def test_a_url_naming_a_narrower_charset_still_reads_every_character(
        charset: str, mariadb_url: str, admin_execute: Callable[[str, str], None], tmp_path: Path) -> None:
    """Legacy applications' URLs often name ``charset=utf8`` (3-byte UTF-8) or ``latin1``: over such a
    connection the server sent an emoji or a rare CJK character as "?", and the name was imported so.
    The extraction reads utf8mb4 whatever the URL names; a latin1 column's text still arrives whole."""
    admin_execute(mariadb_url, "DROP TABLE IF EXISTS cm_charsets")
    admin_execute(mariadb_url, "CREATE TABLE cm_charsets (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, "
                               "city VARCHAR(40) CHARACTER SET latin1)")
    admin_execute(mariadb_url, "INSERT INTO cm_charsets VALUES (1, 'Ålice 😀 𠮷野', 'Zürich'), (2, 'Bob', NULL)")
    sql = tmp_path / "charsets.sql"
    sql.write_text("SELECT id, name, city FROM cm_charsets ORDER BY id")
    got = pd.concat(_extract(f"{mariadb_url}?charset={charset}", sql, {}))
    assert got.iloc[0].tolist() == ["1", "Ålice 😀 𠮷野", "Zürich"]


@pytest.mark.mariadb
def test_a_server_without_a_statement_time_limit_is_read_as_it_is(
        mariadb_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MySQL before 5.7.8 has no max_execution_time to lift: this MariaDB server, taken for such a MySQL,
    refuses the variable (error 1193), and the extraction goes on."""
    import pymysql

    monkeypatch.setattr(pymysql.connections.Connection, "get_server_info", lambda self: "5.6.51-log")
    sql = tmp_path / "one.sql"
    sql.write_text("SELECT 1 AS id, @@session.time_zone AS tz")
    assert pd.concat(_extract(mariadb_url, sql, {})).iloc[0].tolist() == ["1", "+00:00"]


@pytest.mark.postgres
def test_a_timestamptz_birthdate_keeps_its_local_day_with_the_zone(
        pg_url: str, admin_execute: Callable[[str, str], None], tmp_path: Path) -> None:
    """A birthdate kept as local midnight in Tokyo, as PostgreSQL writes it to the source session (UTC):
    the day before, unless the date transform is given the zone."""
    from pipeline.mapping import transforms

    admin_execute(pg_url, "DROP TABLE IF EXISTS cm_births")
    admin_execute(pg_url, "CREATE TABLE cm_births (id int PRIMARY KEY, born timestamptz)")
    admin_execute(pg_url, "INSERT INTO cm_births VALUES (1, '1990-01-31 00:00:00+09')")
    sql = tmp_path / "births.sql"
    sql.write_text("SELECT id, born FROM cm_births")
    got = pd.concat(_extract(pg_url, sql, {}))
    assert got["born"].tolist() == ["1990-01-30 15:00:00+00"]
    assert transforms.date(got["born"]).tolist() == ["01/30/1990"]
    assert transforms.date(got["born"], zone="Asia/Tokyo").tolist() == ["01/31/1990"]


@pytest.mark.parametrize("first", ["\ufeffJohn", "\ufeff", "\uf000x"])
def test_a_byte_order_mark_opening_the_first_value_is_kept(backend_url: str, tmp_path: Path, first: str) -> None:
    """Arrow's CSV reader drops a byte order mark (U+FEFF) at the start of its input, which on the COPY
    path is the first row's first value: that one value lost its first character (and an all-BOM value
    became NULL) while every other row kept it, as the cursor paths do."""
    replace_table(backend_url, "cm_bom", [TableColumn("name", "text"), TableColumn("id", "integer")],
                  [pd.DataFrame({"name": [first, "\ufeffJane"], "id": ["1", "2"]})])
    sql = tmp_path / "bom.sql"
    sql.write_text("SELECT name, id FROM cm_bom ORDER BY id")
    got = pd.concat(_extract(backend_url, sql, {}))
    assert got["name"].tolist() == [first, "\ufeffJane"] and got["id"].tolist() == ["1", "2"]


@pytest.mark.postgres
def test_a_postgresql_date_before_the_common_era_is_not_read_as_one_of_ours(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL writes a BC date with " BC" after it; ``date`` made 03/15/0044 (AD) of it, a valid
    birthdate. It is left for validation now (invalid_birthdate)."""
    from pipeline.mapping import transforms

    sql = tmp_path / "bc.sql"
    sql.write_text("SELECT 1 AS id, '0044-03-15 BC'::date AS d, '0044-03-15 10:00:00+09 BC'::timestamptz AS at")
    got = pd.concat(_extract(pg_url, sql, {}))
    assert got.iloc[0].tolist() == ["1", "0044-03-15 BC", "0044-03-15 01:00:00+00 BC"]
    assert transforms.date(got["d"]).tolist() == ["0044-03-15 BC"]
    assert transforms.date(got["at"], zone="Asia/Tokyo").tolist() == ["0044-03-15 01:00:00+00 BC"]


@pytest.mark.parametrize(("backend", "column"), [
    pytest.param("postgresql", "BIT(1)", marks=pytest.mark.postgres),
    pytest.param("mariadb", "BIT(1)", marks=pytest.mark.mariadb)])
def test_a_bit_column_arrives_as_1_or_0_and_reads_as_a_boolean(
        backend: str, column: str, request: pytest.FixtureRequest, admin_execute: Callable[[str, str], None],
        tmp_path: Path) -> None:
    """``BIT(1)`` is how MySQL schemas hold a flag such as ``is_active``; PyMySQL gave its raw byte
    (``\\x01``), which matched no ``active_values: ["1"]`` and no boolean encoding, so every user was
    rejected. Both servers now give ``1``/``0``; a wider MySQL ``BIT`` gives its number (``col+0``)."""
    from pipeline.mapping import transforms

    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    wide = "BIT(8)" if backend == "mariadb" else "INT"
    admin_execute(url, "DROP TABLE IF EXISTS cm_bits")
    admin_execute(url, f"CREATE TABLE cm_bits (id INT PRIMARY KEY, active {column}, flags {wide})")
    admin_execute(url, "INSERT INTO cm_bits VALUES (1, B'1', 5), (2, B'0', 0), (3, NULL, NULL)")
    sql = tmp_path / "bits.sql"
    sql.write_text("SELECT id, active, flags FROM cm_bits ORDER BY id")
    got = pd.concat(_extract(url, sql, {}))
    assert got["active"].tolist()[:2] == ["1", "0"] and got["active"].isna().tolist() == [False, False, True]
    assert got["flags"].tolist()[:2] == ["5", "0"]
    assert transforms.boolean(got["active"], default=False).tolist() == ["true", "false", "false"]


@pytest.mark.parametrize(("backend", "select", "written"), [
    pytest.param("postgresql", "SELECT 1 AS id, 'infinity'::timestamp AS at, '-infinity'::date AS d",
                 ["infinity", "-infinity"], marks=pytest.mark.postgres),
    pytest.param("mariadb", "SELECT 1 AS id, CAST('0000-00-00 00:00:00' AS DATETIME) AS at, "
                 "CAST('0000-00-00' AS DATE) AS d", ["0000-00-00 00:00:00", "0000-00-00"], marks=pytest.mark.mariadb)])
def test_a_databases_no_date_arrives_as_the_text_the_date_transforms_drop(
        backend: str, select: str, written: list[str], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """PostgreSQL's ``infinity``/``-infinity`` and MySQL's zero date, as each server writes them, are no
    value after ``epoch`` and ``date`` (they rejected the user as a non-integer or impossible date)."""
    from pipeline.mapping import transforms

    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    sql = tmp_path / "no_date.sql"
    sql.write_text(select)
    got = pd.concat(_extract(url, sql, {}))
    assert got.iloc[0].tolist()[1:] == written
    assert transforms.epoch(got["at"]).isna().all() and transforms.date(got["d"]).isna().all()


@pytest.mark.parametrize(("backend", "select"), [
    pytest.param("postgresql", "SELECT 1 AS id, 1700000000.250::numeric(14,3) AS d, 1700000000.75::float8 AS f, "
                 "1700000000999.5::float8 AS ms", marks=pytest.mark.postgres),
    pytest.param("mariadb", "SELECT 1 AS id, CAST(1700000000.250 AS DECIMAL(14,3)) AS d, "
                 "CAST(1700000000.75 AS DOUBLE) AS f, CAST(1700000000999.5 AS DOUBLE) AS ms",
                 marks=pytest.mark.mariadb),
    ("sqlite", "SELECT 1 AS id, 1700000000.25 AS d, 1700000000.75 AS f, 1700000000999.5 AS ms")])
def test_an_epoch_kept_with_a_fraction_reads_as_its_whole_seconds(
        backend: str, select: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """An epoch in a DECIMAL, a DOUBLE or a REAL (PHP's microtime(true), Python's time.time()), as each
    database writes it, is floored to its seconds by ``epoch`` (it rejected the user as not an integer)."""
    from pipeline.mapping import transforms

    url = request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}[backend])
    if backend == "sqlite":
        sqlite3.connect(url.removeprefix("sqlite:///")).close()     # the source opens an existing file only
    sql = tmp_path / "fraction.sql"
    sql.write_text(select)
    got = pd.concat(_extract(url, sql, {}))
    assert got["d"].str.contains(".", regex=False).all() and got["f"].str.contains(".", regex=False).all()
    assert transforms.epoch(got["d"]).tolist() == transforms.epoch(got["f"]).tolist() == ["1700000000"]
    assert transforms.epoch(got["ms"], unit="ms").tolist() == ["1700000000"]


@pytest.mark.parametrize(("backend", "select"), [
    pytest.param("postgresql", "SELECT 1 AS id, E'a\\x01b' AS v, E'\\x1b[2J' AS w, E'z\\x7f' AS x",   # no NUL in text
                 marks=pytest.mark.postgres),
    pytest.param("mariadb", "SELECT 1 AS id, CONVERT(CONCAT('a', CHAR(0), 'b') USING utf8mb4) AS v, "
                 "CONVERT(CONCAT(CHAR(27), '[2J') USING utf8mb4) AS w, "
                 "CONVERT(CONCAT('z', CHAR(127)) USING utf8mb4) AS x",
                 marks=pytest.mark.mariadb),
    ("sqlite", "SELECT 1 AS id, 'a' || char(0) || 'b' AS v, char(27) || '[2J' AS w, 'z' || char(127) AS x")])
def test_control_characters_arrive_whole_for_validation_to_reject(
        backend: str, select: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A NUL (where the database can hold one), an ESC and a DEL reach the mapped frame as stored, never
    cutting the value short: validation rejects them (``control_character``) instead of a shortened
    name going to Cognito."""
    from pipeline.validation import rules

    url = request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_demo"}[backend])
    sql = tmp_path / "controls.sql"
    sql.write_text(select)
    got = pd.concat(_extract(url, sql, {}))
    nul = "\x01" if backend == "postgresql" else "\x00"
    assert got.iloc[0].tolist() == ["1", f"a{nul}b", "\x1b[2J", "z\x7f"]
    assert [bool(rules.no_control_characters(got[c].astype(STRING))[0]) for c in ("v", "w", "x")] == [False] * 3


@pytest.mark.mariadb
def test_utf8_stored_in_a_latin1_column_is_found_and_fixed(mariadb_url: str, admin_execute: Callable[[str, str], None],
                                                          tmp_path: Path) -> None:
    """The classic MySQL double encoding: an application wrote UTF-8 bytes into a ``latin1`` column.
    The server hands the value over as the Latin-1 characters it holds (``MÃ¼ller``); validation finds
    it, and the ``fix_mojibake`` transform reads it as it was written."""
    from pipeline.mapping import transforms
    from pipeline.validation import rules

    admin_execute(mariadb_url, "DROP TABLE IF EXISTS cm_latin1")
    admin_execute(mariadb_url, "CREATE TABLE cm_latin1 (id INT PRIMARY KEY, v VARCHAR(40) CHARACTER SET latin1)")
    written = ["Müller", "José", "it’s", "Ærø"]
    for i, text in enumerate(written[:3], 1):   # UTF-8 bytes through a latin1 column: double-encoded
        stored = f"CONVERT(x'{text.encode().hex()}' USING latin1)"
        admin_execute(mariadb_url, f"INSERT INTO cm_latin1 VALUES ({i}, {stored})")
    admin_execute(mariadb_url, "INSERT INTO cm_latin1 VALUES (4, 'Ærø')")   # text the server converts: fine
    sql = tmp_path / "latin1.sql"
    sql.write_text("SELECT id, v FROM cm_latin1 ORDER BY id")
    got = pd.concat(_extract(mariadb_url, sql, {}))["v"].astype(STRING)
    assert got.tolist() == ["MÃ¼ller", "JosÃ©", "itâ€™s", "Ærø"]
    assert rules.not_double_encoded(got).tolist() == [False, False, False, True]
    assert transforms.fix_mojibake(got).tolist() == written


# Latin-1 "Müller" as a legacy application wrote it, beside UTF-8 text, NULL, ASCII and ''.
STORED = [b"M\xfcller", "日本語".encode(), None, b"ok", b""]
READ = ["M\ufffdller", "日本語", None, "ok", ""]


def _store_bytes(backend: str, request: pytest.FixtureRequest) -> str:
    """A table ``cm_bytes(id, v)`` holding ``STORED`` as text (SQLite, a SQL_ASCII PostgreSQL) or as
    binary (MariaDB, whose text columns the server keeps valid); the URL to read it from."""
    if backend == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute("DROP TABLE IF EXISTS cm_bytes")
            conn.execute("CREATE TABLE cm_bytes (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO cm_bytes VALUES (?, CAST(? AS TEXT))", enumerate(STORED, 1))
        return url
    url = request.getfixturevalue("pg_sql_ascii_url" if backend == "postgresql" else "mariadb_url")
    execute = request.getfixturevalue("admin_execute")
    execute(url, "DROP TABLE IF EXISTS cm_bytes")
    pg = backend == "postgresql"
    execute(url, f"CREATE TABLE cm_bytes (id INTEGER PRIMARY KEY, v {'TEXT' if pg else 'VARBINARY(32)'})")
    for i, value in enumerate(STORED, 1):
        if value is None:
            literal = "NULL"
        else:   # PostgreSQL: an escaped string, any bytes in SQL_ASCII; MariaDB: a hex literal
            literal = "E'" + "".join(f"\\x{b:02x}" for b in value) + "'" if pg else f"x'{value.hex()}'"
        execute(url, f"INSERT INTO cm_bytes VALUES ({i}, {literal})")
    return url


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mariadb", marks=pytest.mark.mariadb), "sqlite"])
def test_bytes_that_are_not_utf8_are_read_as_replacement_characters(backend: str, request: pytest.FixtureRequest,
                                                                    tmp_path: Path) -> None:
    """A value whose stored bytes are not UTF-8 stops nothing: it is read with U+FFFD (which validation
    rejects, ``undecodable_text``) and every other row as stored. SQLite's own decoding used to stop
    the tenant printing the value; a SQL_ASCII PostgreSQL refused to send it as UTF8. The pooled
    connection then reads as before."""
    url = _store_bytes(backend, request)
    sql = tmp_path / "bytes.sql"
    sql.write_text("SELECT id, v FROM cm_bytes ORDER BY id")
    with open_source(url) as source:
        got = pd.concat(list(stream_partitions(source, sql, {}, 3)))
        assert (got.dtypes == STRING).all()
        assert [None if pd.isna(v) else v for v in got["v"]] == READ
        if backend == "postgresql":
            assert source.scalar("SHOW client_encoding") == "UTF8"
        else:    # the driver's own types again: SQLite's text is str, MariaDB's binary bytes
            assert source.scalar("SELECT v FROM cm_bytes WHERE id = 4") == ("ok" if backend == "sqlite" else b"ok")


def test_missing_sql_file_names_the_file(sqlite_demo: str, tmp_path: Path) -> None:
    with open_source(sqlite_demo) as source, pytest.raises(ExtractError, match="nowhere.sql"):
        stream_partitions(source, tmp_path / "nowhere.sql", {"tenant": "acme-jp"})


def test_missing_parameter_is_named_before_anything_runs(sqlite_demo: str) -> None:
    with open_source(sqlite_demo) as source, pytest.raises(ExtractError) as caught:
        stream_partitions(source, USERS_SQL, {"tenat": "acme-jp"})
    assert ":tenant" in str(caught.value) and "users.sql" in str(caught.value)


def test_sql_errors_name_the_file(demo_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "typo.sql"
    sql.write_text("SELECT id, no_such_column FROM app_users WHERE tenant_code = :tenant")
    with pytest.raises(ExtractError, match="typo.sql.*no_such_column"):
        _extract(demo_url, sql, {"tenant": "acme-jp"})
    sql.write_text("SELECT id, id FROM app_users WHERE tenant_code = :tenant")
    with pytest.raises(ExtractError, match="more than once"):
        _extract(demo_url, sql, {"tenant": "acme-jp"})


@pytest.mark.postgres
def test_a_query_failing_on_a_rows_value_does_not_print_it(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL quotes the value a cast failed on: the message names the file and the type, with
    the value masked (it was a phone number or a name, printed in full)."""
    frame = pd.DataFrame({"id": ["1", "2"], "phone": ["0312345678", "070-3311-4687"]}, dtype=STRING)
    replace_table(pg_url, "cm_cast", [TableColumn("id", "integer", nullable=False, primary_key=True),
                                      TableColumn("phone", "text")], [frame])
    sql = tmp_path / "cast.sql"
    sql.write_text("SELECT id, CAST(phone AS bigint) AS phone FROM cm_cast ORDER BY id")
    with pytest.raises(ExtractError) as caught:
        _extract(pg_url, sql, {})
    message = str(caught.value)
    assert "cast.sql" in message and 'invalid input syntax for type bigint: "0***"' in message
    assert "3311" not in message and "4687" not in message


@pytest.mark.postgres
def test_a_cast_failing_on_a_value_with_a_line_break_or_a_quote_does_not_print_it(pg_url: str,
                                                                                  tmp_path: Path) -> None:
    """Only the message's first line is shown: a value with a line break had no closing quote there, and
    its first line was printed as written; a quote inside a value ended the masked part early."""
    sql = tmp_path / "cast.sql"
    for value in ["taro.yamada@example.jp\nsecond line", 'O"Brien Yamadataro']:
        frame = pd.DataFrame({"id": ["1"], "name": [value]}, dtype=STRING)
        replace_table(pg_url, "cm_cast", [TableColumn("id", "integer", nullable=False, primary_key=True),
                                          TableColumn("name", "text")], [frame])
        sql.write_text("SELECT id, CAST(name AS integer) AS name FROM cm_cast ORDER BY id")
        with pytest.raises(ExtractError) as caught:
            _extract(pg_url, sql, {})
        message = str(caught.value)
        assert "invalid input syntax for type integer" in message
        assert "yamada" not in message.lower() and "Brien" not in message


def test_a_csv_parse_error_does_not_print_the_rows_text() -> None:
    """Arrow's CSV reader ends its parse errors with the offending row's text."""
    import pyarrow as pa

    from pipeline.extract import _frames

    def batches():
        yield ["id", "name"], None
        raise pa.ArrowInvalid("CSV parse error: Expected 2 columns, got 1: \"Yamada, Taro\" 090-1234-5678")

    with pytest.raises(ExtractError) as caught:
        list(_frames(batches(), 10, "users.sql"))
    message = str(caught.value)
    assert "users.sql" in message and "Expected 2 columns, got 1" in message
    assert "Yamada" not in message and "1234" not in message


def test_stopping_early_releases_the_connection(demo_url: str, demo_expected: pd.DataFrame) -> None:
    threads = threading.active_count()
    with open_source(demo_url) as source:
        parts = stream_partitions(source, USERS_SQL, {"tenant": "acme-jp"}, 5)
        assert len(next(parts)) == 5
        parts.close()                                    # cancels the COPY / drops the cursor
        again = list(stream_partitions(source, USERS_SQL, {"tenant": "acme-jp"}, 1000))
        assert len(again[0]) == int((demo_expected["tenant_code"] == "acme-jp").sum())
    assert threading.active_count() == threads


def test_strip_comments_keeps_quoted_text() -> None:
    sql = "SELECT '--not a comment', \"a/*b\" -- :x\nFROM t /* :y */ WHERE a = 'it''s' -- end"
    assert strip_comments(sql) == "SELECT '--not a comment', \"a/*b\" \nFROM t   WHERE a = 'it''s' "


@pytest.fixture(scope="session")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    from pipeline.demo import SHOWCASE_ROWS, create_sqlite_demo

    path = create_sqlite_demo(tmp_path_factory.mktemp("demo") / "demo.sqlite", n_per_tenant=SHOWCASE_ROWS)
    return f"sqlite:///{path}"


def test_a_partition_handed_out_is_the_only_holder_of_its_rows(backend_url: str, tmp_path: Path) -> None:
    """Once the caller lets a partition go, its rows are freed, though the generator waits for the next
    request: kept for the next partition's cut, they stayed alive beside the one being worked on."""
    import pyarrow as pa

    from pipeline.arrowtext import arrow

    n = 60_000
    frame = pd.DataFrame({"id": [str(i) for i in range(n)], "v": [f"{i:08d}" * 25 for i in range(n)]},
                         dtype=STRING)            # ~200 bytes a row: a 20,000-row partition is ~4 MB
    replace_table(backend_url, "cm_held", [TableColumn("id", "integer", nullable=False, primary_key=True),
                                           TableColumn("v", "text")], [frame])
    sql = tmp_path / "held.sql"
    sql.write_text("SELECT id, v FROM cm_held ORDER BY id")
    with open_source(backend_url) as source, closing(stream_partitions(source, sql, {}, 20_000)) as parts:
        first = next(parts)
        size = arrow(first["v"]).nbytes
        held = pa.total_allocated_bytes()
        del first
        freed = held - pa.total_allocated_bytes()
        assert freed > size // 2, (freed, size)    # all but the batch the next partition starts in
        assert sum(len(p) for p in parts) == n - 20_000


# -- memory stays flat ------------------------------------------------------------------------------

_CHILD = r"""
import sys
from pathlib import Path
from pipeline.db import open_source
from pipeline.extract import stream_partitions
url, sql, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with open_source(url) as source:
    rows = sum(len(p) for p in stream_partitions(source, sql, {"n": n}, 20_000))
print(rows, next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""

_WIDE = {
    # ~200 bytes a row: buffering 400k more rows would cost well over 100 MB
    "postgresql": "CREATE TABLE cm_wide AS SELECT g AS id, repeat(md5(g::text), 5) AS a, "
                  "md5((g * 7)::text) AS b FROM generate_series(1, 600000) AS g",
    "mariadb": "CREATE TABLE cm_wide (id INT PRIMARY KEY, a VARCHAR(200), b VARCHAR(40)) "
               "SELECT seq AS id, repeat(md5(seq), 5) AS a, md5(seq * 7) AS b FROM seq_1_to_600000",
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_memory_stays_flat_however_many_rows(backend: str, request: pytest.FixtureRequest,
                                             admin_execute: Callable[[str, str], None],
                                             tmp_path: Path) -> None:
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    admin_execute(url, "DROP TABLE IF EXISTS cm_wide")
    admin_execute(url, _WIDE[backend])
    sql = tmp_path / "wide.sql"
    sql.write_text("SELECT id, a, b FROM cm_wide WHERE id <= :n ORDER BY id")
    peak = {}
    for n in (200_000, 600_000):
        out = subprocess.run([sys.executable, "-c", _CHILD, url, str(sql), str(n)], capture_output=True,
                             text=True, check=True, timeout=120).stdout.split()
        assert int(out[0]) == n
        # VmHWM (KiB): this process's own peak. ru_maxrss would report at least the peak of the pytest
        # process it was started from (Linux keeps the larger at exec), whatever the extraction did.
        peak[n] = int(out[1]) // 1024
    assert peak[600_000] - peak[200_000] < 50, peak                   # buffered: +120 to +180 MB



_DIGITS = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL " \
          "SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"


def _stop_the_extraction(url: str, marker: str, how: str) -> None:
    """From another session, end (``terminate``) or cancel (``cancel``) the session whose query names ``marker``."""
    import psycopg2
    import pymysql

    u = urllib.parse.urlsplit(url)
    if u.scheme.startswith("postgresql"):
        conn = psycopg2.connect(host=u.hostname, port=u.port or 5432, user=u.username, dbname=u.path.lstrip("/"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SELECT pg_{how}_backend(pid) FROM pg_stat_activity WHERE query LIKE %s "
                        "AND pid <> pg_backend_pid()", (f"%{marker}%",))
            assert cur.fetchall() == [(True,)]
    else:
        conn = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username, password=u.password or "",
                               database=u.path.lstrip("/"), autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE info LIKE %s AND id <> CONNECTION_ID()",
                        (f"%{marker}%",))
            (session,), = cur.fetchall()
            cur.execute(f"KILL {'QUERY ' if how == 'cancel' else ''}{int(session)}")
    conn.close()


@pytest.mark.parametrize("how", ["terminate", "cancel"])
@pytest.mark.parametrize(("backend", "sleep"), [
    pytest.param("postgresql", "pg_sleep(0.0005)::text", marks=pytest.mark.postgres),
    pytest.param("mariadb", "SLEEP(0.0005)", marks=pytest.mark.mariadb)])
def test_a_session_ended_from_outside_mid_stream_says_to_rerun_not_to_fix_the_sql(
        backend: str, sleep: str, how: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The server restarting, a DBA's pg_terminate_backend or KILL, a standby cancelling the query: the read
    stops half way. It fails (no rows are lost in silence), and said 'Fix the SQL file, or the database it
    reads' after 'server closed the connection unexpectedly' or 'Query execution was interrupted'."""
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    marker = f"cm_stopped_{uuid.uuid4().hex[:8]}"
    sql = tmp_path / "many.sql"
    # 10,000 rows of 1 KB (Arrow reads 1 MB blocks), 5 s in all
    sql.write_text(f"SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS id, '{marker}' AS tag, {sleep} AS slept, "
                   f"REPEAT('x', 1000) AS pad FROM {_DIGITS} a, {_DIGITS} b, {_DIGITS} c, {_DIGITS} e")
    with open_source(url) as source, closing(stream_partitions(source, sql, {}, 1000)) as parts:
        assert len(next(parts)) == 1000
        _stop_the_extraction(url, marker, how)
        with pytest.raises(ExtractError) as caught:
            for _ in parts:
                pass
    message = str(caught.value)
    assert "many.sql" in message and "Fix the SQL" not in message
    assert "while the rows streamed" in message and "rerun" in message, message


@pytest.mark.postgres
def test_a_session_ended_mid_copy_prints_no_traceback(pg_url: str, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """psycopg2, its COPY's connection ended by the server, prints a traceback of its own (AdminShutdown,
    then 'SystemError: <function decode> returned a result with an exception set') before it raises the
    error: the one-line message came after the traceback of the copying thread."""
    marker = f"cm_ended_{uuid.uuid4().hex[:8]}"
    sql = tmp_path / "many.sql"
    sql.write_text(f"SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS id, '{marker}' AS tag, "
                   f"pg_sleep(0.0005)::text AS slept, REPEAT('x', 1000) AS pad "
                   f"FROM {_DIGITS} a, {_DIGITS} b, {_DIGITS} c, {_DIGITS} e")
    with open_source(pg_url) as source, closing(stream_partitions(source, sql, {}, 1000)) as parts:
        assert len(next(parts)) == 1000
        _stop_the_extraction(pg_url, marker, "terminate")
        with pytest.raises(ExtractError, match="while the rows streamed"):
            for _ in parts:
                pass
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out and "SystemError" not in printed.err + printed.out


@pytest.mark.parametrize("ids, repeated", [
    (["1", "2", "3"], 0),
    (["7", "7"], 1),
    (["1", "1", "1", "2", "3", "3", "4"], 2),     # a value seen three times counts once
    (["4", "3", "3", "2", "1", "1", "1"], 2),
])
def test_the_primary_key_check_counts_each_repeated_value_once(tmp_path, ids: list[str], repeated: int) -> None:
    from types import SimpleNamespace

    import numpy as np

    from pipeline.arrowtext import key_hashes
    from pipeline.plan import _PrimaryKeys

    keys = _PrimaryKeys(SimpleNamespace(primary_key="id", tenant="acme"), tmp_path / "users.sql")  # type: ignore[arg-type]
    half = len(ids) // 2        # two partitions: a repeat may straddle them
    for part in (ids[:half], ids[half:]):
        keys.add(pd.DataFrame({"id": pd.Series(part, dtype=pd.StringDtype("pyarrow"))}))
    if not repeated:
        assert np.array_equal(keys.check_unique(), np.sort(key_hashes(pd.Series(ids))))
        return
    with pytest.raises(ExtractError, match=f": {repeated} value\\(s\\) appear more than once"):
        keys.check_unique()
