"""BLAS threads for the small products of one query.

A description query is a few dozen small matrix-vector products (the phrases, the cards, a pool of a
few hundred). On a machine with few cores OpenBLAS's worker threads keep spinning after each product
and take the CPU from the rest of the query (tokenising, SQLite, the ONNX encoder): on 2 cores the
median warm ``zoo recommend`` went from 30.6 to 15.2 ms without them (BENCHMARKS.md). One thread is as fast
for products this size, so the query runs with BLAS limited to one thread, and the user's own NumPy
work outside it keeps its threads.

:func:`usable_cores` is the number every other thread count in zoo starts from (the torch passes and the
scorers' BLAS through :func:`zoo.scores._base.cpu_threads`, the ONNX description encoder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    with _controller().limit(limits=1, user_api="blas"):
        yield


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (a container's or ``taskset``'s cpuset),
    all cores where the OS has no such mask. Not reduced by other processes' load (issue 21 item 5)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1
