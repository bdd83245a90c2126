"""Ranking quality against ground truth: does zoo pick the backbone that transfers best, and how cheaply?

    python benchmarks/bench_ranking.py                   # every task with ground truth
    python benchmarks/bench_ranking.py --tasks mnist5k mr --no-probe
    python benchmarks/bench_ranking.py --json /tmp/ranking.json

For every task with ground truth in ``benchmarks/ground_truth/`` (accuracy of each offline-zoo model after
fine-tuning / linear probing, mean over seeds; see ground_truth.py), the benchmark hands zoo what a user
would: the task description (``tasks/ranking_tasks.yaml``) and a labelled sample of the task's training split
(seed 0, ``sample_per_class`` per class, written as an image folder / CSV file under the cache dir), and
ranks the models that have ground truth with ``zoo.recommend(description, data=..., candidates=...)``.
From that one call it reads every arm, so all of them see the same features:

- each single scorer (raw score), the priors alone (ImageNet top-1 percentile with the documented
  missing-value rule, parameter count, popularity), random (mean over 200 permutations);
- zoo from the description alone (its description-and-prior score), zoo with data (the shipped fusion), the
  fusion with its weight and scorer set fitted leave-one-task-out (never on the task scored), and
  zoo + probe of the top 3 (a 5-fold linear probe on the sample's cached features re-orders the top 3; the
  probe is in the same estimator family as the text tasks' linear-probe ground truth, so it is not an
  independent check there).

Metrics per task: weighted Kendall tau (``scipy.stats.weightedtau(scores, accuracies)[0]``) and top-1 regret
(best accuracy minus the accuracy of the top-ranked model, in points). A task whose models all reach the same
accuracy within ``SATURATION`` is reported but left out of the averages. Paired bootstrap over tasks
(10,000 resamples) says how sure "zoo with data beats X" is. Cost: seconds zoo spent (feature extraction as
recorded when the features were computed + scoring) against the seconds the ground truth spent fine-tuning
every candidate.

Issue 20 (``PREREGISTERED`` below, committed before the run): the held-out tasks
(``tasks/ranking_tasks_heldout.yaml``) are reported in their own table and choose nothing; the four candidate
variants (``ranking_variants.py``) are chosen leave-one-task-out over the old tasks and adopted by the written
rule; the done-when table compares zoo with data against each prior and single scorer on the held-out tasks;
the calibration table buckets zoo's ``Recommendation.confidence.stays_first``. ``--from-json`` reports again
from stored runs (the ground truth read again; a task's tables from the first file holding its seed-0 run, later
runs of it add calibration rows only, one row per task and sample seed), ``--sample-seeds`` adds calibration rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import datasets as bds  # noqa: E402
from benchmarks import ranking_variants as rv  # noqa: E402

GT_DIR = ROOT / "benchmarks" / "ground_truth"
TASKS_FILE = ROOT / "benchmarks" / "tasks" / "ranking_tasks.yaml"
HELDOUT_FILE = ROOT / "benchmarks" / "tasks" / "ranking_tasks_heldout.yaml"  # issue 20's held-out tasks
SATURATION = 0.005  # max - min accuracy below this: every model saturates, left out of the averages
LABEL_SCORERS = ("logme", "hscore", "shrinkage_hscore", "transrate", "knn")
SOURCE_SCORERS = ("leep", "nce")  # need a source head: used where zoo can extract its probabilities
# The fusion grid searched leave-one-task-out (small on purpose: few tasks).
WEIGHT_GRID = tuple(round(x, 2) for x in np.linspace(0, 1, 11))
SCORER_SETS = (("logme",), ("knn",), ("logme", "knn"), ("logme", "knn", "shrinkage_hscore"), LABEL_SCORERS)
# A size prior next to the fusion (log parameter count, min-max over the candidates), fitted leave-one-task-out
# as its own arm. Pre-registered (2026-11-22, before the run): zoo's fusion takes it up only if this arm beats
# "zoo: with data" on both mean weighted tau and mean regret.
SIZE_GRID = (0.0, 0.1, 0.2, 0.3, 0.5)
BOOTSTRAP = 10_000

# ---- Issue 20: pre-registration (written and committed 2026-12-05, before any ground truth, feature or
# ranking result existed for the held-out tasks, and before any variant below was computed on any task).
# BENCHMARKS.md ("Ranking that beats the priors (issue 20)") cites the commit that added this block.
PREREGISTERED: dict[str, Any] = {
    "old_tasks": ("mnist5k", "animal_mnist", "digits", "mr", "sst2", "subj", "trec", "agnews_subset"),
    "heldout_tasks": ("sst5", "trec_hln", "agnews_title", "chatterbot", "lfw_faces"),
    "heldout_rule": "the held-out tasks (benchmarks/tasks/ranking_tasks_heldout.yaml) are scored once, reported "
                    "in their own table, and used to choose nothing: no weight, scorer set, variant or threshold",
    # Each candidate is a switch on top of the shipped fusion ("zoo: with data"), evaluated one at a time.
    "candidates": {
        "layer_mean": "features of the transformer text encoders (all-MiniLM-L6-v2, all-mpnet-base-v2) = the mean "
                      "over the transformer layers (hidden_states[1:], not the embedding output) of the "
                      "attention-mask mean-pooled hidden states, instead of the sentence-transformers pooled "
                      "output; the ONNX exports and GloVe have no layers and keep their features; the fused "
                      "scorers are recomputed on the variant's features",
        "source_heads": "NCE and LEEP averaged into the data component with the fused scorers when every "
                        "candidate of the task has a source head (else no change)",
        "non_embedding_size": "size prior on log non-embedding parameters (token/position/type embedding tables "
                              "not counted; averaged GloVe: 0 -> the smallest) instead of log raw parameters",
        "saturation": "H-score and TransRate added to the fused scorers, each marked not informative (left out "
                      "of the fusion for that task) in its ill-posed regime: H-score when n <= d + 1, "
                      "TransRate when the smallest class has fewer rows than the feature dimension",
    },
    "choice": "leave-one-task-out over the old counted tasks only: for the old task t, a switch is on iff turning "
              "it on gives a higher mean weighted tau over the other old counted tasks (ties: lower mean regret; "
              "still tied: off). The arm 'LOTO: <candidate>' is the fusion with that per-fold choice.",
    "adoption": "a candidate is adopted into zoo's defaults iff its LOTO arm beats 'zoo: with data' over the old "
                "counted tasks on BOTH mean weighted tau (strictly higher) and mean top-1 regret (no higher). "
                "Otherwise it is reported as not adopted, with its numbers.",
    "heldout_tables": "on the held-out tasks: 'zoo: with data' vs 'prior: parameters', 'prior: ImageNet top-1' "
                      "and every single scorer: mean weighted tau, paired-bootstrap P(zoo better) over tasks "
                      "(10,000 resamples), mean top-1 regret; target P >= 0.95 on tau and regret no larger",
    "tie": "a model is tied with the true best of a task when its ground-truth accuracy (mean over seeds) is "
           "within the task's seed noise of the best: best - acc <= mean over models of |acc(seed 0) - acc(seed 1)|",
    "calibration": "over every task (old and held-out) and every sample seed run: bucket zoo's stays_first "
                   "(< 0.5, 0.5-0.9, >= 0.9) and count how often the pick is the true best or tied with it; "
                   "target: pick-or-tied >= 85 % in the >= 0.9 bucket",
}

# ---- Issue 20, calibration with a proxy-error term: pre-registered (written and committed 2026-12-05, before any
# confidence with proxy_sd > 0 was computed on any task). benchmarks/calibrate_proxy.py applies it.
PREREGISTERED_PROXY: dict[str, Any] = {
    "term": "zoo.confidence.bootstrap_ranking(proxy_sd=sigma): on every resample, every candidate's fused score (after "
            "the centring on its full-sample score) gets independent N(0, sigma^2) noise, from a generator of its own "
            "seeded by the bootstrap's seed (the half-samples are the same for every sigma), before the first place "
            "and the tie rule are taken; the pick (the full-sample top) and the tie rule are otherwise unchanged; "
            "sigma 0 is the confidence as before. sigma is on the fused score's [0, 1] scale, a zoo constant "
            "(zoo.confidence.PROXY_SD) like the fusion weights",
    "sigma_grid": (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
    "rows": "one per (task, sample seed), selected as PREREGISTERED['calibration'] counts them, from the calibration "
            "sweep's --json files: bootstrap_ranking re-run on what the run's zoo fused (its candidates, description "
            "scores, size prior, raw scores, cached features; default resamples, seed 0). pick-or-tied as "
            "PREREGISTERED['tie'] (independent of sigma: the pick is). Rows missing from the sweep are named; the "
            "rule runs on the rows that exist",
    "choice": "leave-one-task-out over the old tasks only: for old task t, sigma(t) is the smallest sigma of the grid "
              "whose >= 0.9 stays_first bucket over the rows (every sample seed) of all the other old tasks holds at "
              "least 3 rows with pick-or-tied >= 85 %; if no sigma qualifies, the largest of the grid",
    "adoption": "the LOTO-assigned calibration (each old task's rows computed with its own fold's sigma(t)), bucketed "
                "as PREREGISTERED['calibration']: iff its >= 0.9 bucket holds at least 3 rows with pick-or-tied "
                ">= 85 %, zoo's PROXY_SD becomes the same rule applied to all old tasks' rows; otherwise PROXY_SD "
                "stays 0 and the term is reported as not adopted, with the numbers",
    "heldout": "the held-out tasks' rows are reported once, with the adopted sigma (0 if none), and choose nothing",
    "also_reported": "for every sigma of the grid, over the old tasks' rows: the bucket table, the share of rows in the "
                     ">= 0.9 bucket (a confidence that never says 90 % says nothing) and the Brier score "
                     "mean((stays_first - [the pick is the true best])^2)",
}


# ----------------------------------------------------------------------------------- inputs


def ground_truth(task: str) -> dict[str, float] | None:
    path = GT_DIR / f"{task}.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())["results"]
    out = {m: float(np.mean([e["accuracy"] for e in seeds.values()])) for m, seeds in res.items() if seeds}
    return out or None


def gt_seconds(task: str) -> float:
    res = json.loads((GT_DIR / f"{task}.json").read_text())["results"]
    return float(sum(np.mean([e["seconds"] for e in seeds.values()]) for seeds in res.values() if seeds))


def noise_ceiling(task: str) -> float | None:
    from scipy.stats import weightedtau

    res = json.loads((GT_DIR / f"{task}.json").read_text())["results"]
    complete = [m for m in res if {"0", "1"} <= set(res[m])]
    if len(complete) < 3:
        return None
    return float(weightedtau([res[m]["0"]["accuracy"] for m in complete],
                             [res[m]["1"]["accuracy"] for m in complete])[0])


def train_size_of(task: str) -> int | None:
    """The input-size cap the image ground truth was fine-tuned at (None for text)."""
    if not (GT_DIR / f"{task}.json").is_file():  # no ground truth yet: the recipe's cap
        from benchmarks.ground_truth import IMAGE_SIZE_CAP

        return IMAGE_SIZE_CAP if bds.modality(task) == "image" else None
    recipe = json.loads((GT_DIR / f"{task}.json").read_text())["protocol"]["recipe"]
    return recipe.get("input_size_cap")


def task_descriptions() -> dict[str, dict[str, Any]]:
    import yaml

    out = {}
    for path in (TASKS_FILE, HELDOUT_FILE):
        out.update(yaml.safe_load(path.read_text(encoding="utf-8"))["tasks"])
    return out


def materialise(task: str, per_class: int, root: Path, seed: int = 0) -> Path:
    """The user's sample: ``per_class`` per class drawn (by ``seed``) from the seed-0 training split, as files
    zoo reads."""
    trx, try_, _, _ = bds.load(task, 0)
    rng = np.random.default_rng([seed, per_class, *task.encode()])
    tag = f"{task}-{per_class}" + (f"-s{seed}" if seed else "")
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(try_ == c))[:per_class] for c in np.unique(try_)]))
    if bds.modality(task) == "image":
        from PIL import Image

        out = root / tag
        if not (out / ".done").exists():
            for i in idx:
                d = out / f"class_{int(try_[i]):02d}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(trx[i], dtype=np.uint8)).save(d / f"{int(i):05d}.png")
            (out / ".done").touch()
        return out
    out = root / f"{tag}.csv"
    root.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i in idx:
                w.writerow([trx[i], f"class_{int(try_[i])}"])
        tmp.replace(out)
    return out


# ----------------------------------------------------------------------------------- metrics


def _finite(scores: list[float]) -> np.ndarray:
    """A model a scorer could not score (NaN, e.g. LEEP without a source head) ranks last."""
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    return np.where(ok, s, (s[ok].min() - 1.0) if ok.any() else 0.0)


def wtau(scores: list[float], acc: list[float]) -> float:
    from scipy.stats import weightedtau

    s = _finite(scores)
    if np.ptp(s) == 0:
        return 0.0  # a ranking that cannot tell the models apart: as good as random on average
    return float(weightedtau(s, np.asarray(acc, dtype=float))[0])


def regret(scores: list[float], acc: list[float]) -> float:
    """Points lost by taking the top-scored model (ties: the mean over the tied models)."""
    s, a = _finite(scores), np.asarray(acc, dtype=float)
    top = np.flatnonzero(s == s.max())
    return float(100 * (a.max() - a[top].mean()))


def random_baseline(acc: list[float], n: int = 200) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    taus, regs = [], []
    for _ in range(n):
        s = rng.permutation(len(acc)).astype(float)
        taus.append(wtau(list(s), acc))
        regs.append(regret(list(s), acc))
    return float(np.mean(taus)), float(np.mean(regs))


# ----------------------------------------------------------------------------------- one task


def run_task(task: str, desc: dict[str, Any], sample_root: Path, probe_top: int, seed: int = 0,
             variants: bool = True, native_arms: bool = True) -> dict[str, Any] | None:
    import zoo
    from zoo.features import cache_info

    gt = ground_truth(task) or {}
    from zoo.sources.manifest import iter_records

    # Every offline-zoo model of the task's modality is a candidate (what a user of this machine gets);
    # the metrics use those with ground truth.
    models = sorted(r.id for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")
                    if r.modality == bds.modality(task))
    data = materialise(task, int(desc["sample_per_class"]), sample_root, seed)
    # LEEP and NCE need a source classification head: the offline image models have one (ImageNet,
    # CIFAR-10, FER2013 ...), the text encoders none, so they are arms on the image tasks only.
    names = list(LABEL_SCORERS) + (list(SOURCE_SCORERS) if bds.modality(task) == "image" else [])
    # Score at the input size the ground truth fine-tuned at (a user passes --train-size for that).
    train_size = train_size_of(task)
    t0 = time.perf_counter()
    rec = zoo.recommend(desc["text"], data=data, candidates=models, scores=names, top_k=len(models),
                        max_samples=int(desc["sample_per_class"]), group=False, train_size=train_size)
    wall = time.perf_counter() - t0
    native = None
    if train_size and native_arms:
        native = zoo.recommend(desc["text"], data=data, candidates=models, scores=names, top_k=len(models),
                               max_samples=int(desc["sample_per_class"]), group=False)
    cands = {c.id: c for c in rec.candidates}
    missing = [m for m in models if m not in cands]
    if missing:
        print(f"{task}: not scored {missing}: {rec.not_scored}", flush=True)
    models = [m for m in models if m in cands]
    if sum(m in gt for m in models) < 3:
        print(f"{task}: ground truth for under 3 scored models; features cached, task skipped", flush=True)
        return None
    # zoo's cost: extraction seconds as recorded when each feature file was made, plus scoring.
    made = {e.get("model_id"): float(e.get("seconds") or 0.0) for e in cache_info()
            if e.get("data_hash") == rec.data["content_hash"]}
    zoo_seconds = sum((cands[m].data_seconds or 0.0) + (made.get(m, 0.0) if cands[m].data_cached else 0.0)
                      for m in models)
    all_models, models = models, [m for m in models if m in gt]
    records = {m: cands[m].record for m in all_models}
    arms: dict[str, dict[str, float]] = {}
    for name in names:
        arms[name] = {m: cands[m].data_scores.get(name, math.nan) for m in all_models}
    arms["prior: ImageNet top-1"] = {m: cands[m].components["quality"] for m in all_models}
    arms["prior: parameters"] = {m: float(np.log(records[m].params or 1)) for m in all_models}
    arms["prior: popularity"] = {m: cands[m].components["popularity"] for m in all_models}
    arms["zoo: description only"] = {m: cands[m].components["description"] for m in all_models}
    arms["zoo: with data"] = {m: cands[m].score for m in all_models}
    # The order zoo hands the user: the fused ranking, with tied leaders re-ordered by a linear probe where zoo
    # probed them (issue 20 item 4); the same as the fused ranking when nothing was probed.
    order = [c.id for c in rec.candidates]
    arms["zoo: with data, final order (tied leaders probed)"] = {m: float(len(order) - order.index(m))
                                                                 for m in all_models}
    if native is not None:
        nat = {c.id: c for c in native.candidates}
        arms["zoo: with data, native input size"] = {m: nat[m].score for m in all_models}
        for name in ("logme", "knn"):
            arms[f"{name}, native input size"] = {m: nat[m].data_scores.get(name, math.nan) for m in all_models}
    out = {"task": task, "modality": bds.modality(task), "models": models, "accuracy": {m: gt[m] for m in models},
           "arms": arms, "ceiling": noise_ceiling(task), "zoo_seconds": zoo_seconds, "recommend_wall": wall,
           "finetune_seconds": gt_seconds(task), "n_sample": rec.data["n"],
           "description": {m: cands[m].components["description"] for m in all_models},
           "params": {m: records[m].params for m in all_models},
           "raw_scores": {m: cands[m].data_scores for m in all_models},
           # which transformer layers zoo averaged into each candidate's scored features (None: its own output)
           "feature_layers": {m: getattr(cands[m], "feature_layers", None) for m in all_models}}
    out["candidates"] = all_models
    out["seed"], out["heldout"] = seed, task in PREREGISTERED["heldout_tasks"]
    out["confidence"] = confidence_of(rec) or bootstrap_here(rec, cands, all_models, train_size)
    out["probe_summary"] = getattr(rec, "probe_summary", None)
    out["gt_noise"] = rv.seed_noise(json.loads((GT_DIR / f"{task}.json").read_text())["results"])
    if variants:
        from zoo.data import load_sample

        sample = load_sample(rec.data["source"], max_samples_per_class=rec.data["max_samples_per_class"])
        dims = {m: int(cands[m].record.feature_dim or 0) for m in all_models}
        out["variants"] = rv.variant_inputs(sample, records, dims, LABEL_SCORERS)
    if probe_top:
        out["arms"]["zoo: with data + probe top 3"], out["probe"] = probe_rerank(
            rec, models, arms["zoo: with data"], probe_top)
    return out


def add_variant_inputs(r: dict[str, Any], desc: dict[str, Any], sample_root: Path) -> None:
    """The variant inputs of a stored result that predates them (an earlier run's --json): the same sample file
    (materialise is deterministic), the records' feature dimensions, the layer-mean features (cached)."""
    from zoo.data import load_sample
    from zoo.sources.manifest import iter_records

    per_class = int(desc["sample_per_class"])
    sample = load_sample(materialise(r["task"], per_class, sample_root, r["seed"]), max_samples_per_class=per_class)
    recs = {x.id: x for x in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
    records = {m: recs[m] for m in r["candidates"]}
    # A run of a zoo that records feature_layers scored the layer mean (issue 20 item 1); an older one the pooled output.
    r["variants"] = rv.variant_inputs(sample, records, {m: int(x.feature_dim or 0) for m, x in records.items()},
                                      LABEL_SCORERS, shipped_layer_mean="feature_layers" in r)
    r["variants_added"] = "variant inputs computed at report time for a stored result"


def refresh_ground_truth(r: dict[str, Any]) -> bool:
    """Re-read the task's ground truth (it may have grown since the task was scored): the models it covers,
    their accuracy, the noise ceiling and seed noise. False when under 3 scored models have one."""
    gt = ground_truth(r["task"]) or {}
    models = [m for m in r.get("candidates", r["models"]) if m in gt]
    if len(models) < 3:
        return False
    r["models"], r["accuracy"] = models, {m: gt[m] for m in models}
    r["ceiling"], r["finetune_seconds"] = noise_ceiling(r["task"]), gt_seconds(r["task"])
    r["gt_noise"] = rv.seed_noise(json.loads((GT_DIR / f"{r['task']}.json").read_text())["results"])
    acc = list(r["accuracy"].values())
    r["saturated"] = bool(max(acc) - min(acc) < SATURATION)
    return True


def confidence_of(rec: Any) -> dict[str, Any] | None:
    """zoo's own bootstrap confidence for its pick (``zoo.confidence.RankingConfidence`` on the recommendation),
    as plain data; None when this zoo does not compute one."""
    conf = getattr(rec, "confidence", None)
    if conf is None:
        return None
    return {"top": conf.top, "stays_first": float(conf.stays_first), "tied": list(conf.tied),
            "n_boot": int(conf.n_boot), "first_share": {k: float(v) for k, v in conf.first_share.items()}}


def bootstrap_here(rec: Any, cands: dict[str, Any], models: list[str], train_size: int | None) -> dict[str, Any] | None:
    """Where zoo.recommend does not attach its confidence: zoo.confidence.bootstrap_ranking called here on the
    same cached features, description scores and size prior the recommendation fused (None without it)."""
    try:
        from zoo.confidence import bootstrap_ranking
    except ImportError:
        return None
    from zoo import fusion
    from zoo.data import load_sample
    from zoo.data_rank import at_train_size
    from zoo.features import extract

    sample = load_sample(rec.data["source"], max_samples_per_class=rec.data["max_samples_per_class"])
    feats, probs = {}, {}
    for m in models:
        f = extract(at_train_size(cands[m].record, train_size), sample, with_source_probs=True)
        feats[m] = f.features
        if f.source_probs is not None:
            probs[m] = f.source_probs
    conf = bootstrap_ranking(feats, sample.labels, description={m: cands[m].components["description"] for m in models},
                             size=fusion.size_component({m: cands[m].record.params for m in models}),
                             full_scores={m: cands[m].data_scores for m in models}, source_probs=probs or None)
    out = confidence_of(type("R", (), {"confidence": conf})())
    assert out is not None
    out["where"] = "bench_ranking called zoo.confidence.bootstrap_ranking"
    return out


def probe_rerank(rec: Any, models: list[str], fused: dict[str, float], k: int) -> tuple[dict[str, float], dict]:
    """Re-order the top k of the fused ranking by probe accuracy on the sample; the rest keep their order."""
    from zoo.data import load_sample
    from zoo.features import extract

    order = sorted(models, key=lambda m: -fused[m])
    top = order[:k]
    sample = load_sample(rec.data["source"], max_samples_per_class=rec.data["max_samples_per_class"])
    cands = {c.id: c for c in rec.candidates}
    accs, secs = {}, {}
    for m in top:
        feats = extract(cands[m].record, sample)
        t = time.perf_counter()
        accs[m] = _probe_accuracy(feats.features, sample.labels)
        secs[m] = time.perf_counter() - t
    ranked = sorted(top, key=lambda m: -accs[m]) + order[k:]
    n = len(ranked)
    return {m: float(n - i) for i, m in enumerate(ranked)}, {"accuracy": accs, "seconds": secs}


def _probe_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    try:
        from zoo.probe import probe_features
    except ImportError:
        probe_features = None
    if probe_features is not None:
        return float(probe_features(x, y, folds=5, seed=0).accuracy)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return float(cross_val_score(pipe, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean())


# ----------------------------------------------------------------------------------- fusion, LOTO


def fused(result: dict[str, Any], weight: float, scorer_set: tuple[str, ...], size: float = 0.0) -> dict[str, float]:
    from zoo import fusion

    models = result.get("candidates", result["models"])  # fused over every candidate, as zoo does
    data = fusion.data_component({m: result["raw_scores"][m] for m in models}, scorer_set)
    prior = fusion.size_component({m: result["params"][m] for m in models}) if size else None
    return fusion.fuse_scores(result["description"], data, weight, prior, size)


def evaluate(result: dict[str, Any], scores: dict[str, float]) -> tuple[float, float]:
    ms = result["models"]
    acc = [result["accuracy"][m] for m in ms]
    s = [scores[m] for m in ms]
    return wtau(s, acc), regret(s, acc)


def fit(train: list[dict[str, Any]]) -> tuple[float, tuple[str, ...]]:
    """The (weight, scorer set) with the best mean weighted tau on ``train`` (ties: lower regret, then the
    smaller weight on data, then the smaller set)."""
    best = None
    for w, ss in product(WEIGHT_GRID, SCORER_SETS):
        taus, regs = zip(*(evaluate(r, fused(r, w, ss)) for r in train), strict=True)
        key = (-float(np.mean(taus)), float(np.mean(regs)), w, len(ss))
        if best is None or key < best[0]:
            best = (key, w, ss)
    assert best is not None
    return best[1], best[2]


def fit_size(train: list[dict[str, Any]], weight: float, scorer_set: tuple[str, ...]) -> float:
    """The size-prior weight with the best mean weighted tau on ``train`` around the given fusion
    (ties: lower regret, then the smaller weight)."""
    best = None
    for size in SIZE_GRID:
        taus, regs = zip(*(evaluate(r, fused(r, weight, scorer_set, size)) for r in train), strict=True)
        key = (-float(np.mean(taus)), float(np.mean(regs)), size)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2]


def add_loto(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from zoo import fusion

    counted = [r for r in results if not r["saturated"] and not r.get("heldout")]  # never the held-out tasks
    default = (fusion.DATA_WEIGHT, tuple(fusion.FUSED_SCORES))
    for r in results:
        train = [o for o in counted if o["task"] != r["task"]]
        if not train:
            continue
        w, ss = fit(train)
        r["arms"]["zoo: fusion fitted leave-one-task-out"] = fused(r, w, ss)
        size = fit_size(train, *default)
        r["arms"]["zoo: with data + size prior, fitted LOTO"] = fused(r, *default, size)
        r["arms"]["zoo: with data, no size prior (before)"] = fused(r, *default)
        r["loto_fit"] = {"weight": w, "scorers": list(ss), "size_prior": size}
    if all("variants" in r for r in results):
        for r in results:
            r["arms"]["zoo: with data (rebuilt)"] = rv.variant_fused(r, rv.shipped(r))
        for switch in rv.SWITCHES:
            choice = rv.loto_choice(results, switch, evaluate)
            for r in results:
                base = rv.shipped(r)  # the switches zoo shipped with when it scored r (layer_mean since issue 20 item 1)
                r["arms"][f"LOTO: {switch}"] = rv.variant_fused(r, base | {switch} if choice[r["task"]] else base - {switch})
                r["arms"][f"always on: {switch}"] = rv.variant_fused(r, base | {switch})
                if switch in base:
                    r["arms"][f"always off: {switch}"] = rv.variant_fused(r, base - {switch})
                r.setdefault("variant_choice", {})[switch] = choice[r["task"]]
    return results


def bootstrap(diffs: np.ndarray) -> tuple[float, float, float]:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(diffs), size=(BOOTSTRAP, len(diffs)))
    means = diffs[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), float((means > 0).mean())


# ----------------------------------------------------------------------------------- report


def report(results: list[dict[str, Any]], title: str = "") -> dict[str, Any]:
    arms = list(dict.fromkeys(a for r in results for a in r["arms"]))
    if title:
        print(f"\n===== {title} =====")
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for r in results:
        acc = [r["accuracy"][m] for m in r["models"]]
        table[r["task"]] = {a: evaluate(r, r["arms"][a]) for a in arms if a in r["arms"]}
        table[r["task"]]["random (mean of 200)"] = random_baseline(acc)
    arms.append("random (mean of 200)")
    counted = [r["task"] for r in results if not r["saturated"]]
    print("\nWeighted Kendall tau (higher is better) / top-1 regret in points (lower is better)")
    head = f"{'arm':<42}" + "".join(f"{t[:13]:>16}" for t in table) + f"{'mean*':>16}"
    print(head)
    summary: dict[str, Any] = {"arms": {}, "counted_tasks": counted}
    for a in arms:
        cells, taus, regs = [], [], []
        for t, row in table.items():
            if a not in row:
                cells.append(f"{'-':>16}")
                continue
            tau, reg = row[a]
            cells.append(f"{tau:>8.2f} /{reg:>5.1f}")
            if t in counted:
                taus.append(tau)
                regs.append(reg)
        mt, mr = (float(np.mean(taus)), float(np.mean(regs))) if taus else (math.nan, math.nan)
        summary["arms"][a] = {"tau": mt, "regret": mr}
        print(f"{a:<42}" + "".join(cells) + f"{mt:>8.2f} /{mr:>5.1f}")
    print("\n" + f"{'noise ceiling (seed tau)':<42}" + "".join(
        f"{(r['ceiling'] if r['ceiling'] is not None else math.nan):>16.2f}" for r in results))
    print(f"{'saturated (left out of means)':<42}" + "".join(f"{str(r['saturated']):>16}" for r in results))
    print(f"{'zoo seconds / fine-tune-all seconds':<42}" + "".join(
        f"{r['zoo_seconds']:>7.0f}/{r['finetune_seconds']:<8.0f}" for r in results))
    print(f"{'cost ratio (zoo / fine-tune all)':<42}" + "".join(
        f"{r['zoo_seconds'] / max(r['finetune_seconds'], 1e-9):>16.3f}" for r in results))
    print("* mean over the non-saturated tasks: " + ", ".join(counted))
    main = "zoo: with data"
    print(f"\nPaired bootstrap over the {len(counted)} counted tasks ({BOOTSTRAP} resamples): "
          f"'{main}' minus each arm, mean weighted tau difference [95% CI], P(diff > 0); regret difference")
    summary["bootstrap"] = {}
    for a in arms:
        if a == main or not counted or any(a not in table[t] for t in counted):
            continue
        d_tau = np.array([table[t][main][0] - table[t][a][0] for t in counted])
        d_reg = np.array([table[t][main][1] - table[t][a][1] for t in counted])
        lo, hi, p = bootstrap(d_tau)
        summary["bootstrap"][a] = {"tau_diff": float(d_tau.mean()), "ci": [lo, hi], "p_better": p,
                                   "regret_diff": float(d_reg.mean())}
        print(f"  vs {a:<40} {d_tau.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]  P={p:.2f}  regret {d_reg.mean():+.2f}")
    summary["table"] = {t: {a: {"tau": v[0], "regret": v[1]} for a, v in row.items()} for t, row in table.items()}
    return summary


def adoption(summary: dict[str, Any], old: list[dict[str, Any]]) -> dict[str, Any]:
    """PREREGISTERED["adoption"]: each switch's LOTO arm against 'zoo: with data' over the old counted tasks."""
    arms, base = summary["arms"], summary["arms"]["zoo: with data"]
    print("\nIssue 20 candidates, chosen leave-one-task-out over the old counted tasks (rule: adopt iff the LOTO arm "
          "has a higher mean tau AND a mean regret no higher than 'zoo: with data')")
    print(f"  {'zoo: with data':<34} tau {base['tau']:.3f}  regret {base['regret']:.2f}")
    rebuilt = arms.get("zoo: with data (rebuilt)")
    if rebuilt:
        print(f"  {'(rebuilt by the benchmark)':<34} tau {rebuilt['tau']:.3f}  regret {rebuilt['regret']:.2f}")
    out = {}
    for switch in rv.SWITCHES:
        a, on = arms[f"LOTO: {switch}"], arms[f"always on: {switch}"]
        folds_on = [r["task"] for r in old if r.get("variant_choice", {}).get(switch)]
        default = all(switch in rv.shipped(r) for r in old)
        # The rule compares the LOTO arm with the fusion the switch is off in: "zoo: with data" for a candidate,
        # "always off" for a switch zoo now ships on (its off state is the fusion before it was adopted).
        off = arms[f"always off: {switch}"] if default else base
        adopt = bool(a["tau"] > off["tau"] + 1e-12 and a["regret"] <= off["regret"] + 1e-12)
        out[switch] = {"loto": a, "always_on": on, "adopt": adopt, "on_in_folds": folds_on, "default": default}
        if default:
            out[switch]["always_off"] = off
        print(f"  LOTO: {switch:<28} tau {a['tau']:.3f}  regret {a['regret']:.2f}   (always on: tau {on['tau']:.3f}, "
              f"regret {on['regret']:.2f}" + (f"; always off: tau {off['tau']:.3f}, regret {off['regret']:.2f}"
                                            if default else "") + f"; on in {len(folds_on)} of {len(old)} folds) -> "
              + ("zoo's default now (on in 'zoo: with data'); the rule against off: "
                 f"{'kept' if adopt else 'NOT met'}" if default else f"{'ADOPT' if adopt else 'not adopted'}"))
    return out


def done_when(summary: dict[str, Any]) -> dict[str, Any]:
    """Issue 20's target on the held-out tasks: zoo with data against each prior and single scorer."""
    table, counted, main = summary["table"], summary["counted_tasks"], "zoo: with data"
    rivals = ["prior: parameters", "prior: ImageNet top-1", *LABEL_SCORERS, *SOURCE_SCORERS]
    print(f"\nDone-when (held-out tasks, {len(counted)} counted: {', '.join(counted)}): '{main}' against each; "
          f"target P >= 0.95 on tau and a mean regret no larger")
    print(f"  {'rival':<24}{'tasks':>6}{'tau zoo':>9}{'tau rival':>10}{'P(zoo>)':>9}"
          f"{'regret zoo':>11}{'regret rival':>13}  met")
    out = {}
    for a in rivals:
        ts = [t for t in counted if a in table[t] and main in table[t]]
        if not ts:
            continue
        z = np.array([[table[t][main]["tau"], table[t][main]["regret"]] for t in ts])
        o = np.array([[table[t][a]["tau"], table[t][a]["regret"]] for t in ts])
        _, _, p = bootstrap(z[:, 0] - o[:, 0])
        met = bool(p >= 0.95 and z[:, 1].mean() <= o[:, 1].mean() + 1e-12)
        out[a] = {"tasks": ts, "tau_zoo": float(z[:, 0].mean()), "tau_rival": float(o[:, 0].mean()), "p": p,
                  "regret_zoo": float(z[:, 1].mean()), "regret_rival": float(o[:, 1].mean()), "met": met}
        print(f"  {a:<24}{len(ts):>6}{z[:, 0].mean():>9.2f}{o[:, 0].mean():>10.2f}{p:>9.2f}"
              f"{z[:, 1].mean():>11.1f}{o[:, 1].mean():>13.1f}  {'yes' if met else 'NO'}")
    return out


def calibration(results: list[dict[str, Any]]) -> dict[str, Any]:
    """PREREGISTERED["calibration"]: zoo's stays_first bucketed, against pick-or-tied per the ground truth."""
    rows, skipped = [], []
    # One row per (task, sample seed): the first run that carries zoo's confidence (a stored run and a live
    # re-run of the same task and seed are never both counted).
    with_conf = {(r["task"], r["seed"]) for r in results if r.get("confidence")}
    for r in results:
        conf, key = r.get("confidence"), (r["task"], r["seed"])
        run = r.get("run", "this run")
        if not conf:
            if key not in with_conf:
                skipped.append(f"{r['task']}/s{r['seed']} ({run}): zoo computed no confidence")
            continue
        first = next((row for row in rows if (row["task"], row["seed"]) == key), None)
        if first is not None:
            agree = "the same" if (first["pick"], first["stays_first"]) == (conf["top"], conf["stays_first"]) else \
                f"a different ({conf['top']}, {100 * conf['stays_first']:.1f} %)"
            skipped.append(f"{r['task']}/s{r['seed']} ({run}): counted once, from {first['run']}; this run's pick "
                           f"and stays_first: {agree}")
            continue
        pick = conf["top"]
        if pick not in r["accuracy"]:
            skipped.append(f"{r['task']}/s{r['seed']}: the pick {pick} has no ground truth")
            continue
        best = max(r["accuracy"].values())
        gap = best - r["accuracy"][pick]
        rows.append({"task": r["task"], "seed": r["seed"], "run": run, "pick": pick,
                     "stays_first": conf["stays_first"], "n_boot": conf["n_boot"], "tied": conf["tied"],
                     "gap_points": 100 * gap,
                     "tolerance_points": 100 * r["gt_noise"], "is_best": gap <= 1e-12,
                     "pick_or_tied": gap <= r["gt_noise"] + 1e-12})
    print(f"\nCalibration over {len(rows)} (task, sample seed) runs: zoo's stays_first for its pick, and how often "
          "the pick is the true best or tied with it (within the task's ground-truth seed noise)")
    for row in rows:
        print(f"  {row['task'] + '/s' + str(row['seed']):<18} pick {row['pick']:<36} stays first "
              f"{100 * row['stays_first']:5.1f} % of {row['n_boot']}  gap {row['gap_points']:5.2f} pts "
              f"(tie tolerance {row['tolerance_points']:.2f})  {'pick/tied' if row['pick_or_tied'] else 'MISSED'}"
              f"  tied with it: {len(row['tied'])}  ({row['run']})")
    table = rv.calibration_table(rows)
    print(f"  {'stays_first':<12}{'runs':>6}{'pick or tied':>14}{'share':>8}")
    for b in table:
        share = f"{100 * b['share']:.0f} %" if b["n"] else "-"
        print(f"  {b['bucket']:<12}{b['n']:>6}{b['pick_or_tied']:>14}{share:>8}")
    for line in skipped:
        print(f"  not counted: {line}")
    return {"rows": rows, "table": table, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", choices=bds.TASKS)
    ap.add_argument("--no-probe", action="store_true", help="skip the probe-the-top-3 arm")
    ap.add_argument("--sample-seeds", nargs="+", type=int, default=[0],
                    help="draw the user's sample with each seed (seed 0 makes every table; further seeds add "
                         "rows to the calibration table only)")
    ap.add_argument("--no-variants", action="store_true", help="skip issue 20's variant arms")
    ap.add_argument("--no-native", action="store_true", help="skip the native-input-size arms of the image tasks")
    ap.add_argument("--from-json", type=Path, nargs="+", help="report again from the --json files of earlier runs "
                                                              "(nothing is scored; the ground truth is read again; "
                                                              "a task's tables come from the first file holding "
                                                              "its seed-0 run, later runs of it only add "
                                                              "calibration rows)")
    ap.add_argument("--samples", type=Path, default=None,
                    help="where the task samples are written (default: <zoo cache dir>/bench_samples)")
    ap.add_argument("--calibration-json", type=Path, nargs="+", default=[],
                    help="with --from-json: runs whose results only add rows to the calibration table (tasks the "
                         "tables take from an earlier stored run)")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    from zoo.embed import cache_dir

    descs = task_descriptions()
    sample_root = args.samples or cache_dir() / "bench_samples"
    results, extra = [], []
    seeds = [] if args.from_json else sorted(set(args.sample_seeds) | {0})
    if args.from_json:
        for path in args.from_json:
            for r in json.loads(path.read_text())["results"]:
                r.setdefault("seed", 0)
                r.setdefault("heldout", r["task"] in PREREGISTERED["heldout_tasks"])
                r["run"] = path.name
                # add_loto rebuilds the report-time arms; this one's name before a3229a8 would stay as a stale row
                r["arms"].pop("zoo: with data (rebuilt, no switch)", None)
                if (args.tasks is None or r["task"] in args.tasks) and refresh_ground_truth(r):
                    # A task's tables come from the first file with its seed-0 run; a later seed-0 run of the
                    # same task only adds its calibration row (never two rows of one task in a table).
                    tables = r["seed"] == 0 and not any(o["task"] == r["task"] for o in results)
                    if "variants" not in r and not args.no_variants and tables:
                        add_variant_inputs(r, descs[r["task"]], sample_root)
                    (results if tables else extra).append(r)
    for path in args.calibration_json:
        for r in json.loads(path.read_text())["results"]:
            r.setdefault("seed", 0)
            r["run"] = path.name
            if r.get("confidence") and refresh_ground_truth(r):
                extra.append(r)
    if args.from_json:
        print("Which run makes which table (each task's seed-0 run from the first --from-json file that has it; "
              "a calibration row per (task, sample seed) from the first run that carries zoo's confidence):")
        for r in results:
            print(f"  tables  {r['task']:<14} {r['run']}")
    for seed in seeds:
        for task in args.tasks or list(bds.TASKS):
            t = time.perf_counter()
            r = run_task(task, descs[task], sample_root, 0 if args.no_probe or seed else 3, seed,
                         variants=not args.no_variants and seed == 0, native_arms=not args.no_native)
            if r is None:
                continue
            refresh_ground_truth(r)
            (results if seed == 0 else extra).append(r)
            if args.json:  # after every task: a later failure keeps what was scored (--from-json reports it)
                args.json.write_text(json.dumps({"results": results + extra}, indent=1, default=str))
            print(f"{task} (sample seed {seed}): {len(r['models'])} models, sample {r['n_sample']}, "
                  f"zoo {r['zoo_seconds']:.1f} s (this run {time.perf_counter() - t:.1f} s)", flush=True)
    add_loto(results)
    old = [r for r in results if not r["heldout"]]
    held = [r for r in results if r["heldout"]]
    summary: dict[str, Any] = {}
    if old:
        summary["old"] = report(old, f"The {len(old)} tasks of the earlier issues (every choice is made on these)")
        fits = {r["task"]: r.get("loto_fit") for r in old}
        counted = [r for r in old if not r["saturated"]]
        if counted:
            w, ss = fit(counted)
            summary["fit_on_all"] = {"weight": w, "scorers": list(ss)}
            print(f"\nFusion fitted on all counted old tasks: data weight {w}, scorers {', '.join(ss)}; "
                  f"leave-one-task-out fits: {fits}")
        if all("variants" in r for r in old):
            summary["adoption"] = adoption(summary["old"], old)
    if held:
        summary["heldout"] = report(held, f"Issue 20's held-out tasks ({len(held)}; scored once, chose nothing)")
        summary["done_when"] = done_when(summary["heldout"])
    summary["calibration"] = calibration(results + extra)
    if args.json:
        args.json.write_text(json.dumps({"results": results + extra, "summary": summary}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
