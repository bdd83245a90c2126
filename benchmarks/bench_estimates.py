"""Extraction-time estimates against what the extraction then took (zoo.estimates, shown by `zoo score` and
`zoo recommend --data` before they extract).

    python benchmarks/bench_estimates.py [--quick] [--device auto|cpu|cuda]

It starts from no measurement at all (a private ZOO_CACHE_DIR: no calibration, no cached features), then:

1. **fit**: the fit models run once each on their own data; these runs calibrate the machine (their estimates
   are printed, from the default rates, but not counted);
2. **cold**: models that never ran here, on new data: estimated from the cost model fitted in 1;
3. **warm**: the same models again, and the fit models, on other data (another size, another count): estimated
   from each model's own measured speed.

Every run is a fresh ``python -c`` process calling ``zoo.scoring.score`` (so library imports count, as they do
for ``zoo score``), with one or more models; each model's estimate (``ScoreReport.plan``) is compared with its
measured extraction seconds (``ModelScore.extract_seconds``). Prints each run, then per group and overall the
median ratio estimate/actual and the worst case (the ratio furthest from 1, either way). Target: every run
within 2x. Image sets are written as PNG folders from the offline MNIST-5k and Animal-MNIST (28 px, and
Animal-MNIST upscaled to 256 px, where decoding dominates); text sets are CSVs of MR, Subj and TREC.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Fit set and report set: different models, so "cold" estimates are of models the fit never saw.
FIT = {
    "image": ["local:cifar_resnet20.c10", "local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k",
              "local:mini_xception.fer2013"],
    "text": ["local:all-MiniLM-L6-v2", "local:paraphrase-MiniLM-L3-v2.onnx", "local:glove-6b-50d.avg"],
}
REPORT = {
    "image": ["local:cifar_resnet56.c10", "local:cifar_resnet32.c10", "local:efficientnet_lite1.in1k",
              "local:efficientnet_lite2.in1k", "local:mini_xception.kdef", "local:big_xception.fer2013"],
    "text": ["local:all-MiniLM-L6-v2.int8-onnx", "local:all-mpnet-base-v2"],
}

_RUN = r"""
import json, sys
from zoo.scoring import score
data, models, device = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
rep = score(data, models, scores=["knn"], device=device, fetch=False)
plans = {p.id: p for p in rep.plan}
out = []
for m in rep.models:
    p = plans[m.id]
    out.append({"id": m.id, "estimate": p.estimate_seconds, "basis": p.estimate_basis, "detail": p.estimate_detail,
                "actual": m.extract_seconds, "cached": m.cached, "device": m.device, "error": m.error,
                "imports": p.estimate_imports})
