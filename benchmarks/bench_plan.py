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

Leave-one-task-out (printed with the report): the rules' parameters (``zoo.plan_rules.build_rules``:
linear probe below ``lp_below`` per class, full fine-tune from ``full_from``, LoRA for transformers in
between or not, full fine-tune on a far domain from ``far_full_from``) and the linear probe's head lr
(``LP_LR_GRID``) are fitted on all tasks but one (best mean accuracy of the picked strategies) and
scored on the held-out task, next to the shipped defaults.

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
# thresholds sit between the budgets run (10, 100, 1000), so these values cover every distinct policy.
LOTO_GRID: dict[str, tuple] = {
    "lp_below": (5, 20, 50, 500, 5000),  # linear probe below this many per class
    "full_from": (5, 50, 500, 5000),  # full fine-tune from this many per class
    "transformer_lora": (True, False),  # transformers with a medium budget: LoRA, or partial fine-tune
    "far_full_from": (100, 10**9),  # far domain: full fine-tune from this many per class (10**9 = rule off)
    "lp_lr": (1e-3, 3e-3, 1e-2),  # the linear probe's head lr (its lr grid in every entry)
}


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
    print(f"\n{len(docs)} entries from {out}; LP = linear probe at the current rules' head lr "
          f"({'as run' if lp_lr is None else f'{lp_lr:g}'}); plan = the current rules' pick from each entry's "
          "signals (as run: the pick stored when the entry ran)\n")
    head = (f"{'task':13s} {'model':24s} {'b/cls':>5s} {'shift':>5s} {'LP':>6s} {'partial':>7s} {'full':>6s} "
            f"{'LoRA':>6s} {'lp_ref':>6s}  {'best':16s} {'plan':16s} {'cost':>6s}  as run")
    print(head)
    print("-" * len(head))
    picks = [_policy_pick(d, PR.RULES) for d in docs]
    for d, pick in zip(docs, picks, strict=True):
        acc = {st: _acc(d, st, lp_lr) for st in d["results"]}
        best = max(acc, key=acc.get)
        cost = acc[best] - acc.get(pick, acc["linear_probe"])

        def f(st: str, a: dict = acc) -> str:
            return f"{a[st]:.3f}" if st in a else "-"

        shift = d["plan"]["signals"].get("shift")
        print(f"{d['task']:13s} {d['model'].removeprefix('local:')[:24]:24s} {int(np.median(d['per_class'])):>5d} "
              f"{'-' if shift is None else f'{shift:.2f}':>5s} "
              f"{f('linear_probe'):>6s} {f('partial_finetune'):>7s} {f('full_finetune'):>6s} {f('lora'):>6s} "
              f"{d.get('lp_ref', {}).get('accuracy', float('nan')):6.3f}  {best:16s} {pick:16s} {cost:+6.3f}  "
              f"{d['plan']['strategy']}")
    s = score(docs, picks, lp_lr)
    ran = score(docs, [d["plan"]["strategy"] for d in docs])
    print(f"\nplan (current rules): picked the best strategy in {s['picked_best']:.0%} of {s['n']} "
          f"(within 1 point: {s['within_1pt']:.0%}); mean cost {s['mean_cost'] * 100:.2f} points, "
          f"max {s['max_cost'] * 100:.1f}; mean accuracy {s['mean_acc']:.4f}")
    print(f"plan (as run, rules and probe lr of the run): best in {ran['picked_best']:.0%} (within 1 point: "
          f"{ran['within_1pt']:.0%}); mean cost {ran['mean_cost'] * 100:.2f} points; mean accuracy {ran['mean_acc']:.4f}")
    fixed = {}
    for strat in ("linear_probe", "partial_finetune", "full_finetune"):
        fixed[strat] = score(docs, [strat] * len(docs), lp_lr)
        print(f"always {strat:17s}: best in {fixed[strat]['picked_best']:.0%}, mean cost "
              f"{fixed[strat]['mean_cost'] * 100:.2f} points, mean accuracy {fixed[strat]['mean_acc']:.4f}")
    oracle = float(np.mean([max(_acc(d, st, lp_lr) for st in d["results"]) for d in docs]))
    print(f"oracle (best per entry): mean accuracy {oracle:.4f}")
    by_budget: dict[int, list[int]] = {}
    for i, d in enumerate(docs):
        by_budget.setdefault(d["budget"], []).append(i)
    for b, idx in sorted(by_budget.items()):
        sb = score([docs[i] for i in idx], [picks[i] for i in idx], lp_lr)
        wins: dict[str, int] = {}
        for i in idx:
            w = max(docs[i]["results"], key=lambda st, d=docs[i]: _acc(d, st, lp_lr))
            wins[w] = wins.get(w, 0) + 1
        print(f"  budget {b:>4d}/class: plan best in {sb['picked_best']:.0%} of {sb['n']}, cost "
              f"{sb['mean_cost'] * 100:.2f} pts; winners {wins}")
    frozen = _frozen_check(sorted({d["task"] for d in docs if bds.modality(d["task"]) == "text"}))
    summary = {"entries": len(docs), "lp_lr": lp_lr, "plan": s, "plan_as_run": ran, "fixed": fixed,
               "oracle_mean_acc": oracle, "frozen_encoders": frozen}
    if loto:
        summary["loto"] = leave_one_task_out(docs, PR)
    return summary


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


