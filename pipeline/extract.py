"""Extract: one tenant's rows from a SQL file, streamed as string partitions (memory stays flat).

``stream_partitions`` reads ``sql/<file>.sql``, binds the parameters (``:tenant``) through the driver
and yields ``pd.DataFrame`` partitions whose columns are the SELECT's aliases, every one of dtype
``pd.StringDtype("pyarrow")``: SQL NULL is ``<NA>``, ``''`` stays ``''``, and no string ever becomes NA
because it looks like one (``"NULL"``, ``"n/a"``, ``"nan"`` are kept as written).

Two paths, one result:

* PostgreSQL (psycopg2): ``COPY (<query>) TO STDOUT WITH CSV HEADER`` streamed through a pipe into
  pyarrow's streaming CSV reader, every column read as string. This is the fast path: close to a raw
  ``psql \\copy``.
* MariaDB/MySQL and SQLite: a server-side cursor (``stream_results``, ``yield_per``) read with
  ``Result.partitions``; each value is turned into text below.

Text forms of non-string values (downstream parses with ``pd.to_datetime(format="mixed")``):

=============  ==================================  ===============================================
type           PostgreSQL (COPY, DateStyle ISO)    MariaDB / SQLite (driver value -> text)
=============  ==================================  ===============================================
integer        ``42``                              ``42``
date           ``1990-01-31``                      ``1990-01-31`` (SQLite: as stored)
timestamp      ``2020-01-31 08:05:00[.ffffff]``    ``2020-01-31 08:05:00[.ffffff]``
timestamptz    ``2020-01-31 08:05:00+00`` (UTC)    MariaDB TIMESTAMP: ``2020-01-31 08:05:00`` (UTC)
boolean        ``t`` / ``f``                       ``1`` / ``0`` (MariaDB: TINYINT(1) or BIT(1))
numeric        as PostgreSQL prints it             ``Decimal`` in fixed-point notation
bytes          ``\\x...`` hex                      decoded as UTF-8 (invalid bytes replaced)
text           UTF-8 (the server converts)         MariaDB: the server converts; SQLite: the
                                                   stored bytes decoded as UTF-8 (invalid
                                                   bytes replaced)
=============  ==================================  ===============================================

A value whose bytes are not UTF-8 is read with U+FFFD for each invalid sequence (never an error
that stops the tenant), and validation rejects it (``undecodable_text``): the row is counted, never
imported with the character lost.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import re
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.db import SourceDB
from pipeline.errors import ExtractError
from pipeline.masking import scrub_quoted

STRING = pd.StringDtype("pyarrow")
_TO_PANDAS = {pa.string(): STRING, pa.large_string(): STRING}.get
# ~1 MB: as fast as 4 MB here, ~70 MB less peak memory (measured at 1M rows). Just under glibc's mmap
# threshold (``cli._malloc_thresholds``, 1 MiB): each block Arrow reads from the COPY's pipe is a new
# bytes object, which at 1 MiB or more is a fresh mapping the kernel zeroes page by page (~30,000 page
# faults and ~0.15 s of system time at 1M rows); below it, the heap's freed blocks are reused.
_BLOCK_BYTES = (1 << 20) - (16 << 10)
# Rows fetched from a server-side cursor at a time: the driver's rows are Python objects (~1.5 KB a row
# of the demo table, tuples included), turned into Arrow before the next fetch; partitions are then cut
# from the Arrow batches.
_CURSOR_FETCH_ROWS = 5_000


def stream_partitions(source: SourceDB, sql_path: Path, params: Mapping[str, object],
                      partition_rows: int = 50_000) -> Generator[pd.DataFrame, None, None]:
    """Yield the rows of the query in ``sql_path`` as string frames of exactly ``partition_rows`` rows
    (the last one shorter).

    ``params`` binds the query's ``:name`` parameters; names the query does not use are ignored, a
    name it uses but ``params`` lacks is an ``ExtractError`` before anything runs. An empty result
    yields one empty frame that still has the query's columns. Each frame's index continues the
    previous one (row 0, 1, ... of the whole result). The SQL and connection errors are
    ``ExtractError`` naming the file.
    """
    if partition_rows < 1:
        raise ExtractError(f"{sql_path}: partition_rows must be at least 1, got {partition_rows}")
    sql = read_query(sql_path)
    needed = source.bind_names(sql)
    missing = sorted(needed - set(params))
    if missing:
        raise ExtractError(f"{sql_path}: the query uses {', '.join(':' + m for m in missing)} but no value "
                           f"was given for it. Give the parameter a value (the mapping's params), or "
                           f"remove it from the SQL file.")
    bound = {k: v for k, v in params.items() if k in needed}
    origin = str(sql_path)
    if source.copy_supported:
        return _frames(_copy_batches(source, sql, bound, origin), partition_rows, origin)
    return _frames(_cursor_batches(source, sql, bound, partition_rows, origin), partition_rows, origin)


def read_query(sql_path: Path) -> str:
    """The text of a SQL file, without trailing ``;``; an ``ExtractError`` that says what to do if absent."""
    try:
        sql = Path(sql_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExtractError(f"{sql_path}: no such SQL file. Create it, or point the mapping's source.query "
                           f"(or MIGRATE_SQL_DIR) at an existing one.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(f"{sql_path}: cannot read the SQL file ({exc.__class__.__name__}: {exc}). "
                           f"Save it as UTF-8 text.") from None
    sql = strip_comments(sql).strip().rstrip(";").strip()
    if not sql:
        raise ExtractError(f"{sql_path}: the SQL file is empty. Write one SELECT statement in it.")
    return sql


def strip_comments(sql: str) -> str:
    """``sql`` without ``--`` and ``/* */`` comments (quoted text kept), so that a ``:name`` inside a
    comment is not taken for a parameter and a trailing comment cannot swallow ``COPY (...)``'s ``)``."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:   # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            out.append(" ")
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# -- PostgreSQL: COPY -> pyarrow ------------------------------------------------------------------

