"""The CLI's messages for what the system refuses (no traceback: a full disk is not a bug of ours)."""

from __future__ import annotations

import errno

import pyarrow as pa
import pytest

from pipeline.cli import _os_problem


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
