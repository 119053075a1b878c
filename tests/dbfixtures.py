"""Real databases for tests: a private PostgreSQL and MariaDB database per test session, and SQLite.

Load with ``pytest_plugins = ["tests.dbfixtures"]`` in a test module (registered once per session, so
every module shares the same databases). Each database is named ``cm_test_<pid>_<random>`` and
dropped at the end, so parallel runs (pytest-xdist, other developers) never collide. Servers:
``CM_TEST_PG`` (default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``) and ``CM_TEST_MARIADB``
(default ``mysql+pymysql://root@127.0.0.1:3306/test``); an unreachable server skips its tests, unless
``CM_TEST_REQUIRE_SERVERS=1`` (as CI sets it): then they fail, so that a run without the servers
cannot pass for one that tested against them.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pandas as pd
import psycopg2
import pymysql
import pytest

from pipeline import demo

PG_ADMIN = os.environ.get("CM_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("CM_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")
BACKENDS = ("postgresql", "mariadb", "sqlite")
DEMO_PER_TENANT = demo.SHOWCASE_ROWS + 14       # every messy case, a few random rows, quick to load


def _name() -> str:
    return f"cm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _with_database(url: str, name: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()


def _pg_admin() -> psycopg2.extensions.connection:
    u = urllib.parse.urlsplit(PG_ADMIN)
    conn = psycopg2.connect(host=u.hostname, port=u.port or 5432, user=u.username, password=u.password,
                            dbname=u.path.lstrip("/"), connect_timeout=5)
    conn.autocommit = True
    return conn


def _mariadb_admin() -> pymysql.connections.Connection:
    u = urllib.parse.urlsplit(MARIADB_ADMIN)
    return pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.path.lstrip("/"), connect_timeout=5, autocommit=True)


def unreachable(reason: str) -> NoReturn:
    """Skip the test for a database server that is not running, or fail it where servers are required."""
    if os.environ.get("CM_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (CM_TEST_REQUIRE_SERVERS=1: the servers must run)", pytrace=False)
    pytest.skip(reason)


def _pg_database(encoding: str) -> Iterator[str]:
    try:
        admin = _pg_admin()
    except psycopg2.OperationalError as exc:
        unreachable(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    name = _name()
    locale = " LC_COLLATE 'C' LC_CTYPE 'C'" if encoding == "SQL_ASCII" else ""
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" ENCODING \'{encoding}\' TEMPLATE template0{locale}')
    try:
        yield _with_database(PG_ADMIN, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty, private PostgreSQL database (writable: use it to set up, not to extract)."""
    yield from _pg_database("UTF8")


@pytest.fixture(scope="session")
def pg_sql_ascii_url() -> Iterator[str]:
    """A private PostgreSQL database in SQL_ASCII, which stores any bytes as text (legacy systems')."""
    yield from _pg_database("SQL_ASCII")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of an empty, private MariaDB database (utf8mb4)."""
    try:
        admin = _mariadb_admin()
    except pymysql.err.OperationalError as exc:
        unreachable(f"MariaDB not reachable at {MARIADB_ADMIN}: {exc}")
    name = _name()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield _with_database(MARIADB_ADMIN, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "legacy.sqlite"
    return f"sqlite:///{path}"


@pytest.fixture(scope="session", params=[
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
    "sqlite",
])
def backend_url(request: pytest.FixtureRequest) -> str:
    """A writable URL of each backend in turn (the test runs once per backend)."""
    fixture = {"postgresql": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}[request.param]
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def demo_expected() -> pd.DataFrame:
    """The rows the demo databases hold, as ``pipeline.demo`` generates them."""
    return demo.generate(DEMO_PER_TENANT)


@pytest.fixture(scope="session")
def demo_url(backend_url: str, demo_expected: pd.DataFrame) -> str:
    """Each backend with ``app_users`` loaded from ``demo_expected`` (loaded once per session)."""
    written = demo.load_table(backend_url, len(demo_expected))
    assert written == len(demo_expected)
    return backend_url


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server's admin URL (for connection-failure tests; never written through)."""
    return PG_ADMIN


@pytest.fixture(scope="session")
def mariadb_admin_url() -> str:
    return MARIADB_ADMIN


def _execute(url: str, statement: str) -> None:
    u = urllib.parse.urlsplit(url)
    if u.scheme.startswith("postgresql"):
        conn = psycopg2.connect(host=u.hostname, port=u.port or 5432, user=u.username, password=u.password,
                                dbname=u.path.lstrip("/"))
        conn.autocommit = True
    else:
        conn = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username,
                               password=u.password or "", database=u.path.lstrip("/"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def admin_execute() -> Callable[[str, str], None]:
    """``admin_execute(url, statement)``: run one statement on a PostgreSQL or MariaDB URL, writable."""
    return _execute
