"""Plain RFC 4180 CSV (rejects, keys and outcome files) written by Arrow kernels, not row by row.

``DataFrame.to_csv`` costs ~8 s per million rows (performance-notes.md) and pyarrow's own writer
quotes every string. This quotes a field only when it holds a comma, a quote or a line break, as
pandas does, so the files read the same to people and to ``pd.read_csv``; NA is written empty.
(The Cognito import files have their own dialect: ``pipeline.chunk``.)
"""

from __future__ import annotations

from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrowtext import has_bytes, offsets, string_array

_NEEDS_QUOTES = r'[,"\r\n]'


def _field(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """One column as CSV fields: strings, NA as "", quoted (with quotes doubled) only where needed."""
    arr = pc.fill_null(string_array(values), "")
    if not has_bytes(arr, b',"\r\n'):
        return arr
    # a column that needs quotes is most often one of a few distinct texts (a reject line's detail):
    # each quoted once (14,000 details: 0.4 against 3 ms; the encoding alone 0.2 ms)
    encoded = pc.dictionary_encode(arr)
    if len(encoded.dictionary) * 4 <= len(arr):
        return _quoted(encoded.dictionary).take(encoded.indices)
    return _quoted(arr)


def _quoted(arr: pa.Array) -> pa.Array:
    """The fields of ``arr`` quoted (quotes doubled) where they hold a comma, a quote or a line break."""
    needs = pc.match_substring_regex(arr, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return arr
    quoted = pc.binary_join_element_wise("\"", pc.replace_substring(arr, "\"", "\"\""), "\"", "")
    return pc.if_else(needs, quoted, arr)


def data_view(values: pa.Array) -> memoryview:
    """The values of a string array back to back: a view of its Arrow data buffer (no copy)."""
    if not len(values):
        return memoryview(b"")
    bounds = offsets(values)
    return memoryview(values.buffers()[2])[int(bounds[0]): int(bounds[-1])]


def csv_rows(frame: pd.DataFrame) -> pa.Array:
    """Each row of ``frame`` as one CSV line, its line end included (the line end goes onto the last
    field, so the rows need no second join to be written back to back)."""
    fields = [_field(frame[c]) for c in frame.columns]
    fields[-1] = pc.binary_join_element_wise(fields[-1], "\n", "")
    return pc.binary_join_element_wise(*fields, ",")


def write_frame(handle: BinaryIO, frame: pd.DataFrame, header: bool = True) -> None:
    """Append ``frame`` to an open binary file as CSV (with its column names first when ``header``)."""
    if header:
        handle.write((",".join(_field(pa.array(list(frame.columns))).to_pylist()) + "\n").encode("utf-8"))
    if len(frame) and len(frame.columns):
        handle.write(data_view(csv_rows(frame)))
