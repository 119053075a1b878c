"""The database adapter against real PostgreSQL, MariaDB and SQLite: read-only for real, no password leaks."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.db import TableColumn, open_source, redact_url, replace_table, with_default_driver
from pipeline.errors import ExtractError
from pipeline.extract import stream_partitions

pytest_plugins = ["tests.dbfixtures"]

SECRET = "Sup3r-s3cret-pw"


@pytest.mark.parametrize(("url", "expected"), [
    (f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/x",
     "postgresql+psycopg2://postgres:***@127.0.0.1:5432/x"),
    (f"mysql+pymysql://root:{SECRET}@db.internal/legacy?charset=utf8mb4",
     "mysql+pymysql://root:***@db.internal/legacy?charset=utf8mb4"),
    ("postgresql://postgres@127.0.0.1/x", "postgresql://postgres@127.0.0.1/x"),
    ("sqlite:////var/demo.sqlite", "sqlite:////var/demo.sqlite"),
    (f"postgresql://u@h/db?password={SECRET}&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    (f"not a url://u:{SECRET}@host", "not a url://u:***@host"),
    ("postgresql://app:Sup3r@s3cret@db.internal/x", "postgresql://app:***@db.internal/x"),   # a raw @
])
def test_redact_url_hides_only_the_password(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def _with_password(admin_url: str, database: str) -> str:
    scheme, rest = admin_url.split("://", 1)
    user, host_path = rest.split("@", 1)
    user = user.split(":", 1)[0]
    host = host_path.split("/", 1)[0]
    return f"{scheme}://{user}:{SECRET}@{host}/{database}"


@pytest.mark.postgres
def test_postgres_connect_error_is_redacted_and_says_what_to_check(pg_admin_url: str) -> None:
    url = _with_password(pg_admin_url, "cm_no_such_database")
    with pytest.raises(ExtractError) as caught:
        open_source(url)
    message = str(caught.value)
    assert SECRET not in message and "***" in message
    assert "cm_no_such_database" in message and "LEGACY_DB_URL" in message
    assert caught.value.__cause__ is None


@pytest.mark.mariadb
def test_mariadb_connect_error_is_redacted(mariadb_admin_url: str) -> None:
    with pytest.raises(ExtractError) as caught:
        open_source(_with_password(mariadb_admin_url, "cm_no_such_database"))
    message = str(caught.value)
    assert SECRET not in message and "***" in message and "LEGACY_DB_URL" in message


@pytest.mark.postgres
def test_query_error_on_a_connected_source_is_redacted(pg_url: str, tmp_path: Path) -> None:
    # trust authentication ignores the password, so this URL connects and carries a secret
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    sql = tmp_path / "broken.sql"
    sql.write_text("SELECT no_such_column FROM no_such_table WHERE a = :tenant")
    with open_source(url) as source, pytest.raises(ExtractError) as caught:
        list(stream_partitions(source, sql, {"tenant": "t"}))
    message = str(caught.value)
    assert SECRET not in message and "***" in message and str(sql) in message


@pytest.mark.postgres
def test_a_raw_at_in_the_password_leaks_no_part_of_it(pg_admin_url: str) -> None:
    scheme, rest = pg_admin_url.split("://", 1)
    url = f"{scheme}://postgres:Sup3r@s3cret-pw@{rest.split('@', 1)[1]}"   # the parser ends it at the first @
    with pytest.raises(ExtractError) as caught:
        open_source(url)
    message = str(caught.value)
    assert "Sup3r" not in message and "s3cret-pw" not in message
    assert "write it as %40" in message and "LEGACY_DB_URL" in message


def test_a_raw_at_and_colon_in_the_password_leak_no_part_of_it() -> None:
    # the URL parser reads "dor" as the host and "Horse99@127.0.0.1:5432" as a port it cannot read
    with pytest.raises(ExtractError) as caught:
        open_source("postgresql://postgres:Tr0ub@dor:Horse99@127.0.0.1:5432/x")
    message = str(caught.value)
    assert "Tr0ub" not in message and "Horse99" not in message
    assert "write it as %40" in message and "LEGACY_DB_URL" in message


def test_sqlite_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.sqlite"
    with pytest.raises(ExtractError, match="absent.sqlite"):
        open_source(f"sqlite:///{missing}")
    assert not missing.exists()          # opening read-only never creates the file


def test_a_file_that_is_not_a_sqlite_database_is_named_at_connect(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("id,email\n1,a@example.com\n")
    with pytest.raises(ExtractError) as caught:
        open_source(f"sqlite:///{path}")
    message = str(caught.value)
    assert message.startswith(f"cannot connect to sqlite:///{path}: file is not a database")
    assert "LEGACY_DB_URL" in message and "SQL file" not in message


@pytest.mark.parametrize("url", ["", "oracle://scott:tiger@h/db", "sqlite://", "sqlite+pysqlcipher://:tiger@/",
                                 "sqlite+pysqlcipher://:tiger@/absent.db"])   # SQLCipher's passphrase
def test_unusable_urls_are_extract_errors(url: str) -> None:
    with pytest.raises(ExtractError) as caught:
        open_source(url)
    assert "tiger" not in str(caught.value)


@pytest.mark.parametrize(("url", "expected"), [
    (f"postgresql://app:{SECRET}@db:5433/legacy?sslmode=require",
     f"postgresql+psycopg2://app:{SECRET}@db:5433/legacy?sslmode=require"),
    ("postgres://app@db/legacy", "postgresql+psycopg2://app@db/legacy"),
    ("mysql://root@db/legacy?charset=utf8mb4", "mysql+pymysql://root@db/legacy?charset=utf8mb4"),
    ("mariadb://root@db/legacy", "mariadb+pymysql://root@db/legacy"),
    ("postgresql+psycopg://app@db/legacy", "postgresql+psycopg://app@db/legacy"),   # named: kept
    ("sqlite:///legacy.db", "sqlite:///legacy.db"),
    ("not a url", "not a url"),
])
def test_a_url_without_a_driver_gets_the_installed_one(url: str, expected: str) -> None:
    assert with_default_driver(url) == expected


def test_driverless_urls_connect_and_stream(demo_url: str, demo_expected: pd.DataFrame) -> None:
    # SQLAlchemy's own default drivers for these schemes (psycopg 3, mysqlclient) are not installed
    scheme, rest = demo_url.split("://", 1)
    plain = {"postgresql+psycopg2": ["postgresql", "postgres"], "mysql+pymysql": ["mysql", "mariadb"]}
    for name in plain.get(scheme, [scheme]):    # SQLite's URL stays as it is
        with open_source(f"{name}://{rest}") as source:
            assert source.scalar("SELECT COUNT(*) FROM app_users") == len(demo_expected)
            assert source.copy_supported is name.startswith("postgres")


WRITES = [
    "UPDATE app_users SET login = 'hacked'",
    "DELETE FROM app_users",
    "INSERT INTO app_users (id, tenant_code, is_active, created_at, updated_at) "
    "VALUES (999999, 'x', 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00')",
    "CREATE TABLE cm_evil (a integer)",
    "DROP TABLE app_users",
]


def test_source_connection_refuses_every_write(demo_url: str, demo_expected: pd.DataFrame,
                                               tmp_path: Path) -> None:
    with open_source(demo_url) as source:
        for statement in WRITES:
            with pytest.raises(ExtractError):
                source.scalar(statement)
        sql = tmp_path / "delete.sql"   # a write smuggled in through a SQL file (COPY path on PostgreSQL)
        sql.write_text("DELETE FROM app_users WHERE tenant_code = :tenant RETURNING id")
        with pytest.raises(ExtractError, match="delete.sql"):
            list(stream_partitions(source, sql, {"tenant": "acme-jp"}))
        assert source.scalar("SELECT COUNT(*) FROM app_users") == len(demo_expected)
        assert source.scalar("SELECT COUNT(*) FROM app_users WHERE login = 'hacked'") == 0


def test_replace_table_round_trips_text_and_rejects_odd_names(backend_url: str) -> None:
    frame = pd.DataFrame({"id": ["1", "2"], "v": ["a", None]}, dtype="string[pyarrow]")
    cols = [TableColumn("id", "integer", nullable=False, primary_key=True), TableColumn("v", "varchar(10)")]
    assert replace_table(backend_url, "cm_small", cols, [frame, frame.iloc[:0]]) == 2
    assert replace_table(backend_url, "cm_small", cols, [frame]) == 2       # replaced, not appended
    with open_source(backend_url) as source:
        assert source.scalar("SELECT COUNT(*) FROM cm_small WHERE v IS NULL") == 1
        assert source.scalar("SELECT COUNT(*) FROM cm_small") == 2
    with pytest.raises(ValueError):
        replace_table(backend_url, "x; DROP TABLE app_users", cols, [frame])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port where something accepts connections and never says a word (a hung server, a firewall that
    holds connections, a service that waits for its client to speak first)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in [*held, listener]:
        conn.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "mysql+pymysql"])
def test_a_server_that_never_answers_is_named_after_the_connect_timeout(
        scheme: str, silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq has no connect timeout of its own, and PyMySQL's covers the TCP connect, not the server's
    greeting: a LEGACY_DB_URL whose port accepts and never answers hung the run for good (PostgreSQL's,
    inside libpq, not even stopped by SIGTERM)."""
    monkeypatch.setattr("pipeline.db._CONNECT_TIMEOUT", 1, raising=False)
    caught: list[BaseException] = []

    def connect() -> None:
        try:
            open_source(f"{scheme}://app:{SECRET}@127.0.0.1:{silent_port}/legacy").close()
        except BaseException as exc:  # noqa: BLE001 - looked at below
            caught.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "still waiting for a server that never answers"
    assert time.monotonic() - started < 10
    assert len(caught) == 1 and isinstance(caught[0], ExtractError), caught
    message = str(caught[0])
    assert message.startswith("cannot connect to") and "Check LEGACY_DB_URL" in message and SECRET not in message
    assert "Nothing answered in time" in message


