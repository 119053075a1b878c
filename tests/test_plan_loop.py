"""The plan loop maps partition k+1 on a second thread while partition k is validated (runner._mapped_ahead)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pandas as pd
import pytest

from pipeline import runner
from pipeline.errors import ConfigError


def _parts(n: int) -> list[pd.DataFrame]:
    return [pd.DataFrame({"id": [f"{k}-{i}" for i in range(k + 1)]}) for k in range(n)]


def _fake_mapping(seen: list[str], fail_at: int | None = None):
    def apply(mapping: object, frame: pd.DataFrame) -> SimpleNamespace:
        first = str(frame["id"].iloc[0])
        seen.append(f"map {first}")
        if fail_at is not None and first.startswith(f"{fail_at}-"):
            raise ConfigError("Mapping failed", [f"partition {fail_at}"])
        return SimpleNamespace(frame=frame.assign(mapped=threading.current_thread().name))
    return apply


def test_partitions_come_back_in_order_each_mapped_on_the_mapping_thread(monkeypatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(runner, "apply_mapping", _fake_mapping(seen))
    out = [(rows, list(m.frame["id"]), set(m.frame["mapped"]))
           for rows, m in runner._mapped_ahead(iter(_parts(4)), None,
                                               lambda f: seen.append(f"inspect {f['id'].iloc[0]}"))]
    assert [(rows, ids) for rows, ids, _ in out] == [(k + 1, [f"{k}-{i}" for i in range(k + 1)]) for k in range(4)]
    assert all(len(threads) == 1 and next(iter(threads)).startswith("map") for _, _, threads in out)
    for k in range(4):     # every partition is inspected before it is mapped
        assert seen.index(f"inspect {k}-0") < seen.index(f"map {k}-0")


def test_a_mapping_error_reaches_the_caller_after_the_partitions_before_it(monkeypatch) -> None:
    monkeypatch.setattr(runner, "apply_mapping", _fake_mapping([], fail_at=2))
    got = []
    with pytest.raises(ConfigError, match="Mapping failed"):
        for rows, _ in runner._mapped_ahead(iter(_parts(5)), None, lambda f: None):
            got.append(rows)
    assert got == [1, 2]


def test_a_caller_that_stops_early_leaves_no_mapping_thread_behind(monkeypatch) -> None:
    monkeypatch.setattr(runner, "apply_mapping", _fake_mapping([]))
    ahead = runner._mapped_ahead(iter(_parts(5)), None, lambda f: None)
    next(ahead)
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("map")]
