"""The short fine-tune (``method="finetune-last-block"``): the backbone's last block and a new head trained
per outer fold, the same folds and reporting as the linear probe. See :mod:`zoo.probe`."""


from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.probe.cv import _child_seed, _resolve_device, fold_interval, macro_f1, stratified_folds
from zoo.probe.results import (
    FINETUNE,
    FINETUNE_BATCH,
    FINETUNE_HEAD_LR_MULT,
    FINETUNE_LR,
    FINETUNE_WEIGHT_DECAY,
    ProbeError,
    ProbeResult,
    _plural,
)

if TYPE_CHECKING:
    import torch

    from zoo.data import Sample
    from zoo.record import ModelRecord


_FINETUNE_MAX_BYTES = 2 << 30  # preprocessed images kept in memory for the epochs
_BLOCK_SHARE = 0.01  # a "block" holds at least this share of the backbone's parameters


# ----------------------------------------------------------------------------------------- fine-tune


def _finetune(record: ModelRecord, sample: Sample, *, folds: int, seed: int, epochs: int, device: str,
              show_progress: bool) -> ProbeResult:
    """Fine-tune the last block and a new head in every outer fold; accuracy on the held-out rows."""
    import torch
    from tqdm import tqdm

    from zoo.backbones import load_backbone

    t0 = time.perf_counter()
    if sample.modality not in ("image", "text"):
        raise ProbeError(f"A fine-tune needs the raw images or texts; {sample.source} holds precomputed arrays. "
                         "Drop --finetune-epochs for a linear probe on them.")
    if sample.modality != record.modality:
        raise ProbeError(f"{record.id} is a {record.modality} model, but {sample.source} holds {sample.modality} "
                         f"data. Pick a {sample.modality} model (`zoo search --modality {sample.modality}`).")
    dev = _resolve_device(device)
    y = np.asarray(sample.labels, dtype=np.int64)
    n_classes = len(sample.classes)
    lb = load_backbone(record, num_classes=n_classes, device=dev)
    if not lb.trainable or not hasattr(lb.model, "parameters"):
        raise ProbeError(f"{record.id} cannot be fine-tuned: {lb.note or 'it is a frozen encoder.'} "
                         "Probe it without --finetune-epochs (a linear probe on its features).")
    inputs = _finetune_inputs(lb, sample)
    block, n_trainable = _unfreeze_tail(lb.model)
    initial = {k: v.detach().clone() for k, v in lb.model.state_dict().items()}
    outer = stratified_folds(y, folds, seed)
    lr = FINETUNE_LR[record.modality]
    steps = epochs * sum(math.ceil(int((outer != f).sum()) / FINETUNE_BATCH) for f in range(folds))
    loss_fn = torch.nn.CrossEntropyLoss()
    yt = torch.as_tensor(y)
    fold_acc: list[float] = []
    fold_f1: list[float] = []
    with tqdm(total=steps, desc=f"fine-tune {record.id}", unit="step", file=sys.stderr, leave=False,
              disable=not show_progress) as bar:
        for f in range(folds):
            tr, te = np.flatnonzero(outer != f), np.flatnonzero(outer == f)
            lb.model.load_state_dict(initial)  # every fold starts from the pretrained weights
            torch.manual_seed(_child_seed(seed, f))
            lb.head.reset_parameters()
            opt = torch.optim.AdamW(
                [{"params": [p for p in lb.model.parameters() if p.requires_grad], "lr": lr},
                 {"params": list(lb.head.parameters()), "lr": lr * FINETUNE_HEAD_LR_MULT}],
                weight_decay=FINETUNE_WEIGHT_DECAY)
            per_epoch = math.ceil(len(tr) / FINETUNE_BATCH)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, per_epoch * epochs))
            gen = torch.Generator().manual_seed(_child_seed(seed, f))
            _train_mode(lb.model, lb.head)
            for _ in range(epochs):
                order = tr[torch.randperm(len(tr), generator=gen).numpy()]
                for i in range(0, len(order), FINETUNE_BATCH):
                    rows = order[i:i + FINETUNE_BATCH]
                    bar.update(1)
                    if len(rows) < 2:  # BatchNorm cannot train on a single sample
                        continue
                    loss = loss_fn(lb.head(_forward(lb, inputs, rows)), yt[rows].to(dev))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            pred = _predict(lb, inputs, te)
            fold_acc.append(float((pred == y[te]).mean()))
            fold_f1.append(macro_f1(y[te], pred, n_classes))
    acc, acc_lo, acc_hi = fold_interval(fold_acc)
    f1, f1_lo, f1_hi = fold_interval(fold_f1)
    what = f"{block} and everything after it" if block else "the whole backbone (no block structure found)"
    return ProbeResult(
        model_id=record.id, method=FINETUNE, accuracy=acc, accuracy_ci=(acc_lo, acc_hi), macro_f1=f1,
        macro_f1_ci=(f1_lo, f1_hi), fold_accuracies=fold_acc, fold_macro_f1=fold_f1, chosen_c=[], grid="none",
        grid_values=[], folds=folds, inner_folds=0, seed=seed, n=len(y), n_classes=n_classes,
        feature_dim=lb.feature_dim, seconds=time.perf_counter() - t0, device=dev,
        note=(f"fine-tuned {what} ({n_trainable:,} parameters) with a new head: {_plural(epochs, 'epoch')}, AdamW lr {lr:g} "
              f"(head {lr * FINETUNE_HEAD_LR_MULT:g}), batch {FINETUNE_BATCH}, cosine decay"))


