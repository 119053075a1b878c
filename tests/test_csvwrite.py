"""Plain CSV written by Arrow kernels reads exactly like pandas' own writer."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.csvwrite import data_view, write_frame


def test_write_frame_equals_pandas_to_csv() -> None:
    frame = pd.DataFrame({
        "line": np.arange(1, 6),
        "legacy_id": pd.Series(["1", None, "3", "4", "5"], dtype="string[pyarrow]"),
        "detail": ["two\nlines", "", 'a "quoted" word', "com,ma", "日本語"],
        "masked": pd.Series(["a***@e***.com", "x", None, "", "+81***78"], dtype="string"),
    })
    out = io.BytesIO()
    write_frame(out, frame)
    write_frame(out, frame.iloc[2:], header=False)
    write_frame(out, frame.iloc[:0], header=False)
    expected = (frame.to_csv(index=False, lineterminator="\n")
                + frame.iloc[2:].to_csv(index=False, header=False, lineterminator="\n"))
    assert out.getvalue() == expected.encode("utf-8")


def test_a_column_of_few_texts_is_quoted_as_pandas_quotes_it() -> None:
    """A column of a few distinct texts that need quotes (a reject line's detail) is quoted once per
    text; the lines are those of pandas, nulls and a slice of the column included."""
    details = ['same email as legacy id 7, which is kept (first)', 'plain', None, 'a "quoted" word', '']
    frame = pd.DataFrame({"legacy_id": [str(i) for i in range(400)],
                          "detail": pd.Series([details[i % 5] for i in range(400)], dtype="string[pyarrow]")})
    for part in (frame, frame.iloc[3:250]):
        out = io.BytesIO()
        write_frame(out, part)
        assert out.getvalue() == part.to_csv(index=False, lineterminator="\n").encode("utf-8")


def test_a_carriage_return_is_quoted_so_the_row_reads_back_whole() -> None:
    """pandas leaves a lone CR unquoted when lines end in LF, and its reader then splits the row."""
    frame = pd.DataFrame({"id": ["1", "2"], "detail": ["carriage\rreturn", "plain"]})
    out = io.BytesIO()
    write_frame(out, frame)
    assert out.getvalue() == b'id,detail\n1,"carriage\rreturn"\n2,plain\n'
    back = pd.read_csv(io.BytesIO(out.getvalue()), dtype=str, keep_default_na=False)
    assert back.to_dict("list") == {"id": ["1", "2"], "detail": ["carriage\rreturn", "plain"]}


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_data_view_is_the_slice_of_the_buffer(arrow_type: pa.DataType) -> None:
    values = pa.array(["ab", "c", None, "def"], arrow_type).slice(1)
    assert bytes(data_view(values)) == b"cdef"
    assert bytes(data_view(values.slice(0, 0))) == b""
