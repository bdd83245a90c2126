"""Transfer plans: how to adapt a chosen backbone, from the data budget and the measured domain gap.

- :func:`make_plan` -- a pure function of the model record and the measured signals (examples per
  class, domain shift, score gap to other candidates, probe vs fine-tune results) -> :class:`TransferPlan`:
  strategy (linear probe / partial fine-tune / full fine-tune / LoRA), learning rates with layer-wise
  decay, epochs and early stopping, augmentation hints, LoRA settings, and the risks, each with the
  signal behind it. The rules are data in :mod:`zoo.plan_rules`; the plan lists the ids that fired.
- :func:`plan_for` / :func:`plan_for_sample` -- measure the signals on the user's data, then plan.
- :func:`apply_plan` (in :mod:`zoo.plan_apply`, also reachable here) -- a loaded backbone (``zoo.backbones.load_backbone``) with the plan applied:
  parameters frozen, the last N blocks unfrozen (blocks found generically by :func:`find_blocks`),
  LoRA adapters injected through ``peft`` for transformer encoders, and ``torch.optim`` parameter
  groups with the planned (layer-wise decayed) learning rates -> :class:`PlannedModel`.

torch and peft are imported inside the functions that need them, so planning itself (and ``zoo
--help``) stays light.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import plan_rules as R
from zoo.errors import UsageError, ZooError
from zoo.record import ModelRecord

if TYPE_CHECKING:
    from zoo.data import Sample

# Block, PlannedModel, apply_plan, find_blocks and lora_targets come from zoo.plan_apply (see __getattr__).
__all__ = [  # noqa: F822
    "Block", "PlannedModel", "Risk", "TransferPlan", "apply_plan", "block_count_hint", "find_blocks",
    "is_finetunable", "is_transformer", "lora_targets", "make_plan", "plan_for", "plan_for_sample",
    "probe_signals", "score_gap",
]

# Adapters whose encoder zoo cannot train (zoo.backbones loads them with trainable=False).
FROZEN_LIBRARIES = {
    "onnx": "an ONNX graph runs inference only in onnxruntime; there are no torch parameters to update",
    "glove_avg": "averaged GloVe word vectors: a fixed lookup table and a mean, no network to fine-tune",
}
TRANSFORMER_LIBRARIES = ("sentence-transformers", "transformers")
# Architecture-name tokens of transformer encoders (timm or Hugging Face) for which LoRA targets exist.
_TRANSFORMER_TOKENS = ("vit", "deit", "swin", "beit", "bert", "mpnet", "minilm", "roberta", "electra", "eva",
                       "dinov2", "clip", "xlm", "deberta", "distil")
_RISK_LEVELS = ("low", "medium", "high")
RISK_KINDS = ("overfitting", "forgetting", "negative_transfer")


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Risk:
    kind: str  # overfitting | forgetting | negative_transfer
    level: str  # low | medium | high
    signal: str  # the measured signal behind it, in words with its value
    rules: list[str] = field(default_factory=list)  # rule ids that raised it


@dataclass
class TransferPlan:
    """How to fine-tune ``model_id`` on the user's data, decided by named rules from measured signals.

    ``strategy`` (linear_probe, partial_finetune, full_finetune or lora), how many of ``n_blocks`` to unfreeze
    (``blocks_to_unfreeze``, ``unfreeze_fraction``), learning rates (``lr_head``, ``lr_backbone``,
    ``layer_decay``), ``epochs`` with ``early_stopping``, ``optimizer``, ``weight_decay``, ``schedule``,
    ``warmup_ratio``, ``batch_size``, ``augmentation``, ``lora`` settings; the ``risks`` found, the rules that
    fired (``rules_fired``, each with its ``sources``), the ``signals`` they read, ``why`` in words and ``notes``.
    :meth:`summary` says it in one line."""

    model_id: str
    strategy: str  # linear_probe | partial_finetune | full_finetune | lora
    blocks_to_unfreeze: int | None  # 0: none; None: decided when applied (block count unknown until loaded)
    n_blocks: int | None
    unfreeze_fraction: float
    lr_head: float
    lr_backbone: float  # the top block's rate (the adapter rate for LoRA); 0 for a linear probe
    layer_decay: float | None  # per block going down; None until the block count is known
    epochs: int
    early_stopping: dict[str, Any]  # patience, monitor, min_delta, restore_best
    optimizer: str
    weight_decay: float
    schedule: str
    warmup_ratio: float
    batch_size: int
    augmentation: list[str]
    lora: dict[str, Any] | None  # rank, alpha, dropout, target_modules (None: found when applied)
    risks: list[Risk]
    rules_fired: list[str]
    signals: dict[str, Any]
    why: str
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # rule id -> source

    def risk(self, kind: str) -> Risk:
        return next(r for r in self.risks if r.kind == kind)

    def summary(self) -> str:
        """One line: strategy, blocks, learning rates, epochs."""
        what = {"linear_probe": "linear probe (frozen backbone, train a head)",
                "partial_finetune": f"partial fine-tune (last {self.blocks_to_unfreeze if self.blocks_to_unfreeze is not None else f'{self.unfreeze_fraction:.0%} of'} blocks)",
                "full_finetune": "full fine-tune",
                "lora": f"LoRA (rank {self.lora['rank'] if self.lora else '?'})"}[self.strategy]
        lrs = f"lr head {self.lr_head:g}" + (f", backbone {self.lr_backbone:g}" if self.lr_backbone else "")
        if self.layer_decay is not None and self.strategy in ("partial_finetune", "full_finetune"):
            lrs += f" (x{self.layer_decay:.2f} per block down)"
        return f"{what}; {lrs}; {self.epochs} epochs, early stopping on {self.early_stopping['monitor']}"


# ---------------------------------------------------------------------------------------------- record facts


def is_finetunable(record: ModelRecord) -> tuple[bool, str]:
    """Whether zoo can train the encoder, and why not when it cannot."""
    lib = (record.library or "").lower()
    if lib in FROZEN_LIBRARIES:
        return False, FROZEN_LIBRARIES[lib]
    if (record.weights or "").lower().endswith(".onnx"):
        return False, FROZEN_LIBRARIES["onnx"]
    if record.extra.get("trainable") is False:
        return False, "the record marks the encoder as not trainable (extra.trainable = false)"
    return True, ""


def is_transformer(record: ModelRecord) -> bool:
    lib = (record.library or "").lower()
    if lib in FROZEN_LIBRARIES:
        return False
    if lib == "sentence-transformers" or (lib == "transformers" and record.modality == "text"):
        return True
    name = f"{record.architecture or ''} {record.name}".lower()
    return any(re.search(rf"(^|[^a-z]){t}", name) for t in _TRANSFORMER_TOKENS)


def block_count_hint(record: ModelRecord) -> int | None:
    """How many blocks :func:`find_blocks` will see, from the architecture name (no weights loaded).

    ``None`` when the name does not tell; the count is then taken when the plan is applied.
    """
    if isinstance(record.extra.get("num_blocks"), int):
        return int(record.extra["num_blocks"])
    arch = (record.architecture or record.name or "").lower()
    lib = (record.library or "").lower()
    if lib == "cifar_resnet" and (m := re.search(r"(\d+)", arch)):
        depth = int(m.group(1))
        return 3 * ((depth - 2) // 6) if (depth - 2) % 6 == 0 else None
    if "big_xception" in arch:
        return 2
    if "mini_xception" in arch:
        return 4
    if lib == "torchvision" and arch.startswith("mobilenetv2"):
        return 19  # torchvision MobileNetV2.features: stem conv, 17 inverted residuals, final 1x1 conv
    if lib in TRANSFORMER_LIBRARIES or is_transformer(record):
        if m := re.search(r"(?:^|[-_])l(\d+)(?:[-_]|$)", arch):
            return int(m.group(1))
        if re.search(r"(^|[-_])(base)([-_]|$)", arch):
            return 12
        if re.search(r"(^|[-_])(large)([-_]|$)", arch):
            return 24
    return None


# ---------------------------------------------------------------------------------------------- rules


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
        "!=": operator.ne, "in": lambda a, b: a in b}


def _match(cond: Mapping[str, Any], sig: Mapping[str, Any]) -> bool:
    for key, want in cond.items():
        have = sig.get(key)
        if isinstance(want, tuple) and len(want) == 2 and isinstance(want[0], str):
            op, val = want
            if op == "known":
                if (have is not None) != bool(val):
                    return False
                continue
            if have is None:
                return False
            if op not in _OPS:
                raise ValueError(f"unknown operator {op!r} in a plan rule")
            if not _OPS[op](have, val):
                return False
        elif have is None or have != want:
            return False
    return True


class _Signals(dict):
    """Formatting view of the signals: a missing key renders as '?' instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def _say(template: str, sig: Mapping[str, Any]) -> str:
    try:
        return string.Formatter().vformat(template, (), _Signals(sig))
    except (ValueError, TypeError):  # a None where a number format was asked for
        return template


