"""Recommendation from a task description: quality on held-out descriptions, and speed.

    python benchmarks/bench_recommend.py                 # report dev and test, baselines, speed
    python benchmarks/bench_recommend.py --tune          # grid over fusion weights on the DEV split only
    python benchmarks/bench_recommend.py --scale 1000000 # warm latency and ANN recall at 1M records

Quality: ``benchmarks/tasks/descriptions.yaml`` (written before the ranker was tuned), split into
dev (tuned on) and test (reported). Metrics: modality accuracy of the task understanding, and
precision@5 of domain match (a top-5 model counts when one of its domain tags is accepted for the
task). Baselines, measured in the same run: full-text keyword search over the registry (SQLite
FTS5, bm25, any word may match), and "highest ImageNet top-1 / most downloaded in the right modality"
(given the true modality, which favours the baseline).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from zoo import recommender  # noqa: E402
from zoo.ranking import recommend  # noqa: E402
from zoo.recommender import SERVES  # noqa: E402
from zoo.registry import Registry  # noqa: E402

TASKS = ROOT / "benchmarks" / "tasks" / "descriptions.yaml"
# A second held-out set, written after the test half had been looked at, by a writer who had not seen
# the method's phrases or examples: the only split on which nothing was ever chosen.
HOLDOUT = ROOT / "benchmarks" / "tasks" / "descriptions_holdout.yaml"
# A third, written after the card evidence had been chosen on dev + test, to judge it once.
HOLDOUT2 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout2.yaml"
# A fourth (60 tasks), written blind by a fifth writer and committed before the quote placeholder and
# the named-dataset evidence were judged on it. Pre-registered rule (written before its first run):
# each change, chosen on the four sets above, is judged as its own arm (the shipped method plus that
# change) against the shipped method, in one run; a change is kept only if holdout3 modality accuracy
# does not drop and precision@5 drops by at most 0.02. The arms: --no-quotes, --no-dataset-names.
HOLDOUT3 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout3.yaml"
# A fifth (60), written blind by a sixth writer after holdout3 had been looked at, committed before its
# first run: it reports the shipped method (the named-dataset mixture included) once; nothing is chosen on it.
HOLDOUT4 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout4.yaml"
# A sixth (80), written blind by a seventh writer on 2026-11-23 after holdout4 had been looked at, and
# committed unread. Pre-registered rule (committed before its first run): it reports the shipped method
# once, next to the method before the quote placeholder and the named-dataset evidence
# (--no-quotes --no-dataset-names), a second fresh judgement of those two changes. If the shipped
# method's modality accuracy on it is lower than that arm's by 2 tasks or more, both changes are
# reverted; otherwise they stay. Nothing else is chosen on it.
# Run once on 2026-11-23: shipped 95.0 % / 0.932, the arm 92.5 % / 0.865; both changes stay (BENCHMARKS.md).
HOLDOUT5 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout5.yaml"
# A seventh (80), written blind by an eighth writer on 2026-11-23 after holdout5 had been looked at, and
# committed unread (2c61dcd). Pre-registered rule (8232f65, before its first run): it judged one change,
# five modality phrases (now zoo.prototypes.CROSS_MODAL_PHRASES), as an arm against the shipped method in
# one run; they join only if holdout6 modality accuracy does not drop and precision@5 drops by at most 0.02.
# Result: 92.5 % / 0.870 in both arms, so by the rule they joined (--no-holdout6-phrases removes them).
HOLDOUT6 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout6.yaml"
# An eighth (80), written blind by a ninth writer on 2026-11-23 after holdout6 had been looked at,
# committed unread. Pre-registered rule (committed before its first run): it judges one change, the
# split of a named image/audio/video dataset's share between its modality and multimodal
# (zoo.understand.JOINT_WITH_TEXT), as the shipped method against --no-joint-split in one run; the change
# stays only if holdout7 modality accuracy does not drop and precision@5 drops by at most 0.02;
# otherwise it is reverted. Nothing else is chosen on it.
# Run once on 2026-11-23: 86.3 % / 0.882 against 82.5 % / 0.878 without the split; it stays (BENCHMARKS.md).
HOLDOUT7 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout7.yaml"
# A ninth (80, 45 % lay), written blind by a tenth writer on 2026-11-23 after holdout7 had been looked at,
# committed unread (078c223). Pre-registered rule (ee01c7c, before its first run): it judged one change,
# 110 everyday-language domain phrases written blind by a helper who read only zoo/prototypes.py and
# zoo/vocab.py, as an arm against the shipped method in one run; they join zoo.prototypes only if
# holdout8's precision@5 on its lay descriptions rises and neither its modality accuracy nor its overall
# precision@5 drops. Result: lay 0.772 -> 0.833, overall 0.872 -> 0.900, modality 88.7 % in both: they
# joined (zoo.prototypes.LAY_DOMAIN_PHRASES; --no-lay-phrases removes them).
HOLDOUT8 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout8.yaml"
# A tenth (80), written blind by an eleventh writer on 2026-11-23 after holdout8 had been looked at,
# committed unread. Pre-registered rule (committed before its first run): it judges one change, the
# domain web-image-text served first by multimodal models (zoo.prototypes.DOMAIN_MODALITIES: its data
# is image-text pairs; image came first before), as the shipped method against
# --web-image-text-image-first in one run; the change stays only if holdout9 modality accuracy does not
# drop and precision@5 drops by at most 0.02; otherwise it is reverted. Nothing else is chosen on it.
# Run once on 2026-11-23: 97.5 % / 0.940 against 95.0 % / 0.940 before; the change stays (BENCHMARKS.md).
HOLDOUT9 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout9.yaml"
# An eleventh and a twelfth (80 each), written blind by two more writers on 2026-11-23 and committed unread
# (c92420e, 017ffd1). Pre-registered rule (committed before their first run): they judge one change, the
# labelled task descriptions as modality examples (zoo.understand.TASK_EXAMPLES, drawn from dev and
# holdout..holdout9, none from these two sets), as the shipped method against --no-task-examples in one
# run; the change stays only if the modality accuracy over the 160 descriptions of both sets does not
# drop and their precision@5 drops by at most 0.02; otherwise it is reverted. Nothing else is chosen on them.
# Run once on 2026-11-23: 97.5 % / 0.950 with the examples, 94.4 % / 0.931 without; they stay (BENCHMARKS.md).
HOLDOUT10 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout10.yaml"
HOLDOUT11 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout11.yaml"
# A fourteenth (60, video-heavy: 30 video, 15 still-frame image, 10 soundtrack audio, 5 image+text),
# written blind on 2026-11-23 and committed unread (35f6ced). The task examples held 2 video descriptions
# of 831, so a video task had few examples to match while the other modalities had hundreds. Pre-registered
# rule (committed before its first run): it judges one change, 60 labelled video descriptions written
# blind as examples (examples_video.yaml, source examples-video), as the shipped method against
# --leave-out-examples examples-video in one run; they join only if holdout13 modality accuracy does not
# drop and precision@5 drops by at most 0.02; otherwise they are removed. --no-task-examples is reported
# beside them (do the task examples cost video tasks?); nothing is chosen on it.
# Run once on 2026-11-23: 78.3 % / 0.800 with them (video 18/30), 58.3 % / 0.737 without (video 6/30);
# --no-task-examples 71.7 % / 0.770 (video 15/30). They joined (BENCHMARKS.md).
HOLDOUT13 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout13.yaml"
# A thirteenth (holdout12: 80, general, written blind, committed unread in 34a9d4b) and a fifteenth
# (holdout14: 60, video-heavy: 30 video, 15 image, 10 audio, 5 multimodal, written blind, committed unread
# in 1ee7c13). Pre-registered rule (committed before their first run): they judge one change, video
# parity (zoo.understand: MODALITY_PRIOR["video"] 1.0 and FULL_SAY; zoo.prototypes: every domain of
# pictures serves video), as the shipped method against --video-handicap (the method before it) in one run
# each over both sets. It stays only if, over the 140 descriptions, it has fewer modality misses than the
# handicap arm, its holdout12 misses are at most the handicap arm's + 1 (a general set, where images read
# as video would show), and its precision@5 over the 140 is lower by at most 0.01; otherwise it is
# reverted. Both arms are reported whatever the outcome; nothing else is chosen on these sets.
# Run once on 2026-11-23: parity 10 misses / 0.871 over the 140 (holdout12 92.5 % / 0.890, holdout14
# 93.3 % / 0.847, video 26/30); --video-handicap 17 / 0.846 (holdout12 the same 6 misses, holdout14
# 81.7 % / 0.787, video 19/30). Parity stays (BENCHMARKS.md).
VIDEO_DOMAINS_BEFORE_PARITY = ("natural-images", "medical-other", "faces", "general")  # --video-handicap
HOLDOUT12 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout12.yaml"
HOLDOUT14 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout14.yaml"
# A sixteenth (holdout15: 80, general: 30 image, 16 text, 12 video, 12 multimodal, 10 audio; 38 lay), written
# blind and committed unread (3e70ed3). Pre-registered rule (committed before its first run): it judges one
# change, holdout12, holdout13 and holdout14 joining the task examples (200 more, 1,091), as the shipped
# method against --leave-out-examples holdout12 holdout13 holdout14 in one run. They stay only if holdout15's
# modality misses are no more than that arm's and its precision@5 is lower by at most 0.01; otherwise they
# are removed. --video-handicap is reported beside them (a second fresh reading of video parity); nothing
# is chosen on it. Run once on 2026-11-23: 90.0 % / 0.805 in all three arms, the same 8 misses: they stay.
HOLDOUT15 = ROOT / "benchmarks" / "tasks" / "descriptions_holdout15.yaml"
# Background paragraphs of long project briefs (8, written blind), for --long-briefs.
BRIEFS = ROOT / "benchmarks" / "tasks" / "briefs.yaml"
HOLDOUTS = (HOLDOUT, HOLDOUT2, HOLDOUT3, HOLDOUT4, HOLDOUT5, HOLDOUT6, HOLDOUT7, HOLDOUT8, HOLDOUT9, HOLDOUT10,
            HOLDOUT11, HOLDOUT12, HOLDOUT13, HOLDOUT14, HOLDOUT15)
SPLITS = ("dev", "test", *(p.stem.removeprefix("descriptions_") for p in HOLDOUTS))  # a file's split is its name
STOP = frozenset((  # noqa: SIM905
    "a an the of in on for to and or with my our we i is are be it that this from by as at which what "
    "can need want should have has into about their them they you your me do does any some").split())


def load_tasks(split: str | None = None) -> list[dict]:
    tasks = yaml.safe_load(TASKS.read_text())["tasks"]
    for extra in HOLDOUTS:
        if extra.is_file():
            tasks += yaml.safe_load(extra.read_text())["tasks"]
    return [t for t in tasks if split is None or t["split"] == split]


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: how far a held-out accuracy on n tasks can be trusted."""
    if n == 0:
        return float("nan"), float("nan")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return centre - half, centre + half


