"""How long zoo.confidence.bootstrap_ranking takes for 10 candidates x 500 rows, and what it says.

Features are synthetic (NumPy, seeded): 10 classes x 50 rows, 10 candidates with the feature dimensions of
zoo's usual backbones (50 to 2,048) and a class signal that grows with the candidate's index, so the last one
is the clear winner; a second run adds an exact copy of the winner (it must be reported tied). Nothing is
fitted and no model is loaded: this measures the resampling itself, which runs on cached features.

    python benchmarks/bench_confidence.py [--n-boot 200] [--profile]

Prints the seconds, the resamples drawn (and asked), the top's share of first places and the tied candidates;
``--profile`` then profiles 5 resamples of the 10 candidates (cProfile) and prints where a resample's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import numpy as np

DIMS = (64, 384, 512, 512, 768, 768, 1024, 2048, 300, 50)


def features(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), 50)
    out = {}
    for i, d in enumerate(DIMS):
        f = rng.normal(size=(len(y), d))
        f[:, :10] += (0.2 + 0.12 * i) * np.eye(10)[y]
        out[f"m{i}_d{d}"] = f.astype(np.float32)
    return out, y


def main(argv: list[str] | None = None) -> int:
    from zoo import fusion
    from zoo.confidence import BOOT_BUDGET_FLOPS, bootstrap_ranking
    from zoo.scores import get_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="also profile 5 resamples and print the largest costs")
    args = ap.parse_args(argv)
    feats, y = features()
    print(f"load average before: {os.getloadavg()[0]:.1f}; budget {BOOT_BUDGET_FLOPS:.0e} flops")
    t = time.perf_counter()
    full = {m: {s: get_score(s)(f, y) for s in fusion.FUSED_SCORES} for m, f in feats.items()}
    print(f"full-sample scores ({', '.join(fusion.FUSED_SCORES)}), 10 candidates: {time.perf_counter() - t:.1f} s "
          "(the product has them already: rank_with_data scored them)")
    for label, fs in (("10 candidates", feats), ("10 candidates + a copy of the winner", {
            **feats, "copy_of_winner": feats["m9_d50"].copy()})):
        scores = {**full, "copy_of_winner": full["m9_d50"]} if "copy_of_winner" in fs else full
        t = time.perf_counter()
        conf = bootstrap_ranking(fs, y, description=dict.fromkeys(fs, 0.5), size=None, n_boot=args.n_boot,
                                 full_scores=scores)
        secs = time.perf_counter() - t
        print(f"{label} x {len(y)} rows: {secs:.1f} s, {conf.n_boot} resamples ({conf.n_boot_asked} asked), "
              f"{secs / conf.n_boot:.2f} s per resample")
        print(f"  {conf.sentence()}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=5, full_scores=full)
        prof.disable()
        stats = pstats.Stats(prof).stats  # {(file, line, function): (calls, primitive calls, own s, cumulative s, callers)}
        total = sum(v[2] for v in stats.values())
        print(f"profile of {conf.n_boot} resamples (cProfile, which slows NumPy-call-heavy code): "
              f"{1000 * total / conf.n_boot:.0f} ms per resample; largest own times:")
        for (file, line, fn), v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]:
            print(f"  {1000 * v[2] / conf.n_boot:6.1f} ms  {fn} ({os.path.basename(file)}:{line}, {v[1]} calls)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
