"""The staged partitions: rows read back by number, in the order asked, and the chunking pass."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.staging import Staging

STRING = pd.StringDtype("pyarrow")


def _part(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"_legacy_id": pd.Series(ids, dtype=STRING),
                         "email": pd.Series([f"u{i}@x.org" for i in ids], dtype=STRING)})


def test_take_reads_rows_across_parts_in_the_order_asked(tmp_path) -> None:
    staging = Staging(tmp_path)
    staging.write(_part(["a", "b", "c"]))
    staging.write(_part([]))                       # an empty partition keeps the numbering
    staging.write(_part(["d", "e"]))
    got = staging.take(np.array([4, 0, 3, 2, 0]), ["_legacy_id", "email"])
    assert got["_legacy_id"].tolist() == ["e", "a", "d", "c", "a"]
    assert got["email"].tolist() == ["ue@x.org", "ua@x.org", "ud@x.org", "uc@x.org", "ua@x.org"]
    assert got["email"].dtype == STRING
    assert staging.take(np.array([], dtype=np.int64), ["_legacy_id"]).empty


def test_frames_leave_out_the_losers(tmp_path) -> None:
    staging = Staging(tmp_path)
    staging.write(_part(["a", "b"]))
    staging.write(_part(["c"]))
    frames = list(staging.frames(frozenset({"b", "c"})))
    assert [f["_legacy_id"].tolist() for f in frames] == [["a"], []]
