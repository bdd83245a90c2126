"""Validate zoo.plan: does the transfer plan pick the strategy that works best at each data budget?

    python benchmarks/bench_plan.py                  # the full run (~25 min on 2 CPU cores), resumable
    python benchmarks/bench_plan.py --quick          # smoke run: 2 pairs, budget 10, a few steps
    python benchmarks/bench_plan.py --report-only    # the tables from the JSON files already written

For each (task, model) pair and data budget (examples per class), the same backbone is trained with
every strategy under the SAME budget of optimizer steps, and the plan that ``zoo.plan`` makes for
that data (``plan_for_sample`` on the budgeted training set written to disk, as a user would give it)
is compared with the best measured strategy.

Protocol (also stored in every JSON file under ``protocol``):

- data: ``benchmarks/datasets.py`` splits (seed 0; digits: fold 0 of its 3-fold CV), train pool = the
  whole train split, test capped at ``TEST_CAP`` (stratified); the budget ``b`` takes ``b`` examples per
  class from the train pool (seeded); a budget is run only when every class has at least
  ``0.8 * b`` examples, a smaller class giving all it has (the actual counts are recorded: animal_mnist
  "1000" is ~950 per class, TREC "100" has 86 ABBR questions);
- images: ``zoo.backbones.image_transform`` (squash resize, no crop) at the model's native size capped at
  64 px (CIFAR ResNet20 32 px, MobileNetV2 64 px, mini-Xception 64 px), the record's mean/std/colour
  mode; texts: the model's tokenizer with max_length 64;
- strategies: ``linear_probe``, ``partial_finetune``, ``full_finetune`` (+ ``lora`` for transformer
  encoders), each with the plan's own settings for that strategy
  (``make_plan(..., strategy=S)``: learning rates, layer-wise decay, blocks to unfreeze, LoRA rank and
  targets) applied by ``zoo.plan.apply_plan`` to a freshly loaded backbone;
- budget: ``steps = clamp(ceil(EPOCHS_EQ * n_train / batch), MIN_STEPS, MAX_STEPS)`` optimizer steps,
  batch ``BATCH`` (images 32, texts 16; the whole set when smaller; images 40-100 steps, texts 30-60),
  AdamW over the plan's parameter groups, cosine decay (with the plan's warm-up), no augmentation, no
  early stopping; the same seed, head init and batch order for every strategy. The linear probe trains its head on features computed once by the frozen
  backbone in eval mode (identical to running the frozen backbone each step, cheaper);
- ``lp_ref`` (diagnostic, not a strategy the plan is scored on): logistic regression on standardized
  frozen features, C from {1e-3, 1e-2, 1e-1, 1} by 3-fold CV -- what a linear probe reaches with no
  step budget;
- score: test accuracy. "Picked best": the plan's strategy has the highest accuracy among the
  strategies run (also reported: within 1 point of it); "cost": best accuracy minus the plan's.

Report: every entry (with the rule that fired), then the policies side by side -- the current rules, the
previous rules (``RULES_BEFORE``), the changes since then fitted held-out, every parameter fitted held-out, the picks
stored when the entries ran, always linear probe / partial / full, the oracle -- with best-picked %, mean cost
and a per-budget breakdown; then each plan policy paired with "always linear probe" over tasks (per-task mean
cost difference, a bootstrap over tasks with ``BOOTSTRAP_RESAMPLES`` seeded resamples, an exact sign-flip test).

Leave-one-task-out: the rules' parameters (``LOTO_GRID``; ``zoo.plan_rules.build_rules``: linear probe below
``lp_below`` per class, full fine-tune from ``full_from``, LoRA for transformers in between or not, full
fine-tune on a far domain from ``far_full_from``, near-domain text on a probe below ``near_text_probe_below``,
far images below ``lp_below`` on a partial fine-tune from shift ``tiny_partial_shift``) and the linear probe's
head lr (``LP_LR_GRID``) are fitted on all tasks but one (best mean accuracy of the picked strategies; ties:
nearest the base rules) and scored on the held-out task, all parameters jointly and one at a time. A change is
supported when, one at a time, it lowers the mean held-out cost and is worse on fewer than half the held-out
tasks, and leave-one-model-out (the same fit, a backbone held out) finds no held-out model worse.

Results: one JSON per (task, model, budget, seed) in ``--out`` (default ``benchmarks/plan_results/``,
``--quick``: ``<out>/quick``), rewritten after every strategy; a rerun skips what is there (an entry
written under another protocol is refused: use another ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import functools
import itertools
import json
import math
import os
import platform
import statistics
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
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks import datasets as bds  # noqa: E402

MANIFEST = ROOT / "zoo" / "manifests" / "offline.yaml"
DEFAULT_OUT = ROOT / "benchmarks" / "plan_results"

# ---- the protocol (recorded in every file) ----
PAIRS: tuple[tuple[str, str], ...] = (
    ("mnist5k", "local:cifar_resnet20.c10"),
    ("mnist5k", "local:mobilenet_v2.tv_in1k"),
    ("animal_mnist", "local:cifar_resnet20.c10"),
    ("animal_mnist", "local:mini_xception.fer2013"),
    ("digits", "local:mini_xception.fer2013"),
    ("digits", "local:mobilenet_v2.tv_in1k"),
    ("mr", "local:all-MiniLM-L6-v2"),
    ("sst2", "local:all-MiniLM-L6-v2"),
    ("subj", "local:all-MiniLM-L6-v2"),
    ("trec", "local:all-MiniLM-L6-v2"),
)
BUDGETS = (10, 100, 1000)
BUDGET_SLACK = 0.8  # a budget runs when every class has at least this fraction of it (TREC ABBR: 86 for 100)
TEST_CAP = 500
IMAGE_SIZE_CAP = 64
TEXT_MAX_LENGTH = 64
# Step budgets per modality: a MiniLM step costs ~20x a CIFAR-ResNet step on CPU, so texts get smaller
# batches and fewer steps to keep the whole run near 25 minutes on 2 cores.
BATCH = {"image": 32, "text": 16}
EPOCHS_EQ = 5
MIN_STEPS = {"image": 40, "text": 30}
MAX_STEPS = {"image": 100, "text": 60}
EVAL_BATCH = 128
LP_REF_C = (1e-3, 1e-2, 1e-1, 1.0)
LP_LR_GRID = (1e-3, 3e-3, 1e-2)  # linear-probe head lrs (cheap: cached features), for the leave-one-task-out fit
QUICK = {"pairs": (("digits", "local:cifar_resnet20.c10"), ("trec", "local:all-MiniLM-L6-v2")),
         "budgets": (10,), "min_steps": {"image": 3, "text": 3}, "max_steps": {"image": 3, "text": 3}, "test_cap": 60}
# Leave-one-task-out grid (zoo.plan_rules.build_rules parameters + the probe's head lr); the data-budget
# thresholds sit between the budgets run (10, 100, 1000), so these values cover every distinct policy; the shift
# thresholds sit between the shifts measured at 10 per class (0.20, 0.27, 0.31, 0.40, 0.58, 0.59). None = rule off.
LOTO_GRID: dict[str, tuple] = {
    "lp_below": (5, 20, 50, 500, 5000),  # linear probe below this many per class
    "full_from": (5, 50, 500, 5000),  # full fine-tune from this many per class
    "transformer_lora": (True, False),  # transformers with a medium budget: LoRA, or partial fine-tune
    "far_full_from": (100, 10**9),  # far domain: full fine-tune from this many per class (10**9 = rule off)
    "near_text_probe_below": (None, 500, 2000),  # near-domain text (shift < 0.2): linear probe below this
    "tiny_partial_shift": (None, 0.3, 0.4, 0.5),  # fewer than lp_below per class, shift >= this: partial
    "lp_lr": (1e-3, 3e-3, 1e-2),  # the linear probe's head lr (its lr grid in every entry)
}
# Ties in a fit go to the candidate nearest the base rules (sum of |log ratio| per parameter); an "off" (None)
# sits at the end of its scale where the rule fires least: a probe threshold of 1 per class, a shift of 1.
_OFF_AT = {"near_text_probe_below": 1, "tiny_partial_shift": 1.0}
# The rules of the previous write-up (BENCHMARKS.md), printed as "previous rules" next to the current ones.
RULES_BEFORE: dict[str, Any] = {"lp_below": 20, "full_from": 500, "transformer_lora": True, "far_full_from": 100,
                                "near_text_probe_below": None, "tiny_partial_shift": None}
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@functools.cache
def _records() -> dict[str, Any]:
    from zoo.sources.manifest import iter_records

    return {r.id: r for r in iter_records(MANIFEST)}


def protocol(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "split": "benchmarks/datasets.py load(task, seed=0, max_train=all, max_test=TEST_CAP); digits fold 0",
        "test_cap": cfg["test_cap"], "budget_slack": BUDGET_SLACK, "image_size_cap": IMAGE_SIZE_CAP,
        "text_max_length": TEXT_MAX_LENGTH, "batch": BATCH, "epochs_eq": EPOCHS_EQ,
        "min_steps": cfg["min_steps"], "max_steps": cfg["max_steps"],
        "optimizer": "AdamW over zoo.plan.apply_plan param groups, cosine decay with the plan's warm-up",
        "augmentation": "none", "early_stopping": "none (fixed steps)",
        "strategies": "make_plan(record, ..., strategy=S) settings; linear probe on cached frozen features",
        "lp_ref": f"StandardScaler + LogisticRegression(lbfgs), C in {list(LP_REF_C)} by 3-fold CV",
        "quick": cfg["quick"],
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "transformers", "sentence-transformers", "peft", "numpy", "scikit-learn"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


# ----------------------------------------------------------------------------------- data


def _task_data(task: str, cfg: dict[str, Any]) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    trx, try_, tex, tey = bds.load(task, 0, max_train=10**6, max_test=cfg["test_cap"], fold=0)
    return trx, np.asarray(try_), tex, np.asarray(tey)


def _budget_rows(y: np.ndarray, budget: int, seed: int, task: str) -> np.ndarray | None:
    """``budget`` rows per class (seeded), or None when a class has fewer than BUDGET_SLACK * budget."""
    counts = np.bincount(y)
    if counts.min() < BUDGET_SLACK * budget:
        return None
    rng = np.random.default_rng([seed, budget, *task.encode()])
    rows = [rng.permutation(np.flatnonzero(y == c))[:budget] for c in range(len(counts))]
    return np.sort(np.concatenate(rows))


def _write_sample(task: str, x: Any, y: np.ndarray, folder: Path) -> Path:
    """The budgeted training set as a user would hand it to zoo: an image folder or a CSV."""
    import csv

    from PIL import Image

    if bds.modality(task) == "image":
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = folder / f"c{int(label):02d}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(img, dtype=np.uint8), mode="L").save(d / f"{i:05d}.png")
        return folder
    path = folder / "train.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, f"c{int(label):02d}") for t, label in zip(x, y, strict=True))
    return path


# ----------------------------------------------------------------------------------- training


def _steps(n_train: int, modality: str, cfg: dict[str, Any]) -> int:
    bs = min(BATCH[modality], n_train)
    return int(min(cfg["max_steps"][modality], max(cfg["min_steps"][modality], math.ceil(EPOCHS_EQ * n_train / bs))))


def _batches(n: int, steps: int, seed: int, batch: int) -> list[np.ndarray]:
    """The batch order shared by every strategy: reshuffled permutations, cut into batches."""
    bs = min(batch, n)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < steps:
        perm = rng.permutation(n)
        out.extend(perm[i:i + bs] for i in range(0, n - bs + 1, bs))
    return out[:steps]


def _scheduler(opt: Any, steps: int, warmup_ratio: float) -> Any:
    import torch

    warm = int(round(warmup_ratio * steps))

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _Inputs:
    """Model inputs for one (task, model): image tensors preprocessed once, or raw texts tokenized per batch."""

    def __init__(self, task: str, record: Any, x: Any):
        self.text = bds.modality(task) == "text"
        self.x = x
        if not self.text:
            import torch

            from zoo.backbones import image_transform

            c, h, w = (int(v) for v in (record.input_size or [3, 224, 224]))
            size = [c, min(h, IMAGE_SIZE_CAP), min(w, IMAGE_SIZE_CAP)]
            tfm = image_transform(size, record.mean or [0.5], record.std or [0.5], record.interpolation or "bilinear",
                                  None, squash=True)
            self.x = torch.stack([tfm(img) for img in x])

    def forward(self, lb: Any, model: Any, rows: np.ndarray) -> Any:
        if self.text:
            batch = lb.preprocess([self.x[i] for i in rows])
            batch = {k: v.to(lb.device) if hasattr(v, "to") else v for k, v in batch.items()}
            return model(batch)["sentence_embedding"] if isinstance(model, _st_type()) else model(**batch)
        return model(self.x[rows])


def _st_type() -> type:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer


def _load(record: Any) -> Any:
    from zoo.backbones import load_backbone

    lb = load_backbone(record, device="cpu")
    if hasattr(lb.model, "max_seq_length"):
        lb.model.max_seq_length = TEXT_MAX_LENGTH
    return lb


def _accuracy(pred_fn: Any, n: int, y: np.ndarray) -> float:
    correct = 0
    for i in range(0, n, EVAL_BATCH):
        rows = np.arange(i, min(n, i + EVAL_BATCH))
        correct += int((pred_fn(rows).argmax(1).cpu().numpy() == y[rows]).sum())
    return correct / max(1, n)


def run_finetune(record: Any, plan: Any, k: int, tr: _Inputs, ytr: np.ndarray, te: _Inputs, yte: np.ndarray,
                 steps: int, seed: int) -> dict[str, Any]:
    import torch

    from zoo.plan import apply_plan

    torch.manual_seed(seed)
    lb = _load(record)
    pm = apply_plan(lb, plan, k)
    opt = pm.optimizer()
    sched = _scheduler(opt, steps, pm.plan.warmup_ratio)
    yt = torch.as_tensor(ytr, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss()
    pm.train()
    t0 = time.perf_counter()
    losses = []
    for rows in _batches(len(ytr), steps, seed, BATCH["text" if tr.text else "image"]):
        logits = pm.head(tr.forward(lb, pm.model, rows))
        loss = loss_fn(logits, yt[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    pm.eval()
    with torch.inference_mode():
        acc = _accuracy(lambda rows: pm.head(te.forward(lb, pm.model, rows)), len(yte), yte)
    return {"accuracy": acc, "train_seconds": round(train_s, 2), "final_loss": float(np.mean(losses[-5:])),
            "trainable_params": pm.trainable_params, "frozen_params": pm.frozen_params,
            "blocks_unfrozen": pm.plan.blocks_to_unfreeze, "n_blocks": pm.plan.n_blocks,
            "lr_head": pm.plan.lr_head, "lr_backbone": pm.plan.lr_backbone, "layer_decay": pm.plan.layer_decay,
            "lora": pm.plan.lora, "note": pm.note}


def _features(lb: Any, inputs: _Inputs, n: int) -> Any:
    import torch

    lb.model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, n, EVAL_BATCH):
            outs.append(inputs.forward(lb, lb.model, np.arange(i, min(n, i + EVAL_BATCH))).float())
    return torch.cat(outs)


def run_linear_probe(record: Any, plan: Any, k: int, tr: _Inputs, ytr: np.ndarray, te: _Inputs, yte: np.ndarray,
                     steps: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plan's linear probe under the step budget, and the lp_ref diagnostic, from one feature pass."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from zoo.plan import apply_plan

    torch.manual_seed(seed)
    lb = _load(record)
    pm = apply_plan(lb, plan, k)
    t0 = time.perf_counter()
    ftr, fte = _features(lb, tr, len(ytr)), _features(lb, te, len(yte))
    feat_s = time.perf_counter() - t0
    yt = torch.as_tensor(ytr, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss()
    init = {k: v.clone() for k, v in pm.head.state_dict().items()}
    grid: dict[str, float] = {}
    t0 = time.perf_counter()
    # The plan's head lr first (the result the plan is scored on), then the other grid values from the
    # same head init and batch order: the leave-one-task-out fit may choose the probe's lr too.
    for lr in dict.fromkeys((pm.plan.lr_head, *LP_LR_GRID)):
        pm.head.load_state_dict(init)
        for g in pm.param_groups:
            g["lr"] = lr
        opt = pm.optimizer()
        sched = _scheduler(opt, steps, pm.plan.warmup_ratio)
        pm.head.train()
        for rows in _batches(len(ytr), steps, seed, BATCH["text" if tr.text else "image"]):
            loss = loss_fn(pm.head(ftr[rows]), yt[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        pm.head.eval()
        with torch.inference_mode():
            grid[f"{lr:g}"] = float((pm.head(fte).argmax(1).numpy() == yte).mean())
    acc = grid[f"{pm.plan.lr_head:g}"]
    lp = {"accuracy": acc, "train_seconds": round(time.perf_counter() - t0, 2), "feature_seconds": round(feat_s, 2),
          "trainable_params": pm.trainable_params, "frozen_params": pm.frozen_params, "lr_head": pm.plan.lr_head,
          "lr_grid": grid}
    n_splits = max(2, min(3, int(np.bincount(ytr).min())))
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                          {"logisticregression__C": list(LP_REF_C)}, cv=StratifiedKFold(n_splits, shuffle=True,
                                                                                         random_state=seed))
    search.fit(ftr.numpy(), ytr)
    ref = {"accuracy": float((search.predict(fte.numpy()) == yte).mean()),
           "C": float(search.best_params_["logisticregression__C"])}
    return lp, ref


# ----------------------------------------------------------------------------------- entries


def _slug(model_id: str) -> str:
    return model_id.replace(":", "_").replace("/", "_")


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def strategies_for(record: Any) -> list[str]:
    from zoo.plan import is_finetunable, is_transformer

    if not is_finetunable(record)[0]:
        return ["linear_probe"]
    out = ["linear_probe", "partial_finetune", "full_finetune"]
    return [*out, "lora"] if is_transformer(record) else out


def run_entry(task: str, record: Any, budget: int, seed: int, cfg: dict[str, Any], data: tuple, path: Path,
              measure_shift: bool) -> dict[str, Any] | None:
    from zoo.data import load_sample
    from zoo.plan import make_plan, plan_for_sample

    trx, try_, tex, tey = data
    rows = _budget_rows(try_, budget, seed, task)
    if rows is None:
        return None
    proto = protocol(cfg)
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("protocol") != proto:
            raise SystemExit(f"{path} was written under another protocol; use another --out.")
    else:
        doc = {"task": task, "model": record.id, "budget": budget, "seed": seed, "protocol": proto,
               "versions": _versions(), "results": {}}
    xtr = trx[rows] if isinstance(trx, np.ndarray) else [trx[i] for i in rows]
    ytr = try_[rows]
    k = int(max(try_.max(), tey.max()) + 1)
    doc.update(n_train=len(ytr), per_class=np.bincount(ytr, minlength=k).tolist(), n_test=len(tey),
               n_classes=k, steps=_steps(len(ytr), bds.modality(task), cfg))
    if "plan" not in doc:  # the plan a user would get for this training set (written to disk, loaded by zoo)
        with tempfile.TemporaryDirectory(prefix="zoo-bench-plan-") as tmp:
            sample = load_sample(_write_sample(task, xtr, ytr, Path(tmp) / "data"))
            plan = plan_for_sample(record, sample, device="cpu", measure_shift=measure_shift)
        doc["plan"] = {"strategy": plan.strategy, "rules_fired": plan.rules_fired, "signals": {
            k2: v for k2, v in plan.signals.items() if k2 != "data"}, "why": plan.why, "notes": plan.notes}
        _save(path, doc)
    tr, te = _Inputs(task, record, xtr), _Inputs(task, record, tex)
    steps = doc["steps"]
    signals = doc["plan"]["signals"]
    for strategy in strategies_for(record):
        if strategy in doc["results"]:
            continue
        plan = make_plan(record, samples_per_class=dict(enumerate(doc["per_class"])), n_classes=k,
                         shift=signals.get("shift"), strategy=strategy)
        t0 = time.perf_counter()
        if strategy == "linear_probe":
            res, ref = run_linear_probe(record, plan, k, tr, ytr, te, tey, steps, seed)
            doc["lp_ref"] = ref
        else:
            res = run_finetune(record, plan, k, tr, ytr, te, tey, steps, seed)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        doc["results"][strategy] = res
        doc["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        _save(path, doc)
        print(f"    {strategy:17s} acc {res['accuracy']:.4f}  ({res['seconds']:.1f}s, "
              f"{res['trainable_params']:,} trainable)", flush=True)
    return doc


# ----------------------------------------------------------------------------------- report


def load_entries(out: Path) -> list[dict[str, Any]]:
    docs = []
    for p in sorted(out.glob("*/*.json")):
        with contextlib.suppress(ValueError, OSError):
            d = json.loads(p.read_text(encoding="utf-8"))
            if d.get("results") and "plan" in d and len(d["results"]) == len(strategies_for(_records()[d["model"]])):
                docs.append(d)
    return docs


def _policy_pick(doc: dict[str, Any], rules: Any) -> str:
    from zoo.plan import make_plan

    rec = _records()[doc["model"]]
    sig = doc["plan"]["signals"]
    return make_plan(rec, samples_per_class=dict(enumerate(doc["per_class"])), n_classes=doc["n_classes"],
                     shift=sig.get("shift"), rules=rules).strategy


def _acc(doc: dict[str, Any], strategy: str, lp_lr: float | None = None) -> float:
    """Accuracy of ``strategy`` in an entry; the linear probe at ``lp_lr`` when given (its lr grid)."""
    res = doc["results"].get(strategy, doc["results"]["linear_probe"])
    if strategy == "linear_probe" and lp_lr is not None:
        return float(res["lr_grid"][f"{lp_lr:g}"])
    return float(res["accuracy"])


def score(docs: list[dict[str, Any]], picks: list[str], lp_lr: float | None = None) -> dict[str, float]:
    """How often ``picks`` hit the best strategy of each entry, its accuracy cost, mean accuracy (the linear probe
    at ``lp_lr`` when given, in the pick and in the best alike)."""
    best = within = 0
    costs, accs = [], []
    for d, pick in zip(docs, picks, strict=True):
        top = max(_acc(d, s, lp_lr) for s in d["results"])
        got = _acc(d, pick, lp_lr)
        best += got >= top
        within += got >= top - 0.01
        costs.append(max(0.0, top - got))
        accs.append(got)
    n = max(1, len(docs))
    return {"n": len(docs), "picked_best": best / n, "within_1pt": within / n,
            "mean_cost": float(np.mean(costs)) if costs else 0.0, "max_cost": float(max(costs)) if costs else 0.0,
            "mean_acc": float(np.mean(accs)) if accs else 0.0}


def _current_lp_lr() -> float:
    """The head lr the shipped rules give a linear probe (the run may have used another; each entry's
    probe lr grid holds it)."""
    from zoo.plan import make_plan

    return make_plan(_records()["local:cifar_resnet20.c10"], samples_per_class=10, n_classes=2,
                     strategy="linear_probe").lr_head


def rule_params(PR: Any) -> dict[str, Any]:
    """The parameters of the shipped rules (``zoo.plan_rules``), in ``LOTO_GRID``'s terms (without ``lp_lr``)."""
    return {"lp_below": PR.LP_BELOW, "full_from": PR.FULL_FROM, "transformer_lora": True,
            "far_full_from": PR.FAR_SHIFT_FULL_FROM, "near_text_probe_below": PR.NEAR_TEXT_PROBE_BELOW,
            "tiny_partial_shift": PR.TINY_PARTIAL_SHIFT}


