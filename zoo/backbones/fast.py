"""Fast inference for torch image backbones: an inference copy with BatchNorm folded into the convs and
the channels_last layout (:class:`_Runner`), and :func:`_torch_backbone`, which wraps a torch image model
and its source head into a :class:`~zoo.backbones.core.LoadedBackbone` that extracts through it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.backbones.core import LoadedBackbone
from zoo.backbones.preprocess import _as_batch
from zoo.record import ModelRecord

# ---------------------------------------------------------------------------------------- fast inference
#
# Feature extraction only ever runs the network in eval mode, so it runs an inference copy of conv nets:
# every BatchNorm folded into the convolution whose output it normalises, and the channels_last memory
# layout (oneDNN's fast path for depthwise and 1x1 convs on CPU). Measured on the offline zoo
# (benchmarks/bench_features.py, 1 thread): MobileNetV2 ~2-3x, EfficientNet-Lite ~2x, mini-Xception ~2.5x
# the eager NCHW model, with features equal to ~1e-5. The copy is checked against the model on the first
# real batch and dropped (eager model used) if they disagree; it is rebuilt when the model's weights
# change (fine-tuning), so LoadedBackbone.model itself stays an ordinary trainable module.

_FOLD_RTOL = 1e-3  # folded vs eager outputs must agree to this fraction of the output's magnitude
# On the CPU a forward pass gets at most this many input elements (16 images at 3x224x224 = 2.4M): larger
# batches only grow the activations past the caches. Measured at 1 thread (bench_features.py): MobileNetV2
# 26 images/s at batch 16 vs 18 at 64, EfficientNet-Lite2 6.0 vs 5.2; 32x32 and 64x64 nets are flat from 16 up.
_CPU_FORWARD_ELEMENTS = 1 << 21


def _fold_batchnorm(model: Any, probe: Any) -> int:
    """Fold, in place, each eval-mode BatchNorm2d into the Conv2d whose output tensor it reads directly
    (found by running ``probe`` with forward hooks, so any module structure works); the BatchNorm is
    replaced by its activation (timm's BatchNormAct2d) or removed. Returns how many were folded."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    produced: dict[int, Any] = {}  # id(output tensor) -> conv that produced it
    calls: dict[int, int] = {}
    keep: list[Any] = []  # hold the outputs so their ids stay unique during the probe
    pairs: list[tuple[Any, Any]] = []

    def conv_hook(m: Any, _inp: Any, out: Any) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        produced[id(out)] = m
        keep.append(out)

    def bn_hook(m: Any, inp: Any, _out: Any) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        conv = produced.get(id(inp[0]))
        if conv is not None:
            pairs.append((conv, m))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d) and (type(m) is nn.BatchNorm2d or type(m).__name__ == "BatchNormAct2d"):
            handles.append(m.register_forward_hook(bn_hook))
    try:
        model(probe)
    finally:
        for h in handles:
            h.remove()
    replace: dict[int, Any] = {}
    for conv, bn in pairs:
        # a module called twice (shared) or a BN without running statistics cannot be folded safely
        if calls[id(conv)] != 1 or calls[id(bn)] != 1 or bn.running_mean is None or bn.running_var is None:
            continue
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight, conv.bias = w, b
        replace[id(bn)] = nn.Identity() if type(bn) is nn.BatchNorm2d else nn.Sequential(bn.drop, bn.act)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in replace:
                setattr(parent, name, replace[id(child)])
    keep.clear()
    torch.nn.Module.requires_grad_(model, False)
    return len(replace)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    scale = max(1.0, float(b.abs().max()))
    return bool(float((a - b).abs().max()) <= _FOLD_RTOL * scale)


