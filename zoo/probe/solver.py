"""The linear probe's solver: every split of a stage in one batched, preconditioned L-BFGS in the
eigenbasis of its standardised training rows (see :mod:`zoo.probe`, "Solver"). Why not a library optimiser:
the comment above :func:`_lbfgs`."""


from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


# Solver settings (part of the stored settings: changing them changes the numbers).
_TOL = 1e-5  # stop a fit when an iteration lowers its objective by less than this fraction
_MAX_ITER = 150  # L-BFGS iterations per grid value (warm-started, so later values need few)
_HISTORY = 10
_MAX_BACKTRACK = 10  # halvings of a rejected step before the fit counts as stalled
_EIG_FLOOR = 1e-5  # eigen-directions below this fraction of the largest are float32 noise
_MAX_BATCH_BYTES = 1 << 30  # one batch of splits on CPU (more are solved in turn); GPUs use free memory


def _fit_path(Xt: torch.Tensor, yt: torch.Tensor, splits: list[tuple[np.ndarray, np.ndarray]],
              cs: Sequence[float], n_classes: int) -> tuple[list[list[np.ndarray]], int]:
    """Predictions on every split's held-out rows for every C: ``preds[g][split]``; plus the iterations.

    The splits are solved in as few batches as memory allows (:data:`_MAX_BATCH_BYTES`).
    """
    m, mt, d = max(len(tr) for tr, _ in splits), max(len(te) for _, te in splits), Xt.shape[1]
    r = min(m, d)
    # float32: the standardised rows, F in two layouts, the held-out rows in the basis, the Gram matrix.
    per_split = ((m + mt) * d + (2 * m + mt + r) * r) * 4
    chunk = max(1, min(len(splits), _batch_bytes(Xt.device) // max(per_split, 1)))
    preds: list[list[np.ndarray]] = [[] for _ in cs]
    iterations = 0
    for start in range(0, len(splits), chunk):
        part = splits[start:start + chunk]
        batch = _Batch.build(Xt, yt, part)
        out, its = batch.solve(cs, n_classes)
        iterations += its
        for g in range(len(cs)):
            preds[g].extend(out[g])
    return preds, iterations


def _batch_bytes(device: torch.device) -> int:
    """Memory for one batch of splits: :data:`_MAX_BATCH_BYTES` on CPU, a quarter of the free GPU memory."""
    if device.type != "cuda":
        return _MAX_BATCH_BYTES
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return max(_MAX_BATCH_BYTES, free // 4)


class _Batch:
    """Standardised, eigen-rotated features of several splits, padded to one tensor.

    Stored class-major (logits are ``(K, rows)``): the skinny products of the solver run as
    ``(K, r) @ (r, m)`` and ``(K, m) @ (m, r)``, about twice as fast on CPU as ``(m, r) @ (r, K)``.
    """

    def __init__(self, F: torch.Tensor, FT: torch.Tensor, FtT: torch.Tensor, s2: torch.Tensor, y: torch.Tensor,
                 w: torch.Tensor, m: torch.Tensor, n_test: list[int]):
        self.F, self.FT, self.FtT = F, FT, FtT  # (S, m, r) and (S, r, m) training; (S, r, m_test) held-out
        self.s2, self.y, self.w, self.m, self.n_test = s2, y, w, m, n_test

    @classmethod
    def build(cls, Xt: torch.Tensor, yt: torch.Tensor, splits: list[tuple[np.ndarray, np.ndarray]]) -> _Batch:
        import torch

        dev, d = Xt.device, Xt.shape[1]
        S = len(splits)
        M = max(len(tr) for tr, _ in splits)
        Mt = max(max(len(te) for _, te in splits), 1)
        primal = d < M  # work in the span of the training rows when they are fewer than the features
        R = d if primal else M
        gram = torch.zeros(S, R, R, dtype=torch.float32, device=dev)
        stdised = []
        for s, (tr, te) in enumerate(splits):
            A = Xt.index_select(0, torch.as_tensor(tr, device=dev))
            mu = A.mean(0)
            sd = A.std(0, unbiased=False)
            # Constant features keep scale 1 (as StandardScaler): they are zero after centring either way.
            sd = torch.where(sd > 1e-6 * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))
            A = (A - mu) / sd
            T = (Xt.index_select(0, torch.as_tensor(te, device=dev)) - mu) / sd
            stdised.append((A, T))
            if primal:
                gram[s] = A.T @ A
            else:
                gram[s, : len(tr), : len(tr)] = A @ A.T  # zero padding: its eigenvalues are 0 and dropped
        evals, vecs = _eigh(gram)
        keep = evals > _EIG_FLOOR * evals.amax(1, keepdim=True).clamp_min(1e-30)
        s2 = torch.where(keep, evals, torch.zeros_like(evals))
        F = torch.zeros(S, M, R, dtype=torch.float32, device=dev)
        FtT = torch.zeros(S, R, Mt, dtype=torch.float32, device=dev)
        y = torch.zeros(S, M, dtype=torch.long, device=dev)
        w = torch.zeros(S, M, dtype=torch.float32, device=dev)
        for s, (tr, te) in enumerate(splits):
            A, T = stdised[s]
            m, mt = len(tr), len(te)
            if primal:
                V = vecs[s] * keep[s]
                F[s, :m] = A @ V
                FtT[s, :, :mt] = (T @ V).T
            else:
                root = s2[s].sqrt()
                inv = torch.where(keep[s], 1.0 / root.clamp_min(1e-30), torch.zeros_like(root))
                U = vecs[s, :m] * keep[s]
                F[s, :m] = U * root
                FtT[s, :, :mt] = (U * inv).T @ (A @ T.T)
            y[s, :m] = yt.index_select(0, torch.as_tensor(tr, device=dev))
            w[s, :m] = 1.0 / m
        m_t = torch.as_tensor([float(len(tr)) for tr, _ in splits], dtype=torch.float32, device=dev)
        return cls(F, F.transpose(1, 2).contiguous(), FtT, s2, y, w, m_t, [len(te) for _, te in splits])

    def select(self, keep: torch.Tensor) -> _Batch:
        return _Batch(self.F[keep], self.FT[keep], self.FtT[keep], self.s2[keep], self.y[keep], self.w[keep],
                      self.m[keep], [self.n_test[i] for i in keep.tolist()])

    def solve(self, cs: Sequence[float], n_classes: int) -> tuple[list[list[np.ndarray]], int]:
        """Fit every split at every C (strong to weak, warm-started); held-out predictions per C."""
        import torch

        S, _, R = self.F.shape
        K = n_classes
        x_all = self.F.new_zeros(S, K * R + K)
        out: list[list[np.ndarray]] = []
        iterations = 0
        for c in cs:
            lam = 1.0 / (float(c) * self.m)  # sklearn's C·Σloss + ½‖W‖², divided by C·m: a mean loss
            x_all, its = _lbfgs(self, x_all, lam, K)
            iterations += its
            ZT = x_all[:, : K * R].view(S, K, R)
            b = x_all[:, K * R:]
            pred = torch.baddbmm(b[:, :, None], ZT, self.FtT).argmax(1).cpu().numpy()
            out.append([pred[s, : self.n_test[s]] for s in range(S)])
        return out, iterations


def _eigh(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    if gram.device.type != "cpu":
        return torch.linalg.eigh(gram)
    # MKL's threaded eigh stalls on a busy CPU (measured: 0.12 s on one thread, 4.9 s on two for an
    # 800 x 800 matrix on a loaded 2-core machine); one thread per small matrix is never much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(gram)
    finally:
        torch.set_num_threads(before)


def _objective(b: _Batch, lam: torch.Tensor, x: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy + λ/2‖Z‖² per split, and its gradient (written out: cheaper than autograd)."""
    import torch

    S, R = x.shape[0], b.F.shape[2]
    ZT = x[:, : K * R].view(S, K, R)
    logits = torch.baddbmm(x[:, K * R:, None], ZT, b.FT)  # (S, K, m)
    lse = torch.logsumexp(logits, 1)
    nll = lse - logits.gather(1, b.y[:, None, :]).squeeze(1)
    f = (b.w * nll).sum(1) + 0.5 * lam * (ZT * ZT).sum((1, 2))
    p = torch.exp(logits - lse[:, None, :])
    p.scatter_add_(1, b.y[:, None, :], -torch.ones_like(p[:, :1, :]))  # softmax - one-hot
    p *= b.w[:, None, :]
    gZ = torch.bmm(p, b.F) + lam[:, None, None] * ZT
    return f, torch.cat([gZ.reshape(S, K * R), p.sum(2)], 1)


def _preconditioner(b: _Batch, lam: torch.Tensor, x: torch.Tensor, K: int) -> torch.Tensor:
    """Inverse diagonal curvature in the eigenbasis: class k's mean softmax curvature ``c_k`` (at ``x``)
    times the direction's variance, plus the penalty; ``c_k`` alone for the intercepts."""
    import torch

    S, R = x.shape[0], b.F.shape[2]
    p = torch.softmax(torch.baddbmm(x[:, K * R:, None], x[:, : K * R].view(S, K, R), b.FT), 1)
    c = ((p * (1 - p)) * b.w[:, None, :]).sum(2).clamp_min(1e-6)  # (S, K)
    diag = c[:, :, None] * (b.s2 / b.m[:, None])[:, None, :] + lam[:, None, None]
    return 1.0 / torch.cat([diag.reshape(S, K * R), c], 1)


# Why L-BFGS is written out here rather than taken from torch.optim.LBFGS or scipy.optimize (measured with
# benchmarks/bench_probe_optimiser.py, 2026-12-05, 2-core CPU, one torch thread, load average 14-17; the
# library solvers get the same objective, gradient, eigenbasis, grid and warm starts, one split at a time):
# - A library optimiser minimises one parameter set: the splits of a stage are solved one after another,
#   where this solver batches them (and on a GPU fills it with all of them at once). Its own stopping rule
#   (one fit leaves the batch when it is done) and its diagonal curvature as the initial Hessian have no
#   counterpart there. On 300 x 128, 3 classes, torch.optim.LBFGS took 0.98 s CPU and scipy's L-BFGS-B
#   3.0 s against 0.25 s here; on 1,000 x 2,048, 10 classes, torch's took the same time (3.2-3.5 s CPU)
#   and scipy's 8.1 s.
# - Neither gave the same numbers, nor numbers closer to the optimum: against scipy run to convergence
#   (the reference), each solver chose the reference's C in 4 of 5 folds on both problems; a fold's
#   accuracy differed from the reference's by up to 3.3 points here and 5.0 with torch.optim.LBFGS on the
#   smaller problem, by 0.0 here and 2.5 with torch.optim.LBFGS on the larger.
# Replacing it would change stored results (PROBE_VERSION) for a solver no faster and no closer to the optimum.
def _lbfgs(batch: _Batch, x_all: torch.Tensor, lam_all: torch.Tensor, K: int) -> tuple[torch.Tensor, int]:
    """Batched, preconditioned L-BFGS from ``x_all`` at the penalties ``lam_all``; the solutions and the
    number of iterations of the slowest fit. Converged fits are dropped from the batch as it goes."""
    import torch

    x_all = x_all.clone()
    idx = torch.arange(len(x_all), device=x_all.device)
    b, lam, x = batch, lam_all, x_all
    pinv = _preconditioner(b, lam, x, K)
    f, g = _objective(b, lam, x, K)
    hist: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    active = torch.ones(len(idx), dtype=torch.bool, device=x.device)
    it = 0
    for it in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is returned
        d = -_two_loop(g, hist, pinv)
        d = torch.where(active[:, None], d, torch.zeros_like(d))
        gd = (g * d).sum(1)
        uphill = active & (gd >= 0)
        if bool(uphill.any()):  # a stale history: fall back to the preconditioned gradient
            d = torch.where(uphill[:, None], -pinv * g, d)
            gd = (g * d).sum(1)
        # The quadratic model predicts a decrease of -gd/2: below the tolerance, the fit is done (this
        # also ends fits at float32's noise floor, where a line search would only halve in vain).
        active = active & (-0.5 * gd > _TOL * f.abs().clamp_min(_TOL))
        if not bool(active.any()):
            break
        d = torch.where(active[:, None], d, torch.zeros_like(d))
        xn, fn, gn, done = _line_search(b, lam, x, f, g, d, gd, active, K)
        stalled = ~done  # no decrease found: the fit is at float32's noise floor
        sk, yk = xn - x, gn - g
        sy = (sk * yk).sum(1)
        good = sy > 1e-10 * sk.norm(dim=1) * yk.norm(dim=1)
        rho = torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        hist.append((sk * good[:, None], yk * good[:, None], rho))
        if len(hist) > _HISTORY:
            hist.pop(0)
        decrease = f - fn
        x, f, g = xn, fn, gn
        active = active & ~stalled & ~(decrease <= _TOL * f.abs().clamp_min(_TOL))
        n_active = int(active.sum())
        if n_active == 0:
            break
        if n_active * 2 <= len(active) and len(active) >= 4:
            # Drop converged fits: later iterations only pay for the ones still moving.
            x_all[idx] = x
            keep = active.nonzero().squeeze(1)
            idx, b, lam = idx[keep], b.select(keep), lam[keep]
            x, f, g, pinv, active = x[keep], f[keep], g[keep], pinv[keep], active[keep]
            hist = [(a[keep], c[keep], r[keep]) for a, c, r in hist]
    x_all[idx] = x
    return x_all, it


def _line_search(b: _Batch, lam: torch.Tensor, x: torch.Tensor, f: torch.Tensor, g: torch.Tensor, d: torch.Tensor,
                 gd: torch.Tensor, active: torch.Tensor, K: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking (Armijo) from a step of 1, which L-BFGS accepts almost always. Only the fits that
    need a shorter step are evaluated again. Returns the new points and which fits found a decrease."""
    import torch

    ft, gt = _objective(b, lam, x + d, K)
    done = ~active | (ft <= f + 1e-4 * gd)  # inactive fits have d = 0: they keep their point
    xn = torch.where(done[:, None], x + d, x)
    fn = torch.where(done, ft, f)
    gn = torch.where(done[:, None], gt, g)
    if bool(done.all()):
        return xn, fn, gn, done
    rest = (~done).nonzero().squeeze(1)
    sub, lam_r, x_r, f_r, d_r, gd_r = b.select(rest), lam[rest], x[rest], f[rest], d[rest], gd[rest]
    ok_r = torch.zeros(len(rest), dtype=torch.bool, device=x.device)
    step = torch.ones_like(f_r)
    for _ in range(_MAX_BACKTRACK):
        step = torch.where(ok_r, step, step * 0.5)
        ft, gt = _objective(sub, lam_r, x_r + step[:, None] * d_r, K)
        new = ~ok_r & (ft <= f_r + 1e-4 * step * gd_r)
        xn[rest] = torch.where(new[:, None], x_r + step[:, None] * d_r, xn[rest])
        fn[rest] = torch.where(new, ft, fn[rest])
        gn[rest] = torch.where(new[:, None], gt, gn[rest])
        ok_r = ok_r | new
        if bool(ok_r.all()):
            break
    done[rest] = ok_r
    return xn, fn, gn, done


def _two_loop(g: torch.Tensor, hist: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
              pinv: torch.Tensor) -> torch.Tensor:
    """L-BFGS two-loop recursion per split; the initial inverse Hessian is ``γ·pinv``."""
    import torch

    q = g.clone()
    alphas = []
    for sk, yk, rho in reversed(hist):
        a = rho * (sk * q).sum(1)
        alphas.append(a)
        q -= a[:, None] * yk
    if hist:
        sk, yk, _ = hist[-1]
        sy = (sk * yk).sum(1)
        ypy = (yk * pinv * yk).sum(1)
        ok = (sy > 0) & (ypy > 0)
        gamma = torch.where(ok, sy / torch.where(ok, ypy, torch.ones_like(ypy)), torch.ones_like(sy))
        r = gamma[:, None] * pinv * q
    else:
        r = pinv * q
    for (sk, yk, rho), a in zip(hist, reversed(alphas), strict=True):
        beta = rho * (yk * r).sum(1)
        r += (a - beta)[:, None] * sk
    return r