def _counts(samples_per_class: Mapping[Any, int] | int | None, n_classes: int | None) -> tuple[float | None, int | None, int | None, int | None]:
    """(median per class, smallest class, number of classes, total)."""
    if samples_per_class is None:
        return None, None, n_classes, None
    if isinstance(samples_per_class, Mapping):
        counts = [int(v) for v in samples_per_class.values()]
        if not counts:
            raise UsageError("samples_per_class is empty: give the labelled examples per class.")
        return float(statistics.median(counts)), min(counts), n_classes or len(counts), sum(counts)
    if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, (int, float)) or samples_per_class < 0:
        raise UsageError(f"samples_per_class must be a count or a {{class: count}} dict, got {samples_per_class!r}")
    n = int(samples_per_class)
    return float(n), n, n_classes, (n * n_classes if n_classes else None)


def probe_signals(probe_vs_finetune: Any) -> tuple[float | None, float | None]:
    """``(probe accuracy, fine-tune accuracy)`` from a dict or a ``zoo.probe`` result object.

    Accepted names: ``probe`` / ``linear_probe`` / ``probe_acc`` / ``probe_accuracy`` and ``finetune`` /
    ``fine_tune`` / ``finetune_acc`` / ``finetune_accuracy`` (keys or attributes).
    """
    if probe_vs_finetune is None:
        return None, None

    def get(names: Sequence[str]) -> float | None:
        for n in names:
            v = probe_vs_finetune.get(n) if isinstance(probe_vs_finetune, Mapping) else getattr(probe_vs_finetune, n, None)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
        return None

    return (get(("probe", "linear_probe", "probe_acc", "probe_accuracy", "accuracy")),
            get(("finetune", "fine_tune", "finetune_acc", "finetune_accuracy")))


