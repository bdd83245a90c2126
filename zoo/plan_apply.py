"""Applying a transfer plan to a loaded backbone: :func:`apply_plan` freezes it, unfreezes the last N blocks
(found generically by :func:`find_blocks`), injects LoRA adapters through ``peft`` for transformer encoders and
builds ``torch.optim`` parameter groups with the planned, layer-wise decayed learning rates -> :class:`PlannedModel`.

The plan itself is made in :mod:`zoo.plan` (pure rules, no torch); this half needs torch and peft, imported
inside the functions, and is reached as ``zoo.plan.apply_plan`` too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zoo import plan_rules as R
from zoo.errors import UsageError
from zoo.plan import per_block_decay

if TYPE_CHECKING:
    from zoo.backbones import LoadedBackbone
    from zoo.plan import TransferPlan


@dataclass
class Block:
    name: str
    modules: list[Any]  # torch modules making up the block (one for most nets; several for Keras graphs)

    def parameters(self) -> list[Any]:
        seen: dict[int, Any] = {}
        for m in self.modules:
            for p in m.parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())


@dataclass
class PlannedModel:
    """A backbone with its transfer plan applied (``Candidate.load(num_classes=K, plan=True)``): ``model``
    (pooled features, its planned blocks unfrozen: ``unfrozen_blocks``), a new ``head``, ``preprocess`` as in
    ``LoadedBackbone``, ``param_groups`` for ``torch.optim`` with the planned learning rates (:meth:`optimizer`
    builds AdamW over them), the ``trainable_params`` and ``frozen_params`` counts, the ``plan``, ``note``,
    ``device`` and the ``loaded`` backbone it came from."""

    model: Any  # torch.nn.Module | None (frozen non-torch encoders)
    head: Any  # torch.nn.Linear
    preprocess: Any
    param_groups: list[dict[str, Any]]  # for torch.optim: head + backbone groups with the planned lrs
    trainable_params: int
    frozen_params: int
    plan: TransferPlan
    unfrozen_blocks: list[str] = field(default_factory=list)
    note: str = ""
    device: str = "cpu"
    loaded: Any = field(default=None, repr=False)  # the LoadedBackbone it came from

    def optimizer(self) -> Any:
        """``torch.optim.AdamW`` over :attr:`param_groups` (each group carries its lr and weight decay)."""
        import torch

        # Copies: a scheduler writes into its optimizer's groups (initial_lr, lr); a second optimizer made
        # from this plan must start from the planned rates again.
        return torch.optim.AdamW([dict(g) for g in self.param_groups])

    def train(self, mode: bool = True) -> PlannedModel:
        """Train mode for model and head; BatchNorm in frozen blocks (and all of a frozen backbone) stays in eval."""
        if self.model is not None and hasattr(self.model, "train"):
            self.model.train(mode)
        if self.head is not None:
            self.head.train(mode)
        return self

    def eval(self) -> PlannedModel:
        return self.train(False)


def _keras_blocks(model: Any) -> list[Block]:
    """zoo.nets.mini_xception graphs: one block per residual module (the layers feeding each ``Add`` back to
    the module's input); the stem convs before the first module are not a block."""
    specs, order = model.specs, list(model.order)
    adds = [n for n in order if specs[n].kind == "Add"]

    def ancestors(name: str) -> set[str]:
        out, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(specs[n].inbound)
        return out

    blocks, taken = [], set()
    for add in adds:
        branches = [ancestors(i) for i in specs[add].inbound]
        common = set.intersection(*branches) if branches else set()
        in_graph = [c for c in common if c in order]  # the InputLayer is not in model.order
        entry = max(in_graph, key=order.index) if in_graph else None
        before = ancestors(entry) if entry else set()
        names = [n for n in order if n in ancestors(add) and n not in before and n not in taken and n in model.layers]
        taken |= set(names)
        if names:
            blocks.append(Block(f"layers[{names[0]}..{add}]", [model.layers[n] for n in names]))
    return blocks


_CONTAINER_NAMES = ("blocks", "stages", "layers", "layer", "features", "h", "block")


def find_blocks(model: Any) -> list[Block]:
    """The backbone's repeated blocks, input to output: what "unfreeze the last N blocks" counts.

    Found generically, in this order: Keras graphs of ``zoo.nets.mini_xception`` (one block per residual
    module); ``layer1..layerN`` stages (torchvision/timm ResNets, CIFAR ResNets: every residual block of
    every stage); containers named ``blocks`` / ``stages`` / ``layers`` / ``layer`` / ``features`` (timm
    ViT/EfficientNet/ConvNeXt, torchvision MobileNet ``features``, Hugging Face ``encoder.layer``); a
    container whose children are all stages is flattened one level. The candidate holding the most
    parameters wins. ``[]`` when none is found.
    """
    from torch import nn

    if isinstance(getattr(model, "layers", None), nn.ModuleDict) and hasattr(model, "specs") and hasattr(model, "order"):
        return _keras_blocks(model)
    seq_types = (nn.Sequential, nn.ModuleList)
    best: tuple[int, int, list[Block]] | None = None
    for prefix, mod in model.named_modules():
        children = dict(mod.named_children())
        options: list[list[tuple[str, Any]]] = []
        stages = sorted((k for k in children if re.fullmatch(r"layer\d+", k)), key=lambda s: int(s[5:]))
        if len(stages) >= 2 and all(isinstance(children[k], seq_types) for k in stages):
            options.append([(k, children[k]) for k in stages])
        for k in _CONTAINER_NAMES:
            if isinstance(children.get(k), seq_types) and len(children[k]) >= 2:
                options.append([(k, children[k])])
        for containers in options:
            blocks: list[Block] = []
            flatten = len(containers) > 1 or all(isinstance(c, seq_types) and len(c) > 0 for c in containers[0][1])
            for cname, cont in containers:
                for i, child in enumerate(cont):
                    base = f"{prefix}.{cname}.{i}" if prefix else f"{cname}.{i}"
                    if flatten and isinstance(child, seq_types):
                        blocks.extend(Block(f"{base}.{j}", [g]) for j, g in enumerate(child))
                    else:
                        blocks.append(Block(base, [child]))
            n_params = sum(p.numel() for b in blocks for p in b.parameters())
            key = (n_params, -prefix.count("."), blocks)
            if n_params and (best is None or key[:2] > best[:2]):
                best = key
    return best[2] if best else []


def lora_targets(model: Any, preferred: Sequence[str] | None = None) -> list[str]:
    """Names (last component) of the attention projections LoRA attaches to: query/value when the model has
    separate ones (BERT-style ``query``/``value``, MPNet ``q``/``v``, ``q_proj``/``v_proj``), else the fused
    ``qkv`` (timm ViT) or ``c_attn`` (GPT-2). ``[]`` when none is found."""
    from torch import nn

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    options = ([list(preferred)] if preferred else []) + [["query", "value"], ["q", "v"], ["q_proj", "v_proj"],
                                                          ["qkv"], ["c_attn"]]
    for opt in options:
        if all(o in names for o in opt):
            return list(opt)
    return []


def _hf_root(model: Any) -> Any:
    """The Hugging Face ``PreTrainedModel`` inside a wrapper (SentenceTransformer, zoo's pooled encoder)."""
    for _, m in model.named_modules():
        if hasattr(m, "config") and hasattr(m, "base_model_prefix") and hasattr(m, "get_input_embeddings"):
            return m
    return model


def _stay_eval(module: Any, args: Any) -> None:
    # A forward pre-hook: the module runs in inference mode whatever model.train() did, so a frozen
    # BatchNorm keeps its running statistics (Keras does the same for non-trainable BatchNormalization).
    module.training = False


def _freeze_norm_stats(modules: Sequence[Any], *, dropout_too: bool) -> None:
    from torch import nn

    kinds: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm,)
    if dropout_too:
        kinds += (nn.Dropout,)
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, kinds) and not getattr(sub, "_zoo_stay_eval", False):
                sub.register_forward_pre_hook(_stay_eval)
                sub._zoo_stay_eval = True
                sub.training = False


