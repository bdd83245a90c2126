"""Feature extraction speed, scoring cost, and cold/warm `zoo score` / `zoo recommend --data` runs.

    python benchmarks/bench_features.py                 # the full run (~1 h on the 2-core machine)
    python benchmarks/bench_features.py --quick         # 3 models, 96 images, small grid (~3 min)
    python benchmarks/bench_features.py --only extract,scoring --models local:cifar_resnet20.c10

Sections (``--only``):

``extract``  per model of the offline zoo's 10 image models, at its native input size, on N MNIST-5k
             digits written as PNG files (``root/<class>/<i>.png``):
             - decoding + resizing (PIL decode and the model's own ``preprocess``), images/s;
             - a bare ``model(x)`` loop over the already-decoded, already-preprocessed tensors (the eager
               network as built, ``torch.inference_mode``) against zoo's forward path on the same tensors
               (``LoadedBackbone.features``), timed batch by batch in alternating order, so both sides
               see the same machine load: images/s and the ratio;
             - ``zoo.features.extract(record, sample, cache=False)`` end to end: images/s without and with
               model loading, its forward and decoding seconds (decoding overlaps the forward passes).
``scoring``  the default scorers (zoo.scoring.DEFAULT_SCORES, looked up with zoo.scores.get_score) on each
             model's extracted features: seconds per scorer and their sum as a share of that model's
             extraction (``extract`` end to end, model load included).
``grid``     the default scorers on synthetic ReLU features (10 classes, dead and duplicated units as real
             CNN features have) for N x D in a small grid.
``cli``      ``zoo score --data DIR --models <the 10 ids>`` in a new process, cold (empty feature cache)
             and warm (second run), on ``--cli-n`` images; then the same for
             ``zoo recommend "<task>" --data DIR --candidates <ids>`` unless that still answers
             "not available". The query embedding's ONNX export is made beforehand (it is a one-time
             set-up, not a feature cache).

The machine is shared: every figure says the load average it was taken under; ratios are measured
within one run, batch by batch. Threads: zoo chooses them (``zoo.scores._base.cpu_threads``: the cores
this process may run on, or ``ZOO_NUM_THREADS``); the bare loop runs with the same number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

IMAGE_MODELS = [
    "local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k", "local:efficientnet_lite1.in1k",
    "local:efficientnet_lite2.in1k", "local:cifar_resnet20.c10", "local:cifar_resnet32.c10",
    "local:cifar_resnet44.c10", "local:cifar_resnet56.c10", "local:mini_xception.fer2013",
    "local:mini_xception.imdb_gender",
]
QUICK_MODELS = ["local:mobilenet_v2.tv_in1k", "local:cifar_resnet20.c10", "local:mini_xception.fer2013"]
IMAGENET_SIZE = {"local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k", "local:efficientnet_lite1.in1k",
                 "local:efficientnet_lite2.in1k"}
TASK = "classify handwritten digits"
NOT_AVAILABLE = "not available"


def load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def conditions() -> dict[str, Any]:
    import torch

    from zoo.features import extraction_threads
    from zoo.scores._base import cpu_threads

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "torch": torch.__version__,
        "cores": cores, "load_avg_at_start": load(), "torch_default_threads": torch.get_num_threads(),
        "zoo_cpu_threads": cpu_threads(), "zoo_torch_threads": extraction_threads(),
    }


# ---------------------------------------------------------------------------------------------- data


def write_images(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` MNIST-5k digits (a stratified seeded draw, benchmarks/datasets.py) as 28x28 grayscale PNGs."""
    from PIL import Image

    from benchmarks.datasets import load as load_task

    train_x, train_y, test_x, test_y = load_task("mnist5k", seed=seed)
    x = np.concatenate([test_x, train_x])
    y = np.concatenate([test_y, train_y])
    rng = np.random.default_rng(seed)
    per = {int(c): rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    order = [int(i) for row in zip(*per.values(), strict=False) for i in row]  # round-robin over classes
    if root.exists():
        shutil.rmtree(root)
    for i in order[:n]:
        folder = root / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(x[i], dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    return root


def _records(ids: list[str]) -> dict[str, Any]:
    from zoo.sources.manifest import iter_records

    manifest = ROOT / "zoo" / "manifests" / "offline.yaml"
    recs = {r.id: r for r in iter_records(manifest)}
    return {i: recs[i] for i in ids}


# ---------------------------------------------------------------------------------------------- extraction


def bench_extraction(rec: Any, sample: Any, batch_size: int) -> dict[str, Any]:
    import torch

    from zoo import features as zf
    from zoo.backbones import load_backbone
    from zoo.backbones.preprocess import decode_image

    out: dict[str, Any] = {"model": rec.id, "n": len(sample), "input_size": rec.input_size, "load_avg": load()}
    threads = zf.extraction_threads()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t = time.perf_counter()
        lb = load_backbone(rec, device="cpu")
        out["load_s"] = time.perf_counter() - t
        chunks = [sample.items[i:i + batch_size] for i in range(0, len(sample.items), batch_size)]
        t = time.perf_counter()
        xs = [torch.stack([lb.preprocess(decode_image(p)) for p in chunk]) for chunk in chunks]
        out["decode_s"] = time.perf_counter() - t
        out["decode_img_s"] = len(sample) / out["decode_s"]

        model = lb.model
        with torch.inference_mode():
            model(xs[0][:2])  # warm-up of the eager model
        t = time.perf_counter()
        lb.features(xs[0][:2])  # the first call builds the inference copy (timed apart)
        out["inference_copy_build_s"] = time.perf_counter() - t
        out["inference"] = lb.inference
        # "opt": a bare loop over zoo's own inference copy (same sub-batches, channels_last input), i.e.
        # what zoo's wrapper adds on top of the network it runs (fingerprint check, copies, NumPy output).
        from zoo.backbones.fast import _CPU_FORWARD_ELEMENTS

        fast = lb._runner._copy if lb._runner is not None else None
        step = max(1, _CPU_FORWARD_ELEMENTS // max(1, xs[0][0].numel()))

        def run_opt(x: Any) -> None:
            with torch.inference_mode():
                for j in range(0, len(x), step):
                    fast(x[j:j + step].contiguous(memory_format=torch.channels_last))

        sides = ["bare", "zoo"] + (["opt"] if fast is not None else [])
        total = dict.fromkeys(sides, 0.0)
        ratios = []
        for i, x in enumerate(xs):
            dts = {}
            for side in sides[i % len(sides):] + sides[:i % len(sides)]:  # rotate the order batch by batch
                t = time.perf_counter()
                if side == "bare":
                    with torch.inference_mode():
                        model(x)
                elif side == "zoo":
                    lb.features(x, batch_size=batch_size)
                else:
                    run_opt(x)
                dts[side] = time.perf_counter() - t
            for side, dt in dts.items():
                total[side] += dt
            ratios.append(dts["zoo"] / dts["bare"])
        out["bare_img_s"] = len(sample) / total["bare"]
        out["zoo_forward_img_s"] = len(sample) / total["zoo"]
        out["zoo_over_bare"] = total["zoo"] / total["bare"]  # < 1: zoo faster
        out["zoo_over_bare_median_batch"] = statistics.median(ratios)
        if fast is not None:
            out["opt_img_s"] = len(sample) / total["opt"]
            out["zoo_over_opt"] = total["zoo"] / total["opt"]  # zoo's wrapper overhead over its own network
        del xs
    finally:
        torch.set_num_threads(before)
    # end to end, as zoo score runs it: decoding in a thread one batch ahead, no cache
    f = zf.extract(rec, sample, cache=False, batch_size=batch_size)
    out.update({
        "extract_s": f.seconds, "extract_load_s": f.load_seconds, "extract_forward_s": f.forward_seconds,
        "extract_decode_s": f.decode_seconds, "threads": f.threads,
        "extract_img_s": len(sample) / max(f.seconds - f.load_seconds, 1e-9),
        "extract_img_s_with_load": len(sample) / f.seconds,
    })
    out["_features"] = f.features
    return out


# ---------------------------------------------------------------------------------------------- scoring


def time_scorers(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Seconds per default scorer, as zoo.scoring runs them: one after another on the same features
    (the spectrum memo starts empty, so the first scorer that needs it pays for it)."""
    from zoo.scores import _base, get_score
    from zoo.scoring import DEFAULT_SCORES

    _base._MEMO.clear()
    out = {}
    for name in DEFAULT_SCORES:
        fn = get_score(name)
        t = time.perf_counter()
        fn(features, labels)
        out[name] = time.perf_counter() - t
    return out


def synthetic(n: int, d: int, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(size=(classes, d))
    f = centers[y] + rng.normal(size=(n, d))
    g = np.maximum(f @ (rng.normal(size=(d, d)) / np.sqrt(d)), 0)
    g[:, : d // 10] = 0  # dead units
    k = d // 10
    g[:, k:2 * k] = g[:, 2 * k:3 * k]  # duplicated units
    return g.astype(np.float32), y


def bench_grid(ns: list[int], ds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in ns:
        for d in ds:
            f, y = synthetic(n, d)
            t = time_scorers(f, y)
            rows.append({"n": n, "d": d, **{k: round(v, 4) for k, v in t.items()}, "total": round(sum(t.values()), 4),
                         "load_avg": load()})
            print(f"  N={n:5d} D={d:5d}  " + "  ".join(f"{k} {v:7.3f}" for k, v in t.items())
                  + f"  total {sum(t.values()):7.3f} s  (load {load()})", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- CLI


def _zoo_exe() -> str:
    """The ``zoo`` console script of this interpreter's environment (what a user runs)."""
    beside = Path(sys.executable).parent / "zoo"
    return str(beside) if beside.is_file() else (shutil.which("zoo") or "zoo")


_LAST_CPU: list[float] = [0.0]


def _zoo(args: list[str], env: dict[str, str], timeout: float = 3600) -> tuple[float, int, str]:
    """Run the zoo CLI in a new process: (wall seconds, exit code, output). Its CPU seconds (user + system,
    a load-independent measure of the work done) are left in ``_LAST_CPU``."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([_zoo_exe(), *args], env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    _LAST_CPU[0] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, p.returncode, p.stdout + p.stderr


def _per_model(text: str) -> dict[str, Any]:
    """``{id: [extract seconds, score seconds, cached]}`` from ``zoo score --json`` output (stdout first)."""
    start = text.find("{\n")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[start:] if start >= 0 else text)
    except ValueError:
        return {}
    return {m["id"]: [round(m.get("extract_seconds", 0.0), 2), round(sum((m.get("score_seconds") or {}).values()), 3),
                      m.get("cached")] for m in doc.get("models", []) if isinstance(m, dict) and "id" in m}


def _clear_features(cache: Path) -> None:
    shutil.rmtree(cache / "features", ignore_errors=True)


def bench_cli(data: Path, ids: list[str], work: Path) -> dict[str, Any]:
    cache = work / "cache"
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache), "ZOO_DB": str(work / "user.db"), "HF_HUB_OFFLINE": "1"}
    out: dict[str, Any] = {"n_images": sum(1 for _ in data.rglob("*.png")), "models": len(ids)}
    models = ",".join(ids)
    runs: dict[str, Any] = {}
    _clear_features(cache)
    for kind in ("cold", "warm"):
        secs, rc, text = _zoo(["score", "--data", str(data), "--models", models, "--json"], env)
        runs[kind] = {"seconds": secs, "cpu_seconds": _LAST_CPU[0], "rc": rc, "load_avg": load()}
        if rc != 0:
            runs[kind]["error"] = text[-2000:]
        else:
            runs[kind]["per_model"] = _per_model(text)
        print(f"  zoo score {kind}: {secs:.1f} s wall, {_LAST_CPU[0]:.1f} s CPU (rc {rc}, load {load()})", flush=True)
        for mid, (ext, sc, cached) in runs[kind].get("per_model", {}).items():
            print(f"    {mid:34s} extract {ext:6.2f} s  scores {sc:6.3f} s  cached {cached}", flush=True)
    out["score"] = runs
    out["recommend"] = bench_recommend(data, ids, cache, env)
    return out


def bench_recommend(data: Path, ids: list[str], cache: Path, env: dict[str, str]) -> dict[str, Any]:
    """Cold and warm ``zoo recommend --data``; skipped with a note while that option is not available."""
    # --candidates as a file (one id per line): a long comma list is first tried as a path by the
    # recommender and fails with "File name too long" (reported upstream).
    shortlist = cache.parent / "candidates.txt"
    shortlist.write_text("\n".join(ids) + "\n")
    args = ["recommend", TASK, "--data", str(data), "--candidates", str(shortlist), "--json"]
    # The query embedding's ONNX export is a one-time set-up of zoo, not part of a cold feature cache.
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.embed"], env=env, capture_output=True, text=True, timeout=1800)
    setup = time.perf_counter() - t
    probe = subprocess.run([_zoo_exe(), "recommend", "--help"], env=env, capture_output=True, text=True)
    if "--data" not in probe.stdout:
        print("  zoo recommend --data: skipped (the option does not exist yet)", flush=True)
        return {"skipped": "no --data option"}
    runs: dict[str, Any] = {"embed_setup_s": setup}
    _clear_features(cache)
    for kind in ("cold", "warm"):
        secs, rc, text = _zoo(args, env)
        if NOT_AVAILABLE in text.lower() and rc != 0:
            print(f"  zoo recommend --data: skipped (it answers {NOT_AVAILABLE!r})", flush=True)
            return {"skipped": text.strip()[-300:]}
        runs[kind] = {"seconds": secs, "cpu_seconds": _LAST_CPU[0], "rc": rc, "load_avg": load()}
        if rc != 0:
            runs[kind]["error"] = text[-2000:]
        print(f"  zoo recommend --data {kind}: {secs:.1f} s wall, {_LAST_CPU[0]:.1f} s CPU (rc {rc}, load {load()})",
              flush=True)
    return runs


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 models, 96 images, a small grid, 96 images for the CLI")
    ap.add_argument("--n", type=int, default=None, help="images for the extraction section (default 1000; quick 96)")
    ap.add_argument("--cli-n", type=int, default=None, help="images for the CLI section (default 500; quick 96)")
    ap.add_argument("--models", default=None, help="model ids separated by commas (default: the 10 offline image models)")
    ap.add_argument("--only", default="extract,scoring,grid,cli", help="sections separated by commas")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--work", default=None, help="working folder (default: a new temporary one, removed after)")
    ap.add_argument("--out", default=None, help="write every figure as JSON here")
    args = ap.parse_args(argv)

    ids = args.models.split(",") if args.models else (QUICK_MODELS if args.quick else IMAGE_MODELS)
    n = args.n or (96 if args.quick else 1000)
    cli_n = args.cli_n or (96 if args.quick else 500)
    sections = set(args.only.split(","))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zoo-bench-features-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["ZOO_CACHE_DIR"] = str(work / "cache-inproc")  # never the user's cache
    os.environ.setdefault("ZOO_DB", str(work / "user.db"))
    result: dict[str, Any] = {"conditions": conditions(), "n": n, "cli_n": cli_n, "models": ids}
    print("conditions:", json.dumps(result["conditions"]), flush=True)

    try:
        if sections & {"extract", "scoring"}:
            from zoo.data import load_sample

            data = write_images(work / "images", n)
            sample = load_sample(data, max_samples_per_class=None)
            print(f"\n== extraction: {len(sample)} MNIST-5k PNGs (28x28 gray), batch {args.batch_size}", flush=True)
            print("images/s: decode = PIL decode + preprocess; bare = eager model(x) on preprocessed tensors; zoo fwd = "
                  "LoadedBackbone.features on the same tensors (batches timed in rotating order); zoo/opt = zoo fwd "
                  "time over a bare loop on zoo's own inference copy (the wrapper's overhead); extract = "
                  "zoo.features.extract end to end without / with model loading; ext fwd = its forward passes alone",
                  flush=True)
            print(f"{'model':34s} {'in':>4s} {'decode':>8s} {'bare':>7s} {'zoo fwd':>8s} {'zoo/bare':>8s} "
                  f"{'zoo/opt':>7s} {'extract':>8s} {'+load':>7s} {'ext fwd':>7s} {'load s':>6s}  inference", flush=True)
            rows, scoring = [], []
            for rid, rec in _records(ids).items():
                r = bench_extraction(rec, sample, args.batch_size)
                feats = r.pop("_features")
                rows.append(r)
                print(f"{rid:34s} {rec.input_size[-1]:4d} {r['decode_img_s']:8.0f} {r['bare_img_s']:7.1f} "
                      f"{r['zoo_forward_img_s']:8.1f} {r['zoo_over_bare']:8.2f} {r.get('zoo_over_opt', float('nan')):7.2f} "
                      f"{r['extract_img_s']:8.1f} "
                      f"{r['extract_img_s_with_load']:7.1f} {len(sample) / r['extract_forward_s']:7.1f} "
                      f"{r['extract_load_s']:6.2f}  {r['inference']} "
                      f"(threads {r['threads']}, load {r['load_avg']})", flush=True)
                if "scoring" in sections:
                    t = time_scorers(feats, sample.labels)
                    total = sum(t.values())
                    scoring.append({"model": rid, "n": feats.shape[0], "d": feats.shape[1],
                                    **{k: round(v, 4) for k, v in t.items()}, "total": round(total, 4),
                                    "extract_s": round(r["extract_s"], 3), "share": total / r["extract_s"],
                                    "load_avg": load()})
                del feats
            result["extraction"] = rows
            if scoring:
                print(f"\n== default scorers on each model's features (n = {len(sample)}); share = scoring / extraction",
                      flush=True)
                for s in scoring:
                    mark = " (target <= 5 %)" if s["model"] in IMAGENET_SIZE else ""
                    print(f"{s['model']:34s} d={s['d']:5d}  " + "  ".join(
                        f"{k} {s[k]:.3f}" for k in ("logme", "hscore", "shrinkage_hscore", "transrate", "knn"))
                        + f"  total {s['total']:.2f} s / extract {s['extract_s']:.1f} s = {100 * s['share']:.1f} %{mark}",
                        flush=True)
                result["scoring"] = scoring
        if "grid" in sections:
            ns, ds = ([250, 1000], [64, 512]) if args.quick else ([250, 1000, 4000], [64, 512, 2048])
            print("\n== default scorers against N and D (synthetic ReLU features, 10 classes), seconds", flush=True)
            result["grid"] = bench_grid(ns, ds)
        if "cli" in sections:
            data = write_images(work / "cli-images", cli_n, seed=1)
            print(f"\n== CLI, {cli_n} images, {len(ids)} models, new processes", flush=True)
            result["cli"] = bench_cli(data, ids, work)
    finally:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=1, default=float))
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
