"""The migrate's own files around the load (``pipeline.runner``)."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import runner
from pipeline.load import LoadPolicy


def test_import_files_whose_load_settings_cannot_be_written_are_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load.json is what lets a later load remove a run's import files (PII); a disk that fills up while it
    is written left them with none, or half of one, and every later prune kept them for good."""
    run_dir = tmp_path / "acme-jp" / "20260101T000000000000Z"
    (run_dir / "chunks").mkdir(parents=True)
    (run_dir / "chunks" / "chunk-00001.csv").write_text("pii")
    plan = SimpleNamespace(run_dir=run_dir, gate_passed=True)
    monkeypatch.setattr(runner, "plan_tenant", lambda *args, **kwargs: plan)
    real = Path.write_text

    def full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.name == runner.LOAD_FILE:
            real(self, text[:5])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *args, **kwargs)   # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        runner.start_tenant(SimpleNamespace(), "acme-jp", target=None, ledger=None,   # type: ignore[arg-type]
                            policy=LoadPolicy())
    assert not (run_dir / "chunks").exists()