def _split_decay(params: list[Any], weight_decay: float) -> list[tuple[list[Any], float]]:
    """Weight decay on matrices/kernels only, not on biases and norm scales (BERT / HF Trainer practice)."""
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [(g, wd) for g, wd in ((decay, weight_decay), (no_decay, 0.0)) if g]


def apply_plan(loaded: LoadedBackbone, plan: TransferPlan, num_classes: int) -> PlannedModel:
    """Freeze / unfreeze / inject LoRA as ``plan`` says and build the optimizer parameter groups.

    The backbone is modified in place. Returns a :class:`PlannedModel` (also sets ``loaded.head``,
    ``loaded.param_groups`` and ``loaded.plan``). The head is a new ``nn.Linear(feature_dim, num_classes)``
    unless ``loaded`` already has one of that shape.
    """
    import torch

    if not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    device = getattr(loaded, "device", "cpu") or "cpu"
    head = loaded.head
    if head is None or getattr(head, "out_features", None) != num_classes:
        head = torch.nn.Linear(loaded.feature_dim, num_classes).to(device)
    head.requires_grad_(True)
    model = loaded.model
    notes: list[str] = []
    strategy = plan.strategy
    if model is None or not getattr(loaded, "trainable", True) or not hasattr(model, "parameters"):
        if strategy != "linear_probe":
            notes.append(f"{loaded.record.id} cannot be fine-tuned ({loaded.note or 'frozen encoder'}); "
                         "applied as a linear probe.")
        strategy = "linear_probe"
    groups: list[dict[str, Any]] = [{"name": f"head{'' if wd else '.no_decay'}", "params": g, "lr": plan.lr_head,
                                     "weight_decay": wd}
                                    for g, wd in _split_decay(list(head.parameters()), plan.weight_decay)]
    unfrozen: list[str] = []
    resolved = plan
    if model is not None and hasattr(model, "parameters"):
        if getattr(model, "_zoo_plan_applied", False):
            # Frozen-BatchNorm hooks and LoRA layers from the first plan would leak into the second.
            raise UsageError("apply_plan needs a freshly loaded backbone; this one already has a plan applied. "
                             "Load it again (load_backbone / Candidate.load).")
        model.requires_grad_(False)
        blocks = find_blocks(model)
        n = len(blocks)
        if strategy in ("partial_finetune", "full_finetune") and n == 0:
            notes.append("No repeated blocks found in this backbone: every parameter is treated as one block.")
        lora_used = None
        if strategy == "lora":
            lora_groups, lora_used = _apply_lora(model, plan, notes)
            groups += lora_groups
            if not lora_groups:
                strategy = "partial_finetune"  # no attention projections / no peft: fall back, said in notes
        if strategy in ("partial_finetune", "full_finetune"):
            groups += _unfreeze(model, blocks, plan, strategy, unfrozen)
        if strategy == "linear_probe":
            _freeze_norm_stats([model], dropout_too=True)
        else:
            frozen_mods = [m for b in blocks if b.name not in unfrozen for m in b.modules]
            _freeze_norm_stats(frozen_mods, dropout_too=False)
        decay = plan.layer_decay
        if strategy in ("partial_finetune", "full_finetune"):
            decay = per_block_decay(_bottom_ratio(plan, n), n) if n else 1.0
        k = plan.blocks_to_unfreeze
        if strategy == "partial_finetune":
            k = len(unfrozen)
        elif strategy == "full_finetune":
            k = n
        resolved = replace(plan, strategy=strategy, n_blocks=n or plan.n_blocks, blocks_to_unfreeze=k,
                           layer_decay=decay, lora=lora_used if strategy == "lora" else None,
                           notes=[*plan.notes, *notes])
        model.to(device)
        model._zoo_plan_applied = True
    trainable = sum(p.numel() for g in groups for p in g["params"])
    if model is not None and hasattr(model, "parameters"):
        backbone_total = sum(p.numel() for p in model.parameters())
    else:  # ONNX / word vectors: no torch parameters, but the record knows how big the frozen encoder is
        backbone_total = int(loaded.record.params or 0)
    total = backbone_total + sum(p.numel() for p in head.parameters())
    pm = PlannedModel(model=model, head=head, preprocess=loaded.preprocess, param_groups=groups,
                      trainable_params=trainable, frozen_params=total - trainable, plan=resolved,
                      unfrozen_blocks=unfrozen, note=" ".join(notes), device=device, loaded=loaded)
    loaded.head = head
    loaded.param_groups = groups
    loaded.plan = resolved
    return pm