def precision_at_5(records, accept) -> float:
    top = records[:5]
    if not top:
        return 0.0
    return sum(1 for r in top if set(r.domains) & set(accept)) / 5


def keyword_baseline(reg: Registry, text: str) -> list:
    words = [w for w in re.findall(r"[^\W_]+", text.lower()) if w not in STOP and len(w) > 1]
    if not words:
        return []
    match = " OR ".join(f'"{w}"' for w in words)
    out = []
    for schema in reg._schemas():
        rows = reg.conn.execute(
            f"SELECT m.*, f.rank AS _rank FROM {schema}.models_fts f JOIN {schema}.models m ON m.rowid = f.rowid "
            "WHERE f.models_fts MATCH ? ORDER BY f.rank LIMIT 5", [match]).fetchall()
        out += rows
    from zoo.record import ModelRecord

    out.sort(key=lambda r: r["_rank"])
    # sqlite3.Row iterates values, not keys
    return [ModelRecord.from_row({k: r[k] for k in r.keys() if k != "_rank"}) for r in out[:5]]  # noqa: SIM118


def prior_baseline(records, modality: str) -> list:
    pool = [r for r in records if r.modality in SERVES[modality]]
    pool.sort(key=lambda r: (r.imagenet_top1 is None, -(r.imagenet_top1 or 0), -(r.downloads or 0), r.id))
    seen, out = set(), []
    for r in pool:  # one per architecture, as zoo groups
        key = recommender.group_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out[:5]