def rules_for(PR: Any, t: dict[str, Any]) -> Any:
    return PR.build_rules(t["lp_below"], t["full_from"], transformer_lora=t["transformer_lora"],
                          far_shift_full_from=t["far_full_from"], near_text_probe_below=t["near_text_probe_below"],
                          tiny_partial_shift=t["tiny_partial_shift"])


class _Policies:
    """Per-entry picks, accuracies and costs of rule-parameter sets (cached), for the report and the fits."""

    def __init__(self, docs: list[dict[str, Any]], PR: Any, lp_lr: float | None):
        self.docs, self.PR, self.lp_lr = docs, PR, lp_lr
        self.n = len(docs)
        self.task = np.array([d["task"] for d in docs])
        self.model = np.array([d["model"] for d in docs])
        self.budget = np.array([d["budget"] for d in docs])
        self._picks: dict[tuple, list[str]] = {}
        self._acc: dict[tuple, np.ndarray] = {}
        self._table: dict[Any, dict[str, np.ndarray]] = {}

    def table(self, lp_lr: float | None) -> dict[str, np.ndarray]:
        """Accuracy per strategy per entry (the linear probe at ``lp_lr``; a strategy not run = the probe)."""
        if lp_lr not in self._table:
            strats = ("linear_probe", "partial_finetune", "full_finetune", "lora")
            tab = {st: np.array([_acc(d, st, lp_lr) for d in self.docs]) for st in strats}
            tab["_top"] = np.array([max(_acc(d, st, lp_lr) for st in d["results"]) for d in self.docs])
            self._table[lp_lr] = tab
        return self._table[lp_lr]

    def picks(self, t: dict[str, Any]) -> list[str]:
        key = tuple(t[k] for k in RULES_BEFORE)
        if key not in self._picks:
            rules = rules_for(self.PR, t)
            self._picks[key] = [_policy_pick(d, rules) for d in self.docs]
        return self._picks[key]

    def acc(self, t: dict[str, Any]) -> np.ndarray:
        lr = t.get("lp_lr", self.lp_lr)
        key = (*(t[k] for k in RULES_BEFORE), lr)
        if key not in self._acc:
            tab = self.table(lr)
            self._acc[key] = np.array([tab[p][i] for i, p in enumerate(self.picks(t))])
        return self._acc[key]

    def fixed(self, strategy: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        tab = self.table(self.lp_lr)
        return [strategy] * self.n, tab[strategy], tab["_top"] - tab[strategy]

    def of(self, t: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
        a = self.acc(t)
        return self.picks(t), a, self.table(t.get("lp_lr", self.lp_lr))["_top"] - a


def _distance(t: dict[str, Any], base: dict[str, Any]) -> float:
    out = 0.0
    for k, v in base.items():
        a, b = t[k], v
        if isinstance(a, bool) or isinstance(b, bool):
            out += float(a != b)
            continue
        a, b = _OFF_AT.get(k, 1) if a is None else a, _OFF_AT.get(k, 1) if b is None else b
        out += abs(math.log(a / b))
    return out


def _fit(pol: _Policies, cands: list[dict[str, Any]], mask: np.ndarray, base: dict[str, Any]) -> dict[str, Any]:
    """The candidate with the highest mean accuracy of its picks over the ``mask`` entries (ties: nearest ``base``)."""
    return max(cands, key=lambda t: (round(float(pol.acc(t)[mask].mean()), 6), -_distance(t, base)))


def _summary(pol: _Policies, picks: list[str], acc: np.ndarray, cost: np.ndarray) -> dict[str, Any]:
    best = cost <= 1e-9
    out: dict[str, Any] = {"n": int(pol.n), "picked_best": float(best.mean()), "within_1pt": float((cost <= 0.01 + 1e-9).mean()),
                           "mean_cost": float(cost.mean()), "max_cost": float(cost.max()), "mean_acc": float(acc.mean()),
                           "by_budget": {}}
    for b in sorted(set(pol.budget.tolist())):
        m = pol.budget == b
        out["by_budget"][int(b)] = {"n": int(m.sum()), "picked_best": float(best[m].mean()),
                                    "mean_cost": float(cost[m].mean())}
    tasks = sorted(set(pol.task.tolist()))
    out["task_mean_cost"] = {t: float(cost[pol.task == t].mean()) for t in tasks}
    return out


def _paired_vs(pol: _Policies, cost: np.ndarray, ref_cost: np.ndarray) -> dict[str, Any]:
    """Per-task mean cost difference (policy - reference; negative = the policy loses less), the mean over tasks
    with a bootstrap over tasks (``BOOTSTRAP_RESAMPLES``, seeded) and an exact sign-flip test over tasks."""
    tasks = sorted(set(pol.task.tolist()))
    diff = np.array([float(cost[pol.task == t].mean() - ref_cost[pol.task == t].mean()) for t in tasks])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boot = diff[rng.integers(0, len(diff), size=(BOOTSTRAP_RESAMPLES, len(diff)))].mean(axis=1)
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(diff))))
    null = (flips * diff).mean(axis=1)
    p_two = float((np.abs(null) >= abs(diff.mean()) - 1e-12).mean())
    return {"tasks": tasks, "diff": diff.tolist(), "mean": float(diff.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "p_boot_policy_better": float((boot < 0).mean()), "p_boot_policy_worse": float((boot > 0).mean()),
            "sign_flip_p": p_two, "better": int((diff < -1e-9).sum()), "worse": int((diff > 1e-9).sum()),
            "entries_mean": float(cost.mean() - ref_cost.mean())}


def report(out: Path, loto: bool = True) -> dict[str, Any]:
    from zoo import plan_rules as PR

    docs = load_entries(out)
    if not docs:
        print(f"no complete entries in {out}")
        return {}
    docs.sort(key=lambda d: (d["task"], d["model"], d["budget"], d["seed"]))
    lp_lr = _current_lp_lr()
    if not all(f"{lp_lr:g}" in d["results"]["linear_probe"].get("lr_grid", {}) for d in docs):
        lp_lr = None  # an entry lacks the probe at the current lr: show the probe as run
    pol = _Policies(docs, PR, lp_lr)
    current = {**rule_params(PR), "lp_lr": lp_lr}
    print(f"\n{len(docs)} entries from {out}; LP = linear probe at the current rules' head lr "
          f"({'as run' if lp_lr is None else f'{lp_lr:g}'}); plan = the current rules' pick from each entry's "
          "signals (as run: the pick stored when the entry ran)\n")
    head = (f"{'task':13s} {'model':24s} {'b/cls':>5s} {'shift':>5s} {'LP':>6s} {'partial':>7s} {'full':>6s} "
            f"{'LoRA':>6s} {'lp_ref':>6s}  {'best':16s} {'plan':16s} {'cost':>6s}  rule")
    print(head)
    print("-" * len(head))
    picks, _, _ = pol.of(current)
    rules_now = PR.RULES
    for d, pick in zip(docs, picks, strict=True):
        acc = {st: _acc(d, st, lp_lr) for st in d["results"]}
        best = max(acc, key=acc.get)
        cost = acc[best] - acc.get(pick, acc["linear_probe"])

        def f(st: str, a: dict = acc) -> str:
            return f"{a[st]:.3f}" if st in a else "-"

        shift = d["plan"]["signals"].get("shift")
        rule = _policy_rule(d, rules_now)
        print(f"{d['task']:13s} {d['model'].removeprefix('local:')[:24]:24s} {int(np.median(d['per_class'])):>5d} "
              f"{'-' if shift is None else f'{shift:.2f}':>5s} "
              f"{f('linear_probe'):>6s} {f('partial_finetune'):>7s} {f('full_finetune'):>6s} {f('lora'):>6s} "
              f"{d.get('lp_ref', {}).get('accuracy', float('nan')):6.3f}  {best:16s} {pick:16s} {cost:+6.3f}  {rule}")

    # ---- the policies side by side
    rows: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {"zoo plan, current rules": pol.of(current)}
    before = {**RULES_BEFORE, "lp_lr": lp_lr}
    if before != current:
        rows["zoo plan, previous rules (before this change)"] = pol.of(before)
    loto_res = leave_one_task_out(pol, current, quiet=True) if loto else None
    changed = [k for k in RULES_BEFORE if before[k] != current[k]]
    if loto and changed:
        # The honest score of the changes: the changed parameters fitted on the other tasks (the rest as before).
        cands = [{**before, **dict(zip(changed, vals, strict=True))}
                 for vals in itertools.product(*(dict.fromkeys((*LOTO_GRID[k], current[k])) for k in changed))]
        cands = [t for t in cands if t["full_from"] >= t["lp_below"]]
        rows["zoo plan, the changes fitted held-out (LOTO)"] = _held_out(pol, cands, before)["policy"]
    if loto_res is not None:
        rows["zoo plan, all parameters LOTO-fitted (held-out)"] = loto_res["policy"]
    ran_picks = [d["plan"]["strategy"] for d in docs]
    ran_acc = np.array([_acc(d, p) for d, p in zip(docs, ran_picks, strict=True)])
    ran_top = np.array([max(_acc(d, st) for st in d["results"]) for d in docs])
    rows["zoo plan, as run (rules + probe lr of the run)"] = (ran_picks, ran_acc, ran_top - ran_acc)
    for strat in ("linear_probe", "partial_finetune", "full_finetune"):
        rows[f"always {strat}"] = pol.fixed(strat)
    top = pol.table(lp_lr)["_top"]
    rows["oracle (best per entry)"] = (["oracle"] * pol.n, top, np.zeros(pol.n))
    summ = {name: _summary(pol, *r) for name, r in rows.items()}
    budgets = sorted(set(pol.budget.tolist()))
    bh = "".join(f"  b={b:<4d} best cost" for b in budgets)
    print(f"\n{'policy':48s} {'best':>5s} {'<=1pt':>5s} {'cost':>5s} {'max':>5s} {'acc':>6s}{bh}")
    for name, sm in summ.items():
        bb = "".join(f"  {sm['by_budget'][b]['picked_best']:>10.0%} {sm['by_budget'][b]['mean_cost'] * 100:4.1f}"
                     for b in budgets)
        print(f"{name:48s} {sm['picked_best']:>5.0%} {sm['within_1pt']:>5.0%} {sm['mean_cost'] * 100:5.2f} "
              f"{sm['max_cost'] * 100:5.1f} {sm['mean_acc']:6.4f}{bb}")
    print("  (best = picked the most accurate strategy; cost = accuracy points lost to the best strategy, mean "
          "over entries; per budget: best %, mean cost)")
    for b in budgets:
        m = pol.budget == b
        wins: dict[str, int] = {}
        for i in np.flatnonzero(m):
            w = max(docs[i]["results"], key=lambda st, d=docs[i]: _acc(d, st, lp_lr))
            wins[w] = wins.get(w, 0) + 1
        print(f"  budget {b:>4d}/class: winners {wins}")

    # ---- paired comparison over tasks: the plan vs always linear probe
    lp_cost = pol.fixed("linear_probe")[2]
    paired = {}
    print(f"\npaired over tasks: per-task mean cost of the policy minus always-linear-probe's (points; negative = "
          f"the policy loses less); bootstrap over tasks ({BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}), "
          "exact sign-flip test over tasks")
    tasks = sorted(set(pol.task.tolist()))
    print(f"  {'policy':36s} " + " ".join(f"{t[:8]:>8s}" for t in tasks) +
          f" {'mean':>6s} {'95% CI':>15s} {'P(better)':>9s} {'sign-flip p':>11s}")
    for name in [n for n in rows if n.startswith("zoo plan") and "as run" not in n]:
        pr = _paired_vs(pol, rows[name][2], lp_cost)
        paired[name] = pr
        print(f"  {name[10:]:36s} " + " ".join(f"{x * 100:+8.2f}" for x in pr["diff"]) +
              f" {pr['mean'] * 100:+6.2f} [{pr['ci95'][0] * 100:+6.2f},{pr['ci95'][1] * 100:+6.2f}] "
              f"{pr['p_boot_policy_better']:>9.3f} {pr['sign_flip_p']:>11.3f}")
    frozen = _frozen_check(sorted({d["task"] for d in docs if bds.modality(d["task"]) == "text"}))
    summary = {"entries": len(docs), "lp_lr": lp_lr, "rules": {k: v for k, v in current.items()},
               "policies": summ, "paired_vs_linear_probe": paired, "frozen_encoders": frozen}
    if loto_res is not None:
        summary["loto"] = leave_one_task_out(pol, current)
        summary["loto"].pop("policy", None)
        if before != current:
            print("\nevidence for the changes since the previous rules: the same one-at-a-time fits, "
                  "against those rules")
            summary["loto_vs_before"] = _evidence(pol, before)
    return summary


def _policy_rule(doc: dict[str, Any], rules: Any) -> str:
    from zoo.plan import make_plan

    rec = _records()[doc["model"]]
    sig = doc["plan"]["signals"]
    p = make_plan(rec, samples_per_class=dict(enumerate(doc["per_class"])), n_classes=doc["n_classes"],
                  shift=sig.get("shift"), rules=rules)
    return p.rules_fired[0] if p.rules_fired else "-"


def _frozen_check(text_tasks: list[str]) -> dict[str, str]:
    """Encoders zoo cannot fine-tune (ONNX, averaged GloVe) must get a linear probe that says why, at any budget."""
    from zoo.plan import is_finetunable, make_plan

    out: dict[str, str] = {}
    for rid, rec in _records().items():
        if rec.modality != "text" or is_finetunable(rec)[0]:
            continue
        plans = [make_plan(rec, samples_per_class=b, n_classes=2) for b in BUDGETS]
        ok = all(p.strategy == "linear_probe" and p.rules_fired[0] == "frozen-encoder" for p in plans)
        out[rid] = "linear_probe at every budget" if ok else "WRONG: " + ", ".join(p.strategy for p in plans)
        print(f"  frozen encoder {rid}: {out[rid]} ({plans[0].notes[0] if plans[0].notes else ''})")
    return out


def _grid(base: dict[str, Any]) -> list[dict[str, Any]]:
    names = list(LOTO_GRID)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*LOTO_GRID.values())]
    grid = [t for t in grid if t["full_from"] >= t["lp_below"]]
    if base not in grid:
        grid.append(dict(base))
    return grid


