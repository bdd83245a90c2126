"""Quick-probe speed: ``zoo.probe.probe_features`` against scikit-learn's LogisticRegressionCV in every fold.

    python benchmarks/bench_probe.py                       # 1,000 x 2,048, 10 classes, 5 folds, grid standard
    python benchmarks/bench_probe.py --n 1000 --d 512 --sklearn-folds 5
    python benchmarks/bench_probe.py --cuda-n 50000        # + the GPU speed-up (when torch sees a GPU)

Features: Gaussian class clusters in a 64-d latent space, mixed into D dimensions, plus noise with a
power-law spectrum, rectified (non-negative like pooled CNN features); about 90 % linear-probe
accuracy, so regularisation matters. Seeded: every run probes the same matrix.

Baseline: per outer fold, ``StandardScaler`` on the fold's training rows, then
``LogisticRegressionCV(Cs=<the grid>, cv=<the same number of stratified inner folds>)`` with
scikit-learn's defaults otherwise (lbfgs, ``max_iter=100``, refit at the best C): the plain way to
run the same nested cross-validation. It is timed on ``--sklearn-folds`` folds and extrapolated to
all folds (the output says so).

With CUDA: the same probe on ``--cuda-n`` rows on the GPU and on the CPU (all cores), and the
speed-up. Every figure is printed with wall and CPU seconds and the load average: on a shared machine
wall time depends on the other processes, CPU time much less. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def features(n: int, d: int, classes: int, seed: int = 0, latent: int = 64, separation: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: n rows of d rectified features, ``classes`` balanced classes."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, latent)) * separation
    y = np.arange(n) % classes
    z = means[y] + rng.standard_normal((n, latent))
    mix = rng.standard_normal((latent, d)) / np.sqrt(latent)
    spectrum = 2.0 / np.arange(1, d + 1) ** 0.7
    noise = rng.standard_normal((n, d)) * spectrum[rng.permutation(d)]
    return np.maximum(z @ mix + noise, 0).astype(np.float32), y


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def _clock(fn, *args, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def ours(X: np.ndarray, y: np.ndarray, args: argparse.Namespace, device: str = "cpu", threads: int | None = None):
    from zoo.probe import probe_features

    return _clock(probe_features, X, y, folds=args.folds, seed=0, grid=args.grid, device=device, threads=threads)


def sklearn_fold(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, cs: list[float],
                 inner: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X[train])
    with warnings.catch_warnings():
        # lbfgs stops at max_iter=100 before converging on weak regularisation, as it does for users;
        # newer scikit-learn also announces changes of defaults.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        clf = LogisticRegressionCV(Cs=cs, cv=StratifiedKFold(inner, shuffle=True, random_state=0), n_jobs=1)
        clf.fit(scaler.transform(X[train]), y[train])
    return float(clf.score(scaler.transform(X[test]), y[test]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--grid", default="standard")
    ap.add_argument("--sklearn-folds", type=int, default=1, help="Outer folds the baseline is timed on (0: skip).")
    ap.add_argument("--threads", type=int, help="torch threads for our probe on CPU (default: zoo.probe.CPU_THREADS).")
    ap.add_argument("--repeat", type=int, default=2, help="Runs of our probe (the best is reported; all are shown).")
    ap.add_argument("--cuda-n", type=int, default=50000, help="Rows for the GPU comparison (0: skip).")
    args = ap.parse_args()

    import torch

    from zoo.probe import INNER_FOLDS, describe_grid, grid_values, stratified_folds

    name, cs = grid_values(args.grid)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads available; {_load()}")
    print(f"Probe: {args.n} x {args.d} synthetic features, {args.classes} classes, {args.folds} outer folds, "
          f"{INNER_FOLDS}-fold inner CV over grid {describe_grid(name, cs)}")
    X, y = features(args.n, args.d, args.classes)

    runs = []
    for _ in range(max(1, args.repeat)):
        res, wall, cpu = ours(X, y, args, threads=args.threads)
        runs.append((wall, cpu))
    wall, cpu = min(runs)
    print(f"zoo.probe.probe_features (cpu, {args.threads or 'default'} thread(s)): {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"(runs: {', '.join(f'{w:.1f}/{c:.1f}' for w, c in runs)} wall/CPU s); accuracy {100 * res.accuracy:.1f} % "
          f"[{100 * res.accuracy_ci[0]:.1f}, {100 * res.accuracy_ci[1]:.1f}], C per fold "
          f"{', '.join(f'{c:g}' for c in res.chosen_c)}, {res.iterations} L-BFGS iterations; {_load()}")

    if args.sklearn_folds:
        outer = stratified_folds(y, args.folds, 0)
        k = min(args.sklearn_folds, args.folds)
        accs, t_wall, t_cpu = [], 0.0, 0.0
        for f in range(k):
            acc, w, c = _clock(sklearn_fold, X, y, np.flatnonzero(outer != f), np.flatnonzero(outer == f), cs,
                               INNER_FOLDS)
            accs.append(acc)
            t_wall, t_cpu = t_wall + w, t_cpu + c
        scale = args.folds / k
        how = "measured on all folds" if k == args.folds else f"measured on {k} fold(s), extrapolated x{scale:g}"
        print(f"sklearn LogisticRegressionCV per fold: {t_wall * scale:.1f} s wall, {t_cpu * scale:.1f} s CPU for "
              f"{args.folds} folds ({how}); accuracy on those folds {100 * np.mean(accs):.1f} % (ours on the "
              f"same folds {100 * np.mean(res.fold_accuracies[:k]):.1f} %); {_load()}")
        print(f"Speed-up over sklearn: {t_wall * scale / wall:.1f}x wall, {t_cpu * scale / cpu:.1f}x CPU")

    if args.cuda_n and torch.cuda.is_available():
        Xg, yg = features(args.cuda_n, args.d, args.classes, seed=1)
        ours(Xg[:2000], yg[:2000], args, device="cuda")  # CUDA context and kernels warm
        res_g, wall_g, _ = ours(Xg, yg, args, device="cuda")
        print(f"GPU ({torch.cuda.get_device_name()}): {args.cuda_n} x {args.d}: {wall_g:.2f} s; accuracy "
              f"{100 * res_g.accuracy:.2f} %, C per fold {', '.join(f'{c:g}' for c in res_g.chosen_c)}")
        threads = os.cpu_count() or 1
        res_c, wall_c, cpu_c = ours(Xg, yg, args, device="cpu", threads=threads)
        print(f"CPU ({threads} threads): {args.cuda_n} x {args.d}: {wall_c:.1f} s wall, {cpu_c:.1f} s CPU; accuracy "
              f"{100 * res_c.accuracy:.2f} % (GPU - CPU: {100 * (res_g.accuracy - res_c.accuracy):+.2f} points)")
        print(f"GPU speed-up: {wall_c / wall_g:.1f}x")
    elif args.cuda_n:
        print("CUDA: torch sees no GPU here; the GPU comparison was skipped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
