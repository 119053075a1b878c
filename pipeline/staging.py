"""The validated partitions of one plan, staged on disk until whole-tenant duplicates are resolved.

Arrow IPC, uncompressed: written and read back at memory speed. The staging is also the duplicate
tracker's ``RowSource`` (``pipeline.validation.duplicates``): row r of the tenant's valid rows is read
back from the part that holds it, so the tracker keeps no copy of legacy ids or key values.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from pipeline.arrowtext import empty_strings, is_blank

STRING = pd.StringDtype("pyarrow")


def _blank(column: pa.ChunkedArray) -> bool | None:
    """For a text column with no character in it: whether every value is null (True) or every value
    is the empty string (False). None for any other column, which is written as it is."""
    rows = len(column)
    if not rows or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    if column.null_count == rows:
        return True
    if column.null_count == 0 and all(is_blank(chunk) for chunk in column.chunks if len(chunk)):
        return False
    return None


def _blank_column(rows: int, null: bool) -> pa.Array:
    """``rows`` nulls, or ``rows`` empty strings, as a ``large_string`` column (pandas' own)."""
    return pa.nulls(rows, pa.large_string()) if null else empty_strings(rows)


def _as_string_dtype(arrow_type: pa.DataType) -> Any:
    return STRING if arrow_type in (pa.string(), pa.large_string()) else None


_UNOWNED_GRACE_S = 3600    # a staging without a lock file (an older version's) is left alone this long


def _lock_of(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


def claim(directory: Path) -> int:
    """Create ``directory`` for a plan that holds an exclusive lock on ``<directory>.lock`` (taken first,
    so no sweep ever sees the directory unlocked); return the lock's file descriptor.

    The lock lives as long as the descriptor, and the kernel drops it when the process ends however it
    ends (SIGKILL included): that is how ``sweep_abandoned`` tells a live plan's staging from a dead one's.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_of(directory), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    directory.mkdir(exist_ok=True)
    return fd


def release(directory: Path, fd: int) -> None:
    """Remove the staging and its lock file (the plan is done with it, or failed)."""
    shutil.rmtree(directory, ignore_errors=True)
    _lock_of(directory).unlink(missing_ok=True)
    os.close(fd)


def sweep_abandoned(tenant_dir: Path, also: tuple[str, ...] = ()) -> list[Path]:
    """Remove the staging directories (validated rows: PII) of the tenant's plans that died without
    removing their own (killed with SIGKILL, a power cut); return what was removed. ``also`` names
    directories beside such a staging that only a finished plan may keep (the import files a plan
    killed while writing them left): they are removed with it.

    A staging whose lock is held belongs to a live plan (a concurrent ``report``) and stays.
    """
    removed = []
    for staging in sorted(tenant_dir.glob("*/staging")) if tenant_dir.is_dir() else []:
        try:
            fd = os.open(_lock_of(staging), os.O_RDWR)
        except FileNotFoundError:
            try:
                abandoned = time.time() - staging.stat().st_mtime > _UNOWNED_GRACE_S
            except FileNotFoundError:
                continue
            if abandoned:
                shutil.rmtree(staging, ignore_errors=True)
                removed += [staging, *_remove_beside(staging, also)]
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue   # a live plan's
        release(staging, fd)
        removed += [staging, *_remove_beside(staging, also)]
    return removed


def _remove_beside(staging: Path, names: tuple[str, ...]) -> list[Path]:
    gone = [staging.with_name(name) for name in names if staging.with_name(name).exists()]
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


class _Part(NamedTuple):
    path: Path
    names: list[str]              # the frame's columns, in order
    left_out: dict[str, bool]     # columns not written, each all null (True) or all empty strings (False)


class Staging:
    """The valid rows of every partition, in the order validated: one ``part-NNNNN.arrow`` each.

    A text column with no character in any row (every value empty, or every value null: the header's
    unmapped attributes, 10 of the demo pool's 26 columns) is not written, only noted, and is made again
    when read: its offsets alone were ~20% of the staged bytes (~250 MB at 1M users, written during the
    partition loop and read back after it). Written with 32-bit offsets as well, the parts were ~40%
    smaller, but reading them back took twice as long: pandas turns ``string`` into ``large_string``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._parts: list[_Part] = []
        self.starts: list[int] = [0]      # first row number of each part, then the total

    def write(self, frame: pd.DataFrame) -> None:
        path = self.directory / f"part-{len(self._parts):05d}.arrow"
        if all(dtype == STRING for dtype in frame.dtypes):
            # the valid rows' own Arrow arrays (zero copy): 0.3 ms a partition, where pyarrow's pandas
            # conversion took 1.6 ms of the GIL
            table = pa.table({name: pa.array(values.array) for name, values in frame.items()})
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        left_out: dict[str, bool] = {}
        kept: dict[str, pa.ChunkedArray] = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            null = _blank(column)
            if null is not None:
                left_out[name] = null
            else:
                kept[name] = column
        feather.write_feather(pa.table(kept) if kept else pa.table({"_rows": pa.nulls(len(frame))}), path,
                              compression="uncompressed")
        self._parts.append(_Part(path, table.column_names, left_out))
        self.starts.append(self.starts[-1] + len(frame))

    def _read(self, i: int, columns: list[str] | None = None) -> pa.Table:
        """Part ``i`` as written (or its ``columns``), memory-mapped, its left-out columns made again.
        (The whole file is mapped and the columns picked: ``read_table(columns=...)`` took 3x longer.)"""
        part = self._parts[i]
        table = feather.read_table(part.path, memory_map=True)
        names = part.names if columns is None else columns
        if not part.left_out and columns is None and part.names:
            return table
        rows = self.starts[i + 1] - self.starts[i]
        return pa.table({n: _blank_column(rows, part.left_out[n]) if n in part.left_out else table[n]
                         for n in names})

    def take(self, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
        rows = np.asarray(rows, dtype=np.int64)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1
        out: list[pa.Table] = []
        order = np.argsort(part_of, kind="stable")
        for part in np.unique(part_of):
            at = order[part_of[order] == part]
            table = self._read(part, columns)
            out.append(table.take(pa.array(rows[at] - self.starts[part])).combine_chunks())
        if not out:
            return pd.DataFrame({c: pd.Series(dtype=STRING) for c in columns})
        whole = pa.concat_tables(out, promote_options="permissive")
        back = np.empty(len(rows), dtype=np.int64)
        back[order] = np.arange(len(rows))                    # undo the grouping by part
        return whole.take(pa.array(back)).to_pandas(types_mapper=_as_string_dtype)

    def frames(self, drop: np.ndarray) -> Iterator[pd.DataFrame]:
        """The staged partitions in order, without the rows numbered ``drop`` (those that lost a
        whole-tenant duplicate; numbered as ``take`` counts them). Each part is memory-mapped, as in
        ``take``: read into memory instead, the ~200 MB of staged rows at 1M users cost ~0.15 s more of
        system time, copied once more on their way to the import files."""
        drop = np.sort(np.asarray(drop, dtype=np.int64))
        for i in range(len(self._parts)):
            table = self._read(i)
            start, stop = self.starts[i], self.starts[i + 1]
            here = drop[np.searchsorted(drop, start):np.searchsorted(drop, stop)] - start
            if len(here):
                keep = np.ones(stop - start, dtype=bool)
                keep[here] = False
                table = table.filter(pa.array(keep))
            yield table.to_pandas(types_mapper=_as_string_dtype)
