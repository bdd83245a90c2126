"""The backbone result type and the adapter registry: :class:`LoadedBackbone`, :func:`register_adapter`,
:func:`load_backbone` (dispatch on ``record.library``, then the head, device and requires_grad flags), and
zoo's cache folder. Adapters live one library family per module beside this one."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.record import ModelRecord


class NoAdapter(ZooError):
    """No adapter is registered for a record's ``library``."""


@dataclass
class LoadedBackbone:
    """A pre-trained backbone ready to fine-tune or to extract features, with its own preprocessing
    (what :func:`load_backbone` and ``Candidate.load()`` return).

    Fields:

    - ``record``: the :class:`~zoo.record.ModelRecord` it was loaded from (id, input size, license, ...).
    - ``model``: the backbone as a ``torch.nn.Module`` in eval mode on ``device``, its classifier removed: it
      returns **pooled features** ``(N, feature_dim)``, never logits. How to call it depends on the library:
      images (timm, torchvision, zoo's nets, open_clip) ``model(x)`` with ``x`` a float tensor
      ``(N, C, H, W)`` stacked from ``preprocess`` outputs; transformers images ``model(pixel_values=x)``;
      transformers text ``model(**preprocess(texts))``; open_clip text ``model(preprocess(texts))``;
      sentence-transformers ``model(preprocess(texts))["sentence_embedding"]``. ``None`` for encoders that are not torch modules
      (ONNX, averaged word vectors): use :meth:`features` and train only the head.
    - ``head``: a new ``torch.nn.Linear(feature_dim, num_classes)`` on ``device`` when ``num_classes`` was
      given, else None. It maps the pooled features to your classes' logits.
    - ``preprocess``: the model's own input pipeline. Images: one ``PIL.Image`` (or an HxW[xC] uint8 array)
      -> a float tensor ``(C, H, W)`` at the model's input size, normalised with its mean and std
      (``torch.stack`` a list of them for a batch). Text: a list of strings -> the model's inputs (a dict of
      tensors: token ids, attention mask; NumPy arrays for ONNX; token ids for word vectors).
    - ``feature_dim``: the width of the pooled features (the head's input size).
    - ``trainable``: whether ``model``'s weights can be fine-tuned (``requires_grad`` is set to match);
      False for ONNX and word vectors.
    - ``note``: what to know about this backbone, in words (pooling, a default tower, a frozen encoder).
    - ``param_groups``, ``plan``: set by ``Candidate.load(plan=True)`` (``zoo.plan.apply_plan``).
    - ``device``: where ``model`` and ``head`` live ("cpu", "cuda").
    - ``modality``: the data it reads, "image" or "text" (for a vision-language record, the tower loaded).
    - ``source_classes``, ``source_labels``, ``source_head``, ``source_head_on_features``, ``no_source_head``:
      the pre-training classifier kept for LEEP/NCE (:mod:`zoo.source_heads`), or why there is none.
    - ``layers``: what :meth:`features` returns for a transformer text encoder (:mod:`zoo.backbones.layers`):
      None, the model's own pooled output (what ``model`` returns; the default of ``load_backbone``), or the
      layer numbers whose mask-mean-pooled hidden states it averages (``load_backbone(..., layers="all")``,
      which ``Candidate.load()`` passes for the layers zoo scored); ``layers_text`` says it in words.

    :meth:`features` runs a batch under ``torch.inference_mode`` and returns NumPy features; for training,
    call ``model`` (then ``head``) yourself, as in the README's fine-tuning step. With ``layers`` set,
    ``model`` still returns the pooled output: :meth:`features` is what zoo scored, ``model`` what fine-tunes.
    """

    record: ModelRecord
    model: Any  # torch.nn.Module | None: the backbone (penultimate features); None for non-torch encoders
    head: Any  # torch.nn.Module | None: a new trainable head when num_classes was given
    preprocess: Callable
    feature_dim: int
    trainable: bool
    note: str = ""
    param_groups: list[dict] | None = None
    plan: object | None = None
    device: str = "cpu"
    # The data this backbone reads: the record's modality, or for a vision-language (multimodal) record the
    # tower that was loaded ("image" or "text").
    modality: str = ""
    # The pre-training classifier, kept for LEEP/NCE (zoo.source_heads). source_classes is None when the
    # weights carry no classifier, and no_source_head then says why.
    source_classes: int | None = None
    source_labels: list[str] | None = None
    # torch module -> logits: reads the penultimate features, or for the Keras face models the feature
    # map before pooling (source_head_on_features False); None without a head.
    source_head: Any = field(default=None, repr=False)
    source_head_on_features: bool = True
    no_source_head: str = ""
    # The transformer layers features() averages (1-based, the embedding output not counted); None: model's output.
    layers: tuple[int, ...] | None = None
    _features_fn: Callable | None = field(default=None, repr=False)
    _source_fn: Callable | None = field(default=None, repr=False)  # batch -> (features, logits), one pass
    _runner: Any = field(default=None, repr=False)  # torch image backbones: the inference-copy runner

    @property
    def inference(self) -> str:
        """How feature passes run: the inference copy's optimisations, "eager", or "" before the first pass."""
        return self._runner.optimization if self._runner is not None else ""

    def __repr__(self) -> str:
        head = f", head={self.head.in_features}->{self.head.out_features}" if self.head is not None else ""
        src = f", source_classes={self.source_classes}" if self.source_classes is not None else ""
        lay = f", layers={self.layers_text!r}" if self.layers else ""
        return (f"LoadedBackbone({self.record.id!r}, library={self.record.library!r}, feature_dim={self.feature_dim}, "
                f"trainable={self.trainable}, device={self.device!r}{head}{src}{lay})")

    @property
    def layers_text(self) -> str:
        """What :meth:`features` returns, in words: "mean of layers 1-6", or the model's own pooled output."""
        from zoo.backbones.layers import describe

        return describe(self.layers)

    @property
    def has_source_head(self) -> bool:
        return self.source_classes is not None and self._source_fn is not None

    def features(self, batch: Any, *, batch_size: int = 64) -> np.ndarray:
        """Penultimate features ``(n, feature_dim)`` float32 for preprocessed images or raw texts.

        Images that were not preprocessed yet (PIL images, arrays) are passed through ``preprocess``.
        """
        if self._features_fn is None:
            raise ZooError(f"{self.record.id}: this backbone has no feature function")
        return self._batched(batch, batch_size, self._features_fn)

    def features_and_source_probs(self, batch: Any, *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features ``(n, feature_dim)`` and the source head's softmax ``(n, source_classes)``,
        both float32 and from the same forward pass. Raises :class:`~zoo.source_heads.NoSourceHead`
        (with the reason) when the weights carry no classifier."""
        from zoo.source_heads import NoSourceHead, softmax

        if not self.has_source_head:
            raise NoSourceHead(self.no_source_head or f"{self.record.id} has no source classification head")
        feats, logits = self._batched(batch, batch_size, self._source_fn, pair=True)
        return feats, softmax(logits)

    def source_probs_from_features(self, features: np.ndarray) -> np.ndarray | None:
        """The source head's softmax computed from already-extracted penultimate features (no forward
        pass through the backbone), or None when the head does not read pooled features (Keras face
        models) or there is no head."""
        if not self.has_source_head or not self.source_head_on_features:
            return None
        import torch

        from zoo.source_heads import softmax

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
            logits = self.source_head(x).float().cpu().numpy()
        return softmax(logits)

    def _batched(self, batch: Any, batch_size: int, fn: Callable, *, pair: bool = False) -> Any:
        items = batch
        if isinstance(items, str):
            items = [items]
        elif getattr(items, "ndim", None) == 3 and hasattr(items, "unsqueeze"):  # one preprocessed image
            items = items.unsqueeze(0)
        n = len(items)
        if n == 0:
            empty = np.zeros((0, self.feature_dim), dtype=np.float32)
            return (empty, np.zeros((0, self.source_classes or 0), dtype=np.float32)) if pair else empty
        training = bool(self.model is not None and getattr(self.model, "training", False))
        if training:
            self.model.eval()
        if self.model is not None:
            import torch

            ctx = torch.inference_mode()
        else:  # ONNX / word vectors: no torch involved
            ctx = contextlib.nullcontext()
        try:
            with ctx:
                outs = [fn(items[i:i + batch_size]) for i in range(0, n, batch_size)]
        finally:
            if training:
                self.model.train()
        if pair:
            return (np.concatenate([np.asarray(f, dtype=np.float32) for f, _ in outs], axis=0),
                    np.concatenate([np.asarray(lg, dtype=np.float32) for _, lg in outs], axis=0))
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outs], axis=0)


# ---------------------------------------------------------------------------------------- registry

_ADAPTERS: dict[str, Callable[..., LoadedBackbone]] = {}


def register_adapter(*names: str) -> Callable:
    """Decorator: register ``fn(record, *, device) -> LoadedBackbone`` under one or more library names.

    ``load_backbone`` adds the head, the device and the requires_grad flags; an adapter only loads
    the weights and sets ``model``, ``preprocess``, ``feature_dim``, ``trainable``, ``note`` and the
    feature function. An adapter that loads one tower of a vision-language model declares a keyword
    ``modality`` (``fn(record, *, device, modality)``): ``load_backbone`` then passes the data modality it
    resolved ("image" or "text" for a multimodal record, else the record's own); others never get it. An
    adapter whose models have transformer layers declares ``layers`` and gets the request when one is made
    (:mod:`zoo.backbones.layers`; it sets ``LoadedBackbone.layers`` to what ``features`` averages).
    """

    def deco(fn: Callable[..., LoadedBackbone]) -> Callable[..., LoadedBackbone]:
        for name in names:
            _ADAPTERS[name] = fn
        return fn

    return deco


def adapter_names() -> list[str]:
    return sorted(_ADAPTERS)


def load_backbone(record: ModelRecord, *, num_classes: int | None = None, device: str = "auto",
                  fetch: Any = None, modality: str | None = None, layers: Any = None) -> LoadedBackbone:
    """Load ``record``'s weights as a backbone (+ a new ``nn.Linear(feature_dim, num_classes)`` head).

    ``layers`` is what :meth:`LoadedBackbone.features` returns for a transformer text encoder
    (:mod:`zoo.backbones.layers`): None (the default) the model's own pooled output, ``"all"`` the mean over
    every transformer layer of the mask-mean-pooled hidden states (what zoo scores, see
    :func:`zoo.backbones.layers.scoring_layers`), or a list of layer numbers. ``"all"`` on a model without
    layers zoo reads (ONNX, word vectors, images, a vision-language tower) leaves its own output
    (``LoadedBackbone.layers`` None); a list of layer numbers there is a ``UsageError``.

    ``modality`` is the data the backbone will read. It picks the tower of a vision-language
    (``multimodal``) record: ``"image"`` (the default when it is None; ``note`` says so) or ``"text"``; for
    any other record it may only repeat the record's modality. Which data a record can read is
    :func:`zoo.loadable.served_modalities`; ``LoadedBackbone.modality`` says what was loaded.

    Weights that are not on this machine are fetched from the Hub first (:mod:`zoo.fetching`): under
    ``fetch`` (a ``FetchPolicy``, or ``False`` to keep to what is on disk), else the command's current
    policy, which fetches when the Hub is reachable and ``HF_HUB_OFFLINE`` is not set."""
    from zoo.fetching import ensure

    lib = record.library
    if lib not in _ADAPTERS:
        raise NoAdapter(
            f"No backbone adapter for library {lib!r} (model {record.id}). "
            f"Known libraries: {', '.join(adapter_names())}. "
            "Pick a model whose library is one of these, or register one with zoo.backbones.register_adapter."
        )
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ZooError(f"num_classes must be a positive integer, got {num_classes!r}")
    tower, default_note = _data_modality(record, modality)
    ensure(record, fetch)
    from zoo.backbones.layers import ALL, check_spec

    spec = check_spec(layers)
    dev = _device(device)
    adapter = _ADAPTERS[lib]
    params = inspect.signature(adapter).parameters
    kw: dict[str, Any] = {}
    if spec is not None and "layers" in params:
        kw["layers"] = spec
    elif spec not in (None, ALL):
        raise UsageError(f"{record.id} ({lib}) has no transformer layers zoo can read; load it without layers.")
    if "modality" in params:
        lb = adapter(record, device=dev, modality=tower, **kw)
    elif tower != record.modality:
        raise NoAdapter(f"The {lib} adapter loads {record.modality} models only; {record.id} cannot read {tower} data.")
    else:
        lb = adapter(record, device=dev, **kw)
    lb.device = dev
    lb.modality = tower
    if default_note:
        lb.note = (lb.note + " " if lb.note else "") + default_note
    if not lb.has_source_head:
        from zoo.source_heads import source_head_status

        lb.source_classes, lb.source_head, lb._source_fn = None, None, None
        lb.no_source_head = (lb.no_source_head or source_head_status(record).reason
                             or f"{record.id} has no source classification head; LEEP and NCE do not apply")
    if record.feature_dim is not None and record.feature_dim != lb.feature_dim:
        lb.note = (lb.note + " " if lb.note else "") + (
            f"The record says feature_dim {record.feature_dim}, the loaded model gives {lb.feature_dim}.")
    if lb.model is not None and hasattr(lb.model, "requires_grad_"):
        lb.model.requires_grad_(lb.trainable)
    if num_classes is not None:
        import torch

        lb.head = torch.nn.Linear(lb.feature_dim, num_classes).to(dev)
    return lb


def _data_modality(record: ModelRecord, modality: str | None) -> tuple[str, str]:
    """The data modality ``record`` is loaded for (its tower, for a vision-language record) and, when that was
    a default rather than asked for, a sentence saying so."""
    from zoo.loadable import TOWERS, loadable_reason, served_modalities

    if record.modality != "multimodal":
        if modality not in (None, record.modality):
            raise UsageError(f"{record.id} is a {record.modality} model; it cannot be loaded for {modality} data. "
                             f"Pick a {modality} model (`zoo search --modality {modality}`).")
        return record.modality, ""
    towers = [m for m in served_modalities(record) if m in TOWERS]
    if not towers:
        raise UsageError(loadable_reason(record) or f"{record.id}: zoo cannot load a tower of this multimodal model.")
    if modality is None:
        tower = "image" if "image" in towers else towers[0]
        return tower, (f"Loaded the {tower} tower of this vision-language model (the default); "
                       f"pass modality={'text' if tower == 'image' else 'image'!r} for the other tower.")
    if modality not in towers:
        raise UsageError(f"{record.id} is a vision-language model with {' and '.join(towers)} towers; it cannot read "
                         f"{modality} data.")
    return modality, ""


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cache_dir() -> Path:
    """zoo's cache folder: ``ZOO_CACHE_DIR`` or ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"

