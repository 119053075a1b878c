"""The run ledger: the account lock (across processes, kill -9 safe) and state that survives reopening."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import RunLockedError
from pipeline.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
KEY = "local:http://127.0.0.1:9229:us-east-1"

HOLDER = """
import sys, time
from pathlib import Path
from pipeline.ledger import Ledger
led = Ledger.open(Path(sys.argv[1]), lock_key=sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""

TRY = """
import sys
from pathlib import Path
from pipeline.errors import RunLockedError
from pipeline.ledger import Ledger
try:
    Ledger.open(Path(sys.argv[1]), lock_key=sys.argv[2]).close()
except RunLockedError as exc:
    print("refused:", exc)
    sys.exit(4)
print("acquired")
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_naming_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    proc = _holder(path)
    try:
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            Ledger.open(path, lock_key=KEY)
        other = subprocess.run(
            [sys.executable, "-c", TRY, str(path), KEY], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 4 and f"pid {proc.pid}" in other.stdout
        with Ledger.open(path, lock_key="local:http://127.0.0.1:1:us-east-1"):
            pass  # another account/endpoint is not blocked
    finally:
        proc.kill()
        proc.wait()


def test_a_run_with_another_ledger_is_refused_for_the_same_account(tmp_path: Path) -> None:
    """The lock is the account's, not the ledger file's: a second checkout, or MIGRATE_RUNS_DIR set
    elsewhere, must not start import jobs in an account where a run is going on."""
    proc = _holder(tmp_path / "one" / "ledger.sqlite")
    try:
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            Ledger.open(tmp_path / "other" / "ledger.sqlite", lock_key=KEY)
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_directory_others_can_write_to_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import LedgerError

    shared = tmp_path / "locks"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("MIGRATE_LOCK_DIR", str(shared))
    with pytest.raises(LedgerError, match=f"{shared} is not a directory that only you can write to"):
        Ledger.open(tmp_path / "ledger.sqlite", lock_key=KEY)
    shared.chmod(0o700)
    with Ledger.open(tmp_path / "ledger.sqlite", lock_key=KEY):
        assert len(list(shared.iterdir())) == 1


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    proc = _holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Ledger.open(path, lock_key=KEY) as led:
        led.acquire_lock(KEY)  # re-entrant inside one ledger
        led.release_lock(KEY)
        with pytest.raises(RunLockedError):
            Ledger.open(path, lock_key=KEY)
    time.sleep(0)
    with Ledger.open(path, lock_key=KEY):
        pass


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as led:
        led.start_run("r1", "acme", KEY, "us-east-1", "pool_1")
        led.plan_chunk(
            "acme", "pool_1", "chunk-00001", "a" * 64, 3, "r1", header=["email", "cognito:username"]
        )
        led.record_job(
            {
                "JobId": "import-abc",
                "JobName": "acme-chunk-00001-aaaaaaaa",
                "UserPoolId": "pool_1",
                "Status": "Created",
                "CreationDate": 1_700_000_000.5,
            },
            tenant="acme",
            chunk="chunk-00001",
            chunk_sha256="a" * 64,
            run_id="r1",
        )
        led.mark_uploaded("import-abc")
        led.set_chunk_state("acme", "pool_1", "a" * 64, "uploaded", "import-abc")
        led.record_outcomes(
            "acme",
            "pool_1",
            pd.DataFrame(
                {
                    "legacy_id": ["1", "2", "3"],
                    "outcome": ["imported", "skipped", "failed"],
                    "message": ["The import succeeded.", "The user already exists.", "bad"],
                    "job_id": ["import-abc"] * 3,
                    "line": [1, 2, 3],
                    "username": ["u1", "u2", "u3"],
                }
            ),
        )
        led.finish_run("r1", "crashed")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Ledger.open(path) as led:
        chunk = led.chunk("acme", "pool_1", "a" * 64)
        assert chunk is not None and chunk["state"] == "uploaded" and chunk["job_id"] == "import-abc"
        job = led.job("import-abc")
        assert (
            job is not None and job.uploaded and job.status == "Created" and job.created_at == 1_700_000_000.5
        )
        assert not led.chunk_done("acme", "pool_1", "a" * 64)
        assert [r["status"] for r in led.runs("acme")] == ["crashed"]
        out = led.outcomes("acme")
        assert list(out["outcome"]) == ["imported", "skipped", "failed"] and list(out["line"]) == [1, 2, 3]
        assert list(led.in_pool_ids("acme", "pool_1")) == ["1", "2"]     # the failed user is not in the pool
        assert list(led.in_pool_ids("acme", "pool_2")) == [] and list(led.in_pool_ids("beta", "pool_1")) == []
        assert list(led.in_pool_ids("acme", "pool_1", confirmed_only=True)) == []     # nobody checked yet
        led.confirm_outcomes("acme", "pool_1", pd.DataFrame({"legacy_id": ["2", "3"], "confirmed": [1, 1],
                                                             "sub": ["s2", "s3"]}))
        assert list(led.in_pool_ids("acme", "pool_1", confirmed_only=True)) == ["2"]  # not the failed one
        # a later job reporting an imported user as skipped does not undo the import
        led.record_outcomes(
            "acme",
            "pool_1",
            pd.DataFrame(
                {
                    "legacy_id": ["1", "3"],
                    "outcome": ["skipped", "imported"],
                    "message": ["The user already exists.", "The import succeeded."],
                    "job_id": ["import-def"] * 2,
                    "line": [1, 3],
                    "username": ["u1", "u3"],
                }
            ),
        )
        out = led.outcomes("acme").set_index("legacy_id")
        assert out.loc["1", "outcome"] == "imported" and out.loc["1", "job_id"] == "import-abc"
        assert out.loc["3", "outcome"] == "imported" and len(out) == 3


def test_a_commit_that_fails_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that fails (a full disk) is rolled back: the connection must not stay inside that
    transaction, where every later write would land uncommitted and the next one could not begin."""
    import sqlite3

    class FailingCommit:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self.db, name)

    with Ledger.open(tmp_path / "ledger.sqlite") as led:
        led.plan_chunk("acme", "pool_1", "chunk-00001", "a" * 64, 3, "r1")
        real = led._db
        led._db = FailingCommit(real)   # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            led.record_outcomes("acme", "pool_1", pd.DataFrame({"legacy_id": ["L1"], "outcome": ["imported"]}),
                                chunk_state=("a" * 64, "harvested", "import-1"))
        led._db = real
        assert not real.in_transaction
        assert led.outcomes("acme").empty
        assert led.chunk("acme", "pool_1", "a" * 64)["state"] == "planned"
        led.record_outcomes("acme", "pool_1", pd.DataFrame({"legacy_id": ["L1"], "outcome": ["imported"]}))
        assert list(led.outcomes("acme")["legacy_id"]) == ["L1"]