class _Runner:
    """Runs a torch image backbone for extraction: ``runner(x, logits) -> (features, logits | None)``.

    ``forward(model, x, logits)`` is the adapter's one-pass function (features, and the source logits
    when asked). The first call builds the inference copy (see above) and checks it on that batch.
    """

    def __init__(self, model: Any, forward: Callable[[Any, Any, bool], tuple[Any, Any]]):
        self.model = model
        self.forward = forward
        self._copy: Any = None
        self._channels_last = False
        self._stamp: tuple | None = None
        self.optimization = ""  # what the copy does, for notes and benchmarks

    def _fingerprint(self) -> tuple:
        import itertools

        # In-place updates (optimizer steps, load_state_dict, BN statistics) bump a tensor's _version;
        # replaced tensors change id: either way the copy is stale.
        return tuple((id(t), t._version) for t in itertools.chain(self.model.parameters(), self.model.buffers()))

    def _build(self, x: Any) -> None:
        import copy

        import torch
        from torch import nn

        self._copy, self._channels_last, self.optimization = None, False, "eager"
        convs = sum(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if x.dim() != 4 or convs < 4:  # transformers and tiny nets: nothing to gain, no copy
            return
        probe = x[:2]
        try:
            with torch.inference_mode(False), torch.no_grad():
                fast = copy.deepcopy(self.model).eval()
                folded = _fold_batchnorm(fast, probe.clone())
                fast = fast.to(memory_format=torch.channels_last)
            with torch.inference_mode():
                want = self.forward(self.model, probe, True)
                got = self.forward(fast, probe.contiguous(memory_format=torch.channels_last), True)
        except Exception as e:  # noqa: BLE001 - an optimisation must never break extraction
            self.optimization = f"eager (no inference copy: {type(e).__name__})"
            return
        if _close(got[0], want[0]) and _close(got[1], want[1]):
            self._copy, self._channels_last = fast, True
            self.optimization = f"inference copy: {folded} BatchNorm folded, channels_last"
        else:
            self.optimization = "eager (the folded copy disagreed with the model)"

    def __call__(self, x: Any, logits: bool) -> tuple[Any, Any]:
        stamp = self._fingerprint()
        if stamp != self._stamp:
            self._build(x)
            self._stamp = stamp
        step = len(x)
        if x.device.type == "cpu" and x.dim() == 4:
            step = max(1, min(step, _CPU_FORWARD_ELEMENTS // max(1, x[0].numel())))
        if step >= len(x):
            return self._one(x, logits)
        import torch

        parts = [self._one(x[i:i + step], logits) for i in range(0, len(x), step)]
        return (torch.cat([f for f, _ in parts]),
                torch.cat([lg for _, lg in parts]) if logits and parts[0][1] is not None else None)

    def _one(self, x: Any, logits: bool) -> tuple[Any, Any]:
        if self._copy is None:
            return self.forward(self.model, x, logits)
        import torch

        return self.forward(self._copy, x.contiguous(memory_format=torch.channels_last), logits)


def _linear_head_forward(head: Any) -> Callable[[Any, Any, bool], tuple[Any, Any]]:
    """One pass for a backbone whose classifier reads its pooled output: logits = head(features)."""

    def forward(model: Any, x: Any, logits: bool) -> tuple[Any, Any]:
        f = model(x)
        return f, (head(f) if logits and head is not None else None)

    return forward


def _image_fns(model: Any, device: str, preprocess: Callable,
               forward: Callable[[Any, Any, bool], tuple[Any, Any]]) -> tuple[Callable, Callable, _Runner]:
    """The features function and the (features, logits) function of a torch image backbone."""
    import torch

    runner = _Runner(model, forward)

    def prepare(batch: Any) -> Any:
        return _as_batch(batch, preprocess).to(device, dtype=torch.float32)

    def features(batch: Any) -> np.ndarray:
        return runner(prepare(batch), False)[0].float().cpu().numpy()

    def with_logits(batch: Any) -> tuple[np.ndarray, np.ndarray]:
        f, lg = runner(prepare(batch), True)
        return f.float().cpu().numpy(), lg.float().cpu().numpy()

    return features, with_logits, runner


def _torch_backbone(record: ModelRecord, model: Any, device: str, feature_dim: int, preprocess: Callable,
                    note: str = "", *, source_head: Any = None, forward: Callable | None = None,
                    source_labels: Sequence[str] | None = None, no_source_head: str = "") -> LoadedBackbone:
    """A torch image backbone; ``source_head`` (logits from the features, or from what ``forward`` feeds
    it) is the checkpoint's own classifier when it has one."""
    model = model.to(device).eval()
    if source_head is not None:
        source_head = source_head.to(device).eval().requires_grad_(False)
    on_features = forward is None
    features_fn, source_fn, runner = _image_fns(model, device, preprocess, forward or _linear_head_forward(source_head))
    classes = _out_features(source_head) if source_head is not None else None
    labels = list(source_labels) if source_labels is not None and classes == len(source_labels) else None
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=feature_dim,
                          trainable=True, note=note, source_classes=classes, source_labels=labels,
                          source_head=source_head, source_head_on_features=on_features,
                          no_source_head="" if source_head is not None else no_source_head,
                          _features_fn=features_fn, _source_fn=source_fn if source_head is not None else None,
                          _runner=runner)


def _out_features(head: Any) -> int:
    """Number of classes a classifier module outputs (its last Linear/Conv2d)."""
    from torch import nn

    if getattr(head, "num_classes", 0):
        return int(head.num_classes)
    last = [m for m in head.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)