def _one_at_a_time(pol: _Policies, base: dict[str, Any], group: str = "task") -> dict[str, Any]:
    """Each parameter fitted alone (the others at ``base``) on all groups but one, scored on the held-out group.

    ``group``: ``task`` (leave-one-task-out, the evidence the rules need) or ``model`` (leave-one-model-out, a
    check that a change does not rest on one backbone). Passes = lower mean held-out cost than ``base`` (mean
    over groups) and no worse on most held-out groups.
    """
    keys = pol.task if group == "task" else pol.model
    groups = sorted(set(keys.tolist()))
    print(f"\n  one parameter at a time, leave-one-{group}-out (others at "
          f"{'the current rules' if base == {**rule_params(pol.PR), 'lp_lr': pol.lp_lr} else 'the previous rules'}): "
          f"value fitted per held-out {group}; mean held-out cost fitted vs base (points, mean over {group}s); "
          f"held-out {group}s better/worse")
    out = {}
    for name in LOTO_GRID:
        options = [{**base, name: v} for v in dict.fromkeys((*LOTO_GRID[name], base[name]))]
        options = [t for t in options if t["full_from"] >= t["lp_below"]]
        fits, pairs = [], []
        for g in groups:
            held = keys == g
            fit = _fit(pol, options, ~held, base)
            fits.append(fit[name])
            pairs.append((float(pol.of(fit)[2][held].mean()), float(pol.of(base)[2][held].mean())))
        fc, bc = statistics.mean(a for a, _ in pairs), statistics.mean(b for _, b in pairs)
        better = sum(a < b - 1e-9 for a, b in pairs)
        worse = sum(a > b + 1e-9 for a, b in pairs)
        passes = fc < bc - 1e-9 and (len(groups) - worse) > len(groups) / 2
        verdict = ("passes" if passes else "no") if group == "task" else (
            "contradicted" if worse else "supported" if better else "untested (no change)")
        out[name] = {"fitted": fits, "fitted_mean_cost": fc, "base_mean_cost": bc, "better": better, "worse": worse,
                     "of": len(groups), "passes": passes, "verdict": verdict,
                     "diff": {g: a - b for g, (a, b) in zip(groups, pairs, strict=True)}}
        shown = ", ".join("off" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in fits)
        moved = " ".join(f"{g.removeprefix('local:')[:12]} {(a - b) * 100:+.1f}"
                         for g, (a, b) in zip(groups, pairs, strict=True) if abs(a - b) > 1e-9)
        print(f"  {name:22s} [{shown}]  {fc * 100:5.2f} vs {bc * 100:5.2f}  better {better}, worse {worse} of "
              f"{len(groups)}  -> {verdict}{'  (' + moved + ')' if moved else ''}")
    return out