print("RESULT " + json.dumps(out))
"""


def write_images(root: Path, task: str, n: int, side: int | None) -> Path:
    from PIL import Image

    from benchmarks.datasets import load

    if root.exists():
        return root
    x, y, _, _ = load(task, seed=0)
    per: dict[int, int] = {}
    k = len(set(y.tolist()))
    for img, label in zip(x, y, strict=True):
        if per.get(int(label), 0) >= n // k:
            continue
        per[int(label)] = per.get(int(label), 0) + 1
        d = root / str(int(label))
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if side:
            im = im.resize((side, side), Image.BILINEAR)
        im.save(d / f"{sum(per.values()):05d}.png")
    return root


def write_texts(path: Path, task: str, n: int) -> Path:
    import csv

    from benchmarks.datasets import load

    if path.exists():
        return path
    x, y, _, _ = load(task, seed=0)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for text, label in list(zip(x, y, strict=True))[:n]:
            w.writerow([text, int(label)])
    return path


def run(data: Path, models: list[str], device: str, env: dict) -> list[dict]:
    res = subprocess.run([sys.executable, "-c", _RUN, str(data), ",".join(models), device], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=False)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"run failed ({data}, {models}):\n{res.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}x"


def worst(ratios: list[float]) -> float:
    return max(ratios, key=lambda r: abs(math.log(r)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small samples (a smoke pass; the figures are not the bench's)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--keep", type=Path, help="use (and keep) this folder for data, cache and calibration")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="zoo-bench-estimates-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ZOO_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    from zoo.registry import Registry
    from zoo.weights import is_available

    with Registry() as reg:
        usable = {i for i in sum([*FIT.values(), *REPORT.values()], []) if is_available(reg.get(i).weights)}
    skipped = sorted(set(sum([*FIT.values(), *REPORT.values()], [])) - usable)
    s = 0.2 if args.quick else 1.0
    d = work / "data"
    sets = {
        "fit-image": write_images(d / "fit-mnist", "mnist5k", int(400 * s), None),
        "fit-text": write_texts(d / "fit-mr.csv", "mr", int(500 * s)),
        "cold-image": write_images(d / "cold-animal-256", "animal_mnist", int(300 * s), 256),
        "cold-text": write_texts(d / "cold-subj.csv", "subj", int(400 * s)),
        "warm-image": write_images(d / "warm-animal-28", "animal_mnist", int(600 * s), None),
        "warm-image-big": write_images(d / "warm-mnist-256", "mnist5k", int(200 * s), 256),
        "warm-text": write_texts(d / "warm-trec.csv", "trec", int(800 * s)),
    }
    plan = [  # (group, data set, models in one process)
        ("fit", "fit-image", [m for m in FIT["image"] if m in usable]),
        ("fit", "fit-text", [m for m in FIT["text"] if m in usable]),
    ]
    for m in REPORT["image"]:
        plan.append(("cold", "cold-image", [m]))
    for m in REPORT["text"]:
        plan.append(("cold", "cold-text", [m]))
    for m in REPORT["image"][:3] + FIT["image"]:
        plan.append(("warm", "warm-image", [m]))
    for m in REPORT["image"][3:]:
        plan.append(("warm", "warm-image-big", [m]))
    for m in REPORT["text"] + FIT["text"]:
        plan.append(("warm", "warm-text", [m]))
    plan.append(("warm", "warm-image-big", [m for m in FIT["image"][:2]]))  # two models in one process
    plan = [(g, ds, [m for m in ms if m in usable]) for g, ds, ms in plan]
    plan = [p for p in plan if p[2]]

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}; python {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; device {args.device}; work folder {work}")
    if skipped:
        print(f"skipped (weights not on this machine): {', '.join(skipped)}")
    print(f"{'group':<5} {'data':<15} {'model':<36} {'estimate':>9} {'actual':>8} {'ratio':>7}  basis")
    rows = []
    t0 = time.perf_counter()
    for group, ds, models in plan:
        for r in run(sets[ds], models, args.device, env):
            if r["error"]:
                print(f"{group:<5} {ds:<15} {r['id']:<36} error: {r['error'][:80]}")
                continue
            ratio = r["estimate"] / r["actual"] if r["actual"] > 0 else float("nan")
            rows.append({**r, "group": group, "data": ds, "ratio": ratio})
            print(f"{group:<5} {ds:<15} {r['id']:<36} {r['estimate']:>8.1f}s {r['actual']:>7.1f}s "
                  f"{fmt_ratio(ratio):>7}  {r['basis']}{' (+' + ','.join(r['imports']) + ')' if r['imports'] else ''}")
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s; device(s): "
          f"{', '.join(sorted({r['device'] for r in rows}))}; load average now {os.getloadavg()[0]:.2f}")
    counted = [r for r in rows if r["group"] != "fit"]
    for name, sel in [("cold (cost model)", [r for r in counted if r["group"] == "cold"]),
                      ("warm (own measurement)", [r for r in counted if r["group"] == "warm"]),
                      ("image", [r for r in counted if r["data"].endswith(("image", "image-big"))]),
                      ("text", [r for r in counted if r["data"].endswith("text")]),
                      ("all counted", counted)]:
        ratios = [r["ratio"] for r in sel if r["ratio"] == r["ratio"]]
        if not ratios:
            continue
        inside = sum(1 for x in ratios if 0.5 <= x <= 2.0)
        print(f"{name:<24} n={len(ratios):>2}  median ratio {statistics.median(ratios):.2f}x  worst "
              f"{fmt_ratio(worst(ratios))}  within 2x: {inside}/{len(ratios)}")
    fit_ratios = [r["ratio"] for r in rows if r["group"] == "fit"]
    if fit_ratios:
        print(f"(fit runs, from the default rates, not counted: median {statistics.median(fit_ratios):.2f}x, worst "
              f"{fmt_ratio(worst(fit_ratios))})")
    bad = [r for r in counted if not 0.5 <= r["ratio"] <= 2.0]
    print("target (every counted run within 2x): " + ("met" if not bad else
          f"NOT met: {len(bad)} run(s) outside: " + "; ".join(f"{r['id']} on {r['data']} {fmt_ratio(r['ratio'])}"
                                                              for r in bad)))


if __name__ == "__main__":
    main()