def _read_header(stream: IO[bytes]) -> list[str] | None:
    line = stream.readline()
    if not line:
        return None
    while line.count(b'"') % 2:           # a quoted alias with a newline in it
        more = stream.readline()
        if not more:
            break
        line += more
    return next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))


def _copy_batches(source: SourceDB, sql: str, params: dict[str, object],
                  origin: str) -> Iterator[tuple[list[str], pa.RecordBatch | None]]:
    with source.copy_csv(sql, params, origin) as (stream, raw):   # raw: a SQL_ASCII database's bytes
        names = _read_header(stream)
        if names is None:   # the COPY failed before its header: copy_csv raises the reason on exit
            return
        _check_names(names, origin)
        yield names, None
        if not stream.peek(1):  # type: ignore[attr-defined]
            return          # a header and no rows
        reader = pacsv.open_csv(
            _bom_kept(stream),
            read_options=pacsv.ReadOptions(column_names=names, block_size=_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() if raw else pa.string() for n in names}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
        for batch in reader:
            yield names, _decoded(batch) if raw else batch


_BOM = b"\xef\xbb\xbf"


class _Prefixed(io.RawIOBase):
    """``prefix``, then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix, self._stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._stream.readinto(buffer)  # type: ignore[attr-defined]


def _bom_kept(stream: IO[bytes]) -> IO[bytes]:
    """The rows after COPY's header, for Arrow's reader, which drops a byte order mark (U+FEFF) at the
    start of its input: there it is the first row's first value's own character. When the rows start
    with one (or may: the pipe gave fewer bytes), the reader is given one more to drop."""
    head = stream.peek(len(_BOM))[:len(_BOM)]  # type: ignore[attr-defined]
    if not _BOM.startswith(head):
        return stream
    head = stream.read(len(_BOM))
    return io.BufferedReader(_Prefixed(_BOM + head if head == _BOM else head, stream), _BLOCK_BYTES)


def _decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of binary columns as strings: Arrow's cast checks UTF-8; a column that holds a value that
    is not UTF-8 is decoded value by value, each invalid sequence read as U+FFFD (validation rejects
    those values: ``undecodable_text``)."""
    columns = []
    for column in batch.columns:
        try:
            columns.append(column.cast(pa.string()))
        except pa.ArrowInvalid:
            columns.append(pa.array([_text(v) for v in column.to_pylist()], type=pa.string()))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


# -- MariaDB / SQLite: server-side cursor ----------------------------------------------------------

def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _text_array(values: tuple[Any, ...]) -> pa.Array:
    """A column of driver values as strings: vectorised for text and integer columns."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    if all(type(v) is int or v is None for v in values):
        try:
            return pc.cast(pa.array(values, type=pa.int64()), pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
            pass
    return pa.array([_text(v) for v in values], type=pa.string())


def _cursor_batches(source: SourceDB, sql: str, params: dict[str, object], partition_rows: int,
                    origin: str) -> Iterator[tuple[list[str], pa.RecordBatch | None]]:
    checked = False
    for names, rows in source.stream_rows(sql, params, min(partition_rows, _CURSOR_FETCH_ROWS), origin):
        if not checked:
            _check_names(names, origin)
            checked = True
            yield names, None
        if rows:
            columns = list(zip(*rows, strict=True))
            yield names, pa.RecordBatch.from_arrays([_text_array(c) for c in columns], names=names)


# -- shared ---------------------------------------------------------------------------------------

def _check_names(names: list[str], origin: str) -> None:
    seen: set[str] = set()
    twice = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if twice:
        raise ExtractError(f"{origin}: the column(s) {', '.join(twice)} appear more than once; give every "
                           f"selected column its own alias.")


def _frame(batches: list[pa.RecordBatch], names: list[str], offset: int) -> pd.DataFrame:
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        table = pa.table({n: pa.array([], pa.string()) for n in names})
    frame = table.to_pandas(types_mapper=_TO_PANDAS)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


def _handed_over(pending: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The batches of ``pending``, which is left empty: a frame handed out is then the only holder of its
    rows. Kept in ``pending`` (or any name of the generator's) while it waited for the next request, they
    outlived the frame beside the next one being worked on."""
    taken = pending[:]
    pending.clear()
    return taken


def _frames(batches: Iterator[tuple[list[str], pa.RecordBatch | None]], partition_rows: int,
            origin: str) -> Generator[pd.DataFrame, None, None]:
    """Re-cut record batches into frames of exactly ``partition_rows`` rows."""
    names: list[str] | None = None
    pending: list[pa.RecordBatch] = []
    count = offset = 0
    try:
        for names, batch in batches:
            while batch is not None and batch.num_rows:
                take = min(partition_rows - count, batch.num_rows)
                pending.append(batch.slice(0, take))
                batch = batch.slice(take)
                count += take
                if count == partition_rows:
                    start, offset, count = offset, offset + count, 0
                    yield _frame(_handed_over(pending), names, start)
    except pa.ArrowInvalid as exc:
        # Arrow's parse errors end with the row's text ("Expected 16 columns, got 3: 1,acme,...")
        reason = re.sub(r"(got \d+):.*", r"\1", (str(exc).splitlines() or [""])[0])
        raise ExtractError(f"{origin}: cannot read the query's result as CSV: {scrub_quoted(reason)}. "
                           f"Report this with the SQL file.") from None
    finally:
        batches.close()  # type: ignore[attr-defined]
    if names is None:   # nothing came back at all (copy_csv raised its reason already)
        raise ExtractError(f"{origin}: the query returned no header; check that it is a SELECT.")
    if count or offset == 0:
        yield _frame(pending, names, offset)