def _bottom_ratio(plan: TransferPlan, n_blocks: int) -> float:
    """The plan's bottom/top lr ratio, recovered from its decay and block count (or the rules' default)."""
    if plan.layer_decay is not None and plan.n_blocks and plan.n_blocks > 1:
        return plan.layer_decay ** (plan.n_blocks - 1)
    return float(R.DEFAULTS["bottom_lr_ratio"])


def _unfreeze(model: Any, blocks: list[Block], plan: TransferPlan, strategy: str, unfrozen: list[str]) -> list[dict[str, Any]]:
    """Unfreeze the last N blocks (all for a full fine-tune) plus the parameters after the last block (final
    norm / conv head), with layer-wise decayed learning rates: top block ``lr_backbone``, each block below
    x ``decay``; the stem (parameters before the first block) gets the lowest rate."""
    n = len(blocks)
    decay = per_block_decay(_bottom_ratio(plan, n), n) if n else 1.0
    block_of: dict[int, int] = {}
    for i, b in enumerate(blocks):
        for p in b.parameters():
            block_of[id(p)] = i
    ordered = list(dict((id(p), p) for p in model.parameters()).values())
    positions = [k for k, p in enumerate(ordered) if id(p) in block_of]
    first, last = (positions[0], positions[-1]) if positions else (len(ordered), -1)
    if strategy == "full_finetune" or n == 0:
        k = n
    else:
        k = plan.blocks_to_unfreeze if plan.blocks_to_unfreeze is not None else round(plan.unfreeze_fraction * n)
        k = max(1, min(n, int(k)))
    lowest = n - k
    groups: list[dict[str, Any]] = []

    def add(name: str, params: list[Any], scale: float) -> None:
        params = [p for p in params if not p.requires_grad]
        for p in params:
            p.requires_grad_(True)
        for g, wd in _split_decay(params, plan.weight_decay):
            groups.append({"name": name + ("" if wd else ".no_decay"), "params": g, "lr": plan.lr_backbone * scale,
                           "weight_decay": wd})

    neck = [p for k2, p in enumerate(ordered) if k2 > last and id(p) not in block_of]
    if n == 0:  # nothing repeated: the whole backbone is one group
        add("backbone", ordered, 1.0)
        return groups
    add("neck", neck, 1.0)
    for i in range(n - 1, lowest - 1, -1):
        add(f"block.{i}:{blocks[i].name}", blocks[i].parameters(), decay ** (n - 1 - i))
        unfrozen.insert(0, blocks[i].name)
    if strategy == "full_finetune":
        stem = [p for k2, p in enumerate(ordered) if id(p) not in block_of and k2 < first]
        mid = [p for k2, p in enumerate(ordered) if id(p) not in block_of and first <= k2 <= last]
        add("stem", stem + mid, decay ** n)
    return groups


def _apply_lora(model: Any, plan: TransferPlan, notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Inject LoRA adapters (peft) into the attention projections; only the adapters train."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        notes.append("peft is not installed (`pip install peft`): fine-tuning the top blocks instead of LoRA.")
        return [], None
    lora = plan.lora or {"rank": R.DEFAULTS["lora_rank"], "alpha": R.DEFAULTS["lora_alpha"],
                         "dropout": R.DEFAULTS["lora_dropout"], "target_modules": None}
    targets = lora_targets(model, lora.get("target_modules"))
    if not targets:
        notes.append("No attention projections (query/value, q/v, qkv) found for LoRA: fine-tuning the top blocks instead.")
        return [], None
    root = _hf_root(model)
    cfg = LoraConfig(r=int(lora["rank"]), lora_alpha=int(lora["alpha"]), lora_dropout=float(lora["dropout"]),
                     target_modules=targets, bias="none")
    inject_adapter_in_model(cfg, root)
    model.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    used = {**lora, "target_modules": targets}
    groups = [{"name": "lora" + ("" if wd else ".no_decay"), "params": g, "lr": plan.lr_backbone, "weight_decay": wd}
              for g, wd in _split_decay(params, plan.weight_decay)]
    return groups, used