def per_block_decay(bottom_ratio: float, n_blocks: int | None) -> float | None:
    """Per-block factor so the lowest of ``n_blocks`` learns at ``bottom_ratio`` x the top one (ELECTRA:
    0.8 for 12 layers, 0.9 for 24 -- both ~0.1 at the bottom)."""
    if n_blocks is None:
        return None
    if n_blocks <= 1:
        return 1.0
    return float(bottom_ratio ** (1.0 / (n_blocks - 1)))


def _blocks_for(strategy: str, fraction: float, n_blocks: int | None) -> int | None:
    if strategy in ("linear_probe", "lora"):
        return 0
    if n_blocks is None:
        return None
    if strategy == "full_finetune":
        return n_blocks
    return max(1, min(n_blocks, round(fraction * n_blocks)))


def make_plan(
    record: ModelRecord,
    *,
    samples_per_class: Mapping[Any, int] | int | None,
    n_classes: int | None = None,
    shift: float | None = None,
    score_gap: float | None = None,
    probe_vs_finetune: Any = None,
    modality: str | None = None,
    n_blocks: int | None = None,
    strategy: str | None = None,
    shift_note: str | None = None,
    rules: Sequence[R.Rule] | None = None,
) -> TransferPlan:
    """The transfer plan for ``record`` from the measured signals (see :mod:`zoo.plan_rules`).

    ``samples_per_class``: ``{class: count}`` or one count for every class. ``shift``: label-free domain
    shift in [0, 1] (``None``: not measured). ``score_gap``: this model's data score minus the best other
    candidate's (kNN accuracy units). ``probe_vs_finetune``: ``{"probe": acc, "finetune": acc}`` or a
    ``zoo.probe`` result. ``n_blocks``: the backbone's block count when known (else guessed from the
    architecture, or counted by :func:`apply_plan`). ``strategy``: force a strategy; the settings are then
    the rules' settings for that strategy (a frozen encoder still gets a linear probe). ``rules``: another
    rule list (``zoo.plan_rules.build_rules``); only the benchmark's leave-one-task-out fit uses it.
    """
    rules = R.RULES if rules is None else tuple(rules)
    if strategy is not None and strategy not in R.STRATEGIES:
        raise UsageError(f"Unknown strategy {strategy!r}; use one of {', '.join(R.STRATEGIES)}.")
    if shift is not None and not 0.0 <= float(shift) <= 1.0:
        raise UsageError(f"shift must be in [0, 1] (0 = like the pretraining data), got {shift!r}")
    per_class, min_per_class, k, total = _counts(samples_per_class, n_classes)
    finetunable, frozen_why = is_finetunable(record)
    transformer = is_transformer(record)
    blocks = n_blocks if n_blocks is not None else block_count_hint(record)
    probe_acc, finetune_acc = probe_signals(probe_vs_finetune)
    ft_gain = finetune_acc - probe_acc if probe_acc is not None and finetune_acc is not None else None
    over_chance = ((probe_acc - 1.0 / k) / (1.0 - 1.0 / k)) if probe_acc is not None and k and k > 1 else None
    sig: dict[str, Any] = {
        "per_class": per_class, "min_per_class": min_per_class, "n_classes": k, "n_total": total,
        "shift": None if shift is None else float(shift), "score_gap": score_gap,
        "probe_acc": probe_acc, "finetune_acc": finetune_acc, "ft_gain": ft_gain, "probe_over_chance": over_chance,
        "finetunable": finetunable, "transformer": transformer, "params": record.params,
        "n_blocks": blocks, "modality": modality or record.modality, "library": record.library,
    }
    view = {**sig, "params_m": (record.params or 0) / 1e6}
    fired: list[R.Rule] = []
    whys: list[str] = []
    notes: list[str] = []

    # 1. strategy: the first matching rule (or the caller's choice)
    chosen: str | None = None
    if not finetunable:
        rule = next(r for r in rules if r.id == "frozen-encoder")
        chosen = "linear_probe"
        fired.append(rule)
        whys.append(_say(rule.why, view))
        notes.append(f"{record.id} cannot be fine-tuned: {frozen_why}.")
    elif strategy is not None:
        chosen = strategy
        whys.append(f"strategy {strategy} was requested")
    else:
        for rule in (r for r in rules if r.kind == "strategy"):
            if _match(rule.when, sig):
                chosen = rule.then["strategy"]
                fired.append(rule)
                whys.append(_say(rule.why, view))
                break
    assert chosen is not None  # "no-budget-probe" matches anything
    if chosen == "lora" and not transformer:  # requested LoRA on a conv net: nothing to attach adapters to
        notes.append("LoRA needs attention projections; this backbone is not a transformer, so the plan "
                     "fine-tunes its top blocks instead.")
        chosen = "partial_finetune"

    # 2. settings: every match, in order; a setting may switch a fine-tune to LoRA unless a strategy was forced
    st = dict(R.DEFAULTS)
    sig["strategy"] = chosen
    for rule in (r for r in rules if r.kind == "setting"):
        if not _match(rule.when, sig):
            continue
        then = dict(rule.then)
        new = then.pop("strategy", None)
        if new is not None and (strategy is not None or not finetunable):
            continue
        if new is not None:
            if new == "lora" and not transformer:
                continue
            chosen = sig["strategy"] = new
        st.update(then)
        fired.append(rule)
        whys.append(_say(rule.why, view))

    # 3. risks: the highest level per kind, with the signal that raised it
    trainable_desc = {"linear_probe": "a linear head", "partial_finetune": "the top blocks",
                      "full_finetune": f"all {view['params_m']:.1f}M parameters", "lora": "LoRA adapters"}[chosen]
    view = {**view, **sig, "trainable_desc": trainable_desc}
    risks = {kind: Risk(kind, "low", "no rule raised it") for kind in RISK_KINDS}
    for rule in (r for r in rules if r.kind == "risk"):
        if not _match(rule.when, sig):
            continue
        kind, level = rule.then["risk"], rule.then["level"]
        fired.append(rule)
        cur = risks[kind]
        if _RISK_LEVELS.index(level) > _RISK_LEVELS.index(cur.level) or cur.level == "low" and not cur.rules:
            risks[kind] = Risk(kind, level, _say(rule.why, view), [*cur.rules, rule.id])
        else:
            cur.rules.append(rule.id)
    if shift is None:
        notes.append(shift_note or "Domain shift not measured: the far-domain rules could not fire.")

    strategy_final = chosen
    n_unfreeze = _blocks_for(strategy_final, float(st["unfreeze_fraction"]), blocks)
    decay = None
    if strategy_final in ("partial_finetune", "full_finetune"):
        decay = per_block_decay(float(st["bottom_lr_ratio"]), blocks)
    elif strategy_final == "lora":
        decay = 1.0  # Hu et al. use one adapter rate for every layer
    lora = None
    if strategy_final == "lora":
        lora = {"rank": int(st["lora_rank"]), "alpha": int(st["lora_alpha"]), "dropout": float(st["lora_dropout"]),
                "target_modules": _default_lora_targets(record)}
    mod = sig["modality"]
    aug = _augmentation(mod, per_class, record)
    why = "; ".join(w for w in whys if w) + "."
    return TransferPlan(
        model_id=record.id, strategy=strategy_final, blocks_to_unfreeze=n_unfreeze, n_blocks=blocks,
        unfreeze_fraction=float(st["unfreeze_fraction"]) if strategy_final == "partial_finetune" else
        (1.0 if strategy_final == "full_finetune" else 0.0),
        lr_head=float(st["lr_head"]), lr_backbone=0.0 if strategy_final == "linear_probe" else float(st["lr_backbone"]),
        layer_decay=decay, epochs=int(st["epochs"]),
        early_stopping={"patience": int(st["patience"]), "monitor": st["monitor"], "min_delta": 1e-3,
                        "restore_best": True},
        optimizer=st["optimizer"], weight_decay=float(st["weight_decay"]), schedule=st["schedule"],
        warmup_ratio=float(st["warmup_ratio"]), batch_size=int(st["batch_size"]), augmentation=aug, lora=lora,
        risks=list(risks.values()), rules_fired=[r.id for r in fired], signals=sig, why=why, notes=notes,
        sources={r.id: r.source for r in fired},
    )


