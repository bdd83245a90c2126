"""Which catalog records zoo can load, and which files of a Hub repo each library's loader reads.

Decided from the record alone (library, modality, model family, where its weights are), before any
download: :func:`loadable_reason` is asked by the fetcher (:mod:`zoo.fetching`), the candidate selection
of ``recommend --data``, ``zoo stats`` and the loaders; :func:`served_modalities` by zoo.features and
zoo.backbones (a vision-language record serves image and text data, one tower each); :func:`wanted_files`
by the fetcher's plan (configs, tokenizer or processor files, safetensors first). Nothing here imports
torch or touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["DUAL_ENCODER_TYPES", "LOADABLE_MODALITIES", "TOWERS", "loadable_reason", "not_encoder_reason",
           "served_modalities", "wanted_files"]

# Which libraries zoo loads, and the record modalities each serves. A "multimodal" record is a
# vision-language dual encoder: zoo loads the one tower that fits the data (:data:`TOWERS`), and for
# transformers only the model types in DUAL_ENCODER_TYPES (``loadable_reason`` refuses the rest).
# This is the one place the fetcher, `zoo stats`, zoo.features and zoo.backbones learn it; zoo.backbones
# registers the adapters.
LOADABLE_MODALITIES: dict[str, tuple[str, ...]] = {
    "timm": ("image",),
    "torchvision": ("image",),
    "cifar_resnet": ("image",),
    "mini_xception": ("image",),
    "transformers": ("image", "text", "multimodal"),
    "sentence-transformers": ("text",),
    "onnx": ("text",),
    "glove_avg": ("text",),
    "open_clip": ("multimodal",),
}
# The data a multimodal (vision-language) record reads: one tower each, the image tower by default.
TOWERS = ("image", "text")
# transformers model types (config.json ``model_type``) that are CLIP-style dual encoders, with
# ``get_image_features``/``get_text_features`` on one image and one text tower: zoo loads either tower.
# Not here on purpose: siglip2 (NaFlex inputs: a variable patch grid per image, with a mask and the grid
# shape beside the pixels, which zoo's one-tensor-per-image pipeline does not carry), blip/blip-2/flava
# (fusion models), owlvit/owlv2/clipseg/groupvit (detection and segmentation heads), clap (audio-text),
# xclip (video-text), layoutlm* and Donut (documents), encoder-decoders (TrOCR: an image record, its encoder loads).
DUAL_ENCODER_TYPES = ("clip", "siglip", "metaclip_2", "chinese_clip", "altclip", "align", "vision-text-dual-encoder")
# Catalog records carry no model_type: their ``architecture`` (else the repo name) starts with the family
# (``clip-vit-base-patch32``, ``siglip-so400m-patch14``, ``xclip-base-patch32``). Compared without ``-``/``_``.
_DUAL_ENCODER_FAMILIES = ("clip", "siglip", "metaclip", "chineseclip", "altclip", "align", "visiontextdualencoder")
# transformers models zoo cannot load as an encoder or a tower, with why (families and model types, compared
# without ``-``/``_``, longest first). The document models are refused as multimodal records only (as image or
# text records the transformers adapter loads their encoder). Encoder-decoders (TrOCR) load their encoder.
_NOT_ENCODERS: dict[str, str] = {
    "clap": "an audio-text model (CLAP); zoo has no audio tower",
    "xclip": "a video-text model (X-CLIP); zoo loads image and text towers, not video",
    "siglip2": ("a SigLIP 2 (NaFlex) model, whose image inputs (a variable patch grid with its mask and shape) zoo's "
                "one-tensor-per-image pipeline does not carry"),
    "blip": "a vision-language fusion model (BLIP), not a CLIP-style dual encoder",
    "blip2": "a vision-language fusion model (BLIP-2), not a CLIP-style dual encoder",
    "flava": "a vision-language fusion model (FLAVA), not a CLIP-style dual encoder",
    "owlvit": "an open-vocabulary detector (OWL-ViT), not a feature encoder",
    "owlv2": "an open-vocabulary detector (OWLv2), not a feature encoder",
    "clipseg": "a segmentation model (CLIPSeg), not a feature encoder",
    "groupvit": "a grouping/segmentation model (GroupViT), not a CLIP-style dual encoder zoo loads",
}
_DOCUMENT_MODELS: dict[str, str] = {
    "donut": ("a document-reading image-to-text encoder-decoder (Donut), not a dual encoder (as an image record, its "
              "Swin encoder would load)"),
    "layoutlm": "a document model (LayoutLM: text and word boxes in one encoder), not a dual encoder",
    "layoutlmv2": "a document model (LayoutLMv2: text, word boxes and the page image in one encoder), not a dual encoder",
    "layoutlmv3": "a document model (LayoutLMv3: text, word boxes and the page image in one encoder), not a dual encoder",
}

_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
              "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
              "bpe_simple_vocab_16e6.txt.gz")
_PROCESSOR = ("preprocessor_config.json", "processor_config.json", "image_processor_config.json")
_SAFE = re.compile(r"(^|/)(model|open_clip_model)(-\d+-of-\d+)?\.safetensors$")
_SAFE_INDEX = re.compile(r"(^|/)model\.safetensors\.index\.json$")
_PICKLE = re.compile(r"(^|/)(pytorch_model|open_clip_pytorch_model)(-\d+-of-\d+)?\.bin$")
_PICKLE_INDEX = re.compile(r"(^|/)pytorch_model\.bin\.index\.json$")


def _norm(name: str) -> str:
    return re.sub(r"[-_ .]", "", name.lower())


def _families(record: Any) -> list[str]:
    """The model family a record names, normalised, compared by prefix: ``extra.model_type``, else its
    architecture (``clip-vit-base-patch32`` -> ``clipvitbasepatch32``), else each word of its repo name."""
    extra = record.extra or {}
    name = extra.get("model_type") or record.architecture
    if name:
        return [_norm(str(name))]
    repo = str(record.id).split(":", 1)[-1].split("@", 1)[0].split("/")[-1]
    return [_norm(w) for w in re.split(r"[-_ .]", repo) if w]


def not_encoder_reason(families: str | Sequence[str], modality: str) -> str | None:
    """What a transformers model of this type/family is when zoo cannot load it as a ``modality`` encoder, else
    None. The transformers adapter asks it again with the config's ``model_type`` once the config is read."""
    names = [_norm(f) for f in ([families] if isinstance(families, str) else families)]
    table = dict(_NOT_ENCODERS, **(_DOCUMENT_MODELS if modality == "multimodal" else {}))
    for key in sorted(table, key=len, reverse=True):
        if any(n.startswith(key) for n in names):
            return table[key]
    if modality == "multimodal" and not any(n.startswith(_DUAL_ENCODER_FAMILIES) for n in names):
        return "a multimodal model that is not a CLIP-style dual encoder"
    return None