# zoo.understand's task examples are drawn from these sets (scripts/build_task_examples.py); off with
# --no-task-examples, the method before them.
TASK_EXAMPLES = True
LEFT_OUT: set[str] = set()  # further example sources left out (--leave-out-examples)


def recommend_task(t: dict, **options):
    """``recommend`` on a labelled description with the task examples drawn from its own set (its writer)
    left out, so that no figure is scored on the examples that decided it."""
    recommender.load_state().understander.leave_out_examples({t["split"], *LEFT_OUT}, every=not TASK_EXAMPLES)
    return recommend(t["text"], **options)


def _without_twins(cos: float) -> None:
    """Per query, leave out every task example within ``cos`` of it (the writers share habits: is the
    examples' gain more than near-twins of the query?)."""
    import numpy as np

    from zoo.understand import Understander

    shipped = Understander.understand

    def understand(self, text, q=None, **kw):
        v = kw.get("q_modality") if kw.get("q_modality") is not None else q
        saved = self._evidence_rows
        if v is not None:
            sims = self.matrix @ v
            twin = np.zeros(len(sims), bool)
            examples = np.fromiter(self._example_source, int)
            twin[examples[sims[examples] > cos]] = True
            self._evidence_rows = {m: rows[~twin[rows]] for m, rows in saved.items()}
        try:
            return shipped(self, text, q, **kw)
        finally:
            self._evidence_rows = saved

    Understander.understand = understand


def writer_twins(cos: float, splits: list[str]) -> None:
    """How many descriptions have a twin (cosine above ``cos``) in another writer's set: how much the
    writers' shared habits can flatter the task examples (dev and test are one writer)."""
    import numpy as np

    tasks = [t for s in splits for t in load_tasks(s)]
    q = recommender.load_state().embedder.encode([t["text"] for t in tasks])
    writer = np.array(["dev+test" if t["split"] in ("dev", "test") else t["split"] for t in tasks])
    sims = q @ q.T
    sims[writer[:, None] == writer[None, :]] = -1
    n = int((sims.max(axis=1) > cos).sum())
    print(f"descriptions with a twin above cosine {cos} in another writer's set: {n} of {len(tasks)}")


