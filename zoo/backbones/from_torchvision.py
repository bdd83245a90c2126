"""The ``torchvision`` adapter: a ``torchvision.models`` architecture from a state dict (strict), its
classifier replaced by identity and kept as the source head."""

from __future__ import annotations

from zoo.backbones.checkpoints import _load_state_dict
from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.fast import _torch_backbone
from zoo.backbones.preprocess import _record_transform
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import resolve_weights


@register_adapter("torchvision")
def _load_torchvision(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    import torchvision

    path = resolve_weights(record)
    arch = str(record.extra.get("torchvision_model") or record.name.split(".", 1)[0])
    if not hasattr(torchvision.models, arch):
        raise ZooError(f"{record.id}: torchvision has no model {arch!r}")
    model = getattr(torchvision.models, arch)(weights=None)
    model.load_state_dict(_load_state_dict(path), strict=True)
    # The checkpoint's classifier is kept as the source head: model(x) == classifier(features) by
    # construction, since the features are exactly what the classifier read (dropout is inert in eval).
    if hasattr(model, "classifier"):
        head = model.classifier
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        feature_dim = last.in_features
        model.classifier = torch.nn.Identity()
    elif hasattr(model, "fc"):
        head = model.fc
        feature_dim = model.fc.in_features
        model.fc = torch.nn.Identity()
    else:
        raise ZooError(f"{record.id}: do not know where torchvision {arch}'s classifier is")
    defaults = {"input_size": [3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 0.875}
    return _torch_backbone(record, model, device, feature_dim, _record_transform(record, defaults),
                           source_head=head, source_labels=record.extra.get("labels"))

