"""zoo's CPU thread count: the cores this process may run on, whatever other processes' load (issue 21 item 5).

The earlier rule subtracted the 1-minute load average from the cores and fell to one thread on a busy
machine; these tests fail under it. The load average is replaced (a real one cannot be raised on demand
within a test); the affinity mask is real: a child process is pinned to one core with sched_setaffinity.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zoo.errors import UsageError
from zoo.scores._base import blas_threads, cpu_threads
from zoo.threads import usable_cores

_THREAD_ENV = ("ZOO_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")


@pytest.fixture
def no_thread_env(monkeypatch):
    for name in _THREAD_ENV:
        monkeypatch.delenv(name, raising=False)


def _child(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (no thread count decided yet) without the thread variables."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_ENV}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.split()


@needs_affinity
def test_threads_are_the_usable_cores_whatever_the_load():
    cores = len(os.sched_getaffinity(0))
    assert usable_cores() == cores
    # Idle, "about 0.5" (where the old rule fell to one thread on 2 cores), oversubscribed.
    for load in (0.0, 0.6, cores + 10.0):
        code = (f"import os; os.getloadavg = lambda: ({load}, {load}, {load}); "
                "from zoo.scores._base import cpu_threads; print(cpu_threads())")
        assert _child(code) == [str(cores)], f"load {load} changed the thread count"


@needs_affinity
def test_threads_follow_the_affinity_mask():
    # A child pinned to one core: the count comes from the mask, not from os.cpu_count().
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from zoo.scores._base import cpu_threads; print(cpu_threads(), os.cpu_count())")
    threads, cpus = _child(code)
    assert threads == "1", f"pinned to one of {cpus} cores, yet {threads} threads"


def test_zoo_num_threads_overrides_and_thread_env_is_left_to_the_libraries(no_thread_env, monkeypatch):
    monkeypatch.setenv("ZOO_NUM_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.delenv("ZOO_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() is None  # the user's OpenMP setting is not overridden
    monkeypatch.setenv("ZOO_NUM_THREADS", "2")
    assert cpu_threads() == 2  # ZOO_NUM_THREADS wins over the library variables
    for bad in ("0", "-1", "many"):
        monkeypatch.setenv("ZOO_NUM_THREADS", bad)
        with pytest.raises(UsageError, match="ZOO_NUM_THREADS must be a positive integer.*unset it"):
            cpu_threads()


def test_blas_threads_apply_the_count(no_thread_env, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # load the BLAS library so threadpoolctl sees it
    monkeypatch.setenv("ZOO_NUM_THREADS", "1")
    with blas_threads():
        blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas and set(blas) == {1}


def test_scorer_blas_is_one_thread_unless_asked(no_thread_env, monkeypatch):
    """The scorers' small eigendecompositions run on one BLAS thread whatever the cores (two were 2-46x slower
    beside any other work: benchmarks/bench_blas_threads.py); ZOO_NUM_THREADS still sets it, and the
    library variables leave it alone. Fails if blas_threads follows cpu_threads() again."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    from zoo.scores._base import scorer_blas_threads

    np.ones((2, 2)) @ np.ones((2, 2))

    def blas() -> set[int]:
        with blas_threads():
            return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    monkeypatch.setattr("zoo.scores._base.usable_cores", lambda: 4)
    assert cpu_threads() == 4 and scorer_blas_threads() == 1 and blas() == {1}
    monkeypatch.setenv("ZOO_NUM_THREADS", "2")
    assert scorer_blas_threads() == 2 and blas() == {2}
    monkeypatch.delenv("ZOO_NUM_THREADS")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert scorer_blas_threads() is None