def evaluate(tasks: list[dict], weights: dict | None = None, baselines: bool = True) -> dict:
    state = recommender.load_state()
    rows = []
    for t in tasks:
        rec = recommend_task(t, top_k=5, weights=weights)
        row = {
            "id": t["id"], "lay": t["lay"], "modality": t["modality"], "language": rec.understanding.language,
            "modality_ok": rec.understanding.modality == t["modality"],
            "predicted": rec.understanding.modality,
            "p5": precision_at_5([c.record for c in rec.candidates], t["accept_domains"]),
            "seconds": rec.seconds,
        }
        if baselines:
            row["p5_keyword"] = precision_at_5(keyword_baseline(state.registry, t["text"]), t["accept_domains"])
            row["p5_prior"] = precision_at_5(prior_baseline(state.records, t["modality"]), t["accept_domains"])
        rows.append(row)

    def mean(key, subset=None):
        sel = [r[key] for r in rows if subset is None or r["lay"] == subset]
        return sum(sel) / len(sel) if sel else float("nan")

    out = {"n": len(rows), "modality_acc": mean("modality_ok"), "p5": mean("p5"), "p5_lay": mean("p5", True),
           "p5_jargon": mean("p5", False), "rows": rows}
    if baselines:
        out["p5_keyword"] = mean("p5_keyword")
        out["p5_prior"] = mean("p5_prior")
    return out


def tune() -> None:
    dev = load_tasks("dev")
    grid = []
    for sim, match, quality in itertools.product([0.2, 0.35, 0.5], [0.2, 0.35, 0.5], [0.05, 0.1, 0.2]):
        grid.append({"domain_similarity": sim, "domain_match": match, "quality": quality, "popularity": 0.05,
                     "size_fit": 0.05})
    results = []
    for w in grid:
        r = evaluate(dev, weights=w, baselines=False)
        results.append((r["p5"], r["modality_acc"], w))
        print(f"dev p@5 {r['p5']:.3f}  modality {r['modality_acc']:.3f}  {w}")
    best = max(results, key=lambda x: (x[0], -x[2]["quality"]))
    print("best on dev:", best)


def _raw_posteriors(tasks: list[dict]):
    """Per task, the modality posterior before calibration (``MODALITY_CALIBRATION`` = 1), the modality
    names in its column order, the true modality's column, and the writer (dev + test are one)."""
    import numpy as np

    from zoo import understand
    from zoo.prototypes import MODALITY_PHRASES

    mods = list(MODALITY_PHRASES)
    saved, understand.MODALITY_CALIBRATION = understand.MODALITY_CALIBRATION, 1.0
    try:
        raw = np.array([[recommend_task(t, top_k=1).understanding.modality_scores[m] for m in mods] for t in tasks])
    finally:
        understand.MODALITY_CALIBRATION = saved
    y = np.array([mods.index(t["modality"]) for t in tasks])
    writer = np.array(["dev+test" if t["split"] in ("dev", "test") else t["split"] for t in tasks])
    return raw, mods, y, writer


