"""Cheap whole-column questions about ``string[pyarrow]`` Series, answered from their Arrow buffers.

A regex over every value costs ~0.1 µs a byte in RE2; asking first whether a byte occurs anywhere in a
column's data buffer (memchr over a copy of it, or numpy comparisons for longer needles) lets the mapping
and the validator skip most such passes, since line breaks, backslashes, tabs, doubled spaces and
Unicode spaces are rare in real columns.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

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


def string_series(values: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """An Arrow string array as a ``string[pyarrow]`` Series (zero copy): the inverse of ``string_array``."""
    return pd.Series(pd.arrays.ArrowStringArray(values), index=index)


def filter_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` (a boolean mask), each ``string[pyarrow]`` column filtered by Arrow's kernel:
    pandas' boolean indexing of a frame goes through a take per column (13 against 5 ms for 16
    columns of 50,000 rows)."""
    mask = pa.array(keep)
    columns = {name: (pd.arrays.ArrowStringArray(pc.filter(pa.array(values.array), mask))
                      if values.dtype == _STRING else values.array[keep]) for name, values in frame.items()}
    return string_frame(columns, frame.index[keep])


def string_frame(columns: dict[str, pd.api.extensions.ExtensionArray], index: pd.Index) -> pd.DataFrame:
    """A frame of ``columns`` (arrays of ``index``'s length, not Series) on ``index``.

    pandas builds a frame of arrays ~4x quicker than one of Series, which it aligns on their index
    first (26 columns of 46,600 rows: 160 against 730 us, all of it holding the GIL that the mapping
    thread and the validating thread share)."""
    return pd.DataFrame(columns, index=index)


def _buffers(s: pd.Series | pa.Array | pa.ChunkedArray) -> list[np.ndarray]:
    """The column's data buffers as uint8 arrays (zero copy). numpy's comparisons and reductions over
    them run without the GIL, which the mapping thread and the validating thread share."""
    return [np.frombuffer(b, dtype=np.uint8) for b in _data_buffers(s)]


def has_bytes(s: pd.Series | pa.Array | pa.ChunkedArray, chars: bytes) -> bool:
    """Whether any byte of ``chars`` occurs anywhere in the column's data buffers.

    False means no value holds one; True only means the exact per-value test is worth running (the
    buffer may hold bytes of values sliced away). libc's ``memchr`` reads each Arrow buffer where it
    lies, through ctypes, which releases the GIL for the call (the mapping thread and the validating
    thread share it): for four bytes over 1.15 MB of emails 143 us, against 222 us for a copy of the
    buffer searched with ``bytes.find`` (memchr too, with the GIL held) and ~3x that for numpy's
    comparison passes. Without a C library that has ``memchr``, the copy."""
    for data in _data_buffers(s):
        if _memchr is None:
            text = data.to_pybytes()
            if any(text.find(c) >= 0 for c in chars):
                return True
        elif any(_memchr(data.address, c, data.size) for c in chars):
            return True
    return False


def _data_buffers(s: pd.Series | pa.Array | pa.ChunkedArray) -> list[pa.Buffer]:
    arr = arrow(s) if isinstance(s, pd.Series) else s
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return [b for c in chunks if (b := c.buffers()[2]) is not None and b.size]


def _libc_memchr() -> Callable[[int, int, int], int | None] | None:
    try:
        memchr = ctypes.CDLL(None).memchr           # the C library the interpreter runs on
    except (OSError, AttributeError, TypeError):
        return None
    memchr.restype = ctypes.c_void_p           # the address found, or None
    memchr.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    return memchr


_memchr = _libc_memchr()


# C0 control characters but tab, line feed and carriage return (the last two are the CSV dialect's
# business), and DEL: what no name, address or identifier holds unless the data is damaged
CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CONTROL_LOW = np.frombuffer(bytes(b for b in CONTROL_BYTES if b < 0x20), dtype=np.uint8)


