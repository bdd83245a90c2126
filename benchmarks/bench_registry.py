"""Registry speed: CLI start-up, cold search on the shipped catalog, indexing rate, and filtered
search at 1k..1M synthetic records drawn from the real catalog's distributions.

    python benchmarks/bench_registry.py [--sizes 1000,10000,100000,1000000] [--out results.json]

Prints every figure; ``benchmarks/run.py`` collects them into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.record import ModelRecord  # noqa: E402
from zoo.registry import Registry  # noqa: E402


def timed_cmd(args: list[str], runs: int = 7, env: dict | None = None) -> float:
    """Median wall time of a fresh process (cold interpreter, warm OS file cache)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def startup(results: dict) -> None:
    zoo = str(Path(sys.executable).with_name("zoo"))
    results["zoo_help_s"] = timed_cmd([zoo, "--help"])
    results["python_baseline_s"] = timed_cmd([sys.executable, "-c", "pass"])
    env = dict(os.environ, ZOO_DB=str(Path(tempfile.mkdtemp()) / "none.db"))
    results["zoo_search_filtered_s"] = timed_cmd(
        [zoo, "search", "--modality", "image", "--license-class", "permissive", "--max-params", "50M",
         "--sort", "top1", "--limit", "20"], env=env)
    results["zoo_search_text_s"] = timed_cmd([zoo, "search", "vision transformer", "--limit", "20"], env=env)
    print(f"zoo --help: {results['zoo_help_s'] * 1000:.0f} ms (python -c pass: "
          f"{results['python_baseline_s'] * 1000:.0f} ms); filtered search: "
          f"{results['zoo_search_filtered_s'] * 1000:.0f} ms; text search: {results['zoo_search_text_s'] * 1000:.0f} ms")


_WORDS = None


def synthetic(real: list[ModelRecord], n: int, seed: int = 0):
    """Records drawn from the real catalog: each copies a random real record's modality, license,
    domains and card text (with words resampled from the real vocabulary), with jittered size and top-1."""
    rng = random.Random(seed)
    vocab = [w for r in real for w in r.description.split()]
    for i in range(n):
        base = rng.choice(real)
        words = base.description.split()
        k = max(3, len(words) // 3)
        desc = " ".join(words[:k] + rng.sample(vocab, min(len(vocab), 40)))
        params = int(base.params * rng.uniform(0.5, 1.5)) if base.params else None
        top1 = round(base.imagenet_top1 + rng.gauss(0, 2), 3) if base.imagenet_top1 is not None else None
        yield ModelRecord(
            id=f"hf:synthetic/{base.name.replace(':', '-').replace('/', '-')}-{i}",
            modality=base.modality, tasks=base.tasks, domains=base.domains, pretraining_data=base.pretraining_data,
            architecture=base.architecture, library=base.library, params=params, feature_dim=base.feature_dim,
            input_size=base.input_size, mean=base.mean, std=base.std, license=base.license,
            results={"imagenet_top1": top1} if top1 is not None else {}, description=desc, weights=None,
            downloads=rng.randint(0, 10**6),
        )


def fill_synthetic(reg: Registry, real: list[ModelRecord], n: int, seed: int, on_batch=None,
                   batch_size: int = 50_000) -> float:
    """Index ``n`` synthetic records into ``reg`` in runs of ``batch_size``; returns the seconds taken.
    ``on_batch(records)`` runs after each run (e.g. to store vectors for them)."""
    t = time.perf_counter()
    batch: list[ModelRecord] = []
    for rec in synthetic(real, n, seed=seed):
        batch.append(rec)
        if len(batch) == batch_size:
            reg.index("manifest", batch)
            if on_batch:
                on_batch(batch)
            batch = []
    if batch:
        reg.index("manifest", batch)
        if on_batch:
            on_batch(batch)
    return time.perf_counter() - t


def index_rate(real: list[ModelRecord], results: dict, n: int = 50_000, runs: int = 5) -> None:
    """Records/s for one index run of ``n`` new records into a fresh database; the machine is shared,
    so the median of several runs is the figure, with the range next to it."""
    rates = []
    for seed in range(runs):
        recs = list(synthetic(real, n, seed=1 + seed))
        with tempfile.TemporaryDirectory() as d:
            reg = Registry(db=Path(d) / "u.db", catalog=Path(d) / "none.db", create=True)
            t = time.perf_counter()
            reg.index("manifest", recs)
            rates.append(n / (time.perf_counter() - t))
            reg.close()
    results["index_records_per_s"] = statistics.median(rates)
    results["index_records_per_s_runs"] = rates
    print(f"indexing: {n} records per run, full-text index on: median {statistics.median(rates):,.0f} records/s "
          f"over {runs} runs (range {min(rates):,.0f}-{max(rates):,.0f})")


def scaled_search(real: list[ModelRecord], sizes: list[int], results: dict) -> None:
    rows = []
    query = dict(modality="image", license_classes=["permissive"], max_params=100_000_000, sort="top1", limit=20)
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "big.db"
            reg = Registry(db=path, catalog=Path(d) / "none.db", create=True)
            build_s = fill_synthetic(reg, real, n, seed=2)
            reg.conn.execute("ANALYZE")
            reg.close()
            size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob("big.db-*"))
            # a cold registry per measurement: new connection each time (as the CLI does)
            lat, text_lat = [], []
            for i in range(40):
                r = Registry(db=path, catalog=Path(d) / "none.db")
                t = time.perf_counter()
                r.search(**query)
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                r.search("vision transformer" if i % 2 else "bert text", limit=20, sort="top1")
                text_lat.append(time.perf_counter() - t)
                r.close()
            with Registry(db=path, catalog=Path(d) / "none.db") as r:  # exact, uncapped count
                matched = r.conn.execute(
                    "SELECT count(*) FROM models WHERE modality = ? AND license_class = ? AND params <= ?",
                    [query["modality"], query["license_classes"][0], query["max_params"]],
                ).fetchone()[0]
            selectivity = matched / n
            p95 = sorted(lat)[int(0.95 * len(lat)) - 1]
            tp95 = sorted(text_lat)[int(0.95 * len(text_lat)) - 1]
            row = {"records": n, "selectivity": selectivity, "p50_ms": statistics.median(lat) * 1000,
                   "p95_ms": p95 * 1000, "text_p95_ms": tp95 * 1000, "bytes_per_record": size / n,
                   "build_s": build_s}
            rows.append(row)
            print(f"{n:>9,} records: filtered search p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms "
                  f"(selectivity {selectivity:.1%}); text search p95 {tp95 * 1000:.1f} ms; "
                  f"{size / n:.0f} bytes/record; built in {build_s:.0f} s")
    results["scaled_search"] = rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", choices=["startup", "index", "search"], help="run one part")
    args = ap.parse_args()
    results: dict = {}
    with Registry(db=Path(tempfile.mkdtemp()) / "none.db") as reg:
        real = list(reg.iter_records())
    print(f"shipped catalog: {len(real)} records")
    if args.only in (None, "startup"):
        startup(results)
    if args.only in (None, "index"):
        index_rate(real, results)
    if args.only in (None, "search"):
        scaled_search(real, [int(s) for s in args.sizes.split(",")], results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
