"""Issue 20: zoo's ranking confidence with a proxy-error term, chosen and judged by the rule written before it ran
(``PREREGISTERED_PROXY`` in bench_ranking.py).

    python benchmarks/calibrate_proxy.py /tmp/calib/images.json /tmp/calib/text.json
    python benchmarks/calibrate_proxy.py RUNS.json ... --reps-dir /tmp/calib/proxy_reps --json /tmp/proxy.json

Input: bench_ranking ``--json`` files of the calibration sweep (``--sample-seeds 0 1``). One row per (task, sample
seed), selected as bench_ranking's calibration table selects them (its as-run table is printed first). For each row
:func:`zoo.confidence.resample_fused` is re-run on what the run's zoo fused (its candidates, description scores,
size prior and full-sample raw scores, the cached features of the run's sample; default resamples, seed 0: the
product's call), once, and :func:`zoo.confidence.summarise` gives ``stays_first`` for every proxy SD of the grid
from those same half-samples (``bootstrap_ranking(proxy_sd=sigma)`` is exactly that; tests/test_confidence.py).
The SD-0 value must reproduce the run's own ``stays_first``; each row says whether it does.

Printed: per SD, the bucket table, the share of rows in the >= 90 % bucket and the Brier score over the old tasks;
the leave-one-task-out choices; the adoption decision; the held-out rows once, with the adopted SD.
``--reps-dir`` keeps each row's resampled fused scores (.npz) so that a second call with more runs only resamples
the new rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import bench_ranking as br  # noqa: E402
from benchmarks import ranking_variants as rv  # noqa: E402

RULE = br.PREREGISTERED_PROXY
GRID: tuple[float, ...] = tuple(float(s) for s in RULE["sigma_grid"])
TOP_BUCKET = rv.BUCKETS[-1]  # (0.9, 1.0 + eps, ">= 90 %")
MIN_ROWS, TARGET = 3, 0.85


def load_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """Every result of the files that carries zoo's confidence, its ground truth read again (as bench_ranking
    --calibration-json reads them)."""
    out = []
    for path in paths:
        for r in json.loads(path.read_text())["results"]:
            r.setdefault("seed", 0)
            r["run"] = path.name
            if r.get("confidence") and br.refresh_ground_truth(r):
                out.append(r)
    return out


def replicates(r: dict[str, Any], sample_root: Path, reps_dir: Path | None) -> tuple[Any, str]:
    """``zoo.confidence.resample_fused`` on the run's inputs (or its stored copy); and where the features came from."""
    from zoo import fusion
    from zoo.confidence import Replicates, resample_fused
    from zoo.data import load_sample
    from zoo.data_rank import at_train_size
    from zoo.features import cached, extract
    from zoo.sources.manifest import iter_records

    stored = reps_dir / f"{r['task']}_s{r['seed']}_{Path(r['run']).stem}.npz" if reps_dir else None
    if stored is not None and stored.is_file():
        z = np.load(stored, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return Replicates(fused=z["fused"], **meta), f"stored ({stored.name})"
    if fusion.SIZE_BASIS != "params":  # the run's size prior is rebuilt from the stored parameter counts
        raise SystemExit(f"zoo's size prior counts {fusion.SIZE_BASIS}; this script rebuilds it from raw parameters.")
    desc = br.task_descriptions()[r["task"]]
    per_class = int(desc["sample_per_class"])
    sample = load_sample(br.materialise(r["task"], per_class, sample_root, r["seed"]), max_samples_per_class=per_class)
    records = {x.id: x for x in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
    train_size = br.train_size_of(r["task"])
    # A run of a zoo that records feature_layers scored what extract(layers="auto") gives; an older one the pooled output.
    layers = "auto" if "feature_layers" in r else None
    feats, probs, extracted = {}, {}, []
    for m in r["candidates"]:
        rec = at_train_size(records[m], train_size)
        got = cached(rec, sample, layers)
        if got is None:  # not in the cache any more: extracted again (said in the row)
            f = extract(rec, sample, layers=layers, with_source_probs=True)
            got = (f.features, f.source_probs)
            extracted.append(m)
        feats[m], probs[m] = got
    reps = resample_fused(feats, sample.labels, description=r["description"],
                          size=fusion.size_component({m: r["params"][m] for m in r["candidates"]}),
                          scorers=fusion.FUSED_SCORES, full_scores=r["raw_scores"],
                          source_probs=probs if all(p is not None for p in probs.values()) else None)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(reps, k) for k in ("ids", "top", "n_boot_asked", "scorers", "seed", "seconds")}
        np.savez(stored, fused=reps.fused, meta=json.dumps(meta))
    return reps, (f"cached features, {len(extracted)} extracted again" if extracted else "cached features")


def in_top(stays: float) -> bool:
    return TOP_BUCKET[0] <= stays < TOP_BUCKET[1]


def qualifies(rows: list[dict[str, Any]], sigma: float) -> bool:
    """The pre-registered bar: the >= 90 % bucket holds at least 3 rows, pick-or-tied in at least 85 % of them."""
    got = [r for r in rows if in_top(r["stays"][sigma])]
    return len(got) >= MIN_ROWS and sum(r["pick_or_tied"] for r in got) >= TARGET * len(got) - 1e-12


def choose(rows: list[dict[str, Any]]) -> float:
    """The smallest SD of the grid that qualifies over ``rows``; none: the largest."""
    return next((s for s in GRID if qualifies(rows, s)), GRID[-1])


def table(rows: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    """Buckets, share of rows in the top bucket and Brier score, ``key(row)`` giving the row's stays_first."""
    plain = [{**r, "stays_first": key(r)} for r in rows]
    buckets = rv.calibration_table(plain)
    brier = float(np.mean([(r["stays_first"] - float(r["is_best"])) ** 2 for r in plain])) if plain else float("nan")
    top = buckets[-1]
    return {"buckets": buckets, "share_top": top["n"] / len(plain) if plain else float("nan"), "brier": brier,
            "top_n": top["n"], "top_hits": top["pick_or_tied"]}


def say_table(name: str, t: dict[str, Any]) -> str:
    cells = "  ".join(f"{b['bucket']}: {b['pick_or_tied']}/{b['n']}" for b in t["buckets"])
    share = f"{100 * t['top_hits'] / t['top_n']:.0f} %" if t["top_n"] else "-"
    return (f"  {name:<14}{cells:<44} >= 90 % bucket: {share:>5} pick/tied, {100 * t['share_top']:4.0f} % of rows"
            f"   Brier {t['brier']:.3f}")


def header() -> dict[str, str]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "?"
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": git("rev-parse", "--short", "HEAD"),
            "dirty": "yes" if git("status", "--porcelain", "--", "zoo", "benchmarks") else "no",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_start": load}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="bench_ranking --json files of the calibration sweep")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="the sample seeds the sweep ran (to name "
                                                                          "the rows it lacks)")
    ap.add_argument("--reps-dir", type=Path, help="keep each row's resampled fused scores here (and reuse them)")
    ap.add_argument("--samples", type=Path, help="the task samples (default: <zoo cache dir>/bench_samples)")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    from zoo.confidence import summarise
    from zoo.embed import cache_dir

    head = header()
    print("Issue 20, calibration with a proxy-error term (PREREGISTERED_PROXY, bench_ranking.py); "
          + ", ".join(f"{k} {v}" for k, v in head.items()))
    runs = load_runs(args.runs)
    print("\nAs run (bench_ranking's calibration table of these files, proxy SD 0):")
    cal = br.calibration(runs)
    by_key = {(r["task"], r["seed"], r["run"]): r for r in runs}
    old_tasks, held_tasks = br.PREREGISTERED["old_tasks"], br.PREREGISTERED["heldout_tasks"]
    have = {(c["task"], c["seed"]) for c in cal["rows"]}
    missing = [f"{t}/s{s}" for t in (*old_tasks, *held_tasks) for s in args.seeds
               if (t, s) not in have and br.ground_truth(t) is not None]
    no_gt = [t for t in (*old_tasks, *held_tasks) if br.ground_truth(t) is None]
    rows: list[dict[str, Any]] = []
    print(f"\nstays_first (%) of the pick for every proxy SD ({', '.join(f'{s:g}' for s in GRID)}), "
          "the same half-samples for each:")
    print(f"  {'row':<20}{'set':<6}{'pick/tied':>10}{'best':>6}  " + "".join(f"{s:>7g}" for s in GRID)
          + "  as run  features")
    for c in cal["rows"]:
        r = by_key[(c["task"], c["seed"], c["run"])]
        t0 = time.perf_counter()
        reps, where = replicates(r, args.samples or cache_dir() / "bench_samples", args.reps_dir)
        stays = {s: summarise(reps, s).stays_first for s in GRID}
        same = reps.top == c["pick"] and abs(stays[0.0] - c["stays_first"]) < 1e-9
        row = {**{k: c[k] for k in ("task", "seed", "run", "pick", "pick_or_tied", "is_best", "gap_points")},
               "set": "old" if c["task"] in old_tasks else "held" if c["task"] in held_tasks else "other",
               "stays": stays, "as_run": c["stays_first"], "reproduced": same, "n_boot": int(reps.fused.shape[0]),
               "features": where, "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"  {c['task'] + '/s' + str(c['seed']):<20}{row['set']:<6}{'yes' if c['pick_or_tied'] else 'MISSED':>10}"
              f"{'yes' if c['is_best'] else 'no':>6}  " + "".join(f"{100 * stays[s]:7.1f}" for s in GRID)
              + f"  {100 * c['stays_first']:5.1f} {'(same)' if same else '(DIFFERS)'}  {where}, "
                f"{row['seconds']:.0f} s", flush=True)
    old = [r for r in rows if r["set"] == "old"]
    held = [r for r in rows if r["set"] == "held"]
    print(f"\nOld tasks ({len(old)} rows): the calibration table for every proxy SD (bucket: pick-or-tied/rows)")
    per_sigma = {}
    for s in GRID:
        per_sigma[s] = table(old, lambda r, s=s: r["stays"][s])
        print(say_table(f"SD {s:g}", per_sigma[s]) + ("   qualifies" if qualifies(old, s) else ""))
    print("\nLeave-one-task-out over the old tasks (rule: the smallest SD whose >= 90 % bucket over the other old "
          f"tasks' rows holds >= {MIN_ROWS} rows with pick-or-tied >= {100 * TARGET:.0f} %; none: the largest):")
    folds = {}
    for t in dict.fromkeys(r["task"] for r in old):
        folds[t] = choose([r for r in old if r["task"] != t])
        print(f"  {t:<14} SD {folds[t]:g}" + ("" if any(qualifies([r for r in old if r["task"] != t], s) for s in GRID)
                                               else "  (no SD qualifies: the largest)"))
    loto = table(old, lambda r: r["stays"][folds[r["task"]]])
    adopt = bool(loto["top_n"] >= MIN_ROWS and loto["top_hits"] >= TARGET * loto["top_n"] - 1e-12)
    final = choose(old) if adopt else 0.0
    print(say_table("LOTO-assigned", loto))
    print(f"\nAdoption: the LOTO-assigned >= 90 % bucket holds {loto['top_n']} rows, {loto['top_hits']} pick-or-tied "
          f"(needs >= {MIN_ROWS} rows and >= {100 * TARGET:.0f} %) -> "
          + (f"ADOPTED: zoo's PROXY_SD = {final:g} (the rule over all old tasks' rows)" if adopt and final > 0 else
             "met, and the rule over all old tasks' rows gives SD 0: PROXY_SD stays 0 (no proxy term)" if adopt else
             "NOT adopted: PROXY_SD stays 0"))
    heldout = table(held, lambda r: r["stays"][final])
    print(f"\nHeld-out tasks ({len(held)} rows), reported once with SD {final:g} (they choose nothing):")
    for r in held:
        print(f"  {r['task'] + '/s' + str(r['seed']):<20} stays first {100 * r['stays'][final]:5.1f} %  "
              f"{'pick/tied' if r['pick_or_tied'] else 'MISSED'}  (gap {r['gap_points']:.2f} pts)")
    print(say_table(f"SD {final:g}", heldout))
    every = table(rows, lambda r: r["stays"][final])
    print(f"All {len(rows)} rows (old and held-out), SD {final:g}:")
    print(say_table(f"SD {final:g}", every))
    if not all(r["reproduced"] for r in rows):
        print("\nRows whose SD-0 stays_first differs from the run's: "
              + ", ".join(f"{r['task']}/s{r['seed']}" for r in rows if not r["reproduced"]))
    print(f"\nRows missing from the sweep (seeds {' '.join(map(str, args.seeds))}): {', '.join(missing) or 'none'}"
          + (f"; no ground truth (not computed): {', '.join(no_gt)}" if no_gt else "")
          + "".join(f"\n  not counted: {x}" for x in cal["skipped"]))
    end_load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "?"
    print(f"Load average at the end: {end_load}")
    if args.json:
        args.json.write_text(json.dumps({"header": {**head, "load_end": end_load}, "rule": RULE, "rows": rows,
                                         "old": {str(s): v for s, v in per_sigma.items()}, "loto_folds": folds,
                                         "loto": loto, "adopted": adopt, "proxy_sd": final, "heldout": heldout, "all": every,
                                         "missing": missing}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
