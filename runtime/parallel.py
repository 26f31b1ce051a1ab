"""Work items run on a few threads, results in the items' order, with a bounded number in flight.

onnxruntime (and numpy's larger loops) release the GIL, so threads sampling different chunks run on
different cores; the results come back in the order of the items, whatever order they finish in.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from makemore.data import UserError
from makemore.data.bounds import MAX_WORKERS

if TYPE_CHECKING:  # imported by a pool's first use: concurrent.futures (and logging) cost mm-gen's cold start 2 ms
    from concurrent.futures import Future

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_workers(value: object, name: str = "workers") -> int:
    """`value` if it is a whole number from 1 to MAX_WORKERS; a UserError naming `name` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
        raise UserError(f"{name} must be a whole number from 1 to {MAX_WORKERS:,}, got {value!r:.40}")
    return value


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn(item) for every item, yielded in the items' order, computed by up to `workers` threads.

    At most 2 * workers items are in flight (submitted and not yet yielded), so memory stays bounded for any
    number of items. One worker, or a single item, runs inline in the caller's thread: no pool is started.
    Closing the iterator early cancels the items not yet started and waits for the running ones.
    """
    it = iter(items)
    head = list(itertools.islice(it, 2))
    if workers <= 1 or len(head) <= 1:
        yield from map(fn, head)
        yield from map(fn, it)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="makemore-sample")
    pending: deque[Future[R]] = deque()
    try:
        for item in head:
            pending.append(pool.submit(fn, item))
        for item in it:
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
