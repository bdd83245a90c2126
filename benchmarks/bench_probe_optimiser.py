"""The probe's hand-written L-BFGS against library optimisers on the same fits: speed and agreement.

    python benchmarks/bench_probe_optimiser.py                      # bench_probe's 1,000 x 2,048, 10 classes
    python benchmarks/bench_probe_optimiser.py --n 400 --d 384 --classes 2

``zoo.probe.probe_features`` runs its nested cross-validation three times on the same features (those of
``benchmarks/bench_probe.py``, seeded), each time with a different solver for the fits; everything else
(folds, standardisation, the eigenbasis rewrite, the grid, warm starts along it, the held-out predictions,
the choice of C) is the probe's own code:

- ``zoo``: the probe's solver (``zoo.probe.solver._fit_path``): all splits of a stage in one batched,
  preconditioned L-BFGS, converged fits leaving the batch.
- ``torch.optim.LBFGS``: one split at a time (the library optimises one parameter set), strong-Wolfe line
  search, the same history (10), iteration cap (150 per grid value) and stopping tolerance (a change of the
  objective below 1e-5 of it), the probe's objective and analytic gradient.
- ``scipy L-BFGS-B``: one split at a time, ``ftol`` 1e-5 (the same relative rule), ``maxcor`` 10,
  ``maxiter`` 150, in float64 around the probe's float32 objective.
- ``reference``: scipy L-BFGS-B run to convergence (``ftol`` 1e-12, ``gtol`` 1e-7, up to 5,000 iterations):
  the optimum each fit should reach, against which the three are compared.

Printed per solver: wall and CPU seconds (the probe's torch threads: ``zoo.probe.CPU_THREADS``), the
accuracy, the C chosen per outer fold, the iterations (zoo: the slowest fit of each batch, summed; the others:
every fit's, summed) and whether the chosen C and fold accuracies equal the reference's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _per_split(solve_one):
    """A ``_fit_path`` replacement that solves each split alone with ``solve_one(batch, x, lam, K)``."""

    def fit_path(Xt, yt, splits, cs, n_classes):
        from zoo.probe.solver import _Batch

        preds: list[list[np.ndarray]] = [[] for _ in cs]
        iterations = 0
        for split in splits:
            b = _Batch.build(Xt, yt, [split])
            K, R = n_classes, b.F.shape[2]
            x = b.F.new_zeros(1, K * R + K)
            for g, c in enumerate(cs):
                lam = 1.0 / (float(c) * b.m)  # as zoo.probe.solver._Batch.solve
                x, its = solve_one(b, x, lam, K)
                iterations += its
                ZT = x[:, : K * R].view(1, K, R)
                pred = (ZT @ b.FtT + x[:, K * R:, None]).argmax(1).cpu().numpy()
                preds[g].append(pred[0, : b.n_test[0]])
        return preds, iterations

    return fit_path


def torch_lbfgs(b, x0, lam, K):
    import torch

    from zoo.probe.solver import _HISTORY, _MAX_ITER, _TOL, _objective

    x = x0.clone()
    f0, _ = _objective(b, lam, x, K)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=_MAX_ITER, history_size=_HISTORY, tolerance_grad=1e-9,
                            tolerance_change=_TOL * max(float(f0), _TOL), line_search_fn="strong_wolfe")

    def closure():
        f, g = _objective(b, lam, x, K)
        x.grad = g
        return f.sum()

    opt.step(closure)
    return x.detach(), opt.state[opt._params[0]]["n_iter"]


def scipy_lbfgsb(b, x0, lam, K, *, tight: bool = False):
    import torch
    from scipy.optimize import minimize

    from zoo.probe.solver import _HISTORY, _MAX_ITER, _TOL, _objective

    def fun(v):
        f, g = _objective(b, lam, torch.as_tensor(v, dtype=torch.float32)[None], K)
        return float(f[0]), g[0].double().numpy()

    opts = ({"maxiter": 5000, "maxcor": 30, "ftol": 1e-12, "gtol": 1e-7} if tight else
            {"maxiter": _MAX_ITER, "maxcor": _HISTORY, "ftol": _TOL, "gtol": 1e-9})
    res = minimize(fun, x0[0].double().numpy(), jac=True, method="L-BFGS-B", options=opts)
    return torch.as_tensor(res.x, dtype=torch.float32)[None], int(res.nit)


def scipy_tight(b, x0, lam, K):
    return scipy_lbfgsb(b, x0, lam, K, tight=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--grid", default="standard")
    ap.add_argument("--solvers", default="reference,zoo,torch,scipy")
    args = ap.parse_args()

    import torch

    import zoo.probe.cv as cv
    from benchmarks.bench_probe import features
    from zoo.probe import CPU_THREADS, probe_features

    X, y = features(args.n, args.d, args.classes)
    own = cv._fit_path
    solvers = {"zoo": own, "torch": _per_split(torch_lbfgs), "scipy": _per_split(scipy_lbfgsb),
               "reference": _per_split(scipy_tight)}
    names = {"zoo": "zoo (batched, preconditioned)", "torch": "torch.optim.LBFGS (per split)",
             "scipy": "scipy L-BFGS-B (per split)", "reference": "reference (scipy, converged)"}
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; torch {torch.__version__}, {CPU_THREADS} torch thread(s) (the "
          f"probe's CPU default); {args.n} x {args.d}, {args.classes} classes, {args.folds} folds, grid {args.grid}; "
          f"load average {os.getloadavg()[0]:.2f}")
    ref = None
    for key in args.solvers.split(","):
        cv._fit_path = solvers[key]
        try:
            probe_features(X[:60], y[:60], folds=2, grid=args.grid, device="cpu")  # imports and kernels warm
            w, c = time.perf_counter(), time.process_time()
            res = probe_features(X, y, folds=args.folds, grid=args.grid, device="cpu")
            wall, cpu = time.perf_counter() - w, time.process_time() - c
        finally:
            cv._fit_path = own
        ref = ref or res
        same = (res.chosen_c == ref.chosen_c and res.fold_accuracies == ref.fold_accuracies)
        diff = max(abs(a - b) for a, b in zip(res.fold_accuracies, ref.fold_accuracies, strict=True))
        print(f"{names[key]:<32} {wall:7.2f} s wall {cpu:7.2f} s CPU; accuracy {100 * res.accuracy:.2f} %, C per fold "
              f"{', '.join(f'{v:g}' for v in res.chosen_c)}, {res.iterations} iterations; "
              f"{'same C and fold accuracies as the first' if same else f'differs from the first (fold accuracy by up to {100 * diff:.1f} points)'}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
