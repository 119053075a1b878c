"""The legacy database adapter: the only module that imports SQLAlchemy.

``open_source`` opens a connection that *cannot* write, whatever the SQL files say:

* PostgreSQL (``postgresql+psycopg2``): every transaction is read-only (connect option
  ``default_transaction_read_only=on``); DateStyle ISO and TimeZone UTC so dates and timestamps have one
  text form. Behind a pooler that refuses those connect options (PgBouncer: "unsupported startup
  parameter: options") or drops them (its ``ignore_startup_parameters = options``: the connection then
  shows the server's defaults, which ``open_source`` checks), the same settings open every transaction
  instead (``SET TRANSACTION READ ONLY``, ``SET LOCAL``), which holds in transaction pooling too
  (``SourceDB.through_pooler``).
* MariaDB / MySQL (``mysql+pymysql``, ``mariadb+pymysql``): ``SET SESSION TRANSACTION READ ONLY`` on
  every new connection; character set ``utf8mb4`` (``_MYSQL_WHOLE_CHARSETS``); time zone UTC (``+00:00``), so that
  a TIMESTAMP (an instant) is written in UTC, as PostgreSQL's timestamptz is, and not in the server's
  own zone (``SYSTEM``) without an offset, which the ``epoch`` transform would read as UTC: hours off on
  a server in Berlin or Tokyo. A DATETIME has no zone and is written as stored.
* PostgreSQL, MariaDB and MySQL: no statement time limit for the extraction's session
  (``_PG_NO_TIME_LIMIT``), whatever the server or role sets for its applications.
* SQLite: the file is opened with ``mode=ro`` through a URI, so the engine itself refuses writes.

A URL that names no driver gets the one this project installs (``postgresql://`` and ``postgres://``
as ``postgresql+psycopg2``, ``mysql://`` and ``mariadb://`` as ``+pymysql``): SQLAlchemy's own
defaults (psycopg 3, mysqlclient) are not installed, and libpq-style URLs are what people copy.

Every driver failure becomes an ``ExtractError`` whose message carries the URL with its password
replaced by ``***`` (``redact_url``) and says what to check. ``replace_table`` is the one writer; it is
for building demo and test databases, never for the source of a migration.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import sys
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from pipeline.errors import ExtractError
from pipeline.masking import scrub_quoted

_HINT = "Check LEGACY_DB_URL."
_RAW_AT_HINT = " Its password holds an @: write it as %40 in the URL."
_PIPE_BUFFER = 1 << 20


def _raw_password(text: str) -> str | None:
    """The password of a URL whose password holds a raw ``@``: everything between the user's ``:`` and
    the last ``@`` of the authority. URL parsers end it at the first ``@`` and read the rest as host."""
    authority = text.split("://", 1)[1].split("/", 1)[0] if "://" in text else ""
    if authority.count("@") < 2 or ":" not in authority.rsplit("@", 1)[0]:
        return None
    return authority.rsplit("@", 1)[0].split(":", 1)[1]


def redact_url(url: object) -> str:
    """``url`` with any password shown as ``***`` (in the userinfo part and in a ``password=`` query)."""
    text = str(url)
    raw = _raw_password(text)
    if raw:
        text = text.replace(":" + raw + "@", ":***@", 1)
    try:
        text = make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
    return re.sub(r"(?i)((?:password|passwd|pwd)=)[^&;\s]*", r"\1***", text)


def _secrets(url: str) -> list[str]:
    raw = _raw_password(url)
    if raw:     # each piece too: a driver names the part after the first @ as the host it tried, and the
        # URL parser a piece's part after a : as the port it could not read
        pieces = {raw, *raw.split("@"), *re.split("[@:]", raw)}
        return sorted({p for p in pieces if len(p) >= 2}, key=len, reverse=True)
    try:
        pw = make_url(url).password
    except (ArgumentError, ValueError):
        m = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        pw = m.group(1) if m else None
    return [s for s in {pw or "", urllib.parse.unquote(pw or "")} if len(s) >= 2]


def _short_reason(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The driver's own words, first line only (no SQL echo, no SQLAlchemy background link, no secret)."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):   # PyMySQL: (code, message)
        said = f"{args[1]} (error {args[0]})"      # not the tuple's repr, which quotes the whole message
    else:
        said = str(orig)
    lines = [ln.strip() for ln in said.strip().splitlines() if ln.strip()]
    text = (lines[0][:400].rstrip(".") if lines else "") or type(orig).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2",
                    "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def with_default_driver(url: str) -> str:
    """``url`` with the installed driver named when it names none (see the module docstring)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url                     # _engine reports it
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def _backend(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("postgresql", "sqlite"):
        return name
    raise ExtractError(f"{redact_url(url)}: unsupported database {name!r}; write a postgresql+psycopg2://, "
                       f"mysql+pymysql:// (MariaDB) or sqlite:/// URL. {_HINT}")


def _sqlite_creator(url: str, read_only: bool) -> Any:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ExtractError(f"{redact_url(url)}: an in-memory SQLite database has nothing to read; name a file, "
                           f"e.g. sqlite:///var/demo-legacy.sqlite. {_HINT}")
    path = Path(database).resolve()
    if read_only and not path.is_file():
        raise ExtractError(f"cannot open {redact_url(url)}: no such file {path}. Build the demo with `make demo` or "
                           f"{_HINT[0].lower()}{_HINT[1:]}")
    uri = f"file:{urllib.parse.quote(str(path))}" + ("?mode=ro" if read_only else "")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        if read_only:
            conn.execute("PRAGMA query_only = ON")
        return conn

    return connect


# A server, database or role may cap a statement's time (``ALTER ROLE app SET statement_timeout =
# '30s'``, common on production databases): the tenant's one streaming query, which runs for as long as
# its rows take (minutes for millions), was cancelled mid-stream ("canceling statement due to statement
# timeout"), and the message said to fix the SQL. The extraction lifts the cap for its own session, as
# pg_dump does; MariaDB's max_statement_time and MySQL's max_execution_time likewise (``_engine``).
# (statement_timeout only: idle_in_transaction_session_timeout cannot end a COPY, which is active while
# it streams, and naming it at connect would refuse servers before 9.6)
_PG_NO_TIME_LIMIT = "-c statement_timeout=0"
# The extraction's PostgreSQL session: ISO dates and UTC, so that dates and timestamps have one text form.
# Sent as connect options, or behind a pooler as statements opening each transaction, and read back by
# ``_check_connection``: a pooler that drops the connect options without a word would leave the server's
# defaults, such as DateStyle 'SQL, DMY', whose dates (31/01/1990) the transforms would not read as written.
_PG_SETTINGS = {"DateStyle": "ISO, YMD", "TimeZone": "UTC"}
_TIME_LIMIT = re.compile(r"statement timeout|max_statement_time|max_execution_time|maximum statement execution time")
# The session ended, or the query was stopped, from outside while its rows streamed: the server shut down or
# restarted, the network dropped, an administrator or a tool ended the session or its query
# (pg_terminate_backend, pg_cancel_backend, KILL, KILL QUERY), a standby cancelled it for its replication.
# Not a fault of the SQL file, which the message named; a rerun reads the tenant again from its start.
_STOPPED_FROM_OUTSIDE = re.compile(
    r"server closed the connection|terminating connection|could not receive data from server|"
    r"no connection to the server|connection already closed|no message from the libpq|SSL SYSCALL error|"
    r"SSL connection has been closed|"
    r"canceling statement due to (?:user request|conflict with recovery)|"
    r"Lost connection to (?:MySQL|MariaDB) server|server has gone away|Connection was killed|"
    r"Query execution was interrupted|Server shutdown in progress", re.IGNORECASE)


# Seconds a server has to answer a new connection. libpq has no limit of its own, and PyMySQL's
# connect_timeout covers the TCP connect but not the server's greeting: a port that accepts and never
# answers (a hung server, a firewall holding connections, a service that waits for its client to speak
# first, such as the local Cognito service's) hung the run for good, PostgreSQL's inside libpq where not
# even SIGTERM stopped it. A connect_timeout the URL names wins. MySQL's greeting is read under it, and the
# query then under no limit (one that sorts millions of rows may take minutes before its first row).
_CONNECT_TIMEOUT = 10


# The connection character sets that carry every character a column holds. Over any other, such as the
# ``charset=utf8`` (3-byte UTF-8) or ``charset=latin1`` that legacy applications' URLs often name, the
# server sends each character the set lacks as "?": an emoji or a rare CJK name arrived as "Ålice ?" and
# was imported so. Such a URL's charset is replaced by utf8mb4, which loses nothing and which the server
# converts every column's own charset into (``binary``, raw bytes, is kept: the extraction decodes them).
_MYSQL_WHOLE_CHARSETS = ("utf8mb4", "binary")


def _pg_transaction_settings(read_only: bool) -> list[str]:
    """What the startup options set, as statements that open each transaction (behind a pooler)."""
    return (["SET TRANSACTION READ ONLY"] if read_only else []) + [
        *(f"SET LOCAL {name} TO '{value}'" for name, value in _PG_SETTINGS.items()), "SET LOCAL statement_timeout = 0"]


def _pg_option(name: str, value: str) -> str:
    """``-c name=value`` for libpq's ``options``, which splits on spaces unless a backslash escapes one."""
    return f"-c {name}=" + value.replace(" ", "\\ ")


def _refused_startup_options(exc: BaseException) -> bool:
    """Whether a connection failed because something between us and PostgreSQL (PgBouncer before 1.20,
    or a later one for a setting it does not track) refused the ``options`` startup parameter."""
    return "unsupported startup parameter" in str(getattr(exc, "orig", None) or exc)


def _engine(url: str, *, read_only: bool, through_pooler: bool = False) -> tuple[Engine, str]:
    url = with_default_driver(url)
    try:
        backend = _backend(url)
        kwargs: dict[str, Any] = {"future": True}
        if backend == "sqlite":
            kwargs["creator"] = _sqlite_creator(url, read_only)
            engine = sa.create_engine("sqlite+pysqlite://", **kwargs)
        elif backend == "postgresql":
            parsed = make_url(url)
            options = str(parsed.query.get("options", ""))
            connect_args: dict[str, Any] = {"client_encoding": "UTF8"} if through_pooler else {}
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = _CONNECT_TIMEOUT
            if not through_pooler:
                # no time limit unless the URL's own options (after it, so they win) set one
                options = f"{_PG_NO_TIME_LIMIT} {options}"
                options += "".join(" " + _pg_option(name, value) for name, value in _PG_SETTINGS.items())
                options += " -c client_encoding=UTF8"
                if read_only:
                    options += " -c default_transaction_read_only=on"
            if options.strip():
                connect_args["options"] = options.strip()
            engine = sa.create_engine(parsed.difference_update_query(["options"]),
                                      connect_args=connect_args, **kwargs)
            if through_pooler:
                @sa.event.listens_for(engine, "begin")
                def _per_transaction(conn: Connection) -> None:
                    for statement in _pg_transaction_settings(read_only):
                        conn.exec_driver_sql(statement)
        else:
            parsed = make_url(url)
            if str(parsed.query.get("charset", "")).lower() not in _MYSQL_WHOLE_CHARSETS:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
            own_read_timeout = "read_timeout" in parsed.query
            greeting: dict[str, Any] = {} if own_read_timeout else {
                "read_timeout": int(str(parsed.query.get("connect_timeout", _CONNECT_TIMEOUT)))}
            engine = sa.create_engine(parsed, connect_args=greeting, **kwargs)

            @sa.event.listens_for(engine, "connect")
            def _session(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute("SET time_zone = '+00:00'")
                    mariadb = "mariadb" in str(dbapi_conn.get_server_info()).lower()
                    try:
                        cur.execute(f"SET SESSION {'max_statement_time' if mariadb else 'max_execution_time'} = 0")
                    except Exception as exc:   # noqa: BLE001 - the driver's error, checked below
                        if exc.args[:1] != (_MYSQL_UNKNOWN_VARIABLE,):
                            raise       # before MySQL 5.7.8 and MariaDB 10.1 there is no limit to lift
                    if read_only:
                        cur.execute("SET SESSION TRANSACTION READ ONLY")
                if not own_read_timeout and hasattr(dbapi_conn, "_read_timeout"):
                    dbapi_conn._read_timeout = None   # the greeting's limit (_CONNECT_TIMEOUT); the rows have none
    except ExtractError:
        raise
    except (ArgumentError, ValueError, ImportError, SQLAlchemyError) as exc:
        raise ExtractError(f"cannot use {redact_url(url)}: {_short_reason(exc, _secrets(url))}. "
                           f"{_HINT}{_RAW_AT_HINT if _raw_password(url) else ''}") from None
    return engine, backend


@dataclass(eq=False)
class SourceDB:
    """A read-only legacy database. Use as a context manager; ``close`` releases every connection."""

    engine: Engine
    backend: str            # "postgresql" | "mysql" | "sqlite"
    url: str                # redacted: safe to print
    _secrets: tuple[str, ...] = ()
    through_pooler: bool = False   # PostgreSQL behind a pooler: the session settings open each transaction

    def __enter__(self) -> SourceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # -- error shaping ---------------------------------------------------------------------------
    def _fail(self, exc: BaseException, origin: str | None, what: str) -> ExtractError:
        reason = scrub_quoted(_short_reason(exc, self._secrets))   # a failed cast quotes the row's value
        if _TIME_LIMIT.search(reason):
            what = ("The server stopped the query at a time limit that LEGACY_DB_URL sets (its options or "
                    "init_command; the server's and the role's own are lifted for the extraction): raise or "
                    "remove it, then rerun.")
        elif _STOPPED_FROM_OUTSIDE.search(reason):
            what = ("The connection was lost or the query stopped from outside while the rows streamed (the server "
                    "restarted or shut down, the network dropped, or another session ended this one or its query: "
                    "pg_terminate_backend, pg_cancel_backend, KILL); nothing of this read is used. The SQL file is not "
                    "at fault: rerun once the database is available.")
        if origin:
            return ExtractError(f"{origin}: the query failed on {self.url}: {reason}. {what}")
        return ExtractError(f"{self.url}: {reason}. {what}")

    # -- queries --------------------------------------------------------------------------------
    @staticmethod
    def bind_names(sql: str) -> set[str]:
        """The ``:name`` parameters a query text expects (SQLAlchemy ``text()`` rules)."""
        return set(sa.text(sql).compile().params)

    @staticmethod
    def statement(sql: str, params: Mapping[str, object]) -> sa.TextClause:
        """The query with each list parameter bound as a list of values: ``role IN :roles`` reads
        ``IN (?, ?)`` on every backend (before, only PyMySQL wrote a list so; psycopg2 wrote an ARRAY and
        sqlite3 refused it). Where the query takes the list as one PostgreSQL array, ``= ANY(:roles)``
        (or ``ALL``), it stays one."""
        lists = [name for name, value in params.items() if isinstance(value, list | tuple)
                 and not re.search(rf"\b(?:ANY|ALL|SOME)\s*\(\s*:{name}\b", sql, re.IGNORECASE)]
        return sa.text(sql).bindparams(*(sa.bindparam(name, expanding=True) for name in lists))

    def scalar(self, sql: str, params: Mapping[str, object] | None = None) -> object:
        """First column of the first row (``None`` if no row): for counts and small look-ups."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text(sql), dict(params or {})).scalar()
        except SQLAlchemyError as exc:
            raise self._fail(exc, None, "Fix the statement or the database.") from None

    def stream_rows(self, sql: str, params: Mapping[str, object], batch_rows: int,
                    origin: str | None = None) -> Iterator[tuple[list[str], Sequence[Sequence[Any]]]]:
        """Yield ``(column names, rows)`` ``batch_rows`` at a time from a server-side cursor. The rows
        are SQLAlchemy's, read as sequences (copying each into a tuple cost ~15% of a SQLite extraction).

        Always yields at least once, so an empty result still names its columns. The driver's Python
        values are returned as they come (``int``, ``float``, ``bytes``, ``str``...); on MariaDB and
        MySQL every value is the text the server sent (``_server_text``).
        """
        try:
            with self.engine.connect() as conn, _server_text(conn):
                result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                    self.statement(sql, params), dict(params))
                columns = list(result.keys())
                empty = True
                try:
                    for rows in result.partitions(batch_rows):
                        empty = False
                        yield columns, rows
                except GeneratorExit:
                    # Stopped early: drop the connection rather than let the driver read (and throw
                    # away) the rest of the result; tell pymysql's cursor not to try either.
                    pending = getattr(result.cursor, "_result", None) if result.cursor else None
                    if getattr(pending, "unbuffered_active", False):
                        pending.unbuffered_active = False  # type: ignore[union-attr]
                    conn.invalidate()
                    raise
                if empty:
                    yield columns, []
        except SQLAlchemyError as exc:
            raise self._fail(exc, origin, "Fix the SQL file, or the database it reads.") from None

    @contextmanager
    def copy_csv(self, sql: str, params: Mapping[str, object],
                 origin: str | None = None) -> Iterator[tuple[IO[bytes], bool]]:
        """PostgreSQL only: a readable stream of ``COPY (<sql>) TO STDOUT`` as CSV with a header, and
        whether its text values are the stored bytes rather than UTF-8.

        Parameters are bound by the driver (``cursor.mogrify``), never formatted into the text. The
        COPY runs in a thread writing into a pipe, so memory stays at one pipe buffer whatever the
        result size. NULL arrives as an unquoted empty field, ``''`` as ``""``. Leaving the block
        early cancels the query on the server.

        Stored bytes: a database whose encoding is SQL_ASCII (initdb's default under the C locale for
        years, common in legacy systems) holds whatever bytes its application wrote, often Latin-1,
        and refuses to send a value that is not UTF-8 as UTF8 ('invalid byte sequence for encoding
        "UTF8": 0xfc'), which stopped the whole tenant without naming a row. Its COPY runs with
        client encoding SQL_ASCII (no conversion; UTF8 again for the pooled connection's next user),
        and the extraction decodes the values (``extract._copy_batches``).
        """
        if not self.copy_supported:
            raise ExtractError(f"{self.url}: COPY needs postgresql+psycopg2.")
        compiled = self.statement(sql, params).bindparams(**dict(params)).compile(
            dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
        try:
            raw = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise self._fail(exc, origin, _HINT) from None
        pg = raw.driver_connection
        assert pg is not None
        raw_text = pg.get_parameter_status("server_encoding") == "SQL_ASCII"
        if raw_text:
            pg.set_client_encoding("SQL_ASCII")
        cursor = pg.cursor()
        try:
            bound = cursor.mogrify(compiled.string, compiled.params)
        except Exception as exc:  # noqa: BLE001 - a driver adaptation error of a bound value
            cursor.close()
            raw.close()
            raise ExtractError(f"{origin or 'query'}: cannot bind the parameters: {_short_reason(exc)}. "
                               f"Pass strings, numbers or dates.") from None
        query = bound.rstrip().rstrip(b";").rstrip()
        copy_sql = b"COPY (\n" + query + b"\n) TO STDOUT WITH (FORMAT csv, HEADER true)"
        if self.through_pooler:   # the COPY's transaction, on the driver's connection: no "begin" event
            copy_sql = ";\n".join(_pg_transaction_settings(read_only=True)).encode() + b";\n" + copy_sql
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb", buffering=_PIPE_BUFFER)
        writer = os.fdopen(write_fd, "wb", buffering=_PIPE_BUFFER)
        failure: list[BaseException] = []

        def pump() -> None:
            _quiet_copy_prints()
            _COPYING.active = True
            try:
                cursor.copy_expert(copy_sql, writer)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                failure.append(exc)
            finally:
                _COPYING.active = False
                try:
                    writer.close()
                except OSError:
                    pass

        thread = threading.Thread(target=pump, name="pg-copy", daemon=True)
        thread.start()
        cancelled = False
        try:
            yield reader, raw_text
        except BaseException:
            # A failure of the COPY is recorded before its pipe closes, so an empty ``failure`` here
            # means the reader stopped on its own (early close, parse error): stop the server too.
            if not failure and thread.is_alive():
                pg.cancel()
                cancelled = True
            raise
        finally:
            reader.close()
            thread.join()
            healthy = True
            try:
                cursor.close()
                pg.rollback()
                if raw_text:
                    pg.set_client_encoding("UTF8")
            except Exception:  # noqa: BLE001 - the connection is discarded instead
                healthy = False
            if healthy:
                raw.close()
            else:
                raw.invalidate()
            if failure and not cancelled:
                raise self._fail(failure[0], origin, "Fix the SQL file, or the database it reads.") from None

    @property
    def copy_supported(self) -> bool:
        return self.backend == "postgresql" and self.engine.dialect.driver == "psycopg2"


# psycopg2 (2.9), when the server ends a COPY's connection (pg_terminate_backend, a restart), decodes the
# server's message while its own error is already set, and prints that decoding's failure through
# sys.excepthook ("psycopg2.errors.AdminShutdown: terminating connection ... SystemError: <function decode>
# returned a result with an exception set") before it raises the error ``copy_csv`` reports. On the
# copying thread, that print is dropped; every other thread's uncaught errors still reach the hook.
_COPYING = threading.local()
_QUIET_LOCK = threading.Lock()


def _quiet_copy_prints() -> None:
    """Install, once, the ``sys.excepthook`` that drops what psycopg2 prints on a copying thread."""
    with _QUIET_LOCK:
        hook = sys.excepthook
        if getattr(hook, "quiet_copy", False):
            return

        def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
            if not getattr(_COPYING, "active", False):
                hook(kind, value, tb)

        excepthook.quiet_copy = True  # type: ignore[attr-defined]
        sys.excepthook = excepthook


@contextmanager
def _server_text(conn: Connection) -> Iterator[None]:
    """Read this connection's results as the database's own text, for the block; the pooled
    connection's next user gets the driver's settings back.

    * PyMySQL: a DATETIME stays ``2024-05-01 10:00:00`` and a DECIMAL ``12.50``, as COPY gives
      PostgreSQL's values, instead of being parsed into Python objects only to be written back as
      text (about a quarter of a MariaDB extraction's time, and a TIME's text changed on the way:
      ``3:04:05`` for ``03:04:05``). The driver's decoders are set aside (its encoders, for bound
      parameters, stay).
    * PyMySQL, ``BIT(n)``: the value's number as text (``b'1'`` is ``1``, ``b'101'`` is ``5``: MySQL's own
      ``col+0``), not its raw bytes. ``BIT(1)`` is how MySQL schemas (Hibernate's among them) hold a
      boolean such as ``is_active``; its bytes ``\\x01``/``\\x00`` matched no ``active_values: ["1"]``
      and no ``boolean`` encoding, so every user was rejected (as disabled, or as a bad boolean).
      PostgreSQL's COPY writes a ``bit(1)`` as ``1``/``0`` too.
    * SQLite: TEXT values come as the stored bytes (``text_factory = bytes``). SQLite does not check
      that they are UTF-8, and sqlite3's own decoding stops the whole query at the first value that
      is not ("Could not decode to UTF-8 column ... with text '<the value>'"), naming no row and
      printing the value; the extraction decodes them instead (``extract._text_array``), so that such
      a value ends as one rejected row."""
    raw: Any = conn.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection):
        factory = raw.text_factory
        raw.text_factory = bytes
        try:
            yield
        finally:
            raw.text_factory = factory
        return
    decoders = getattr(raw, "decoders", None) if conn.dialect.driver == "pymysql" else None
    if decoders is None:
        yield
        return
    raw.decoders = {_MYSQL_BIT: _bit_number}
    try:
        yield
    finally:
        raw.decoders = decoders


_MYSQL_BIT = 16   # pymysql.constants.FIELD_TYPE.BIT
_MYSQL_UNKNOWN_VARIABLE = 1193   # ER_UNKNOWN_SYSTEM_VARIABLE


def _bit_number(value: bytes) -> str:
    """A MySQL ``BIT(n)`` value (big-endian bytes) as its number in decimal text."""
    return str(int.from_bytes(value, "big"))


def open_source(url: str) -> SourceDB:
    """Connect read-only to ``url`` and check that the connection works (fails fast with a hint)."""
    if not url:
        raise ExtractError("no source database: set LEGACY_DB_URL, e.g. "
                           "postgresql+psycopg2://user@host/db")
    engine, backend = _engine(url, read_only=True)
    source = SourceDB(engine, backend, redact_url(url), tuple(_secrets(url)))
    try:
        try:
            settled = _check_connection(engine, backend)
        except SQLAlchemyError as exc:
            if backend != "postgresql" or not _refused_startup_options(exc):
                raise
            settled = False
        if not settled:
            # A pooler (PgBouncer) refused the settings sent at connect, or dropped them without a word
            # (its ignore_startup_parameters = options): send them with every transaction instead (SET
            # TRANSACTION READ ONLY, SET LOCAL ...), which also holds in transaction pooling.
            engine.dispose()
            engine, _ = _engine(url, read_only=True, through_pooler=True)
            source = SourceDB(engine, backend, source.url, source._secrets, through_pooler=True)
            if not _check_connection(engine, backend):
                engine.dispose()
                raise ExtractError(f"{source.url}: the session settings the extraction needs (read-only, "
                                   f"{', '.join(_PG_SETTINGS)}) do not hold on this connection, even set in each "
                                   "transaction. Connect to the database directly rather than through this "
                                   "pooler.")
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        engine.dispose()
        reason = _short_reason(exc, source._secrets)
        silent = (f" Nothing answered in time (connect_timeout, {_CONNECT_TIMEOUT} s unless the URL names one): check "
                  "the host and port, and that it is the database's." if re.search(r"timeout expired|timed out", reason)
                  else "")
        if backend == "sqlite" and reason in _SQLITE_BUSY:
            raise ExtractError(f"cannot read {source.url}: {reason}. {_SQLITE_BUSY[reason]}") from None
        raise ExtractError(f"cannot connect to {source.url}: {reason}.{silent} "
                           f"{_HINT}{_RAW_AT_HINT if _raw_password(url) else ''}") from None
    return source


# A SQLite file that another process is writing, or that a writer left half written, is not a mistake of
# LEGACY_DB_URL, which the message said to check. A hot journal (a ``-journal`` file a writer left when it
# crashed mid-transaction) is rolled back by the next writable connection; the extraction's is read-only,
# so SQLite refuses to read the file ("attempt to write a readonly database").
_SQLITE_BUSY = {
    "database is locked": "Another process holds a lock on the file (a write under way, for longer than "
                          "the 5 s the extraction waits): rerun once it is done, or read a copy of the file.",
    "attempt to write a readonly database": "A writer left the file half written (a hot -journal file beside "
                                            "it, from a crash mid-transaction), which a read-only connection "
                                            "cannot roll back: open the file once with the application or the "
                                            "sqlite3 shell (sqlite3 FILE 'PRAGMA quick_check'), which rolls it "
                                            "back, then rerun.",
}


def _check_connection(engine: Engine, backend: str) -> bool:
    """Whether a connection works (its error raised) and, on PostgreSQL, has the session settings."""
    with engine.connect() as conn:
        if backend == "sqlite":   # reads the file's header, which SELECT 1 does not: a file that is not a
            # database was named only by the tenant's query, as a fault of its SQL file
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            return True
        if backend != "postgresql":
            conn.exec_driver_sql("SELECT 1").scalar()
            return True
        shown = conn.exec_driver_sql(
            "SELECT current_setting('transaction_read_only'), "
            + ", ".join(f"current_setting('{name}')" for name in _PG_SETTINGS)).one()
    return list(shown) == ["on", *_PG_SETTINGS.values()]


# -- writing demo and test tables -----------------------------------------------------------------

@dataclass(frozen=True)
class TableColumn:
    """One column of a table ``replace_table`` creates. ``type``: integer, smallint, varchar(N), text,
    date or timestamp (DATETIME on MariaDB)."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False


def _sa_type(spec: str) -> Any:
    m = re.fullmatch(r"varchar\((\d+)\)", spec)
    if m:
        return sa.String(int(m.group(1)))
    types = {"integer": sa.Integer(), "smallint": sa.SmallInteger(), "text": sa.Text(), "date": sa.Date(),
             "timestamp": sa.DateTime()}
    if spec not in types:
        raise ValueError(f"unknown column type {spec!r}")
    return types[spec]


def replace_table(url: str, table: str, columns: Sequence[TableColumn],
                  frames: Iterable[pd.DataFrame]) -> int:
    """Drop and create ``table`` at ``url`` (a writable connection) and load ``frames`` into it.

    Frames hold the columns' text forms (``None``/NA for NULL); the database converts them to the
    declared types. PostgreSQL loads through ``COPY FROM STDIN`` (about a million rows in seconds),
    MariaDB and SQLite through ``executemany``. Returns the number of rows written.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", table):
        raise ValueError(f"table name {table!r}: use letters, digits and underscores")
    engine, backend = _engine(url, read_only=False)
    meta = sa.MetaData()
    target = sa.Table(table, meta, *[sa.Column(c.name, _sa_type(c.type), nullable=c.nullable,
                                               primary_key=c.primary_key, autoincrement=False)
                                     for c in columns],
                      mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci")
    names = [c.name for c in columns]
    total = 0
    try:
        with engine.begin() as conn:
            target.drop(conn, checkfirst=True)
            target.create(conn)
            for frame in frames:
                total += _write_frame(conn, backend, target, names, frame)
    except SQLAlchemyError as exc:
        raise ExtractError(f"cannot load {table} into {redact_url(url)}: "
                           f"{_short_reason(exc, _secrets(url))}. {_HINT}") from None
    finally:
        engine.dispose()
    return total


def _write_frame(conn: Connection, backend: str, table: sa.Table, names: list[str],
                 frame: pd.DataFrame) -> int:
    frame = frame[names]
    if not len(frame):
        return 0
    quote = conn.dialect.identifier_preparer.quote
    cols = ", ".join(quote(n) for n in names)
    if backend == "postgresql" and conn.dialect.driver == "psycopg2":
        arrow = pa.Table.from_pandas(frame.astype("string[pyarrow]"), preserve_index=False)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(arrow, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        buffer = io.BytesIO(sink.getvalue().to_pybytes())
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            cur.copy_expert(f"COPY {quote(table.name)} ({cols}) FROM STDIN WITH (FORMAT csv)", buffer)
        return len(frame)
    marker = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    sql = f"INSERT INTO {quote(table.name)} ({cols}) VALUES ({', '.join([marker] * len(names))})"
    rows = list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))
    with closing(conn.connection.driver_connection.cursor()) as cur:  # type: ignore[union-attr]
        for start in range(0, len(rows), 5000):
            cur.executemany(sql, rows[start:start + 5000])
    return len(frame)
