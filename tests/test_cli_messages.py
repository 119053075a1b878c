"""The CLI's messages for what the system refuses (no traceback: a full disk is not a bug of ours)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.cli import _ledger_problem, _os_problem


def _arrow_full_disk() -> OSError:
    """The error Arrow's file writers raise on a full disk: no errno or file name, only text."""
    with pytest.raises(OSError) as caught:   # noqa: PT012 - the write or the flush may raise
        with pa.OSFile("/dev/full", "wb") as sink:
            sink.write(b"x" * (1 << 16))
    return caught.value


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device", "runs/acme-jp/rejects.csv"),
                                 pytest.param(None, id="arrow")])
def test_a_full_disk_says_to_free_space_where_the_runs_are(exc: OSError | None) -> None:
    message = _os_problem(exc or _arrow_full_disk())
    assert message.startswith("No space left on device")
    assert "Free space on the disk of MIGRATE_RUNS_DIR" in message and "rerun the same command" in message


def test_a_ledger_another_process_holds_is_not_called_a_full_disk(tmp_path: Path) -> None:
    """SQLITE_BUSY (a sqlite3 shell holding a write on runs/ledger.sqlite) said to check the disk's room."""
    path = tmp_path / "ledger.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE runs (run_id TEXT)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            sqlite3.connect(path, timeout=0).execute("INSERT INTO runs VALUES ('r1')")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = _ledger_problem(caught.value)
    assert "database is locked" in message and "another process holds ledger.sqlite" in message
    assert "has room" not in message and "rerun the same command" in message
    assert "has room" in _ledger_problem(sqlite3.OperationalError("database or disk is full"))


def test_a_tenant_file_that_would_not_be_read_stops_the_run(tmp_path: Path) -> None:
    """Only ``*.yaml`` names a tenant: an ``acme.yml`` or ``acme.YAML`` would leave its users out of a
    run of every tenant, in silence. Every such file is named, with the name to give it."""
    from types import SimpleNamespace

    from pipeline.cli import _tenants
    from pipeline.errors import MigrationError

    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for name in ("acme.yaml", "globex.yml", "initech.YAML", ".#acme.yaml", "notes.txt"):
        (tenants / name).write_text("tenant: x\n")
    settings = SimpleNamespace(mappings_dir=tmp_path)
    with pytest.raises(MigrationError) as caught:
        _tenants(settings, None)   # type: ignore[arg-type]
    message = str(caught.value)
    assert "globex.yml: rename it globex.yaml" in message and "initech.YAML: rename it initech.yaml" in message
    assert "notes.txt" not in message and "acme" not in message
    (tenants / "globex.yml").unlink()
    (tenants / "initech.YAML").unlink()
    assert _tenants(settings, None) == ["acme"]   # type: ignore[arg-type]
