"""The ``open_clip`` adapter: one tower of an OpenCLIP model (LAION CLIP, BiomedCLIP, ...) from its Hub folder.

The folder (:func:`zoo.weights.resolve_weights`: the HF snapshot, or a ``file:`` folder) holds
``open_clip_config.json`` (``model_cfg``: the towers; ``preprocess_cfg``: the image pipeline), the weights
``open_clip_model.safetensors`` (or, only where the fetch allowed pickle, ``open_clip_pytorch_model.bin``,
read with ``weights_only=True``) and, for towers with a Hugging Face tokenizer, its files. Nothing is
downloaded and no repo code runs: only the tower that fits the data is built, from the config, with
open_clip's own tower builders, and only its tensors are read from the weights file:

- image tower: ``model.visual`` (OpenCLIP's ViT/ResNet or a timm trunk built with ``pretrained=False``);
  features = ``encode_image`` (the projected image embedding, not normalised); preprocessing =
  ``open_clip.image_transform`` with the config's size, mean, std, interpolation and resize mode;
- text tower: ``model.text`` (or a CLIP checkpoint's top-level text weights); features = ``encode_text``
  (the projected text embedding); preprocessing = ``open_clip.get_tokenizer("local-dir:<folder>")`` (the
  BPE tokenizer that ships with open_clip, or the folder's Hugging Face tokenizer). A Hugging Face text
  tower (BiomedCLIP's PubMedBERT) is built from that model's ``config.json`` found on this machine (the HF
  cache or a local folder), never fetched behind zoo's back; without it, the text tower says how to get it
  and the image tower still loads.

CoCa models (``multimodal_cfg``: a captioning decoder) are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.preprocess import _as_batch, _to_pil
from zoo.errors import WeightsUnavailable, ZooError
from zoo.record import ModelRecord
from zoo.weights import _fix_hint, resolve_weights

_CONFIG = "open_clip_config.json"
_SAFE = "open_clip_model.safetensors"
_PICKLE = "open_clip_pytorch_model.bin"
# A CLIP (not CustomTextCLIP) checkpoint keeps its text tower at the top level under these names.
_CLIP_TEXT_KEYS = ("text_projection", "positional_embedding", "token_embedding.", "transformer.", "ln_final.")


def _folder_and_weights(record: ModelRecord) -> tuple[Path, dict, Path]:
    folder = resolve_weights(record)
    hint = _fix_hint(record, record.weights or "")
    if not folder.is_dir() or not (folder / _CONFIG).is_file():
        raise WeightsUnavailable(f"Weights for {record.id} ({record.weights}): {folder} is not an OpenCLIP folder "
                                 f"with {_CONFIG}. {hint}")
    cfg = json.loads((folder / _CONFIG).read_text())
    if not isinstance(cfg.get("model_cfg"), dict):
        raise ZooError(f"{record.id}: {folder / _CONFIG} has no model_cfg")
    for name in (_SAFE, _PICKLE):
        if (folder / name).is_file():
            return folder, cfg, folder / name
    raise WeightsUnavailable(f"Weights for {record.id} ({record.weights}): {folder} holds no {_SAFE} "
                             f"(nor {_PICKLE}, fetched only with --allow-pickle). {hint}")


def _tower_state_dict(path: Path, rename: Callable[[str], str | None]) -> dict[str, Any]:
    """The tensors of ``path`` that ``rename`` maps to a tower key (None: not this tower's). A safetensors file
    is read key by key, so the other tower's tensors are never loaded."""
    out: dict[str, Any] = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                new = rename(key[7:] if key.startswith("module.") else key)
                if new is not None:
                    out[new] = f.get_tensor(key)
        return out
    from zoo.backbones.checkpoints import _load_state_dict

    for key, value in _load_state_dict(path).items():  # torch.load(weights_only=True)
        new = rename(key[7:] if key.startswith("module.") else key)
        if new is not None:
            out[new] = value
    return out


def _image_key(key: str) -> str | None:
    return key[len("visual."):] if key.startswith("visual.") else None


def _text_key(key: str) -> str | None:
    if key.startswith("text."):
        return key[len("text."):]
    return key if key.startswith(_CLIP_TEXT_KEYS) else None


def _local_hf_config(record: ModelRecord, name: str) -> str:
    """A local folder holding the ``config.json`` of the Hugging Face text model ``name`` (a folder itself, or
    its snapshot in the HF cache)."""
    if (Path(name).expanduser() / "config.json").is_file():
        return str(Path(name).expanduser())
    from huggingface_hub import try_to_load_from_cache

    from zoo.weights import hf_cache_dir

    hit = try_to_load_from_cache(name, "config.json", cache_dir=str(hf_cache_dir()))
    if isinstance(hit, str) and Path(hit).is_file():
        return str(Path(hit).parent)
    raise WeightsUnavailable(
        f"The text tower of {record.id} is the Hugging Face model {name}, whose config.json is not on this machine "
        f"(OpenCLIP builds the tower from it; the weights are in {record.id}'s own file). Fetch it with "
        f"`hf download {name} config.json` (or copy it into the Hugging Face cache), or load the image tower.")


@register_adapter("open_clip")
def _load_open_clip(record: ModelRecord, *, device: str, modality: str | None = None) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import open_clip
    import torch
    from open_clip.model import _build_text_tower, _build_vision_tower

    tower = modality or "image"
    if tower not in ("image", "text"):
        raise ZooError(f"{record.id} is an OpenCLIP model with image and text towers; it cannot read {tower} data.")
    folder, cfg, weights = _folder_and_weights(record)
    model_cfg = dict(cfg["model_cfg"])
    if "multimodal_cfg" in model_cfg:
        raise ZooError(f"{record.id} is an OpenCLIP CoCa model (a captioning decoder on the towers); zoo loads the "
                       "towers of contrastive CLIP models only. Load it with open_clip directly.")
    embed_dim = int(model_cfg["embed_dim"])
    quick_gelu = bool(model_cfg.get("quick_gelu", False))
    if tower == "image":
        vision_cfg = dict(model_cfg.get("vision_cfg") or {})
        if "timm_model_name" in vision_cfg:
            vision_cfg["timm_model_pretrained"] = False  # the weights come from the OpenCLIP checkpoint
        net = _build_vision_tower(embed_dim, vision_cfg, quick_gelu, None)
        state = _tower_state_dict(weights, _image_key)
    else:
        text_cfg = dict(model_cfg.get("text_cfg") or {})
        if text_cfg.get("hf_model_name"):
            text_cfg["hf_model_name"] = _local_hf_config(record, str(text_cfg["hf_model_name"]))
            text_cfg["hf_model_pretrained"] = False
        net = _build_text_tower(embed_dim, text_cfg, quick_gelu, None)
        state = _tower_state_dict(weights, _text_key)
        own = net.state_dict()
        state = {k: v for k, v in state.items() if k in own or not k.endswith("position_ids")}
    if not state:
        raise ZooError(f"{record.id}: {weights.name} holds no {tower}-tower weights")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ZooError(f"{record.id}: {weights.name} does not fit the {tower} tower that {_CONFIG} describes: "
                       f"{str(e)[:600]}") from None
    net = net.to(device).eval()

    if tower == "image":
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        pp = merge_preprocess_dict(PreprocessCfg(), cfg.get("preprocess_cfg") or {})
        size = getattr(net, "image_size", None) or pp["size"]
        tfm = open_clip.image_transform(size, is_train=False, mean=pp["mean"], std=pp["std"],
                                        interpolation=pp["interpolation"], resize_mode=pp["resize_mode"],
                                        fill_color=pp["fill_color"])

        def preprocess(img: Any):
            return tfm(_to_pil(img, 3))

        def run(batch: Any) -> np.ndarray:
            x = _as_batch(batch, preprocess)
            return net(x.to(device)).float().cpu().numpy()

        note = (f"image tower of an OpenCLIP model: encode_image (the projected image embedding); "
                f"open_clip preprocessing ({pp['resize_mode']}, {pp['interpolation']})")
        probe: Any = torch.stack([preprocess(np.zeros((8, 8, 3), np.uint8))])
    else:
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")

        def preprocess(texts: Sequence[str]):
            return tokenizer(list(texts))

        def run(texts: Sequence[str]) -> np.ndarray:
            out = net(preprocess(texts).to(device))
            return (out[0] if isinstance(out, tuple) else out).float().cpu().numpy()

        note = (f"text tower of an OpenCLIP model: encode_text (the projected text embedding); "
                f"{type(tokenizer).__name__}, context length {getattr(tokenizer, 'context_length', '?')}")
        probe = ["a"]
    with torch.inference_mode():
        dim = int(run(probe).shape[1])
    return LoadedBackbone(record=record, model=net, head=None, preprocess=preprocess, feature_dim=dim, trainable=True,
                          note=note, _features_fn=run)
