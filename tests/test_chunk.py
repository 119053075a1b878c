"""The import-file writer: Cognito's dialect, the limits, the canary, keys files, modes and digests."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import chunk as chunking
from pipeline.chunk import ChunkError, read_chunk, read_keys, write_chunks, write_remainder, write_retry_chunks
from tests.loadfixtures import valid_frame

HEADER = ["name", "email", "email_verified", "custom:tenant_id", "cognito:mfa_enabled", "cognito:username"]


def test_dialect_header_escaping_and_encoding(tmp_path: Path) -> None:
    frame = valid_frame(3)
    frame.loc[1, "name"] = 'Ann "Nan" O\'Hara, Jr., Zoë'
    chunks = write_chunks([frame], HEADER, tmp_path)
    assert len(chunks) == 1
    raw = chunks[0].csv_path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")
    assert lines[0] == ",".join(HEADER)
    assert lines[1] == "Doe\\, User 0,user0@example.com,true,acme,false,user0"
    assert lines[2].startswith('Ann "Nan" O\'Hara\\, Jr.\\, Zoë,user1@example.com,')
    assert len(lines) == 5 and lines[-1] == ""
    back = read_chunk(chunks[0].csv_path)
    assert back.loc[1, "name"] == 'Ann "Nan" O\'Hara, Jr., Zoë'
    assert list(back.columns) == HEADER


@pytest.mark.parametrize("blank", [
    (), ("name",), ("email",), ("email", "email_verified"), ("email", "email_verified", "custom:tenant_id"),
    ("cognito:username",), ("cognito:mfa_enabled", "cognito:username"), ("name", "email", "custom:tenant_id"),
    ("email", "email_verified", "custom:tenant_id", "cognito:mfa_enabled", "cognito:username"),
])
def test_columns_empty_in_every_row_join_to_the_same_bytes(tmp_path: Path, blank: tuple[str, ...]) -> None:
    """Unused attributes are joined as constants: the file must not change by a byte, wherever they are."""
    frame = valid_frame(4)
    frame["email"] = frame["email"].astype("string")
    for column in blank:
        frame[column] = pd.Series([pd.NA, "", pd.NA, ""], dtype="string")
    frame.loc[2, "name"] = "Zoë, Jr."
    (chunk,) = write_chunks([frame.iloc[1:]], HEADER, tmp_path)      # a slice: offsets start past 0
    expected = "".join(",".join("" if pd.isna(v) else str(v).replace(",", "\\,") for v in row) + "\n"
                       for row in frame.iloc[1:][HEADER].itertuples(index=False))
    assert chunk.csv_path.read_text(encoding="utf-8") == ",".join(HEADER) + "\n" + expected


def test_read_back_refuses_a_line_with_the_wrong_number_of_values(tmp_path: Path) -> None:
    path = tmp_path / "chunk.csv"
    path.write_text("a,b,c\n1,x\\,y,2\n1,2\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(ChunkError, match=r"line 3 has 2 values for 3 header columns \(2 such line"):
        read_chunk(path)
    path.write_text("a,b,c\n 1 ,x\\,y, \n", encoding="utf-8")
    back = read_chunk(path)
    assert back.to_dict("records") == [{"a": "1", "b": "x,y", "c": ""}]


def test_only_header_columns_in_header_order(tmp_path: Path) -> None:
    frame = valid_frame(2)[list(reversed(valid_frame(2).columns))]
    frame["extra"] = "x"
    chunk = write_chunks([frame], HEADER, tmp_path)[0]
    assert chunk.csv_path.read_text().split("\n")[0] == ",".join(HEADER)
    assert read_chunk(chunk.csv_path).shape == (2, len(HEADER))


def test_missing_column_and_line_break_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ChunkError, match="lacks header column"):
        write_chunks([valid_frame(2).drop(columns=["email"])], HEADER, tmp_path)
    frame = valid_frame(2)
    frame.loc[0, "name"] = "two\nlines"
    with pytest.raises(ChunkError, match="line break"):
        write_chunks([frame], HEADER, tmp_path / "b")
    for column, value in ((HEADER[-1], "ends\nhere"), ("email", "carriage\rreturn")):
        frame = valid_frame(2)
        frame.loc[1, column] = value
        with pytest.raises(ChunkError, match=rf"\['{column}'\] hold a line break"):
            write_chunks([frame], HEADER, tmp_path / "c")


def test_row_length_counts_characters_not_bytes(tmp_path: Path) -> None:
    frame = valid_frame(2)
    other = len(",".join(str(frame.loc[0, c]) for c in HEADER if c != "name").replace(",", "")) + len(HEADER) - 1
    frame.loc[0, "name"] = "é" * (16_000 - other)       # 16,000 characters, more bytes: fits
    assert write_chunks([frame], HEADER, tmp_path / "ok")[0].rows == 2
    frame.loc[0, "name"] = "é" * (16_001 - other)
    with pytest.raises(ChunkError, match="exceed 16000 characters"):
        write_chunks([frame], HEADER, tmp_path / "long")


def test_row_and_byte_limits_split_files(tmp_path: Path) -> None:
    frames = [valid_frame(4), valid_frame(3, start=4)]
    chunks = write_chunks(frames, HEADER, tmp_path / "rows", chunk_rows=3)
    assert [c.rows for c in chunks] == [3, 3, 1]
    assert [c.name for c in chunks] == ["chunk-00001", "chunk-00002", "chunk-00003"]
    line_bytes = len(b"Doe\\, User 0,user0@example.com,true,acme,false,user0\n")
    header_bytes = len((",".join(HEADER) + "\n").encode())
    limit = header_bytes + 2 * line_bytes + 5  # room for two rows (ids 0-9 have equal length)
    chunks = write_chunks([valid_frame(7)], HEADER, tmp_path / "bytes", max_bytes=limit)
    assert [c.rows for c in chunks] == [2, 2, 2, 1]
    for c in chunks:
        assert c.bytes == c.csv_path.stat().st_size <= limit
    with pytest.raises(ChunkError, match="does not fit"):
        write_chunks([valid_frame(1)], HEADER, tmp_path / "tiny", max_bytes=header_bytes + 10)


def test_canary_first_then_full_chunks(tmp_path: Path) -> None:
    chunks = write_chunks(
        [valid_frame(3), valid_frame(6, start=3)], HEADER, tmp_path, chunk_rows=4, canary_rows=2
    )
    assert [(c.rows, c.canary) for c in chunks] == [(2, True), (4, False), (3, False)]
    keys = [read_keys(c.keys_path) for c in chunks]
    assert list(pd.concat(keys)["legacy_id"]) == [f"L{i}" for i in range(9)]


@pytest.mark.parametrize("sizes", [(2, 5, 9), (1, 1, 1, 1, 1, 1, 1, 20), (3, 4)])
def test_canary_spanning_several_partitions(tmp_path: Path, sizes: tuple[int, ...]) -> None:
    """A canary larger than the first valid partition (a small ``partition_rows``, or a first partition
    mostly rejected) takes its rows from the next ones: one canary file of exactly ``canary_rows`` users,
    then the others in order, every user once."""
    frames, start = [], 0
    for size in sizes:
        frames.append(valid_frame(size, start=start))
        start += size
    chunks = write_chunks(frames, HEADER, tmp_path, chunk_rows=4, canary_rows=3)
    assert chunks[0].canary and chunks[0].rows == 3
    assert not any(c.canary for c in chunks[1:])
    assert all(c.rows <= 4 for c in chunks) and sum(c.rows for c in chunks) == start
    keys = pd.concat([read_keys(c.keys_path) for c in chunks])
    assert list(keys["legacy_id"]) == [f"L{i}" for i in range(start)]


def test_remainder_of_a_canary_longer_than_a_read_block_is_one_canary_file(tmp_path: Path) -> None:
    """A remainder is read back in blocks of 50,000 lines: a canary remainder longer than that (a big
    load.canary_rows, one user done) is still one canary file, not two files and a crash."""
    (canary,) = write_chunks([valid_frame(60_000)], HEADER, tmp_path, chunk_rows=60_000, canary_rows=60_000)
    rest = write_remainder(canary, pd.Index(["L7"]))
    assert rest is not None and rest.canary and rest.rows == 59_999
    assert "L7" not in set(read_keys(rest.keys_path)["legacy_id"])


def test_keys_mode_and_digest(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        chunks = write_chunks([valid_frame(5)], HEADER, tmp_path, chunk_rows=3)
    finally:
        os.umask(old)
    for c in chunks:
        for path in (c.csv_path, c.keys_path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert c.sha256 == hashlib.sha256(c.csv_path.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.tmp"))
    second = read_keys(chunks[1].keys_path)
    assert list(second.columns) == ["line", "legacy_id", "tenant", "username"]
    assert list(second["line"]) == [1, 2]  # U6: first data row of each file is line 1
    rows = read_chunk(chunks[1].csv_path)
    assert list(rows["cognito:username"]) == list(second["username"]) == ["user3", "user4"]
    assert list(second["legacy_id"]) == ["L3", "L4"] and set(second["tenant"]) == {"acme"}


def test_a_remainder_holds_the_other_users_lines_byte_for_byte(tmp_path: Path) -> None:
    canary, full = write_chunks([valid_frame(6)], HEADER, tmp_path, chunk_rows=4, canary_rows=2)
    assert write_remainder(full, pd.Index(["L0", "L9"])) is full           # none of its users is done
    assert write_remainder(full, pd.Index(["L2", "L3", "L4", "L5", "L0"])) is None   # all of them are
    rest = write_remainder(full, pd.Index(["L3", "L5", "L0"]))
    assert rest is not None and (rest.name, rest.rows, rest.canary) == ("chunk-00002-rest-00001", 2, False)
    lines = full.csv_path.read_bytes().split(b"\n")
    assert rest.csv_path.read_bytes() == b"\n".join([lines[0], lines[1], lines[3], b""])   # header, L2, L4
    keys = read_keys(rest.keys_path)
    assert list(keys["line"]) == [1, 2] and list(keys["legacy_id"]) == ["L2", "L4"]
    assert list(read_chunk(rest.csv_path)["cognito:username"]) == list(keys["username"]) == ["user2", "user4"]
    assert rest.sha256 == hashlib.sha256(rest.csv_path.read_bytes()).hexdigest()
    for path in (rest.csv_path, rest.keys_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = write_remainder(full, pd.Index(["L0", "L3", "L5"]))   # the same done users: the same file
    assert again is not None and again.sha256 == rest.sha256
    canary_rest = write_remainder(canary, pd.Index(["L0"]))
    assert canary_rest is not None and canary_rest.canary and canary_rest.rows == 1


def test_picked_lines_come_in_blocks_byte_for_byte_and_files_must_match_their_keys(tmp_path: Path) -> None:
    (full,) = write_chunks([valid_frame(7)], HEADER, tmp_path, chunk_rows=10)
    keys = read_keys(full.keys_path)
    blocks = list(chunking._lines_of(full, keys, np.array([0, 2, 3, 6]), block=3))   # a block of 3, then 1
    assert [len(lines) for lines, _ in blocks] == [3, 1]
    data = full.csv_path.read_bytes().split(b"\n")
    assert [line for lines, _ in blocks for line in lines.to_pylist()] == [data[i] + b"\n" for i in (1, 3, 4, 7)]
    assert [k for _, block in blocks for k in block["legacy_id"]] == ["L0", "L2", "L3", "L6"]
    full.csv_path.write_bytes(b"\n".join(data[:-2]) + b"\n")           # one data line fewer than the keys say
    with pytest.raises(ChunkError, match="has 6 data lines but chunk-00001.keys.csv has 7"):
        list(chunking._lines_of(full, keys, np.array([0])))


def test_retry_files_hold_exactly_the_named_users_lines(tmp_path: Path) -> None:
    frame = valid_frame(7)
    frame.loc[4, "name"] = "Comma, In Name"
    chunks = write_chunks([frame], HEADER, tmp_path / "plan", chunk_rows=3)   # 3 + 3 + 1 users
    original = {k: line for c in chunks
                for k, line in zip(read_keys(c.keys_path)["legacy_id"],
                                   c.csv_path.read_bytes().split(b"\n")[1:], strict=False)}
    old = os.umask(0)
    try:
        retries = write_retry_chunks(chunks, {"L1": "job-a", "L4": "job-b", "L6": "job-b", "L99": "job-a"},
                                     tmp_path / "retry", chunk_rows=2)
    finally:
        os.umask(old)
    assert [(c.name, c.rows, c.canary) for c in retries] == [("retry-00001", 2, False), ("retry-00002", 1, False)]
    keys = pd.concat([read_keys(c.keys_path) for c in retries])
    assert list(keys["legacy_id"]) == ["L1", "L4", "L6"] and list(keys["line"]) == [1, 2, 1]
    assert list(keys["username"]) == ["user1", "user4", "user6"]
    for c in retries:
        data = c.csv_path.read_bytes().split(b"\n")
        assert data[0].decode() == ",".join(HEADER) and data[-1] == b""
        for lid, line in zip(read_keys(c.keys_path)["legacy_id"], data[1:-1], strict=True):
            assert line == original[lid]                      # byte for byte, escapes included
        for path in (c.csv_path, c.keys_path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_chunk(retries[0].csv_path).loc[1, "name"] == "Comma, In Name"
    # the ledger's identity covers the jobs its users failed in: same jobs -> same chunk (a crashed retry
    # resumes), other jobs -> a new chunk (a second retry of unchanged lines is not taken for the first,
    # done one); only its own users' jobs count
    file_sha = hashlib.sha256(retries[0].csv_path.read_bytes()).hexdigest()
    assert retries[0].sha256 != file_sha
    again = write_retry_chunks(chunks, {"L1": "job-a", "L4": "job-b", "L6": "job-b"}, tmp_path / "again",
                               chunk_rows=2)
    later = write_retry_chunks(chunks, {"L1": "retry-job", "L4": "retry-job", "L6": "retry-job"},
                               tmp_path / "later", chunk_rows=2)
    assert [c.sha256 for c in again] == [c.sha256 for c in retries]
    assert {c.sha256 for c in later}.isdisjoint(c.sha256 for c in retries)
    # the first file's users imported in its job: the file holding L6 is still the one the rerun resumes
    (rest,) = write_retry_chunks(chunks, {"L6": "job-b"}, tmp_path / "rest", chunk_rows=2)
    assert rest.sha256 == retries[1].sha256
    assert write_retry_chunks(chunks, {"L99": "job-a"}, tmp_path / "none") == []


def test_empty_input_writes_nothing(tmp_path: Path) -> None:
    assert write_chunks([valid_frame(0)], HEADER, tmp_path) == []


def test_canonical_attributes_and_their_digest_stay_stable() -> None:
    """The digest is kept in the ledger at harvest and compared at reconcile, possibly by a later version
    of this tool on a resumed run: the canonical string and its digest must not drift."""
    from pipeline.chunk import attrs_digest, canonical_attributes

    pool = pd.DataFrame({"name": [" Zoë ", "A"], "email_verified": ["TRUE", None], "custom:x": ["c,d", "x"]})
    file = pd.DataFrame({"name": ["Zoë", "A"], "email_verified": ["true", ""], "custom:x": ["", "x"]})
    canonical = canonical_attributes(pool, list(pool.columns), file)
    # trimmed, booleans lower-cased, attributes empty in the file left out
    assert canonical.tolist() == ["\x1fname=Zoë\x1femail_verified=true", "\x1fname=A\x1fcustom:x=x"]
    assert attrs_digest(canonical).tolist() == ["affcd2474f3a1eb3", "170645a4f0b14175"]
    assert canonical_attributes(file, list(file.columns)).tolist() == canonical.tolist()


def test_hex_digits_equal_python_formatting_at_the_edges() -> None:
    from pipeline.chunk import _hex

    values = np.array([0, 1, 0xF, 0x10, 2**63, 2**64 - 1, 0x0123456789ABCDEF], dtype=np.uint64)
    assert _hex(values).tolist() == [f"{int(v):016x}" for v in values]
    assert _hex(np.array([], dtype=np.uint64)).tolist() == []
