"""BLAS threads for the scorers' linear algebra: one thread against the usable cores, idle and busy.

The scorers (LogME, H-score, TransRate, kNN) and the ranking bootstrap spend their time in one Gram product
and one symmetric eigendecomposition per candidate (``zoo.scores._base.spectrum``), on matrices of a few
hundred to a few thousand rows. This script times exactly that (``X^T X`` or ``X X^T``, then
``numpy.linalg.eigh``) at the sizes zoo meets, with BLAS limited to 1 thread and to the usable cores, in two
conditions it makes itself so that the figures do not depend on whatever else the machine is running:

- ``idle``: nothing else started by this script (the load average before the run is printed);
- ``busy``: one pure-Python busy loop per usable core running beside it (another job on the machine).

Usage: ``python benchmarks/bench_blas_threads.py [--repeats 3]``. Prints a table of median seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

SIZES = [(250, 512), (500, 768), (500, 2048), (2000, 1024), (5000, 2048)]  # (rows, feature dimension)


def _spin(stop: mp.Event) -> None:  # type: ignore[valid-type]
    x = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        for _ in range(100_000):
            x += 1


def _time(x: np.ndarray, threads: int, repeats: int) -> float:
    out = []
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
            np.linalg.eigh(g)
            out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    mats = {s: rng.standard_normal(s) for s in SIZES}
    print(f"usable cores: {cores}; load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    for condition in ("idle", "busy"):
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores if condition == "busy" else 0)]
        for p in spinners:
            p.start()
        time.sleep(1.0 if spinners else 0.0)
        for (n, d), x in mats.items():
            one = _time(x, 1, args.repeats)
            many = _time(x, cores, args.repeats)
            rows.append((condition, n, d, one, many))
            print(f"{condition:5s} {n:5d} x {d:5d}   1 thread {one:8.3f} s   {cores} threads {many:8.3f} s   "
                  f"{cores} threads / 1 thread = {many / one:6.2f}x", flush=True)
        stop.set()
        for p in spinners:
            p.join()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
