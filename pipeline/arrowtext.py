"""Cheap whole-column questions about ``string[pyarrow]`` Series, answered from their Arrow buffers.

A regex over every value costs ~0.1 µs a byte in RE2; asking first whether a byte occurs anywhere in a
column's data buffer (memchr speed) lets the mapping and the validator skip most such passes, since
line breaks, backslashes, tabs and doubled spaces are rare in real columns.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_STRING = pd.StringDtype("pyarrow")


def arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The Arrow array behind a ``string[pyarrow]`` Series (zero copy)."""
    return pa.array(s.array)


def string_array(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Arrow ``string`` array, NA kept as null (zero copy for a single-chunk
    ``string[pyarrow]`` Series; other dtypes are converted to strings first)."""
    if isinstance(values, pd.Series):
        values = pa.array((values if values.dtype == _STRING else values.astype(_STRING)).array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == pa.string() else values.cast(pa.string())


def _data(s: pd.Series | pa.Array | pa.ChunkedArray) -> list[bytes]:
    arr = arrow(s) if isinstance(s, pd.Series) else s
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return [bytes(memoryview(b)) for c in chunks if (b := c.buffers()[2]) is not None and b.size]


def has_bytes(s: pd.Series | pa.Array | pa.ChunkedArray, chars: bytes) -> bool:
    """Whether any byte of ``chars`` occurs anywhere in the column's data buffers.

    False means no value holds one; True only means the exact per-value test is worth running (the
    buffer may hold bytes of values sliced away)."""
    return any(raw.find(bytes([c])) >= 0 for raw in _data(s) for c in chars)


def has_substring(s: pd.Series, needle: bytes) -> bool:
    """Like ``has_bytes`` for a byte sequence (such as two spaces)."""
    return any(raw.find(needle) >= 0 for raw in _data(s))


def has_match(s: pd.Series, pattern: re.Pattern[bytes]) -> bool:
    """Like ``has_bytes`` for a bytes regex searched over the whole buffer (one pass for many needles)."""
    return any(pattern.search(raw) is not None for raw in _data(s))


def has_non_ascii(s: pd.Series) -> bool:
    """Whether any byte of the column's data is outside ASCII (so some value is)."""
    return any(not raw.isascii() for raw in _data(s))


def all_empty(s: pd.Series) -> bool:
    """True when the column holds no characters at all (O(1): the size of its data buffers)."""
    arr = arrow(s)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return all(c.null_count == 0 and (c.buffers()[2] is None or c.buffers()[2].size == 0) for c in chunks)


def non_ascii(s: pd.Series | pa.Array) -> np.ndarray:
    """True where a value holds a non-ASCII character (NA: False)."""
    return ~np.asarray(pc.fill_null(pc.string_is_ascii(string_array(s)), True), dtype=bool)