def test_a_ledger_that_cannot_be_written_is_not_called_damaged(tmp_path: Path) -> None:
    """A whole ledger that cannot be opened for writing (a full disk, a read-only mount; here its -wal file
    cannot be made) must be kept: the advice for a damaged file, to move it aside, would lose its state."""
    from pipeline.errors import LedgerError

    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as led:
        led.plan_chunk("acme", "pool_1", "chunk-00001", "a" * 64, 3, "r1")
    (tmp_path / "ledger.sqlite-wal").mkdir()
    with pytest.raises(LedgerError) as caught:
        Ledger.open(path)
    assert "move it aside" not in caught.value.message
    assert f"The run ledger {path} cannot be opened" in caught.value.message
    assert "keep the file" in caught.value.message
    (tmp_path / "ledger.sqlite-wal").rmdir()
    with Ledger.open(path) as led:
        assert led.chunk("acme", "pool_1", "a" * 64)["state"] == "planned"
    path.write_text("not a database")
    with pytest.raises(LedgerError, match="move it aside"):
        Ledger.open(path)


def test_a_lock_file_that_cannot_be_written_names_the_lock_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under MIGRATE_LOCK_DIR: the message names the lock file and MIGRATE_LOCK_DIR (it was the
    CLI's 'free space on the disk of MIGRATE_RUNS_DIR', another disk), and the lock is not kept."""
    import errno

    from pipeline.errors import LedgerError

    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(LedgerError) as caught:
        Ledger.open(tmp_path / "ledger.sqlite", lock_key=KEY)
    assert f"The run lock {Ledger.lock_path(KEY)} cannot be written (No space left on device)" in caught.value.message
    assert "MIGRATE_LOCK_DIR" in caught.value.message
    monkeypatch.setattr(os, "pwrite", real)
    other = subprocess.run([sys.executable, "-c", TRY, str(tmp_path / "ledger.sqlite"), KEY], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 0 and "acquired" in other.stdout
