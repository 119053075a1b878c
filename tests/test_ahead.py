"""ahead(): the next item is worked on by a second thread while the caller handles the current one."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.ahead import ahead


def test_results_come_in_order_and_are_worked_on_another_thread() -> None:
    out = list(ahead(range(6), lambda i: (i * i, threading.current_thread().name), name="sq"))
    assert [r for r, _ in out] == [0, 1, 4, 9, 16, 25]
    assert {t for _, t in out} != {threading.current_thread().name}
    assert all(t.startswith("sq") for _, t in out)


def test_the_next_item_is_worked_on_while_the_caller_holds_the_current_one() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        return i

    gen = ahead(range(3), work)
    assert next(gen) == 0
    deadline = time.monotonic() + 5
    while 1 not in started and time.monotonic() < deadline:
        time.sleep(0.001)
    assert started == [0, 1]        # item 1 started while the caller holds item 0; item 2 not yet
    assert list(gen) == [1, 2]


def test_an_error_reaches_the_caller_after_the_items_before_it() -> None:
    def work(i: int) -> int:
        if i == 2:
            raise ValueError("bad item 2")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 2"):
        for r in ahead(range(5), work):
            got.append(r)
    assert got == [0, 1]


def test_a_caller_that_stops_early_leaves_no_thread_behind() -> None:
    gen = ahead(range(5), lambda i: i, name="early")
    next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("early")]
