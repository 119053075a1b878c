"""Work on the next item on a second thread while the caller handles the current one.

The plan stage has two cores and one GIL. Its per-partition steps that are mostly Arrow kernels
(mapping, encoding import lines) spend most of their time without the GIL, so one of them can run
on a second thread while the caller runs the next step (pandera's checks, writing files), which
mostly holds it.
At most one item is worked on ahead, so memory holds one partition more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ahead(items: Iterable[T], work: Callable[[T], R], name: str = "ahead") -> Iterator[R]:
    """``work(item)`` for every item, in order, each started as soon as the item before was handed out.

    An exception raised by ``work`` reaches the caller when it asks for that item, after every item
    before it. A caller that stops early waits for the item being worked on, so no thread is left.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as worker:
        waiting: Future[R] | None = None
        submitted: Future[R] | None
        for item in items:
            submitted = worker.submit(work, item)
            del item                       # the worker holds it only as long as it needs it
            if waiting is not None:
                result, waiting = waiting.result(), None
                yield result               # only the caller holds the result now
                del result
            waiting, submitted = submitted, None
        if waiting is not None:
            result, waiting = waiting.result(), None
            yield result