def _kind_reason(record: Any) -> str | None:
    """Why no zoo loader reads ``record``'s kind of model (library, modality, model family), or None."""
    lib = record.library or ""
    mods = LOADABLE_MODALITIES.get(lib)
    if mods is None:
        return (f"zoo has no loader for library {lib or 'unknown'!r}; load {record.id} with its own library "
                f"(zoo loads: {', '.join(sorted(LOADABLE_MODALITIES))}).")
    if record.modality not in mods:
        kinds = ", ".join(mods[:-1]) + " and " + mods[-1] if len(mods) > 1 else mods[0]
        article = "an" if str(record.modality)[:1] in "aeiou" else "a"
        return (f"the {lib} loader reads {kinds} models; {record.id} is {article} {record.modality} model, "
                "and zoo cannot load its inputs yet.")
    if lib == "transformers":
        what = not_encoder_reason(_families(record), record.modality)
        if what is not None:
            towers = (f" zoo loads the image or text tower of CLIP-style dual encoders "
                      f"(transformers {', '.join(DUAL_ENCODER_TYPES)}; open_clip)." if record.modality == "multimodal" else "")
            return f"{record.id} is {what}; zoo cannot load it.{towers} Load it with transformers directly."
    return None


def loadable_reason(record: Any) -> str | None:
    """Why zoo cannot load ``record`` at all (its library, its modality, its kind of model or where its weights
    are), or None.

    Decided from the record alone, before any download. ``zoo stats`` counts the records it passes."""
    why = _kind_reason(record)
    if why is not None:
        return why
    loc = record.weights or ""
    if loc.startswith("url:"):
        return (f"the weights of {record.id} are published only at a release URL ({loc[4:]}), not on the Hugging "
                "Face Hub; zoo fetches from the Hub. Download the file and register it with a file: location.")
    if not loc:
        return f"{record.id} has no weights location in the registry."
    return None