def _finetune_inputs(lb: Any, sample: Sample) -> Any:
    """Preprocessed images as one tensor (decoded once for all folds and epochs), or the texts."""
    if sample.modality == "text":
        return [str(t) for t in sample.items or []]
    import torch
    from PIL import Image, ImageOps

    items = list(sample.items or [])
    out = []
    for i, path in enumerate(items):
        try:
            with Image.open(path) as im:
                im.load()
                img = ImageOps.exif_transpose(im) or im
        except Exception as e:  # noqa: BLE001 - PIL raises many types
            raise ProbeError(f"Could not decode image {path} ({type(e).__name__}: {e}); fix or remove it.") from None
        x = lb.preprocess(img)
        if i == 0 and x.numel() * 4 * len(items) > _FINETUNE_MAX_BYTES:
            raise ProbeError(f"{len(items)} images at {tuple(x.shape)} need {x.numel() * 4 * len(items) / 2**30:.1f} GiB "
                             "in memory for the fine-tune; lower --max-samples.")
        out.append(x)
    return torch.stack(out)


def _last_block(model: Any) -> tuple[str | None, int]:
    """The last block of the backbone and the index of its first parameter.

    A block is an element of a ``Sequential``/``ModuleList``/``ModuleDict`` holding at least
    :data:`_BLOCK_SHARE` and less than half of the parameters (a wrapper around everything is not a
    block), not nested in another such element; the last is the one whose parameters start latest.
    """
    from torch import nn

    params = list(model.parameters())
    position = {id(p): i for i, p in enumerate(params)}
    total = sum(p.numel() for p in params)
    candidates: dict[str, Any] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        for child_name, child in module.named_children():
            size = sum(p.numel() for p in child.parameters())
            if _BLOCK_SHARE * total <= size < 0.5 * total:
                candidates[f"{name}.{child_name}" if name else child_name] = child
    outermost = {n: m for n, m in candidates.items() if not any(n.startswith(o + ".") for o in candidates)}
    best: tuple[str | None, int] = (None, 0)
    for name, module in outermost.items():
        start = position[id(next(module.parameters()))]
        if best[0] is None or start > best[1]:
            best = (name, start)
    return best


def _unfreeze_tail(model: Any) -> tuple[str | None, int]:
    """Train the last block and every parameter registered after it; freeze the rest."""
    block, start = _last_block(model)
    n = 0
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i >= start)
        n += p.numel() if i >= start else 0
    return block, n


def _train_mode(model: Any, head: Any) -> None:
    """Train mode for the modules being trained only: frozen BatchNorm layers keep their statistics."""
    model.eval()
    for module in model.modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            module.train()
    head.train()


def _forward(lb: Any, inputs: Any, rows: np.ndarray) -> torch.Tensor:
    """Backbone features of ``rows`` with gradients, for the adapter's kind of model."""
    import torch

    if isinstance(inputs, torch.Tensor):
        x = inputs[torch.as_tensor(rows)].to(lb.device)
        return lb.model(pixel_values=x) if lb.record.library == "transformers" else lb.model(x)
    enc = lb.preprocess([inputs[i] for i in rows])
    enc = {k: v.to(lb.device) if hasattr(v, "to") else v for k, v in dict(enc).items()}
    if lb.record.library == "sentence-transformers":
        return lb.model(enc)["sentence_embedding"]
    return lb.model(**enc)


def _predict(lb: Any, inputs: Any, rows: np.ndarray, batch: int = 128) -> np.ndarray:
    import torch

    lb.model.eval()
    lb.head.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            out.append(lb.head(_forward(lb, inputs, rows[i:i + batch])).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