def has_control_bytes(s: pd.Series | pa.Array | pa.ChunkedArray) -> bool:
    """Whether a byte of ``CONTROL_BYTES`` occurs in the column's data buffers (as ``has_bytes``: True
    only means the exact test is worth running). A minimum and a comparison per buffer (~0.2 ms per
    1.7 MB, without the GIL), where ``has_bytes`` would run 30 ``find`` passes; the bytes below 0x20
    are sorted out only when one occurs at all (a tab, say)."""
    for raw in _buffers(s):
        if raw.min() < 0x20 and np.isin(raw[raw < 0x20], _CONTROL_LOW).any():
            return True
        if (raw == 0x7F).any():
            return True
    return False


def single_chunk(values: pd.Series | pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The column as one Arrow array, its offsets (int64, its slice applied) and its whole data buffer
    as bytes (zero copy when it is one chunk already)."""
    arr = arrow(values) if isinstance(values, pd.Series) else values
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    bounds = offsets(arr).astype(np.int64) if len(arr) else np.zeros(1, dtype=np.int64)
    data = arr.buffers()[2] if len(arr) else None
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return arr, bounds, raw


def rows_with_bytes(arr: pa.Array, chars: bytes) -> np.ndarray:
    """Which values of ``arr`` (one chunk) hold a byte of ``chars`` (ASCII): the positions of those
    bytes in the data buffer, mapped to their rows through the offsets (no per-value pass)."""
    arr, bounds, raw = single_chunk(arr)
    found = np.zeros(len(arr), dtype=bool)
    piece = raw[bounds[0]: bounds[-1]]
    wanted = np.zeros(256, dtype=bool)
    wanted[list(chars)] = True
    at = np.flatnonzero(wanted[piece]) + bounds[0]
    found[np.searchsorted(bounds, at, side="right") - 1] = True
    return found


def has_substring(s: pd.Series, needle: bytes, *more: bytes) -> bool:
    """Like ``has_bytes`` for byte sequences (such as two spaces): whether any of them occurs.

    These use numpy, not ``bytes.find``: on Japanese names (450 KB, most bytes 0xE3 like U+3000's
    first byte) ``bytes.find`` took 4.5 ms for the sixteen Unicode spaces, holding the GIL, and the
    byte comparisons 0.3 ms without it."""
    return any(_holds(raw, n) for raw in _buffers(s) for n in (needle, *more))


def _holds(raw: np.ndarray, needle: bytes) -> bool:
    """Whether ``needle`` occurs in ``raw``: the byte comparisons of each offset, ANDed."""
    n = len(raw) - len(needle) + 1
    if n <= 0:
        return False
    hit = raw[:n] == needle[0]
    for i, byte in enumerate(needle[1:], start=1):
        if not hit.any():
            return False
        hit &= raw[i:n + i] == byte
    return bool(hit.any())


def printable_ascii(s: pd.Series) -> bool:
    """Whether every byte of the column's data is printable ASCII other than space (0x21-0x7E), so no
    value holds a space, a control character or a non-ASCII character (False may be a false alarm from
    the bytes of values sliced away)."""
    return all(bool(((raw - np.uint8(0x21)) < np.uint8(0x7F - 0x21)).all()) for raw in _buffers(s))


def digits_only(s: pd.Series) -> bool:
    """Whether every byte of the column's data is an ASCII digit, so each non-empty value is a
    non-negative integer (False may be a false alarm, as in ``printable_ascii``)."""
    return all(bool(((raw - np.uint8(ord("0"))) < 10).all()) for raw in _buffers(s))


def value_lengths(s: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """UTF-8 bytes of each value (int64; -1 for NA), from the offsets: no pass over the data."""
    arr = arrow(s) if isinstance(s, pd.Series) else s
    parts = []
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        n = np.diff(offsets(chunk)).astype(np.int64, copy=False) if len(chunk) else np.zeros(0, np.int64)
        if chunk.null_count:
            n = np.where(np.asarray(chunk.is_valid(), dtype=bool), n, -1)
        parts.append(n)
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int64)


def fixed_width(arr: pd.Series | pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``arr`` whose value is exactly ``width`` bytes, NA excluded, and those
    values' bytes by position: a (width, rows) uint8 array whose row j holds each value's byte j,
    gathered from the data buffer one position at a time (no Python strings, no index matrix)."""
    arr, bounds, raw = single_chunk(arr)
    rows = np.flatnonzero(value_lengths(arr) == width)
    if not len(rows) or not len(raw):
        return rows[:0], np.zeros((width, 0), dtype=np.uint8)
    starts = bounds[rows]
    out = np.empty((width, len(rows)), dtype=np.uint8)
    for j in range(width):
        np.take(raw, starts + j, out=out[j])
    return rows, out


def decimal_fields(columns: np.ndarray, *fields: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """For ``fixed_width``'s bytes by position: whether every byte of each ``(start, stop)`` field is an
    ASCII digit, and each field's number (int64). One pass of 1-D numpy per position."""
    ok = np.ones(columns.shape[1], dtype=bool)
    numbers = []
    for start, stop in fields:
        number = np.zeros(columns.shape[1], dtype=np.int64)
        for j in range(start, stop):
            digit = columns[j] - np.uint8(ord("0"))          # wraps around below "0": one comparison
            ok &= digit < 10
            number = number * 10 + digit
        numbers.append(number)
    return ok, numbers


def from_fixed_width(values: np.ndarray) -> pa.Array:
    """A (rows, width) uint8 matrix of UTF-8 text as a string array, one value per row."""
    rows, width = values.shape
    bounds = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(bounds), pa.py_buffer(np.ascontiguousarray(values)))


def has_non_ascii(s: pd.Series | pa.Array | pa.ChunkedArray) -> bool:
    """Whether any byte of the column's data is outside ASCII (so some value is)."""
    return any(int(raw.max()) >= 0x80 for raw in _buffers(s))


def offsets(chunk: pa.Array) -> np.ndarray:
    """The value offsets of a (large) string or binary array, its slice applied (zero copy)."""
    width = np.int64 if pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type) else np.int32
    return np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset: chunk.offset + len(chunk) + 1]


