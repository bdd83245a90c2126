"""Scale-out on Ray (issue 21): the local executor against ``--executor ray`` in one run, Ray's overhead per
task, and a planning table from a list-scheduling simulation fed with the measured per-candidate times.

    python benchmarks/bench_ray.py                    # 8 candidates x 500 MNIST-5k images (~5-8 min on 2 cores)
    python benchmarks/bench_ray.py --n 96 --models local:cifar_resnet20.c10,local:cifar_resnet32.c10   # quick
    python benchmarks/bench_ray.py --json results/bench_ray.json

What one run does, in one process, on one machine:

1. ``zoo score`` then ``zoo probe --force`` (the linear probe on the cached features) over the candidates with the
   local executor, from an empty feature cache: fetch (nothing: offline weights) -> extract -> score, then the
   probe. Per candidate: extraction, scoring and probe seconds as zoo reports them.
2. The same with ``ZOO_NUM_THREADS=1`` (one torch thread, as in a Ray task of one CPU); then with
   ``executor="ray"`` on a fresh local Ray with ``--workers`` CPUs (one CPU per task, so that many tasks at once),
   from an empty feature cache each time. Cluster start, ``ray.put`` of the sample and each task's seconds
   inside the worker are kept (zoo.executor.LAST_RUN).
3. Ray's overhead: a no-op task's round trip (mean of 50, one after another), each task's seconds inside the
   worker minus the work it reports (extraction + scoring, or the probe), and the idle share of the workers
   (1 - sum of task seconds / (workers x wall)).
4. The planning table: the makespan of N candidates (each taking the measured time of candidate i mod 8, the
   longest first onto the first free worker) on 1, 8 and 64 workers, from the CPU times measured inside the Ray
   tasks and from GPU times = those / a speed-up factor quoted from BENCHMARKS.md (assumed, not measured here: this
   session had no GPU), Ray's per-task overhead and each worker's first-task start included.

The machine is shared with other work: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = [
    "local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k", "local:cifar_resnet20.c10",
    "local:cifar_resnet32.c10", "local:cifar_resnet44.c10", "local:cifar_resnet56.c10",
    "local:mini_xception.fer2013", "local:mini_xception.imdb_gender",
]
# GPU speed-ups over this 2-core machine, quoted from BENCHMARKS.md (H100, 2026-11-23); assumed for the plan.
# Extraction: "Image extraction on a GPU" (img/s with the default decoding threads) over "Feature extraction
# and scoring speed" (end to end on 2 cores, loaded machine): MobileNetV2 907 / 34.9 = 26x; CIFAR ResNet-20
# 2,793 / 390 = 7.2x; mini-Xception 3,132 / 346 = 9.1x. Probe: "Quick-probe speed", 31.5x (50,000 x 2,048).
# Scoring stays on the CPU (NumPy/SciPy): 1x.
GPU_EXTRACT = {"224": 26.0, "small": 7.2, "face": 9.1}
GPU_PROBE = 31.5


def _family(model_id: str) -> str:
    if "xception" in model_id:
        return "face"
    if "cifar" in model_id:
        return "small"
    return "224"


def _threads() -> str:
    from zoo.scores._base import cpu_threads

    return str(cpu_threads())


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _clear_features() -> None:
    from zoo.features import clear_cache

    clear_cache()


def _round(data: Path, ids: list[str], executor: str) -> dict[str, Any]:
    """Cold score, then probe on the cached features, with one executor; per-candidate times."""
    from zoo import executor as ex
    from zoo.probe import probe
    from zoo.scoring import score

    _clear_features()
    out: dict[str, Any] = {"executor": executor, "load_start": _load()}
    t = time.perf_counter()
    srep = score(data, ids, executor=executor)
    out["score_wall"] = time.perf_counter() - t
    out["score_ray"] = _stats(ex.LAST_RUN) if executor == "ray" else None
    t = time.perf_counter()
    prep = probe(data, ids, executor=executor, force=True)
    out["probe_wall"] = time.perf_counter() - t
    out["probe_ray"] = _stats(ex.LAST_RUN) if executor == "ray" else None
    out["wall"] = out["score_wall"] + out["probe_wall"]
    out["load_end"] = _load()
    probes = {r.model_id: r for r in prep.results}
    out["models"] = {}
    for m in srep.models:
        p = probes.get(m.id)
        out["models"][m.id] = {
            "error": m.error or prep.failed.get(m.id), "extract": m.extract_seconds,
            "score": sum(m.score_seconds.values()), "probe": p.seconds if p else None,
            "probe_extract": p.extract_seconds if p else None, "cached_for_probe": p.features_cached if p else None,
            "scores": m.scores, "accuracy": p.accuracy if p else None,
        }
    return out


def _stats(stats: Any) -> dict[str, Any]:
    return {"connect": stats.connect_seconds, "put": stats.put_seconds, "wall": stats.wall_seconds,
            "task_seconds": dict(stats.task_seconds), "done_at": dict(stats.done_at)}


def _noop_round_trip(ray: Any, n: int = 50) -> float:
    @ray.remote(num_cpus=1)
    def noop() -> int:
        return 0

    ray.get(noop.remote())  # a worker is up
    t = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote())
    return (time.perf_counter() - t) / n


def simulate(durations: list[float], workers: int, startup: float) -> float:
    """Makespan of the tasks on ``workers`` identical workers: longest first, each onto the worker free first
    (LPT list scheduling); every worker pays ``startup`` once before its first task."""
    free = [startup] * workers
    heapq.heapify(free)
    end = 0.0
    for d in sorted(durations, reverse=True):
        t = heapq.heappop(free) + d
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt_s(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="images (MNIST-5k, stratified)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray (tasks at once)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    ids = [m for m in args.models.split(",") if m]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["ZOO_CACHE_DIR"] = str(work / "cache")  # features start empty; the user's cache is not touched
    os.environ["ZOO_DB"] = str(work / "user.db")
    from benchmarks.bench_features import write_images

    data = write_images(work / "mnist", args.n)
    print(f"bench_ray: {len(ids)} candidates x {args.n} MNIST-5k images; {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load {_load()}", flush=True)

    local = _round(data, ids, "local")
    print(f"local: score {local['score_wall']:.1f} s + probe {local['probe_wall']:.1f} s = {local['wall']:.1f} s "
          f"(load {local['load_start']} -> {local['load_end']}; torch threads: zoo's choice, "
          f"{_threads()})", flush=True)
    # The same with one torch thread, as each Ray task runs (its num_cpus=1): separates what the threads do on a
    # loaded machine from what running two candidates at once does.
    os.environ["ZOO_NUM_THREADS"] = "1"
    local1 = _round(data, ids, "local")
    del os.environ["ZOO_NUM_THREADS"]
    print(f"local, 1 thread: score {local1['score_wall']:.1f} s + probe {local1['probe_wall']:.1f} s = "
          f"{local1['wall']:.1f} s (load {local1['load_start']} -> {local1['load_end']})", flush=True)

    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t
    rt = _noop_round_trip(ray)
    remote = _round(data, ids, "ray")
    ray.shutdown()
    print(f"ray ({args.workers} workers): score {remote['score_wall']:.1f} s + probe {remote['probe_wall']:.1f} s = "
          f"{remote['wall']:.1f} s (load {remote['load_start']} -> {remote['load_end']}); cluster start "
          f"{init_s:.1f} s (not in the wall time)", flush=True)
    for name, base in (("local", local), ("local, 1 thread", local1)):
        print(f"speed-up of ray over {name}: {base['wall'] / remote['wall']:.2f}x (score "
              f"{base['score_wall'] / remote['score_wall']:.2f}x, probe {base['probe_wall'] / remote['probe_wall']:.2f}x)")

    # Per candidate and Ray's overhead
    print("\n| candidate | local extract | local score | local probe | ray task (score) | of it: extract+score | "
          "ray task (probe) | of it: probe | scores as local (1e-6) | bit-identical to 1-thread local |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    over_score, over_probe = [], []
    for mid in ids:
        a, b = local["models"][mid], remote["models"][mid]
        if a["error"] or b["error"]:
            print(f"| {mid} | failed: {a['error'] or b['error']} |")
            continue
        ts, tp = remote["score_ray"]["task_seconds"][mid], remote["probe_ray"]["task_seconds"][mid]
        ws, wp = b["extract"] + b["score"], b["probe"] + (b["probe_extract"] or 0.0)
        over_score.append(ts - ws)
        over_probe.append(tp - wp)
        same = all(abs(a["scores"][k] - b["scores"][k]) <= 1e-6 * max(1.0, abs(a["scores"][k])) for k in a["scores"])
        one = local1["models"][mid]
        exact = one["scores"] == b["scores"] and one["accuracy"] == b["accuracy"]
        print(f"| {mid} | {a['extract']:.2f} | {a['score']:.2f} | {a['probe']:.2f} | {ts:.2f} | {ws:.2f} | {tp:.2f} | "
              f"{wp:.2f} | {'yes' if same else 'no'} | {'yes' if exact else 'no'} |")
    idle = {}
    for phase in ("score_ray", "probe_ray"):
        st = remote[phase]
        idle[phase] = 1 - sum(st["task_seconds"].values()) / (args.workers * st["wall"])
    print(f"\nRay overhead: no-op task round trip {1000 * rt:.1f} ms; in-task (task seconds minus the work zoo "
          f"reports: sample, settings, fetch check, returning) {mean(over_score):.2f} s per scoring task, "
          f"{mean(over_probe):.2f} s per probe task (the first task of each worker imports torch and the model "
          f"library: max {max(over_score + over_probe, default=0):.2f} s); ray.put of the sample "
          f"{remote['score_ray']['put']:.3f} s; idle share of the workers: scoring {idle['score_ray']:.0%}, probe "
          f"{idle['probe_ray']:.0%}.")

    # The planning table
    ok = [m for m in ids if not local["models"][m]["error"]]
    per_task_over = max(0.0, mean(over_score)) + rt  # one task: fetch -> extract -> score -> probe
    startup = max(over_score + over_probe, default=0.0)  # a worker's first task: imports
    # CPU: the times inside the Ray tasks (one core each, as a worker of 1 CPU; less disturbed by the machine's
    # other load than 2 threads are). GPU: the same times divided by the quoted speed-ups, which were measured
    # against 2-core figures: against 1 core they would be larger, so these GPU times lean high.
    r = remote["models"]
    cpu = [r[m]["extract"] + r[m]["score"] + r[m]["probe"] for m in ok]
    gpu = [r[m]["extract"] / GPU_EXTRACT[_family(m)] + r[m]["score"] + r[m]["probe"] / GPU_PROBE for m in ok]
    table = {}
    print(f"\nPlanning table (makespan; candidate i takes the measured time of candidate i mod {len(ok)}; LPT list "
          f"scheduling; + {per_task_over:.2f} s Ray overhead per task, + {startup:.1f} s per worker's first task):")
    print("| candidates | times | 1 worker | 8 workers | 64 workers | one after another, no Ray |")
    print("|---|---|---|---|---|---|")
    for n in (100, 1000):
        for name, base in (("CPU, measured in the Ray tasks (1 core each)", cpu), ("GPU, assumed speed-ups", gpu)):
            tasks = [base[i % len(base)] + per_task_over for i in range(n)]
            spans = [simulate(tasks, w, startup) for w in (1, 8, 64)]
            serial = sum(base[i % len(base)] for i in range(n))
            table[f"{n} {name}"] = {"1": spans[0], "8": spans[1], "64": spans[2], "serial": serial}
            print(f"| {n:,} | {name} | {' | '.join(_fmt_s(s) for s in spans)} | {_fmt_s(serial)} |")
    print(f"\nload at the end: {_load()}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"local": local, "local_1_thread": local1, "ray": remote, "init_seconds": init_s,
                                               "noop_round_trip": rt, "table": table}, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
