"""Keras 2.0 face models (oarriaga/face_classification mini-/big-Xception) rebuilt in torch.

The HDF5 files are Keras full-model saves: the layer graph is a JSON string in the file's
``model_config`` attribute and the arrays live under ``model_weights/<layer>/<...>/<name>:0``. This
module reads both with h5py (nothing is executed, no TensorFlow) and builds an equivalent torch
graph, one module per Keras layer, so every variant in the shared folder loads from its own config:

- 64x64 mini-Xception (FER-2013, KDEF, IMDB gender): conv8 -> conv8 -> four separable residual
  modules (16/32/64/128 channels, each ``sep-BN-ReLU-sep-BN-maxpool`` plus a 1x1 stride-2 conv+BN
  shortcut, added with no ReLU after the add) -> 3x3 class conv (with bias) -> global average
  pooling -> softmax;
- the 48x48 epoch-119 checkpoint (5 filters in the first conv, no max-pool in the last module);
- the 64x64 big-Xception (stride-2 32/64 stem, two modules of 128 and 256 channels).

Conversions: Conv2D kernels HWIO -> OIHW; SeparableConv2D = depthwise conv (``depthwise_kernel``
(kh, kw, C, M) -> (C*M, 1, kh, kw), groups=C) followed by a 1x1 pointwise conv (``pointwise_kernel``
(1, 1, C*M, O) -> (O, C*M, 1, 1)); BatchNormalization with the layer's epsilon (1e-3); "same"
padding reproduced exactly as TensorFlow does it (asymmetric, the extra pixel at the bottom/right;
``-inf`` for max-pooling); inputs are NCHW.

Penultimate features: the globally average-pooled input of the final class conv (the last
module's 128-channel output for mini-Xception, 256 for big-Xception), i.e. what the classifier
conv reads, pooled the way the model pools.

Source head: the class conv has "same" padding, so the logits are NOT a linear map of the pooled
features (border pixels see zero padding). :func:`load_keras_h5_with_head` therefore keeps the
class conv as a :class:`KerasClassHead` that reads the feature map (``forward_map``); features and
logits come from one pass over the network.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KerasClassHead", "KerasGraphNet", "LayerSpec", "load_keras_h5", "load_keras_h5_with_head",
           "read_keras_config"]

_SUPPORTED = {
    "InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation", "MaxPooling2D",
    "AveragePooling2D", "Add", "GlobalAveragePooling2D",
}
_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "softmax": lambda x: torch.softmax(x, dim=1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


@dataclass
class LayerSpec:
    name: str
    kind: str
    inbound: list[str]
    config: dict[str, Any] = field(default_factory=dict)


def _tf_same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """Pad NCHW ``x`` as TensorFlow's padding='SAME' does (extra pixel after, not before)."""
    pads = []
    for size, k, s in zip(x.shape[-2:], kernel, stride, strict=True):
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def read_keras_config(path: str | Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError(f"{path}: no 'model_config' attribute; not a Keras full-model HDF5 save")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)


def _layer_specs(config: dict[str, Any]) -> tuple[list[LayerSpec], str, str]:
    if config.get("class_name") not in ("Model", "Functional"):
        raise ValueError(f"unsupported Keras model class {config.get('class_name')!r} (need a functional Model)")
    cfg = config["config"]
    specs = []
    for layer in cfg["layers"]:
        kind = layer["class_name"]
        if kind not in _SUPPORTED:
            raise ValueError(f"Keras layer {layer['name']!r} of type {kind} is not supported by zoo.nets.mini_xception")
        lc = layer.get("config", {})
        if lc.get("data_format", "channels_last") != "channels_last":
            raise ValueError(f"layer {layer['name']!r}: only channels_last Keras models are supported")
        if tuple(lc.get("dilation_rate", (1, 1))) != (1, 1):
            raise ValueError(f"layer {layer['name']!r}: dilated convolutions are not supported")
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"layer {layer['name']!r} is shared (called {len(nodes)} times); not supported")
        inbound = [n[0] for n in nodes[0]] if nodes else []
        specs.append(LayerSpec(layer["name"], kind, inbound, lc))
    (inp,) = [n[0] for n in cfg["input_layers"]]
    (out,) = [n[0] for n in cfg["output_layers"]]
    return specs, inp, out


