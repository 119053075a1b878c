"""Several paged listings at once, one call rate shared by all of them.

``interleave`` runs iterators in worker threads and yields their items as they come, so that while
one listing waits for its next page the others' pages are being handled (the service and our parsing
overlap). ``Pacer`` spaces calls across every thread that shares it: real AWS rate-limits ListUsers per
account, so N listings together must stay under the rate one listing alone had.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class Pacer:
    """At most ``per_second`` calls a second, shared by every thread that holds this pacer (0 = no limit).

    Each caller reserves the next free slot under a lock and sleeps until it comes.
    """

    def __init__(self, per_second: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._sleep, self._clock = sleep, clock
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def interleave(sources: list[Callable[[threading.Event], Iterator[T]]], workers: int) -> Iterator[T]:
    """The items of every source, ``workers`` sources running at once, in the order they come.

    A source gets a stop event and should check it between items. The first error of any source ends
    the iteration with that error; so does closing the iterator early. Either way the other sources are
    told to stop and their threads are joined before this returns.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=2 * max(1, workers))
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(source: Callable[[threading.Event], Iterator[T]]) -> None:
        try:
            for item in source(stop):
                put(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer and raised there
            put(exc)
        put(_DONE)

    executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fanout")
    try:
        for source in sources:
            executor.submit(run, source)
        remaining = len(sources)
        while remaining:
            item = out.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
