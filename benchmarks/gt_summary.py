"""Summarise the cached ground truth: mean accuracy per (task, model) over seeds, and the noise
ceiling per task — the weighted Kendall tau between the model rankings of two seeds.

    python benchmarks/gt_summary.py [--dir benchmarks/ground_truth]
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import weightedtau


def summarise(path: Path) -> None:
    d = json.loads(path.read_text())
    res = d["results"]
    models = sorted(res)
    seeds = sorted({s for m in models for s in res[m]})
    print(f"\n{d['task']} ({d['modality']}): {len(models)} models, seeds {', '.join(seeds)}")
    for m in sorted(models, key=lambda m: -np.mean([e["accuracy"] for e in res[m].values()])):
        accs = [res[m][s]["accuracy"] for s in seeds if s in res[m]]
        print(f"  {m:<40} {np.mean(accs):.4f}  ({', '.join(f'{a:.4f}' for a in accs)})")
    complete = [m for m in models if all(s in res[m] for s in seeds)]
    taus = []
    for a, b in combinations(seeds, 2):
        x = [res[m][a]["accuracy"] for m in complete]
        y = [res[m][b]["accuracy"] for m in complete]
        if len(complete) >= 3:
            taus.append(weightedtau(x, y)[0])
    if taus:
        print(f"  noise ceiling (weighted tau between seeds): {np.mean(taus):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent / "ground_truth")
    args = ap.parse_args()
    for path in sorted(args.dir.glob("*.json")):
        summarise(path)


if __name__ == "__main__":
    main()