def _read_weights(h5: Any, layer: str) -> dict[str, np.ndarray]:
    """``{'kernel': array, 'bias': ...}`` for one layer, found through its ``weight_names`` attribute."""
    group = h5["model_weights"][layer] if "model_weights" in h5 else h5[layer]
    out = {}
    for wname in group.attrs.get("weight_names", []):
        wname = wname.decode() if isinstance(wname, bytes) else str(wname)
        key = wname.rsplit("/", 1)[-1].split(":", 1)[0]
        out[key] = np.asarray(group[wname], dtype=np.float32)
    return out


def _run_layer(spec: LayerSpec, xs: list[torch.Tensor], layers: nn.ModuleDict) -> torch.Tensor:
    """Evaluate one Keras layer on its inputs (NCHW), with the torch modules built for it in ``layers``."""
    c, kind = spec.config, spec.kind
    if kind in ("Conv2D", "SeparableConv2D"):
        x = xs[0]
        if c.get("padding", "valid") == "same":
            x = _tf_same_pad(x, tuple(c["kernel_size"]), tuple(c["strides"]))
        return _ACTIVATIONS[c.get("activation", "linear")](layers[spec.name](x))
    if kind == "BatchNormalization":
        return layers[spec.name](xs[0])
    if kind == "Activation":
        return _ACTIVATIONS[c["activation"]](xs[0])
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        k, s = tuple(c["pool_size"]), tuple(c.get("strides") or c["pool_size"])
        x = xs[0]
        if kind == "MaxPooling2D":
            if c.get("padding", "valid") == "same":
                x = _tf_same_pad(x, k, s, value=float("-inf"))
            return F.max_pool2d(x, k, s)
        if c.get("padding", "valid") == "same":  # TF excludes padding from the average
            ones = _tf_same_pad(torch.ones_like(x[:, :1]), k, s)
            return F.avg_pool2d(_tf_same_pad(x, k, s), k, s) / F.avg_pool2d(ones, k, s)
        return F.avg_pool2d(x, k, s)
    if kind == "Add":
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out
    if kind == "GlobalAveragePooling2D":
        return xs[0].mean(dim=(2, 3))
    raise AssertionError(kind)


