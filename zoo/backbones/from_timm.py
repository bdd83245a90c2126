"""The ``timm`` adapter: ``timm.create_model`` from an HF snapshot (``local-dir:``) or a state dict, the
EfficientNet-PyTorch (lukemelas) key mapping, and the checkpoint's Linear classifier kept as source head."""

from __future__ import annotations

from typing import Any

from zoo.backbones.checkpoints import _load_state_dict
from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.fast import _torch_backbone
from zoo.backbones.preprocess import _record_transform
from zoo.errors import WeightsUnavailable, ZooError
from zoo.record import ModelRecord
from zoo.weights import _fix_hint, resolve_weights


def lukemelas_to_timm(src: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Map an EfficientNet-PyTorch (lukemelas) state dict onto timm keys by position.

    The two key lists have the same modules in the same order; every pair must agree on the tensor
    kind (``weight``/``bias``/``running_mean``/...) and shape, or ``ValueError`` names the first clash.
    """
    if len(src) != len(target):
        raise ValueError(f"state dicts differ in size: {len(src)} tensors vs {len(target)} in the timm model")
    out = {}
    for (sk, sv), (tk, tv) in zip(src.items(), target.items(), strict=True):
        if sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1] or tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(f"cannot map {sk} {tuple(sv.shape)} onto {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


def _timm_name_from_record(record: ModelRecord) -> str:
    if record.extra.get("timm_model"):
        return str(record.extra["timm_model"])
    name = record.name
    if (record.weights or "").startswith("hf:timm/"):
        name = record.weights.split(":", 1)[1].split("@", 1)[0].split("/", 1)[1]
    return name


@register_adapter("timm")
def _load_timm(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    path = resolve_weights(record)
    in_chans = int(record.input_size[0]) if record.input_size else 3
    note = ""
    if path.is_dir():  # an HF snapshot (or any timm local folder with config.json + weights)
        if not (path / "config.json").is_file():
            raise WeightsUnavailable(
                f"Weights for {record.id} ({record.weights}): the cached folder {path} has no config.json; "
                f"the download is incomplete. {_fix_hint(record, record.weights or '')}")
        has_weights = any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                                                          "open_clip_pytorch_model.bin", "model.pth", "pytorch_model.pth"))
        if not has_weights:
            raise WeightsUnavailable(
                f"Weights for {record.id} ({record.weights}): {path} holds no weights file (partial download). "
                f"{_fix_hint(record, record.weights or '')}")
        # Keep the checkpoint's classifier (source head) when it has one: load whole, then detach it.
        model = timm.create_model(f"local-dir:{path}", pretrained=True)
        head, why = _timm_source_head(record, model)
        model.reset_classifier(0)
    else:
        arch = _timm_name_from_record(record)
        sd = _load_state_dict(path)
        full = timm.create_model(arch, pretrained=False, in_chans=in_chans)
        target = full.state_dict()
        if set(sd) != set(target) and any(k.startswith("_conv_stem.") for k in sd):  # EfficientNet-PyTorch names
            try:
                sd = lukemelas_to_timm(sd, target)
            except ValueError as e:
                raise ZooError(f"{record.id}: {path.name} does not fit timm {arch}: {e}") from None
            note = f"Weights mapped by position from EfficientNet-PyTorch names onto timm {arch}."
        full.load_state_dict(sd, strict=True)
        head, why = _timm_source_head(record, full)
        full.reset_classifier(0)
        model = full
    cfg = timm.data.resolve_data_config({}, model=model)
    defaults = {"input_size": cfg["input_size"], "mean": cfg["mean"], "std": cfg["std"],
                "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"]}
    feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    if head is not None and head.in_features != feature_dim:
        head, why = None, (f"{record.id} has no usable source head (its classifier reads {head.in_features} "
                           f"features, the backbone gives {feature_dim})")
    preprocess = _timm_transform(record, defaults, str(cfg.get("crop_mode") or "center"))
    return _torch_backbone(record, model, device, feature_dim, preprocess, note,
                           source_head=head, source_labels=record.extra.get("labels"), no_source_head=why)


def _timm_transform(record: ModelRecord, defaults: dict[str, Any], crop_mode: str) -> Any:
    """The eval transform of the model's pretrained_cfg with the record's values, in its crop mode: ``center``
    (resize the short side to size / crop_pct, centre crop) as zoo's own transform; any other mode with timm's
    own ``create_transform``: ``squash`` (resize both sides to size / crop_pct ignoring the aspect ratio, then
    centre crop: 131 catalog tags, e.g. the 384-px fine-tunes) and ``border`` (resize the long side, pad to
    the size with the mean colour: 6 tags)."""
    if crop_mode == "center":
        return _record_transform(record, defaults)
    import timm.data

    from zoo.backbones.preprocess import _to_pil

    cfg = {k: getattr(record, k, None) or v for k, v in defaults.items()}
    tfm = timm.data.create_transform(**cfg, crop_mode=crop_mode, is_training=False)
    channels = int(cfg["input_size"][0])

    def preprocess(img: Any):
        return tfm(_to_pil(img, channels))

    return preprocess


def _timm_source_head(record: ModelRecord, model: Any) -> tuple[Any, str]:
    """The classifier a timm model was loaded with, if it is a Linear layer on the pooled (pre-logits)
    features, which is how timm builds nearly every classifier: ``logits = get_classifier()(model_without_it(x))``.
    Distilled models (two heads averaged) and non-linear heads give ``(None, reason)``."""
    from torch import nn

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, (tuple, list)) or hasattr(model, "head_dist"):
        return None, f"{record.id} has no usable source head (a distilled model's two heads are not supported)"
    if head is None or isinstance(head, nn.Identity) or getattr(model, "num_classes", 0) == 0:
        return None, f"{record.id} has no source head (the checkpoint holds no classifier)"
    if not isinstance(head, nn.Linear):
        return None, (f"{record.id} has no usable source head (its classifier is a {type(head).__name__}, "
                      "zoo applies only a Linear classifier to the pooled features)")
    return head, ""  # reset_classifier() installs a new module, so this one stays intact