def may_be_padded(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether some value may begin or end with whitespace; False means trimming changes nothing.

    Reads only the first and last byte of each value (through the offsets, zero copy): ASCII columns
    (emails, phone numbers, ids, flags) answer without a trimming pass. A column whose values end in
    non-ASCII characters (Japanese names) always answers True.
    """
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        if not len(chunk) or chunk.buffers()[2] is None:
            continue
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
        if not len(data):
            continue
        bounds = offsets(chunk)
        # An empty or null value reads a neighbour's byte here (the last byte, for one at offset 0):
        # at worst a needless trim, never a missed one, and no pass to pick the non-empty values out.
        first = data[np.minimum(bounds[:-1], len(data) - 1)]
        last = data[bounds[1:] - 1]
        if _may_pad(first) or _may_pad(last):
            return True
    return False


def _may_pad(b: np.ndarray) -> bool:
    """Whether some byte may begin or end a whitespace character: a control character or space, or any
    byte of a multi-byte character (Unicode's spaces start with 0xC2, 0xE1, 0xE2 or 0xE3 and end with a
    continuation byte; telling them apart would need the whole character). That is b < 0x21 or
    b >= 0x7F: one subtraction wrapping around in uint8 and one comparison."""
    return bool(((b - np.uint8(0x21)) >= np.uint8(0x7F - 0x21)).any())


def trim_whitespace(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``pc.utf8_trim_whitespace``, skipped (the array returned as it is) when no value can change."""
    return pc.utf8_trim_whitespace(arr) if may_be_padded(arr) else arr


def is_blank(arr: pa.Array) -> bool:
    """Whether no value holds a character (each is empty or null): O(1), from the first and last offset."""
    bounds = offsets(arr)
    return bool(bounds[-1] == bounds[0])


def has_empty(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether some value (not null) is the empty string."""
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        if not len(chunk):
            continue
        empty = np.diff(offsets(chunk)) == 0
        if chunk.null_count and empty.any():
            bits = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
            empty &= np.unpackbits(bits, bitorder="little")[chunk.offset: chunk.offset + len(chunk)].astype(bool)
        if empty.any():
            return True
    return False


def _validity(arr: pa.Array) -> np.ndarray:
    """True where ``arr`` (one chunk) holds a value, False where it holds null."""
    if not arr.null_count:
        return np.ones(len(arr), dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[arr.offset: arr.offset + len(arr)].astype(bool)


def _with_validity(arr: pa.Array, bounds: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """``arr``'s offsets (``bounds``, its slice applied) and data buffer with the validity ``valid``
    (None: no nulls): a new array over the same values, none of them copied."""
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, pa.py_buffer(bounds), arr.buffers()[2]])


def empty_as_null(arr: pa.Array) -> pa.Array:
    """``arr`` (one chunk of text) with every empty string made null, by a new validity bitmap: the
    values are not copied, as ``if_else(equal(arr, ""), null, arr)`` copied every column it touched."""
    bounds = offsets(arr)
    valid = (np.diff(bounds) != 0) & _validity(arr)
    return _with_validity(arr, bounds, None if valid.all() else valid)


def null_as_empty(arr: pa.Array) -> pa.Array:
    """``pc.fill_null(arr, "")`` for one chunk of text: where every null is an empty slot (as
    ``empty_as_null`` makes them), the validity bitmap is dropped and no value copied."""
    if not arr.null_count:
        return arr
    bounds = offsets(arr)
    if (np.diff(bounds)[~_validity(arr)] != 0).any():
        return pc.fill_null(arr, "")
    return _with_validity(arr, bounds, None)


def lower_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Unicode lower case; a column of ASCII alone (most emails) by Arrow's byte-wise ``ascii_lower``,
    ~8x faster than ``utf8_lower`` (0.12 against 0.98 ms per 50,000 emails) and the same there."""
    return pc.utf8_lower(arr) if has_non_ascii(arr) else pc.ascii_lower(arr)


def lower_case(s: pd.Series) -> pd.Series:
    """``s.str.lower()`` by ``lower_text``."""
    return string_series(lower_text(arrow(s)), s.index)


def repeated_text(value: str, rows: int) -> pa.Array:
    """``value`` ``rows`` times (``large_string``): its bytes repeated and evenly spaced offsets, built by
    numpy (25 us for 46,600 rows, where ``pd.Series(value, index=..., dtype=...)`` took 320 us, a
    Python string per row)."""
    if not value:
        return empty_strings(rows)
    data = value.encode("utf-8")
    offsets = np.arange(rows + 1, dtype=np.int64) * len(data)
    return pa.LargeStringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data * rows))