@pytest.mark.mariadb
def test_a_query_slower_than_the_connect_timeout_still_runs(mariadb_url: str, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """The connect timeout bounds the server's greeting only, not the rows of a query that takes long to start."""
    monkeypatch.setattr("pipeline.db._CONNECT_TIMEOUT", 1, raising=False)
    sql = tmp_path / "slow.sql"
    sql.write_text("SELECT 1 AS id, SLEEP(1.5) AS slept")
    with open_source(mariadb_url) as source:
        got = pd.concat(list(stream_partitions(source, sql, {}, 10)))
    assert got.iloc[0].tolist() == ["1", "0"]


def _sqlite_with_rows(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, "x" * 500) for i in range(20_000)))
    conn.close()


@pytest.mark.parametrize("state", ["locked", "hot journal"])
def test_a_sqlite_file_locked_or_left_half_written_says_what_to_do(state: str, tmp_path: Path) -> None:
    """Another process writing the file (an exclusive lock), or a writer that crashed mid-transaction (a hot
    -journal that only a writable connection rolls back): both said 'Check LEGACY_DB_URL'."""
    path = tmp_path / "legacy.sqlite"
    _sqlite_with_rows(path)
    script = ("import sqlite3, sys, os, signal\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('PRAGMA cache_size=10')\n"     # dirty pages spill into the file before the commit
              "c.execute('BEGIN EXCLUSIVE')\n"
              "c.execute(\"UPDATE t SET pad = pad || 'y'\")\n"
              "print('held', flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL) if sys.argv[2] == 'hot journal' else sys.stdin.read()\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(path), state], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "held\n"
        writer.wait(5) if state == "hot journal" else None
        with pytest.raises(ExtractError) as caught:
            open_source(f"sqlite:///{path}")
    finally:
        writer.kill()
        writer.wait()
    message = str(caught.value)
    assert "Check LEGACY_DB_URL" not in message
    assert ("rerun once it is done" if state == "locked" else "sqlite3 FILE 'PRAGMA quick_check'") in message