def _evidence(pol: _Policies, base: dict[str, Any]) -> dict[str, Any]:
    """One parameter at a time against ``base``: leave-one-task-out (the criterion) and leave-one-model-out (the
    check); a change is supported when it passes the first and the second does not contradict it."""
    by_task, by_model = _one_at_a_time(pol, base, "task"), _one_at_a_time(pol, base, "model")
    supported = {}
    for name, r in by_task.items():
        if r["passes"] and by_model[name]["verdict"] != "contradicted":
            vals = [v for v in r["fitted"] if v != base[name]]
            supported[name] = max(set(vals), key=vals.count)  # the value most folds fitted
    rejected = [n for n, r in by_task.items() if r["passes"] and n not in supported]
    print("  supported (passes leave-one-task-out, not contradicted leave-one-model-out; the value most folds "
          f"fitted): {supported or 'none'}" + (f"; passes leave-one-task-out but contradicted leave-one-model-out: "
                                               f"{rejected}" if rejected else ""))
    return {"task": by_task, "model": by_model, "supported": supported, "rejected_by_model": rejected}


def _held_out(pol: _Policies, cands: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """Each task's entries picked by the candidate fitted on the other tasks (ties: nearest ``base``), and
    ``base`` on the same entries; ``policy`` = (picks, accuracies, costs) over all entries."""
    picks: list[str] = [""] * pol.n
    acc = np.zeros(pol.n)
    cost = np.zeros(pol.n)
    rows = []
    for task in sorted(set(pol.task.tolist())):
        held = pol.task == task
        fitted = _fit(pol, cands, ~held, base)
        p, a, c = pol.of(fitted)
        for i in np.flatnonzero(held):
            picks[i], acc[i], cost[i] = p[i], a[i], c[i]
        rows.append({"task": task, "n": int(held.sum()), "fitted": fitted, "fitted_cost": float(c[held].mean()),
                     "current_cost": float(pol.of(base)[2][held].mean())})
    return {"rows": rows, "policy": (picks, acc, cost)}


def leave_one_task_out(pol: _Policies, current: dict[str, Any], quiet: bool = False) -> dict[str, Any]:
    """Fit the rule parameters (``LOTO_GRID``, jointly) on the other tasks, score on the held-out task.

    Fit = the highest mean accuracy of the picked strategies over the other tasks' entries (ties: the
    candidate nearest the current rules). The current rules are scored on the same held-out entries.
    ``policy``: the held-out picks of every entry (each task's from the rules fitted without it).
    """
    result = _held_out(pol, _grid(current), current)
    rows = result["rows"]
    if quiet:
        return result
    print("\nleave-one-task-out, all parameters jointly: fitted on the other tasks (best mean accuracy of the picks; "
          "ties -> nearest the current rules), scored on the held-out task")
    print("  current: " + ", ".join(f"{k} {v}" for k, v in current.items()))
    print(f"  {'held-out':13s} {'n':>3s} {'fitted (' + ', '.join(LOTO_GRID) + ')':100s} {'fitted cost':>11s} "
          f"{'current cost':>12s}")
    for r in rows:
        print(f"  {r['task']:13s} {r['n']:>3d} {str(tuple(r['fitted'].values())):100s} "
              f"{r['fitted_cost'] * 100:>11.2f} {r['current_cost'] * 100:>12.2f}")
    fc = statistics.mean(r["fitted_cost"] for r in rows)
    cc = statistics.mean(r["current_cost"] for r in rows)
    better = sum(r["fitted_cost"] < r["current_cost"] - 1e-9 for r in rows)
    worse = sum(r["fitted_cost"] > r["current_cost"] + 1e-9 for r in rows)
    print(f"  mean held-out cost over tasks: fitted {fc * 100:.2f} vs current {cc * 100:.2f} points; fitted better on "
          f"{better}, worse on {worse} of {len(rows)} tasks")
    every = _fit(pol, _grid(current), np.ones(pol.n, bool), current)
    print("  fitted on all tasks (for reference only, not a held-out score): " +
          ", ".join(f"{k} {v}" for k, v in every.items()))
    result.update(fitted_mean_cost=fc, current_mean_cost=cc, better=better, worse=worse, fitted_all=every,
                  current=current, single=_evidence(pol, current))
    return result


# ----------------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 pairs, budget 10, 3 steps, 60 test items")
    ap.add_argument("--out", default=None, help=f"results folder (default {DEFAULT_OUT}; --quick: <that>/quick)")
    ap.add_argument("--tasks", nargs="+", help="only these tasks")
    ap.add_argument("--budgets", nargs="+", type=int, help=f"examples per class (default {BUDGETS})")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-shift", action="store_true", help="do not measure domain shift for the plan")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--json", dest="json_out", help="also write the summary to this file")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    cfg = {"quick": bool(args.quick), "test_cap": QUICK["test_cap"] if args.quick else TEST_CAP,
           "min_steps": QUICK["min_steps"] if args.quick else MIN_STEPS,
           "max_steps": QUICK["max_steps"] if args.quick else MAX_STEPS}
    if not args.report_only:
        from zoo._compat import ensure_torchvision

        ensure_torchvision()
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        records = _records()
        pairs = QUICK["pairs"] if args.quick else PAIRS
        budgets = args.budgets or (QUICK["budgets"] if args.quick else BUDGETS)
        if args.tasks:
            pairs = tuple(p for p in pairs if p[0] in args.tasks)
        t_start = time.perf_counter()
        print(f"bench_plan: {len(pairs)} pairs x budgets {list(budgets)} x seeds {args.seeds} -> {out} "
              f"({torch.get_num_threads()} threads)", flush=True)
        data_cache: dict[str, tuple] = {}
        # Budget-major order: an interrupted run has every pair at the small budgets before any at 1,000.
        for budget, (task, mid) in itertools.product(budgets, pairs):
            if task not in data_cache:
                data_cache[task] = _task_data(task, cfg)
            for seed in args.seeds:
                path = out / task / f"{_slug(mid)}_b{budget}_s{seed}.json"
                print(f"[{time.perf_counter() - t_start:6.0f}s] {task} {mid} budget {budget}/class seed {seed}",
                      flush=True)
                doc = run_entry(task, records[mid], budget, seed, cfg, data_cache[task], path, not args.no_shift)
                if doc is None:
                    print("    skipped: a class has fewer examples than the budget allows", flush=True)
                else:
                    accs = {s: r["accuracy"] for s, r in doc["results"].items()}
                    print(f"    plan -> {doc['plan']['strategy']} ({', '.join(doc['plan']['rules_fired'][:2])}); "
                          f"best {max(accs, key=accs.get)}", flush=True)
        print(f"done in {time.perf_counter() - t_start:.0f}s", flush=True)
    summary = report(out)
    if args.json_out and summary:
        Path(args.json_out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