def writer_cv(cs: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0), mixes: tuple[float, ...] = (0.3, 1.0)) -> None:
    """Would labelled descriptions teach the modality across writers? Leave one writer out (dev + test
    are one writer; each holdout set another): a logistic regression over the task embedding, fitted on
    the other writers' descriptions, added in log space (times ``mix``) to the uncalibrated posterior."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    tasks = load_tasks()
    q = recommender.load_state().embedder.encode([t["text"] for t in tasks])
    raw, mods, y, writer = _raw_posteriors(tasks)
    logp = np.log(raw + 1e-6)

    def line(name: str, pred) -> None:
        per = ", ".join(f"{w} {np.mean(pred[writer == w] == y[writer == w]):.3f}" for w in dict.fromkeys(writer))
        print(f"{name}: {per}; all {np.mean(pred == y):.3f}")

    line("shipped", logp.argmax(1))
    for c, mix in itertools.product(cs, mixes):
        pred = np.empty_like(y)
        for w in dict.fromkeys(writer):
            train, held = writer != w, writer == w
            clf = LogisticRegression(C=c, max_iter=2000).fit(q[train], y[train])
            lp = np.full((held.sum(), len(mods)), np.log(1e-3))
            lp[:, clf.classes_] = clf.predict_log_proba(q[held])
            pred[held] = (logp[held] + mix * lp).argmax(1)
        line(f"+ classifier C={c} mix={mix}", pred)


def calibrate(powers=None) -> float:
    """The power on the modality posterior (``understand.MODALITY_CALIBRATION``) that minimises the
    log-loss of the true modality, fitted leave-one-writer-out: per held-out writer, the power fitted on
    the others, and its log-loss and expected calibration error there, before and after."""
    import numpy as np

    from zoo import understand

    powers = np.round(np.arange(0.05, 1.01, 0.05), 2) if powers is None else np.asarray(powers)
    raw, _, y, writer = _raw_posteriors(load_tasks())

    def post(a: float, rows) -> np.ndarray:
        p = np.clip(raw[rows], 1e-12, None) ** a
        return p / p.sum(axis=1, keepdims=True)

    def nll(a: float, rows) -> float:
        return float(-np.mean(np.log(post(a, rows)[np.arange(rows.sum()), y[rows]])))

    def ece(a: float, rows, bins: int = 10) -> float:
        p = post(a, rows)
        conf, ok = p.max(axis=1), p.argmax(axis=1) == y[rows]
        idx = np.minimum((conf * bins).astype(int), bins - 1)
        return float(sum(abs(ok[idx == b].mean() - conf[idx == b].mean()) * (idx == b).mean()
                         for b in range(bins) if (idx == b).any()))

    for w in dict.fromkeys(writer):
        train, held = writer != w, writer == w
        a = min(powers, key=lambda x: nll(x, train))
        print(f"held-out {w}: power {a:.2f} fitted on the others; log-loss {nll(1.0, held):.3f} -> {nll(a, held):.3f}, "
              f"ECE {ece(1.0, held):.3f} -> {ece(a, held):.3f}")
    every = np.ones(len(y), bool)
    best = float(min(powers, key=lambda x: nll(x, every)))
    print(f"all {len(y)} descriptions: power {best:.2f}; log-loss {nll(1.0, every):.3f} -> {nll(best, every):.3f}, "
          f"ECE {ece(1.0, every):.3f} -> {ece(best, every):.3f}")
    p = post(understand.MODALITY_CALIBRATION, every)
    conf, ok = p.max(axis=1), p.argmax(axis=1) == y
    flagged = conf < understand.UNSURE_BELOW
    print(f"shipped power {understand.MODALITY_CALIBRATION}: {flagged.sum()} of {len(y)} descriptions flagged unsure "
          f"(< {understand.UNSURE_BELOW:.0%}), {ok[flagged].mean():.0%} right; they hold {(~ok & flagged).sum()} of "
          f"the {(~ok).sum()} misses. Confident (>= 99 %): {(conf >= 0.99).sum()}, {ok[conf >= 0.99].mean():.1%} right")
    return best


OUT_OF_SCOPE = ROOT / "benchmarks" / "tasks" / "out_of_scope.yaml"


def scope(margins: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15)) -> None:
    """Out-of-scope flag (``understand.SCOPE_MARGIN``, fixed before this set was run): how many of the
    out-of-scope tasks in ``out_of_scope.yaml`` (written blind: tabular, time series, 3D, graphs, ...)
    it flags, and how many in-scope tasks it flags wrongly (that file's near-misses and every description)."""
    oos = yaml.safe_load(OUT_OF_SCOPE.read_text())["tasks"]
    flagged = {t["id"]: recommend(t["text"], top_k=1).understanding.out_of_scope for t in oos}
    out = [t for t in oos if not t["in_scope"]]
    near = [t for t in oos if t["in_scope"]]
    hits = [t for t in out if flagged[t["id"]]]
    print(f"out of scope: {len(hits)} of {len(out)} flagged")
    for kind in dict.fromkeys(t["kind"] for t in out):
        of = [t for t in out if t["kind"] == kind]
        print(f"  {kind}: {sum(1 for t in of if flagged[t['id']])} of {len(of)}")
    wrong = [t["id"] for t in near if flagged[t["id"]]]
    print(f"in-scope near-misses flagged: {len(wrong)} of {len(near)} {wrong}")
    described = load_tasks()
    wrong = [t["id"] for t in described if recommend(t["text"], top_k=1).understanding.out_of_scope]
    print(f"in-scope descriptions flagged: {len(wrong)} of {len(described)} {wrong}")
    from zoo import understand

    shipped = understand.SCOPE_MARGIN
    for margin in margins:  # the trade-off, for the record; the shipped margin was fixed before this set
        understand.SCOPE_MARGIN = margin
        n_out = sum(1 for t in out if recommend(t["text"], top_k=1).understanding.out_of_scope)
        n_near = sum(1 for t in near if recommend(t["text"], top_k=1).understanding.out_of_scope)
        n_desc = sum(1 for t in described if recommend(t["text"], top_k=1).understanding.out_of_scope)
        print(f"  margin {margin:.2f}: out of scope {n_out}/{len(out)}, near-misses {n_near}/{len(near)}, "
              f"descriptions {n_desc}/{len(described)}")
    understand.SCOPE_MARGIN = shipped


def _drop_phrases(table: dict[str, list[str]], added: dict[str, list[str]]) -> None:
    """Take the phrases of ``added`` (a change that joined ``table``) out again: the arm before it."""
    for key, phrases in added.items():
        table[key] = [p for p in table[key] if p not in phrases]


def _memo_encode(embedder) -> None:
    """Memoise ``embedder.encode`` per text: a brief's background sentences recur under every task."""
    import numpy as np

    plain, memo = embedder.encode, {}

    def encode(texts, batch_size=64, progress=False):
        texts = [texts] if isinstance(texts, str) else list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            memo.update(zip(todo, plain(todo, batch_size=batch_size), strict=True))
        return np.stack([memo[t] for t in texts]) if texts else plain([])

    embedder.encode = encode


def _query_arms() -> dict:
    """How a long description becomes one query vector: the shipped ``Embedder.encode_query`` and the
    alternatives it was chosen from (each ``(embedder, text, reference) -> unit vector``)."""
    import numpy as np

    from zoo import embed

    def truncate(emb, text, reference=None):  # the encoder alone: its first max_seq_length word pieces
        return emb.encode([text])[0]

    def weighted_mean(temperature):
        def arm(emb, text, reference=None):
            split = emb.query_sentences(text)
            if split is None:
                return emb.encode([text])[0]
            _, vecs = split
            best = (vecs @ reference.T).max(axis=1)
            w = np.exp((best - best.max()) / temperature).astype(np.float32)
            v = w @ vecs
            return v / np.linalg.norm(v)
        return arm

    shipped = embed.Embedder.encode_query

    def extract(delta):
        def arm(emb, text, reference=None):
            saved, embed.QUERY_DELTA = embed.QUERY_DELTA, delta
            try:
                return shipped(emb, text, reference)
            finally:
                embed.QUERY_DELTA = saved
        return arm

    return {"truncate": truncate, "mean T=0.05": weighted_mean(0.05), "extract 0.05": extract(0.05),
            "extract 0.10": extract(0.10)}


def long_briefs() -> None:
    """A description pasted after a long background (briefs.yaml, written blind: team, budget, deadline,
    never the data): how often the modality and the domains are still read right, per way of reading a
    text longer than the encoder's window. The way is chosen on the odd briefs and reported on the even ones."""
    import numpy as np

    from zoo import embed

    briefs = yaml.safe_load(BRIEFS.read_text())["briefs"]
    fit, held = briefs[0::2], briefs[1::2]
    tasks = load_tasks()
    state = recommender.load_state()
    _memo_encode(state.embedder)
    shipped = embed.Embedder.encode_query
    plain = evaluate(tasks, baselines=False)
    print(f"no brief: modality {plain['modality_acc']:.3f}, precision@5 {plain['p5']:.3f} (n={len(tasks)})")

    def run(arm, group) -> tuple[float, float]:
        embed.Embedder.encode_query = arm
        try:
            rows = [evaluate([{**t, "text": f"{b['text'].strip()} {t['text']}"} for t in tasks], baselines=False)
                    for b in group]
        finally:
            embed.Embedder.encode_query = shipped
        return float(np.mean([r["modality_acc"] for r in rows])), float(np.mean([r["p5"] for r in rows]))

    arms = _query_arms()
    scores = {}
    for name, arm in arms.items():
        scores[name] = run(arm, fit)
        print(f"fit briefs {[b['id'] for b in fit]}: {name}: modality {scores[name][0]:.3f}, precision@5 {scores[name][1]:.3f}")
    best = max((n for n in arms if n != "truncate"), key=lambda n: scores[n])
    print(f"chosen on the fit briefs: {best}")
    for name in ("truncate", best):
        acc, p5 = run(arms[name], held)
        print(f"held-out briefs {[b['id'] for b in held]}: {name}: modality {acc:.3f}, precision@5 {p5:.3f}")


def cold_cli(runs: int = 5) -> dict:
    zoo = str(Path(sys.executable).with_name("zoo"))
    env = dict(os.environ, ZOO_DB=str(Path(tempfile.mkdtemp()) / "none.db"))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([zoo, "recommend", "detect pneumonia in chest X-rays", "--top", "5"], check=True,
                       capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    # where the time goes, in one fresh process
    code = (
        "import time; t0=time.perf_counter()\n"
        "import numpy, onnxruntime, tokenizers; t1=time.perf_counter()\n"
        "from zoo.recommender import load_state; from zoo.ranking import recommend; t2=time.perf_counter()\n"
        "s=load_state(); t3=time.perf_counter()\n"
        "recommend('detect pneumonia in chest X-rays', top_k=5); t4=time.perf_counter()\n"
        "print(t1-t0, t2-t1, t3-t2, t4-t3)"
    )
    parts = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    imp, zimp, load, query = (float(x) for x in parts.stdout.split())
    return {"cold_cli_s": statistics.median(times), "imports_s": imp, "zoo_imports_s": zimp,
            "load_state_s": load, "first_query_s": query}


def warm_api(tasks: list[dict]) -> float:
    recommender.load_state()
    lat = []
    for t in tasks:
        t0 = time.perf_counter()
        recommend(t["text"], top_k=10)
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat)


def scale(n: int) -> dict:
    """A registry of ``n`` synthetic records (drawn from the real catalog) whose card vectors are random
    unit vectors: warm API latency through the approximate index, and that index's recall@10."""
    import numpy as np
    from bench_registry import fill_synthetic

    from zoo.embed import get_embedder
    from zoo.vectors import VectorIndex

    work = Path(tempfile.mkdtemp(prefix="zoo-scale-"))
    db = work / "user.db"
    with Registry(db=Path(tempfile.mkdtemp()) / "none.db") as reg:
        real = list(reg.iter_records())
    embed_model = get_embedder().model_id
    reg = Registry(db=db, create=True)
    rng = np.random.default_rng(0)
    build_s = fill_synthetic(reg, real, n, seed=3,
                             on_batch=lambda batch: _random_vectors(reg, batch, embed_model, rng))
    reg.close()
    os.environ["ZOO_DB"] = str(db)
    os.environ["ZOO_CACHE_DIR"] = str(work / "cache") if "ZOO_CACHE_DIR" not in os.environ else os.environ["ZOO_CACHE_DIR"]
    recommender._STATE.clear()
    t = time.perf_counter()
    state = recommender.load_state()
    load_s = time.perf_counter() - t
    tasks = load_tasks()[:40]
    lat = []
    for task in tasks:
        t = time.perf_counter()
        recommend(task["text"], top_k=10)
        lat.append(time.perf_counter() - t)
    idx = state.card_index
    exact = VectorIndex(ids=idx.ids, matrix=idx.matrix)
    recalls = {}
    queries = rng.normal(size=(100, idx.matrix.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(exact.search(q, 10)[0]) for q in queries]
    for nprobe in (8, 32, 128):
        idx.nprobe = nprobe
        t = time.perf_counter()
        got = [set(idx.search(q, 10)[0]) for q in queries]
        per_q = (time.perf_counter() - t) / len(queries)
        recalls[nprobe] = (sum(len(a & b) for a, b in zip(got, truth, strict=True)) / (10 * len(queries)), per_q)
    idx.nprobe = 32
    lat.sort()
    out = {"records": n, "build_s": build_s, "load_state_s": load_s, "warm_p50_ms": 1000 * statistics.median(lat),
           "warm_p95_ms": 1000 * lat[int(0.95 * len(lat)) - 1], "approximate": idx.approximate,
           "recall_at_10": {k: v[0] for k, v in recalls.items()},
           "ann_query_ms": {k: 1000 * v[1] for k, v in recalls.items()}}
    print(f"{n:,} records: warm recommend p50 {out['warm_p50_ms']:.1f} ms, p95 {out['warm_p95_ms']:.1f} ms "
          f"(state load incl. index build {load_s:.0f} s; registry build {build_s:.0f} s); "
          "IVF recall@10 vs exact: " + ", ".join(
              f"nprobe {k}: {v[0]:.2f} ({1000 * v[1]:.1f} ms)" for k, v in recalls.items()))
    state.registry.close()
    recommender._STATE.clear()
    shutil.rmtree(work, ignore_errors=True)  # a 1M-record database is 2 GB
    return out


def _random_vectors(reg: Registry, records: list, embed_model: str, rng) -> None:
    """Random unit vectors stored under each card's real content hash, so that a registry small enough
    to be scored whole (``recommender.LARGE_REGISTRY``) takes them as up to date instead of embedding."""
    import numpy as np

    from zoo.cards import card_text, text_hash

    ids = [r.id for r in records]
    hashes = [text_hash(card_text(r)) for r in records]
    v = rng.normal(size=(len(ids), 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v = v.astype(np.float16)
    with reg.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO main.text_embeddings (key, embed_model, content_hash, dim, vector) VALUES (?,?,?,?,?)",
            [(f"card:{i}", embed_model, hashes[j], 384, v[j].tobytes()) for j, i in enumerate(ids)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--scale", type=int, nargs="+", help="also measure at these many synthetic records (each)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--card-weight", type=float,
                    help="override zoo.understand.CARD_WEIGHT (0 = phrases only: the method before card evidence)")
    ap.add_argument("--no-quotes", action="store_true",
                    help="the modality evidence reads quoted examples as written (the method before the placeholder)")
    ap.add_argument("--no-dataset-names", action="store_true", help="ignore datasets named in the task")
    ap.add_argument("--no-holdout6-phrases", action="store_true",
                    help="without the modality phrases judged on holdout6 (zoo.prototypes.CROSS_MODAL_PHRASES)")
    ap.add_argument("--no-lay-phrases", action="store_true",
                    help="without zoo.prototypes.LAY_DOMAIN_PHRASES (the method before holdout8)")
    ap.add_argument("--multimodal-prior", type=float,
                    help="override zoo.understand.MODALITY_PRIOR['multimodal'] (the base rate of image+text tasks)")
    ap.add_argument("--secondary-modality", type=float,
                    help="override zoo.understand.SECONDARY_MODALITY (a domain's say for its non-main modalities)")
    ap.add_argument("--video-prior", type=float,
                    help="override zoo.understand.MODALITY_PRIOR['video'] (the base rate of video tasks)")
    ap.add_argument("--web-image-text-image-first", action="store_true",
                    help="the domain web-image-text served first by image models (before holdout9)")
    ap.add_argument("--video-handicap", action="store_true",
                    help="video as before video parity: prior 0.5, a domain's second say, served by 4 domains")
    ap.add_argument("--no-joint-split", action="store_true",
                    help="a named image/audio/video dataset's share all goes to its modality (before holdout7)")
    ap.add_argument("--no-video-first", action="store_true",
                    help="video tasks rank image backbones among the video models by score (before video-first)")
    ap.add_argument("--no-task-examples", action="store_true",
                    help="without zoo.understand's labelled task examples (the method before holdout10)")
    ap.add_argument("--leave-out-examples", nargs="+", default=[], metavar="SOURCE",
                    help="leave out the task examples drawn from these sets (e.g. examples-video)")
    ap.add_argument("--example-twins-out", type=float, metavar="COS",
                    help="per query, leave out the task examples within this cosine of it")
    ap.add_argument("--writer-twins", type=float, metavar="COS",
                    help="count the descriptions with a twin above this cosine in another writer's set")
    ap.add_argument("--long-briefs", action="store_true",
                    help="every description after a long background paragraph: how the long text is read")
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    ap.add_argument("--quality-only", action="store_true", help="skip the speed measurements")
    ap.add_argument("--scope", action="store_true", help="the out-of-scope flag on out_of_scope.yaml")
    ap.add_argument("--calibrate", action="store_true",
                    help="fit the power on the modality posterior, leave-one-writer-out")
    ap.add_argument("--writer-cv", action="store_true",
                    help="leave-one-writer-out: does a classifier on the labelled descriptions generalise?")
    args = ap.parse_args()
    from zoo import prototypes, understand

    if args.card_weight is not None:
        understand.CARD_WEIGHT = args.card_weight
    if args.no_quotes:
        understand.modality_text = lambda text: None
    if args.no_dataset_names:
        understand.NAMED_MIX = 0.0
    if args.no_video_first:
        recommender.FALLBACK = {}
    if args.no_holdout6_phrases:
        _drop_phrases(prototypes.MODALITY_PHRASES, prototypes.CROSS_MODAL_PHRASES)
    if args.no_joint_split:
        understand.JOINT_WITH_TEXT = ()
    if args.web_image_text_image_first:
        prototypes.DOMAIN_MODALITIES["web-image-text"] = ("image", "multimodal")
    if args.video_handicap:
        understand.MODALITY_PRIOR["video"], understand.FULL_SAY = 0.5, ()
        for d, serves in prototypes.DOMAIN_MODALITIES.items():
            if d not in VIDEO_DOMAINS_BEFORE_PARITY:
                prototypes.DOMAIN_MODALITIES[d] = tuple(m for m in serves if m != "video")
    if args.multimodal_prior is not None:
        understand.MODALITY_PRIOR["multimodal"] = args.multimodal_prior
    if args.secondary_modality is not None:
        understand.SECONDARY_MODALITY = args.secondary_modality
    if args.video_prior is not None:
        understand.MODALITY_PRIOR["video"] = args.video_prior
    if args.no_lay_phrases:
        _drop_phrases(prototypes.DOMAIN_PHRASES, prototypes.LAY_DOMAIN_PHRASES)
    if args.no_task_examples:
        global TASK_EXAMPLES
        TASK_EXAMPLES = False
    LEFT_OUT.update(args.leave_out_examples)
    if args.example_twins_out is not None:
        _without_twins(args.example_twins_out)
    if args.writer_twins is not None:
        writer_twins(args.writer_twins, args.splits)
        return
    if args.long_briefs:
        long_briefs()
        return
    if args.tune:
        tune()
        return
    if args.writer_cv:
        writer_cv()
        return
    if args.calibrate:
        calibrate()
        return
    if args.scope:
        scope()
        return
    results = {}
    for split in args.splits:
        if not load_tasks(split):
            continue
        r = evaluate(load_tasks(split))
        results[split] = r
        lo, hi = wilson(r["modality_acc"], r["n"])
        print(f"{split}: n={r['n']} modality accuracy {r['modality_acc']:.3f} (95 % CI {lo:.3f}-{hi:.3f}); "
              f"domain precision@5 zoo {r['p5']:.3f} "
              f"(lay {r['p5_lay']:.3f}, jargon {r['p5_jargon']:.3f}); keyword search {r['p5_keyword']:.3f}; "
              f"top-1/popularity prior {r['p5_prior']:.3f}")
        by = Counter(x["modality"] for x in r["rows"])
        if len(by) > 1:
            right = Counter(x["modality"] for x in r["rows"] if x["modality_ok"])
            print("  modality accuracy by true modality: " + ", ".join(f"{m} {right[m]}/{n}" for m, n in by.most_common()))
        misses = [f"{x['id']} (as {x['predicted']})" for x in r["rows"] if not x["modality_ok"]]
        if misses:
            print(f"  modality misses: {', '.join(misses)}")
    if len(results) > 1:
        rows = [x for r in results.values() for x in r["rows"]]
        wrong = Counter((x["modality"], x["predicted"]) for x in rows if not x["modality_ok"])
        print(f"all {len(rows)}: modality accuracy {1 - sum(wrong.values()) / len(rows):.3f}, "
              f"domain precision@5 {statistics.mean(x['p5'] for x in rows):.3f}, "
              f"{sum(wrong.values())} misses (true -> read as): "
              + ", ".join(f"{t} -> {p} {n}" for (t, p), n in wrong.most_common())
              + f"; flagged as not English: {sum(1 for x in rows if x['language'])}")
    if args.quality_only:
        if args.out:
            args.out.write_text(json.dumps(results, indent=2, default=str))
        return
    results["warm_api_median_s"] = warm_api(load_tasks())
    print(f"warm API call (median over {len(load_tasks())} tasks): {results['warm_api_median_s'] * 1000:.1f} ms")
    results.update(cold_cli())
    print(f"cold `zoo recommend` from the shell: {results['cold_cli_s']:.2f} s (median of 5); one fresh process: "
          f"imports numpy+onnxruntime+tokenizers {results['imports_s']:.2f} s, zoo modules {results['zoo_imports_s']:.2f} s, "
          f"registry+vectors+ONNX session {results['load_state_s']:.2f} s, first query {results['first_query_s']:.2f} s")
    if args.scale:
        results["scale"] = [scale(n) for n in args.scale]
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