def leave_one_task_out(docs: list[dict[str, Any]], PR: Any) -> dict[str, Any]:
    """Fit the rule parameters (``LOTO_GRID``) on the other tasks, score on the held-out one.

    Fit = the highest mean accuracy of the picked strategies over the other tasks' entries (ties: the
    candidate nearest the shipped defaults). The shipped defaults are scored on the same held-out entries.
    """
    names = list(LOTO_GRID)
    default = {"lp_below": PR.LP_BELOW, "full_from": PR.FULL_FROM, "transformer_lora": True,
               "far_full_from": PR.FAR_SHIFT_FULL_FROM, "lp_lr": _current_lp_lr()}
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*LOTO_GRID.values())]
    grid = [t for t in grid if t["full_from"] >= t["lp_below"]]
    if default not in grid:
        grid.append(default)

    def rule_key(t: dict[str, Any]) -> tuple:
        return t["lp_below"], t["full_from"], t["transformer_lora"], t["far_full_from"]

    picks: dict[tuple, list[str]] = {}
    for t in grid:
        if rule_key(t) not in picks:
            rules = PR.build_rules(t["lp_below"], t["full_from"], transformer_lora=t["transformer_lora"],
                                   far_shift_full_from=t["far_full_from"])
            picks[rule_key(t)] = [_policy_pick(d, rules) for d in docs]

    def distance(t: dict[str, Any]) -> float:
        return sum(abs(math.log(t[k] / default[k])) if isinstance(t[k], (int, float)) and not isinstance(t[k], bool)
                   else float(t[k] != default[k]) for k in names)

    def scored(t: dict[str, Any], idx: list[int]) -> dict[str, float]:
        return score([docs[i] for i in idx], [picks[rule_key(t)][i] for i in idx], t["lp_lr"])

    tasks = sorted({d["task"] for d in docs})
    print("\nleave-one-task-out: rule parameters fitted on the other tasks (best mean accuracy of the picks; ties -> "
          "nearest the default), scored on the held-out task")
    print("  default: " + ", ".join(f"{k} {v}" for k, v in default.items()))
    print(f"  {'held-out':13s} {'n':>3s} {'fitted (lp_below, full_from, lora, far_full_from, lp_lr)':58s} "
          f"{'fitted acc':>10s} {'default acc':>11s} {'fitted best%':>12s} {'default best%':>13s}")
    rows = []
    for task in tasks:
        train_idx = [i for i, d in enumerate(docs) if d["task"] != task]
        test_idx = [i for i, d in enumerate(docs) if d["task"] == task]
        fitted = max(grid, key=lambda t, idx=train_idx: (round(scored(t, idx)["mean_acc"], 6), -distance(t)))
        sf, sd = scored(fitted, test_idx), scored(default, test_idx)
        rows.append({"task": task, "fitted": fitted, "fitted_score": sf, "default_score": sd})
        print(f"  {task:13s} {len(test_idx):>3d} {str(tuple(fitted.values())):58s} {sf['mean_acc']:>10.4f} "
              f"{sd['mean_acc']:>11.4f} {sf['picked_best']:>12.0%} {sd['picked_best']:>13.0%}")
    fa = statistics.mean(r["fitted_score"]["mean_acc"] for r in rows)
    da = statistics.mean(r["default_score"]["mean_acc"] for r in rows)
    better = sum(r["fitted_score"]["mean_acc"] > r["default_score"]["mean_acc"] + 1e-9 for r in rows)
    worse = sum(r["fitted_score"]["mean_acc"] < r["default_score"]["mean_acc"] - 1e-9 for r in rows)
    print(f"  mean over held-out tasks: fitted {fa:.4f} vs default {da:.4f}; fitted better on {better}, "
          f"worse on {worse} of {len(rows)} tasks")
    every = max(grid, key=lambda t: (round(scored(t, list(range(len(docs))))["mean_acc"], 6), -distance(t)))
    print("  fitted on all tasks: " + ", ".join(f"{k} {v}" for k, v in every.items()))

    # One parameter at a time (the others at the default): which single rule change the evidence supports.
    print("\n  one parameter at a time (others at the default): values fitted per held-out task; mean held-out "
          "accuracy fitted vs default; tasks better/worse")
    single = {}
    for name in names:
        options = [t for t in grid if all(t[k] == default[k] for k in names if k != name)]
        fits, accs, better1, worse1 = [], [], 0, 0
        for task in tasks:
            train_idx = [i for i, d in enumerate(docs) if d["task"] != task]
            test_idx = [i for i, d in enumerate(docs) if d["task"] == task]
            fit = max(options, key=lambda t, idx=train_idx: (round(scored(t, idx)["mean_acc"], 6), -distance(t)))
            sf, sd = scored(fit, test_idx)["mean_acc"], scored(default, test_idx)["mean_acc"]
            fits.append(fit[name])
            accs.append((sf, sd))
            better1 += sf > sd + 1e-9
            worse1 += sf < sd - 1e-9
        fa1, da1 = statistics.mean(a for a, _ in accs), statistics.mean(b for _, b in accs)
        single[name] = {"fitted": fits, "fitted_mean_acc": fa1, "default_mean_acc": da1, "better": better1,
                        "worse": worse1}
        print(f"  {name:16s} fitted {fits}  {fa1:.4f} vs {da1:.4f}  better {better1}, worse {worse1} of {len(tasks)}")
    return {"rows": rows, "fitted_mean_acc": fa, "default_mean_acc": da, "better": better, "worse": worse,
            "fitted_all": every, "default": default, "single": single}


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
