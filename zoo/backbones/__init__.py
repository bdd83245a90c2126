"""Load a registry record's weights as a feature extractor, with the model's own preprocessing.

One entry point, :func:`load_backbone`, dispatches on ``record.library`` to an adapter registered
with :func:`register_adapter` (like timm's ``@register_model``). Every adapter returns a
:class:`LoadedBackbone`: the backbone (penultimate features), a fresh trainable head when
``num_classes`` is given, and ``preprocess``, the model's own input pipeline:

- images: ``PIL.Image`` (or an HxW[xC] uint8 array) -> tensor, using the record's input size, mean,
  std, interpolation and crop_pct; the colour mode is converted explicitly (an RGB image into a
  grayscale model goes through PIL ``"L"``; a grayscale image into an RGB model is replicated to
  three channels);
- text: ``list[str]`` -> the model's inputs (token ids etc.).

Vision-language models (``multimodal`` records: CLIP-style dual encoders) load ONE tower, the one that
fits the data: ``load_backbone(record, modality="image")`` (the default, said in ``note``) or
``modality="text"``; :func:`zoo.loadable.served_modalities` says which data a record reads and
``LoadedBackbone.modality`` what was loaded. Features are the tower's projected embedding.

``LoadedBackbone.features(batch)`` returns penultimate features as a NumPy array, under
``torch.inference_mode`` and in eval mode: for images ``batch`` is already preprocessed (a tensor
``(N, C, H, W)`` or a list of ``preprocess`` outputs); for text it is the raw strings. Conv nets run
through an inference copy (BatchNorm folded into the convs, channels_last; see
:mod:`zoo.backbones.fast`), checked against the model and rebuilt whenever the model's weights change.

Source heads (for LEEP/NCE, :mod:`zoo.source_heads`): adapters keep the classifier the checkpoint was
trained with instead of discarding it. ``source_classes`` is its number of classes (None when the
weights hold no classifier, and ``no_source_head`` says why: text encoders, ``AutoModel`` backbones,
timm checkpoints saved without a head). ``features_and_source_probs(batch)`` returns the features and
the source softmax from one forward pass; ``source_probs_from_features(feats)`` applies a head that
reads the pooled features to features computed earlier (no pass at all). Heads: torchvision's
``classifier``/``fc``; timm's ``get_classifier()`` when it is a Linear on the pooled features
(EfficientNet-Lite: ImageNet-1k); the CIFAR ResNets' ``linear`` (CIFAR-10); the Keras face models'
3x3 class conv + global pooling, which reads the feature map before pooling (FER2013 7 emotions,
KDEF 7, IMDB gender 2).

Weights are read offline only, with ``weights_only=True`` or safetensors, never with
``trust_remote_code``. A missing file raises :class:`~zoo.errors.WeightsUnavailable` naming the fix
(:func:`zoo.weights.resolve_weights`).

Layout (supporting a new library means adding one ``from_<library>.py`` module and importing it below):

- :mod:`~zoo.backbones.core`: :class:`LoadedBackbone`, :class:`NoAdapter`, the registry
  (:func:`register_adapter`, :func:`adapter_names`, :func:`load_backbone`) and :func:`cache_dir`;
- :mod:`~zoo.backbones.preprocess`: inputs to tensors (:func:`~zoo.backbones.preprocess.decode_image`,
  :func:`image_transform`, the colour-mode conversion, batching);
- :mod:`~zoo.backbones.fast`: the inference copy of torch image backbones (BatchNorm folding,
  channels_last) and the torch image :class:`LoadedBackbone` built around it;
- :mod:`~zoo.backbones.checkpoints`: reading a state dict from a weights file;
- :mod:`zoo.weights`: where weights are on this machine (:func:`resolve_weights` and the fix when they
  are not, the folder of an assembled text model);
- one module per adapter family: :mod:`~zoo.backbones.from_timm`, :mod:`~zoo.backbones.from_torchvision`,
  :mod:`~zoo.backbones.from_zoo_nets` (``cifar_resnet``, ``mini_xception``),
  :mod:`~zoo.backbones.from_sentence_transformers`, :mod:`~zoo.backbones.from_transformers`,
  :mod:`~zoo.backbones.from_onnx`, :mod:`~zoo.backbones.from_glove` (``glove_avg``),
  :mod:`~zoo.backbones.from_vision_language` (the towers of transformers dual encoders, reached through the
  ``transformers`` adapter), :mod:`~zoo.backbones.from_open_clip`.

Importing this package imports no torch: every torch, timm and transformers import sits inside the
function that needs it.

Adapters (``adapter_names()``):

``timm``
    ``timm.create_model(arch, num_classes=0)``. ``hf:`` locations load from the local HF cache
    (``local-dir:`` on the snapshot, so timm's own config and checkpoint filters apply); the offline
    EfficientNet-Lite checkpoints (lukemelas key names, ``extra.timm_model``) are mapped by
    position onto timm's ``tf_efficientnet_lite{0,1,2}`` after checking that every key's kind and
    shape agree one to one.
``torchvision``
    MobileNetV2 from a torchvision state dict (strict); features = the 1280-d pooled output
    (classifier replaced by identity).
``cifar_resnet``
    :mod:`zoo.nets.cifar_resnet`; 64-d pooled features.
``mini_xception``
    :mod:`zoo.nets.mini_xception` (Keras HDF5 rebuilt from its own layer graph); features = the
    pooled input of the class conv (128-d, big-Xception 256-d); grayscale input resized to the
    model's size without cropping (as face_classification does with ``cv2.resize``), scaled to [-1, 1].
``sentence-transformers``
    ``SentenceTransformer(local folder)``; mpnet's folder comes from ``scripts/assemble_mpnet.py``.
``transformers``
    ``AutoModel`` from a local folder or the HF cache. Pooling rule: ``extra.pooling`` when the
    record sets it (``mean`` | ``cls`` | ``pooler``); else the folder's sentence-transformers pooling
    config (``1_Pooling/config.json``) when present; else text models use the attention-masked
    mean of the last hidden states (the better frozen-feature default for BERT-style encoders
    whose CLS was never trained as a sentence vector) and image models use the CLS token of a
    token-sequence output (ViT/DINOv2 style) or the pooled output of a conv net.
``onnx``
    onnxruntime session; sentence output ``extra.sentence_output`` when the graph has one, else the
    masked mean of the token output, L2-normalised. Frozen (``trainable=False``).
``glove_avg``
    Average of GloVe vectors of the lower-cased words (OOV ignored, no words -> zeros). Frozen.
``open_clip``
    One tower of an OpenCLIP model from its folder (``open_clip_config.json`` + ``open_clip_model.safetensors``):
    only that tower is built and read; ``encode_image`` with ``open_clip.image_transform``, or ``encode_text``
    with the folder's tokenizer. No download, no repo code.
"""

from __future__ import annotations

# Each adapter module registers its libraries with @register_adapter when it is imported.
from zoo.backbones import (  # noqa: F401
    from_glove,
    from_onnx,
    from_open_clip,
    from_sentence_transformers,
    from_timm,
    from_torchvision,
    from_transformers,
    from_vision_language,  # after from_transformers: it registers "transformers" over it (dual-encoder towers)
    from_zoo_nets,
)
from zoo.backbones.core import LoadedBackbone, NoAdapter, adapter_names, cache_dir, load_backbone, register_adapter
from zoo.backbones.from_timm import lukemelas_to_timm
from zoo.backbones.preprocess import image_transform
from zoo.weights import resolve_weights

__all__ = [
    "LoadedBackbone", "NoAdapter", "adapter_names", "cache_dir", "image_transform", "load_backbone",
    "lukemelas_to_timm", "register_adapter", "resolve_weights",
]
