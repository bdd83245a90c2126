"""Every benchmark in one command, in the order the figures in BENCHMARKS.md appear; each prints its own.

    python benchmarks/run_all.py              # everything except the multi-hour ground truth (cached JSON is used)
    python benchmarks/run_all.py --quick      # a smoke pass of each script
    python benchmarks/run_all.py --only ranking,probe

The ground truth (``benchmarks/ground_truth.py``) is a separate, resumable, hours-long job; the ranking
benchmark reads its cached JSON. A script that fails is reported and the others still run; the exit
status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (arguments, arguments for --quick)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "registry": (["bench_registry.py"], ["bench_registry.py", "--only", "startup"]),
    "recommend": (["bench_recommend.py", "--scale", "1000000"], ["bench_recommend.py"]),
    "embed": (["bench_embed.py"], ["bench_embed.py"]),
    "ground-truth-summary": (["gt_summary.py"], ["gt_summary.py"]),
    "ranking": (["bench_ranking.py"], ["bench_ranking.py", "--tasks", "mnist5k", "trec", "--no-probe"]),
    "features": (["bench_features.py"], ["bench_features.py", "--quick"]),
    "probe": (["bench_probe.py"], ["bench_probe.py", "--sklearn-folds", "0", "--cuda-n", "0"]),
    "shift": (["bench_shift.py"], ["bench_shift.py", "--items", "8"]),
    "plan": (["bench_plan.py"], ["bench_plan.py", "--quick"]),
    "estimates": (["bench_estimates.py"], ["bench_estimates.py", "--quick"]),
    "card-cosines": (["card_cosines.py"], ["card_cosines.py"]),
    "reliability": (["bench_reliability.py"], ["bench_reliability.py", "--quick"]),  # figures in RELIABILITY.md
    "ray": (["bench_ray.py"], ["bench_ray.py", "--n", "96", "--models", "local:cifar_resnet20.c10,local:cifar_resnet32.c10"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fast smoke pass of every script")
    ap.add_argument("--only", help=f"names separated by commas: {', '.join(BENCHES)}")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    failed = []
    for name in names:
        full, quick = BENCHES[name]
        cmd = [sys.executable, str(HERE / (quick if args.quick else full)[0]), *(quick if args.quick else full)[1:]]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"===== {name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