def empty_strings(rows: int) -> pa.Array:
    """``rows`` empty strings (``large_string``, pandas' own) over all-zero offsets: no per-value work,
    and one buffer of zeros shared by every such column of that length."""
    return pa.LargeStringArray.from_buffers(rows, _zero_offsets(rows + 1), _NO_BYTES)


_NO_BYTES = pa.py_buffer(b"")


@functools.lru_cache(maxsize=4)
def _zero_offsets(count: int) -> pa.Buffer:
    return pa.py_buffer(np.zeros(count, np.int64))


def fast_then_rest(arr: pa.Array, rows: np.ndarray, values: pa.Array,
                    general: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``arr`` with the values at ``rows`` (ascending) replaced by ``values`` (the fixed-width path's),
    and every other non-empty value by what ``general`` makes of them (NA and "" stay as they are)."""
    out = replace_rows(arr, rows, values)
    rest = value_lengths(arr) > 0
    rest[rows] = False
    if rest.any():
        out = replace_rows(out, np.flatnonzero(rest), general(arr.filter(pa.array(rest))))
    return out


def replace_rows(arr: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """``arr`` with the values at ``rows`` (ascending) replaced by ``values``, in order."""
    if not len(rows):
        return arr
    if len(rows) == len(arr):
        return values
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(arr, pa.array(mask), values)




def all_empty(s: pd.Series) -> bool:
    """True when the column holds no characters at all (O(1): the size of its data buffers)."""
    arr = arrow(s)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return all(c.null_count == 0 and (c.buffers()[2] is None or c.buffers()[2].size == 0) for c in chunks)


def non_ascii(s: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where a value holds a non-ASCII character (NA: False)."""
    return ~np.asarray(pc.fill_null(pc.string_is_ascii(arrow(s) if isinstance(s, pd.Series) else s), True),
                       dtype=bool)


def compatibility_forms(s: pd.Series) -> np.ndarray:
    """True where Unicode NFKC changes the value: full-width letters and digits (``ｅｖｅ@example.com``,
    what a Japanese input method in full-width mode types), half-width katakana, ligatures, decomposed
    accents (NA: False). ASCII is its own NFKC, so only values holding another character are normalised
    (none in most columns: one byte scan)."""
    found = np.zeros(len(s), dtype=bool)
    if not has_non_ascii(s):
        return found
    arr = string_array(s)
    wide = np.flatnonzero(non_ascii(arr))
    values = arr.take(pa.array(wide))
    found[wide] = np.asarray(pc.fill_null(pc.not_equal(pc.utf8_normalize(values, form="NFKC"), values), False),
                             dtype=bool)
    return found


def fullmatch(s: pd.Series | pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
    """True where the whole value matches ``pattern`` (RE2, an Arrow kernel); NA is False."""
    arr = arrow(s) if isinstance(s, pd.Series) else s
    return np.asarray(pc.fill_null(pc.match_substring_regex(arr, f"^(?:{pattern})$"), False), dtype=bool)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: every input bit reaches every output bit (a bijection)."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def string_hashes(values: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes (uint64) of the values' UTF-8 bytes, NA as empty: numpy only, so no Python string
    is made and the GIL is free while they run (pandas' SipHash of a string column turns each value
    into a Python object and holds the GIL throughout; in the plan that blocked the mapping thread).

    A value's length seeds its hash, then each 8-byte word of it (the last one zero-filled) is folded
    in and mixed (splitmix64's finalizer), like the word loop of xxHash or MurmurHash: equal values
    hash equal wherever their bytes lie; unequal ones collide as two random 64-bit numbers would
    (~3e-8 among 1M values), unless made to on purpose, which SipHash with pandas' fixed key does not
    prevent either."""
    with np.errstate(over="ignore"):
        _, bounds, raw = single_chunk(string_array(values))
        lengths = np.diff(bounds)
        padded = np.zeros(len(raw) + 8, dtype=np.uint8)
        padded[:len(raw)] = raw
        # every byte offset read as a little-endian 8-byte word: an unaligned view, no copy
        words = np.ndarray(shape=(len(padded) - 7,), dtype=np.uint64, buffer=padded, strides=(1,))
        h = _mix(lengths.astype(np.uint64) * _GOLDEN)
        rows = np.flatnonzero(lengths)
        at, left = bounds[rows], lengths[rows]
        while len(rows):
            word = words[at]
            short = left < 8
            if short.any():
                word[short] &= (np.uint64(1) << (left[short].astype(np.uint64) * np.uint64(8))) - np.uint64(1)
            h[rows] = _mix((h[rows] ^ word) * _GOLDEN)
            more = left > 8
            at, left, rows = at[more] + 8, left[more] - 8, rows[more]
        return h


def key_hashes(values: pd.Series) -> np.ndarray:
    """64-bit hashes (uint64) of values as strings: how the plan keeps every source legacy id in 8 bytes
    (``string_hashes``; a false match is ~3e-8 likely among 1M ids). In memory only, within one run."""
    return string_hashes(values if values.dtype == _STRING else values.astype(_STRING))