class KerasGraphNet(nn.Module):
    """A Keras functional graph of conv/BN/pool/add layers, evaluated layer by layer in torch.

    ``include_top=True``: ``forward`` returns the Keras model's own output (softmax probabilities).
    ``include_top=False``: the class conv and everything after it are dropped and ``forward``
    returns the globally average-pooled penultimate map, shape ``(N, num_features)``.
    """

    def __init__(self, specs: list[LayerSpec], input_name: str, output_name: str, *, include_top: bool = True):
        super().__init__()
        self.specs = {s.name: s for s in specs}
        self.input_name = input_name
        self.layers = nn.ModuleDict()
        self.feature_name = self._find_feature_node(output_name)
        self.include_top = include_top
        self.output_name = output_name if include_top else self.feature_name
        self.order = self._ancestors_in_order(specs, self.output_name)
        self.num_classes = 0
        self.num_features = 0

    # -------------------------------------------------------------- graph helpers
    def _find_feature_node(self, output: str) -> str:
        """Walk back from the output over activations and global pooling to the class conv; return its input."""
        name = output
        while self.specs[name].kind in ("Activation", "GlobalAveragePooling2D"):
            (name,) = self.specs[name].inbound
        if self.specs[name].kind != "Conv2D":
            raise ValueError(f"expected a class conv before global pooling, found {self.specs[name].kind} {name!r}")
        (feat,) = self.specs[name].inbound
        return feat

    def _ancestors_in_order(self, specs: list[LayerSpec], target: str) -> list[str]:
        needed, stack = set(), [target]
        while stack:
            n = stack.pop()
            if n not in needed:
                needed.add(n)
                stack.extend(self.specs[n].inbound)
        return [s.name for s in specs if s.name in needed and s.kind != "InputLayer"]

    # -------------------------------------------------------------- building
    def build_modules(self, weights: dict[str, dict[str, np.ndarray]]) -> None:
        for name in self.order:
            spec, w = self.specs[name], weights.get(name, {})
            c = spec.config
            if spec.kind == "Conv2D":
                k = w["kernel"]  # (kh, kw, in, out)
                if k.shape[3] != c["filters"]:
                    raise ValueError(f"{name}: kernel has {k.shape[3]} filters, config says {c['filters']}")
                conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], stride=tuple(c["strides"]), bias="bias" in w)
                conv.weight.data.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
                if "bias" in w:
                    conv.bias.data.copy_(torch.from_numpy(w["bias"]))
                self.layers[name] = conv
            elif spec.kind == "SeparableConv2D":
                dk, pk = w["depthwise_kernel"], w["pointwise_kernel"]  # (kh, kw, C, M), (1, 1, C*M, O)
                kh, kw, ch, mult = dk.shape
                dw = nn.Conv2d(ch, ch * mult, (kh, kw), stride=tuple(c["strides"]), groups=ch, bias=False)
                dw.weight.data.copy_(torch.from_numpy(dk.transpose(2, 3, 0, 1).reshape(ch * mult, 1, kh, kw).copy()))
                pw = nn.Conv2d(ch * mult, pk.shape[3], 1, bias="bias" in w)
                pw.weight.data.copy_(torch.from_numpy(pk.transpose(3, 2, 0, 1).copy()))
                if "bias" in w:
                    pw.bias.data.copy_(torch.from_numpy(w["bias"]))
                self.layers[name] = nn.Sequential(dw, pw)
            elif spec.kind == "BatchNormalization":
                if c.get("axis", -1) not in (-1, 3):
                    raise ValueError(f"{name}: BatchNormalization over axis {c.get('axis')} is not supported")
                n = w["moving_mean"].shape[0]
                bn = nn.BatchNorm2d(n, eps=float(c.get("epsilon", 1e-3)), momentum=1.0 - float(c.get("momentum", 0.99)))
                bn.weight.data.copy_(torch.from_numpy(w["gamma"]) if "gamma" in w else torch.ones(n))
                bn.bias.data.copy_(torch.from_numpy(w["beta"]) if "beta" in w else torch.zeros(n))
                bn.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
                bn.running_var.copy_(torch.from_numpy(w["moving_variance"]))
                self.layers[name] = bn
        feat_channels = self._channels(self.feature_name)
        self.num_features = feat_channels
        if self.include_top:
            cls = next(n for n in reversed(self.order) if self.specs[n].kind == "Conv2D")
            self.num_classes = self.layers[cls].out_channels

    def _channels(self, name: str) -> int:
        spec = self.specs[name]
        if name in self.layers:
            m = self.layers[name]
            if isinstance(m, nn.Sequential):
                return m[-1].out_channels
            return m.out_channels if isinstance(m, nn.Conv2d) else m.num_features
        if spec.kind == "InputLayer":
            return int(spec.config["batch_input_shape"][-1])
        return self._channels(spec.inbound[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` from the Keras input layer."""
        _, h, w, ch = self.specs[self.input_name].config["batch_input_shape"]
        return int(ch), int(h), int(w)

    # -------------------------------------------------------------- forward
    def _run_layer(self, spec: LayerSpec, xs: list[torch.Tensor]) -> torch.Tensor:
        return _run_layer(spec, xs, self.layers)

    def forward_to(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The output of layer ``name`` (NCHW for maps) for input ``x``: for checks against Keras/NumPy."""
        vals = {self.input_name: x}
        for n in self._ancestors_in_order(list(self.specs.values()), name):
            spec = self.specs[n]
            vals[n] = self._run_layer(spec, [vals[i] for i in spec.inbound])
        return vals[name]

    def _forward_output(self, x: torch.Tensor) -> torch.Tensor:
        vals = {self.input_name: x}
        for n in self.order:
            spec = self.specs[n]
            vals[n] = self._run_layer(spec, [vals[i] for i in spec.inbound])
        return vals[self.output_name]

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate feature map ``(N, num_features, h, w)``: what the class conv reads (``include_top=False``)."""
        if self.include_top:
            raise RuntimeError("forward_map needs the headless net (include_top=False or split_head())")
        return self._forward_output(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._forward_output(x)
        return out if self.include_top else out.mean(dim=(2, 3))

    def split_head(self) -> KerasClassHead | None:
        """Detach the classifier from a full (``include_top=True``) net: the net then returns pooled
        features, and the returned head maps :meth:`forward_map`'s output to the class logits.

        The head is everything between the feature map and the model's output (the 3x3 class conv and
        the global pooling) except a final softmax, so ``softmax(head(map))`` is the Keras output.
        Returns None (and leaves the net whole) when the output is not a softmax over classes.
        """
        if not self.include_top:
            raise RuntimeError("split_head needs a net built with include_top=True")
        path, name = [], self.output_name
        while name != self.feature_name:
            path.append(name)
            (name,) = self.specs[name].inbound
        path.reverse()
        last = self.specs[path[-1]]
        if not (last.kind == "Activation" and last.config.get("activation") == "softmax"):
            return None
        steps = [self.specs[n] for n in path[:-1]]
        if not steps or steps[-1].kind != "GlobalAveragePooling2D":
            return None  # logits must be (N, classes): the pooling has to come before the softmax
        head = KerasClassHead(steps, {n: self.layers[n] for n in path[:-1] if n in self.layers})
        for n in head.layers:
            del self.layers[n]
        self.include_top = False
        self.output_name = self.feature_name
        self.order = self._ancestors_in_order(list(self.specs.values()), self.output_name)
        return head


class KerasClassHead(nn.Module):
    """The classifier of a Keras face model: the 3x3 "same" class conv and global pooling, no softmax.

    ``forward(feature_map) -> logits (N, num_classes)``; the model's probabilities are ``softmax(logits)``.
    """

    def __init__(self, steps: list[LayerSpec], layers: dict[str, nn.Module]):
        super().__init__()
        self.steps = steps
        self.layers = nn.ModuleDict(layers)
        convs = [m for m in layers.values() if isinstance(m, nn.Conv2d)]
        self.num_classes = convs[-1].out_channels if convs else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for spec in self.steps:
            x = _run_layer(spec, [x], self.layers)
        return x


def load_keras_h5(path: str | Path, *, include_top: bool = True) -> KerasGraphNet:
    """Rebuild a Keras 2.0 mini-/big-Xception HDF5 (model_config + model_weights) as a torch module, in eval mode."""
    import h5py

    specs, inp, out = _layer_specs(read_keras_config(path))
    net = KerasGraphNet(specs, inp, out, include_top=include_top)
    with h5py.File(path, "r") as f:
        weights = {n: _read_weights(f, n) for n in net.order if net.specs[n].kind in
                   ("Conv2D", "SeparableConv2D", "BatchNormalization")}
    net.build_modules(weights)
    return net.eval()


def load_keras_h5_with_head(path: str | Path) -> tuple[KerasGraphNet, KerasClassHead | None]:
    """The headless net (pooled features) and its class head (logits from the feature map), or None
    for the head when the file's output is not a softmax classifier."""
    net = load_keras_h5(path, include_top=True)
    head = net.split_head()
    if head is None:  # keep the features path identical to include_top=False
        net = load_keras_h5(path, include_top=False)
    return net, (head.eval() if head is not None else None)
