"""The staged partitions: rows read back by number, in the order asked, and the chunking pass."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.feather as feather

from pipeline.staging import Staging, claim, release, sweep_abandoned

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
    staging.write(_part([]))
    staging.write(_part(["d", "e", "f"]))
    frames = list(staging.frames(np.array([5, 1, 2])))     # rows as take numbers them, in any order
    assert [f["_legacy_id"].tolist() for f in frames] == [["a"], [], [], ["d", "e"]]
    assert [f["_legacy_id"].tolist() for f in staging.frames(np.array([], dtype=np.int64))] == \
        [["a", "b"], ["c"], [], ["d", "e", "f"]]


def test_columns_without_a_character_are_not_written_and_come_back_as_they_were(tmp_path) -> None:
    """A column empty in every row, or null in every row, is noted rather than written (the header's
    unused attributes); a column mixing the two, or holding any character, is written."""
    staging = Staging(tmp_path)
    part = pd.DataFrame({"_legacy_id": pd.Series(["a", "b", "c"], dtype=STRING),
                         "middle_name": pd.Series(["", "", ""], dtype=STRING),
                         "website": pd.Series([None, None, None], dtype=STRING),
                         "nickname": pd.Series(["", None, ""], dtype=STRING),
                         "email": pd.Series(["a@x.org", "", "c@x.org"], dtype=STRING)})
    staging.write(part)
    staging.write(part.iloc[:0])
    staging.write(part.iloc[1:].reset_index(drop=True))
    written = [feather.read_table(p).column_names for p in sorted(tmp_path.glob("part-*.arrow"))]
    assert written[0] == written[2] == ["_legacy_id", "nickname", "email"]

    frames = list(staging.frames(np.array([1])))
    for got, want in zip(frames, [part.drop(index=1).reset_index(drop=True), part.iloc[:0],
                                  part.iloc[1:].reset_index(drop=True)], strict=True):
        assert list(got.columns) == list(part.columns)
        assert all(got[c].dtype == STRING for c in got.columns)
        assert got.astype(object).where(got.notna(), None).values.tolist() == \
            want.astype(object).where(want.notna(), None).values.tolist()
    got = staging.take(np.array([4, 0]), ["website", "middle_name", "_legacy_id"])
    assert got["_legacy_id"].tolist() == ["c", "a"]
    assert got["middle_name"].tolist() == ["", ""] and got["website"].isna().all()


def _claim_in_child(directory, then: str) -> subprocess.Popen:
    """A process that claims ``directory`` as a plan does, writes a part, then ``then``: 'die' (SIGKILL
    itself, as a killed plan) or 'live' (wait on stdin, as a plan still running)."""
    code = ("import os, signal, sys; from pathlib import Path; from pipeline.staging import claim; "
            f"d = Path({str(directory)!r}); claim(d); (d / 'part-00000.arrow').write_text('pii'); "
            "print('claimed', flush=True); "
            f"os.kill(os.getpid(), signal.SIGKILL) if {then!r} == 'die' else sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "claimed\n"
    return proc


def test_the_sweep_removes_a_killed_plans_staging_and_leaves_a_live_ones(tmp_path) -> None:
    tenant = tmp_path / "acme"
    killed, live = tenant / "run-1" / "staging", tenant / "run-2" / "staging"
    _claim_in_child(killed, "die").wait()
    alive = _claim_in_child(live, "live")
    try:
        assert sweep_abandoned(tenant) == [killed]
        assert not killed.exists() and not (tenant / "run-1" / "staging.lock").exists()
        assert (live / "part-00000.arrow").exists()          # its plan still holds the lock
    finally:
        alive.communicate("")
    assert sweep_abandoned(tenant) == [live] and not live.exists()   # once it has gone too


def test_the_sweep_takes_the_import_files_a_killed_plan_was_writing(tmp_path) -> None:
    """Import files are written while the plan holds its staging: a plan killed then leaves files no
    plan.json describes (PII that no later prune would reach). A finished run's files stay."""
    killed, finished = tmp_path / "run-1", tmp_path / "run-2"
    _claim_in_child(killed / "staging", "die").wait()
    for run in (killed, finished):
        (run / "chunks").mkdir(parents=True)
        (run / "chunks" / "chunk-00001.csv").write_text("pii")
    assert sweep_abandoned(tmp_path, also=("chunks",)) == [killed / "staging", killed / "chunks"]
    assert not (killed / "chunks").exists() and (finished / "chunks" / "chunk-00001.csv").exists()


def test_a_staging_without_a_lock_file_is_removed_only_when_old(tmp_path) -> None:
    older = tmp_path / "run-1" / "staging"          # left by a version that took no lock
    recent = tmp_path / "run-2" / "staging"
    for d in (older, recent):
        d.mkdir(parents=True)
    hours_ago = time.time() - 2 * 3600
    os.utime(older, (hours_ago, hours_ago))
    assert sweep_abandoned(tmp_path) == [older] and recent.exists()
    assert sweep_abandoned(tmp_path / "no-such-tenant") == []


def test_release_removes_the_staging_and_its_lock(tmp_path) -> None:
    staging = tmp_path / "run" / "staging"
    fd = claim(staging)
    Staging(staging).write(_part(["a"]))
    release(staging, fd)
    assert list(tmp_path.joinpath("run").iterdir()) == []


def test_an_earlier_manifest_that_is_json_but_no_object_is_passed_over(tmp_path) -> None:
    """An earlier run's plan.json edited to ``null`` (or a list, a string) is no manifest: that run is left
    alone, as one whose plan.json does not parse is. Every later plan of the tenant ended in a traceback
    (AttributeError) after writing its report, naming no file."""
    import json

    from pipeline.plan import _previous_contract, _prune_report_files

    earlier, current = tmp_path / "run-1", tmp_path / "run-2"
    (earlier / "chunks").mkdir(parents=True)
    (earlier / "chunks" / "chunk-00001.csv").write_text("pii")
    current.mkdir()
    for text in ("null", "[1]", '"x"'):
        (earlier / "plan.json").write_text(text)
        assert _prune_report_files(current) == 0 and (earlier / "chunks" / "chunk-00001.csv").exists()
        assert _previous_contract(current, "abc") is None
    (earlier / "plan.json").write_text(json.dumps({"purpose": "report", "fingerprint": "old"}))
    assert _previous_contract(current, "abc") == {"run_id": "run-1", "fingerprint": "old", "changed": True}
    assert _prune_report_files(current) == 1 and not (earlier / "chunks").exists()


def test_a_part_with_a_column_that_is_not_text_comes_back(tmp_path) -> None:
    """Text columns are staged as their Arrow arrays; any other column goes through pandas' conversion."""
    staging = Staging(tmp_path)
    staging.write(pd.DataFrame({"_legacy_id": pd.Series(["a", "b"], dtype=STRING), "n": [3, 4]}))
    staging.write(_part(["c"]).assign(n=5))
    got = staging.take(np.array([2, 0]), ["_legacy_id", "n"])
    assert got["_legacy_id"].tolist() == ["c", "a"] and got["n"].tolist() == [5, 3]