def served_modalities(record: Any) -> tuple[str, ...]:
    """The data modalities zoo can feed ``record``: its own, and for a multimodal (vision-language) record that
    a loader splits into towers, "image" and "text" (:data:`TOWERS`). zoo.features and zoo.backbones ask this."""
    own = (record.modality,) if record.modality else ()
    if record.modality == "multimodal" and _kind_reason(record) is None:
        return (*TOWERS, *own)
    return own


def wanted_files(library: str, paths: Iterable[str], *, allow_pickle: bool = False) -> tuple[list[str], str | None]:
    """The files of a repo that ``library``'s loader reads, or ``([], why)`` when none can be loaded.

    Configs, tokenizer and processor files at the root (and a sentence-transformers repo's module
    folders), and one set of weights: safetensors when there are any, else pickled ``.bin`` files when
    ``allow_pickle``. Other formats (TF, Flax, ONNX, GGUF, other checkpoints) are never downloaded."""
    paths = sorted(set(paths))
    want: list[str] = []
    top = [p for p in paths if "/" not in p]
    if library == "open_clip":
        want += [p for p in top if p in ("open_clip_config.json", *_TOKENIZER)]
        if "open_clip_config.json" not in want:
            return [], "the repo has no open_clip_config.json, so open_clip cannot build the model"
    elif library == "timm":
        want += [p for p in top if p == "config.json"]
        if not want:
            return [], "the repo has no config.json, so timm cannot build the model"
    else:
        want += [p for p in top if p in ("config.json", *_TOKENIZER, *_PROCESSOR)]
        if library == "sentence-transformers":
            want += [p for p in top if p in ("modules.json", "config_sentence_transformers.json",
                                            "sentence_bert_config.json")]
            # module folders (1_Pooling/, 2_Dense/, 3_Normalize/): their configs, and weights below
            want += [p for p in paths if re.match(r"^\d+_[A-Za-z]+/[^/]+\.json$", p)]
        if "config.json" not in want:
            return [], "the repo has no config.json, so transformers cannot build the model"
    scope = [p for p in paths if "/" not in p or (library == "sentence-transformers" and re.match(r"^\d+_", p))]
    safe = [p for p in scope if _SAFE.search(p) or _SAFE_INDEX.search(p)]
    pickled = [p for p in scope if _PICKLE.search(p) or _PICKLE_INDEX.search(p)]
    if library == "open_clip":
        safe = [p for p in safe if "open_clip_model" in p]
        pickled = [p for p in pickled if "open_clip" in p]
    elif library != "sentence-transformers":
        safe = [p for p in safe if "open_clip" not in p]
        pickled = [p for p in pickled if "open_clip" not in p]
    if safe:
        return want + safe, None
    if pickled:
        if allow_pickle:
            return want + pickled, None
        return [], (f"the repo holds only pickled weights ({', '.join(pickled[:3])}); a pickle can run code when "
                    "it is read, so zoo refuses it unless you pass --allow-pickle (API allow_pickle=True); it is "
                    "then read with torch.load(weights_only=True)")
    others = [p for p in top if p.endswith((".h5", ".msgpack", ".onnx", ".gguf", ".ckpt", ".pth", ".pt", ".npz"))]
    seen = f" (it has {', '.join(others[:4])})" if others else ""
    return [], f"the repo has no safetensors or PyTorch weights that {library} reads{seen}"