def _default_lora_targets(record: ModelRecord) -> list[str] | None:
    """LoRA target module names from the architecture family; ``None``: found on the loaded model."""
    arch = f"{record.architecture or ''} {record.name}".lower()
    if "mpnet" in arch:
        return ["q", "v"]
    if (record.library or "") in TRANSFORMER_LIBRARIES and any(t in arch for t in ("bert", "minilm", "electra")):
        return ["query", "value"]
    if (record.library or "") == "timm":
        return ["qkv"]
    return None


def _augmentation(modality: str, per_class: float | None, record: ModelRecord) -> list[str]:
    spec = R.AUGMENTATION.get(modality)
    if spec is None:
        return []
    out = list(spec["base"])
    if modality == "image" and (not record.input_size or int(record.input_size[0]) == 3):
        out += spec["rgb"]
    if per_class is not None and per_class < R.AUGMENTATION_SMALL_BELOW:
        out += spec["small"]
    if per_class is not None and per_class >= R.AUGMENTATION_LARGE_FROM:
        out += spec["large"]
    return out + [f"(source: {spec['source']})"]


# ---------------------------------------------------------------------------------------------- measuring


def score_gap(candidates: Sequence[Any], model_id: str, scorer: str = "knn") -> float | None:
    """This candidate's ``scorer`` value minus the best other candidate's (``Candidate.data_scores``).

    kNN leave-one-out accuracy is the default because its gap is in accuracy units, which is what the
    risk threshold is written in; other scorers' scales differ by model and data. ``None`` when fewer
    than two candidates have the score.
    """
    mine = None
    others = []
    for c in candidates:
        v = (getattr(c, "data_scores", None) or {}).get(scorer)
        if v is None:
            continue
        if getattr(c, "id", None) == model_id:
            mine = float(v)
        else:
            others.append(float(v))
    if mine is None or not others:
        return None
    return mine - max(others)


