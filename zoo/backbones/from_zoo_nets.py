"""The adapters of the models rebuilt in :mod:`zoo.nets`: ``cifar_resnet`` (CIFAR-10 ResNets) and
``mini_xception`` (the Keras face models, whose class conv reads the feature map before pooling)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.fast import _torch_backbone
from zoo.backbones.preprocess import _record_transform, image_transform
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import resolve_weights


@register_adapter("cifar_resnet")
def _load_cifar_resnet(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.cifar_resnet import cifar_resnet

    path = resolve_weights(record)
    m = re.search(r"(\d+)", record.architecture or record.name)
    if not m:
        raise ZooError(f"{record.id}: cannot read the ResNet depth from {record.architecture or record.name!r}")
    from zoo.source_heads import CIFAR10_LABELS

    model = cifar_resnet(int(m.group(1)), checkpoint=str(path))
    head = model.linear  # the CIFAR-10 classifier, kept as the source head
    model.reset_classifier(0)
    defaults = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 1.0}
    return _torch_backbone(record, model, device, model.num_features, _record_transform(record, defaults),
                           source_head=head, source_labels=record.extra.get("labels") or CIFAR10_LABELS)


@register_adapter("mini_xception")
def _load_mini_xception(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.mini_xception import load_keras_h5_with_head

    path = resolve_weights(record)
    model, head = load_keras_h5_with_head(path)
    c, h, w = model.input_shape
    defaults = {"input_size": [c, h, w], "mean": [0.5], "std": [0.5], "interpolation": "bilinear"}
    rec_size = list(record.input_size or [])
    if rec_size and rec_size != [c, h, w]:
        raise ZooError(f"{record.id}: the record's input_size {rec_size} disagrees with the file's {[c, h, w]}")
    # face_classification resizes the face crop straight to the input size (cv2.resize), no centre crop.
    pre = image_transform([c, h, w], record.mean or [0.5], record.std or [0.5],
                          record.interpolation or defaults["interpolation"], None, squash=True)
    return _torch_backbone(record, model, device, model.num_features, pre,
                           "Grayscale input: RGB images are converted with PIL 'L' (ITU-R 601 luma).",
                           source_head=head, forward=_keras_forward(head) if head is not None else None,
                           source_labels=record.extra.get("labels"),
                           no_source_head=f"{record.id} has no source head (its output is not a softmax classifier)")


def _keras_forward(head: Any) -> Callable[[Any, Any, bool], tuple[Any, Any]]:
    """One pass for the Keras face models: the class conv has "same" padding, so the logits come from
    the feature map (before pooling), not from the pooled features."""

    def forward(model: Any, x: Any, logits: bool) -> tuple[Any, Any]:
        fmap = model.forward_map(x)
        return fmap.mean(dim=(2, 3)), (head(fmap) if logits else None)

    return forward

