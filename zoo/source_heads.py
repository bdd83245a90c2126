"""Source classification heads: does a model carry the classifier it was pre-trained with?

LEEP and NCE (:mod:`zoo.scores.leep`) read the source model's softmax over its own (source) classes
on the target samples. Only a backbone whose weights still hold the pre-training classifier can give
them. This module says which ones do, before or without loading any weights, and turns logits into
probabilities the same way for every adapter.

- :func:`source_head_status` answers from the record alone: ``True`` (a head ships with the
  weights: torchvision classifiers, the CIFAR ResNets, the Keras face models), ``False`` with the
  reason (text encoders, ONNX/word-vector encoders, ``transformers`` ``AutoModel`` backbones), or
  ``None`` when only loading tells (a timm checkpoint may have been saved without its classifier).
  The scorer layer uses it to skip LEEP/NCE for a model without loading it.
- :class:`NoSourceHead` is raised only by the calls that cannot return anything else
  (:meth:`zoo.backbones.LoadedBackbone.features_and_source_probs`,
  :func:`zoo.features.extract_source_probs`); :func:`zoo.features.extract` reports the same reason in
  ``Features.source_note`` instead of raising.

This module imports nothing heavy (NumPy only), so the CLI can consult it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.errors import ZooError
from zoo.record import ModelRecord

__all__ = ["CIFAR10_LABELS", "NoSourceHead", "SourceHeadStatus", "softmax", "source_head_status"]

# The class order of the akamaster checkpoints: torchvision's CIFAR10 dataset order.
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Libraries whose adapters build encoders without any classifier (see zoo.backbones).
_HEADLESS = {
    "sentence-transformers": "a sentence-transformers encoder has no classification head",
    "onnx": "the ONNX graph is a sentence encoder with no classification head",
    "glove_avg": "averaged word vectors have no classification head",
    "open_clip": "an OpenCLIP tower embeds images or texts for contrastive matching; it has no classification head",
}
# Libraries whose adapters always keep the checkpoint's classifier.
_WITH_HEAD = {"torchvision", "cifar_resnet", "mini_xception"}


class NoSourceHead(ZooError):
    """The model has no source classification head, so LEEP and NCE do not apply to it."""


@dataclass(frozen=True)
class SourceHeadStatus:
    has_head: bool | None  # None: known only once the weights are loaded
    reason: str  # why there is no head (empty when there is one or when unknown)


def source_head_status(record: ModelRecord) -> SourceHeadStatus:
    """Whether ``record``'s weights carry their pre-training classifier, from the record alone."""
    if record.modality == "text" or record.library in _HEADLESS:
        why = _HEADLESS.get(record.library, "text encoders in zoo have no classification head")
        return SourceHeadStatus(False, f"{record.id} has no source head ({why}); LEEP and NCE do not apply")
    if record.library == "transformers":
        return SourceHeadStatus(False, f"{record.id} has no source head (loaded as a transformers AutoModel "
                                       "backbone, without a classifier); LEEP and NCE do not apply")
    if record.library in _WITH_HEAD:
        return SourceHeadStatus(True, "")
    return SourceHeadStatus(None, "")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable for large logits), returned as float32 rows that sum to 1."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)