def _measure_shift(record: ModelRecord, sample: Sample, device: str) -> tuple[float | None, str | None, str | None]:
    """(shift value, method, note); tolerates zoo.shift being absent or failing."""
    try:
        from zoo.shift import domain_shift
    except ImportError:
        return None, None, "Domain shift not measured (zoo.shift is not available in this version)."
    try:
        res = domain_shift(record, sample, device=device, max_items=256)
    except ZooError as e:
        return None, None, f"Domain shift not measured: {e}"
    value = getattr(res, "value", None)
    method = getattr(res, "method", None)
    if value is None:
        why = getattr(res, "reason", "") or method or "no method applies to this model and data"
        return None, method, f"Domain shift not measured: {why}."
    return float(value), method, None


def plan_for_sample(
    record: ModelRecord,
    sample: Sample,
    *,
    candidates: Sequence[Any] | None = None,
    probe: Any = None,
    device: str = "auto",
    measure_shift: bool = True,
) -> TransferPlan:
    """Plan from a loaded ``zoo.data.Sample``: examples per class (before the sample cap: the data budget
    is all the labelled data), domain shift (``zoo.shift``), score gap to ``candidates``, ``probe``."""
    if sample.task in ("classification", "multilabel"):
        counts = dict(sample.available) if sample.available and sample.task == "classification" else sample.class_counts()
        n_classes = len(sample.classes)
    else:
        counts, n_classes = {"all": len(sample)}, None
    shift = method = note = None
    if measure_shift:
        shift, method, note = _measure_shift(record, sample, device)
    gap = score_gap(candidates, record.id) if candidates else None
    plan = make_plan(record, samples_per_class=counts, n_classes=n_classes, shift=shift, score_gap=gap,
                     probe_vs_finetune=probe, modality=sample.modality if sample.modality != "array" else None,
                     shift_note=note)
    plan.signals["shift_method"] = method
    plan.signals["data"] = sample.source
    if sample.task not in ("classification", "multilabel"):
        plan.notes.append(f"The data is {sample.task}: the budget counts all {len(sample)} items as one group.")
    return plan


def plan_for(data: str | Path, model_id: str, *, db: str | Path | None = None, device: str = "auto",
             text_column: str = "text", label_column: str = "label") -> TransferPlan:
    """Load the sample at ``data``, measure the signals for ``model_id`` and plan its transfer."""
    from zoo.data import load_sample
    from zoo.registry import Registry

    with Registry(db=db) as reg:
        record = reg.get(model_id)
    sample = load_sample(data, text_column=text_column, label_column=label_column)
    return plan_for_sample(record, sample, device=device)


# The applying half lives in zoo.plan_apply (it needs torch); its names stay reachable as zoo.plan.<name>.
_APPLY_NAMES = ("Block", "PlannedModel", "apply_plan", "find_blocks", "lora_targets")


def __getattr__(name: str) -> Any:
    if name in _APPLY_NAMES:
        from zoo import plan_apply

        return getattr(plan_apply, name)
    raise AttributeError(f"module 'zoo.plan' has no attribute {name!r}")
