"""Register the models found on this machine: a folder of models, one model folder, or one ``.onnx`` file.

Recognised formats (a folder is a model when one of these matches; its sub-folders then belong to it
and are not scanned further):

- **sentence-transformers** folder: ``modules.json`` (library ``sentence-transformers``, modality text);
- **timm** checkpoint in the Hub format written by ``timm.models.save_for_hf`` / ``push_to_hf_hub``:
  ``config.json`` with ``architecture`` and ``pretrained_cfg`` plus ``model.safetensors`` or
  ``pytorch_model.bin`` (library ``timm``);
- **Hugging Face transformers** folder: ``config.json`` with ``model_type`` or ``architectures`` plus
  ``*.safetensors`` or ``pytorch_model*.bin`` weights (library ``transformers``);
- **ONNX** file: ``*.onnx`` (library ``onnx``), read with ``onnx.load(..., load_external_data=False)``.

Every record is marked available: ``weights = "file:<absolute path>"`` (the folder, or the ``.onnx`` file).

Id rule
-------
``local:<name>`` where ``<name>`` is built with :func:`zoo.ids.slugify`:

- the path is itself a model: the slug of the folder name (``~/models/My Encoder`` -> ``local:My-Encoder``)
  or of the **file name with its extension** (``exports/model.onnx`` -> ``local:model.onnx``; keeping the
  extension keeps an export apart from the folder it came from: ``encoder/`` and ``encoder.onnx``);
- the path is a folder that contains models: the path of each model relative to it, each part slugified,
  joined with ``/`` (scanning ``models/`` finds ``models/team/encoder`` -> ``local:team/encoder`` and
  ``models/exports/model.onnx`` -> ``local:exports/model.onnx``);
- ``id=`` (``--id``) replaces the rule; it is accepted as ``NAME`` or ``local:NAME`` and only when the scan
  finds exactly one model.

Two models of one scan that map to the same id raise :class:`~zoo.errors.SourceError` (rename a folder or
register them one at a time with ``--id``). Clashes with ids already in the registry are the registry's job.

Facts
-----
Nothing here imports torch or transformers. Parameter counts come from the weight files' headers without
loading them (:mod:`zoo.sources.weight_files`: safetensors headers, or a restricted unpickler over a
``pytorch_model*.bin`` that builds no tensors and runs no code). ONNX parameters are the initializers' sizes, shape/index
constants (int32/int64/bool) excluded. A license is taken only where the files state one (README front-matter
``license:``, or timm's ``pretrained_cfg.license``), never guessed.

``revision`` is a cheap fingerprint: sha256 of the small config/README files' bytes and of the weight files'
names, sizes and mtimes. Pass ``known_revisions={id: revision}`` (``Registry.known_revisions("local")``, as
for the hf source) and a model whose fingerprint is unchanged is yielded as :class:`~zoo.sources.Unchanged`
without being read.

A folder whose ``config.json`` / ``modules.json`` is not valid JSON, or whose files cannot be read, is yielded
as :class:`~zoo.sources.Failed` and the scan goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import vocab
from zoo.errors import SourceError, UsageError
from zoo.ids import ModelId, make_id, slugify
from zoo.record import ModelRecord
from zoo.sources import Failed, SourceItem, Unchanged
from zoo.sources.weight_files import params_of as _params
from zoo.sources.weight_files import weight_files as _weight_files

SOURCE = "local"
_SKIP_DIRS = {"__pycache__", "node_modules"}
_MAX_JSON_BYTES = 32 * 1024 * 1024
_MAX_README_BYTES = 1024 * 1024
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
    "sentencepiece.bpe.model", "tokenizer.model",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ckpt")

# --- Hugging Face model_type -> modality -------------------------------------------------------------
_IMAGE_TYPES = {
    "vit", "deit", "beit", "dinov2", "dinov2_with_registers", "dinov3_vit", "dinov3_convnext", "convnext",
    "convnextv2", "swin", "swinv2", "resnet", "regnet", "efficientnet", "mobilenet_v1", "mobilenet_v2",
    "mobilevit", "mobilevitv2", "levit", "poolformer", "segformer", "dpt", "detr", "yolos", "conditional_detr",
    "deformable_detr", "rt_detr", "mask2former", "maskformer", "upernet", "bit", "van", "cvt", "focalnet",
    "dinat", "nat", "pvt", "pvt_v2", "efficientformer", "swiftformer", "vit_mae", "vit_msn", "vit_hybrid",
    "data2vec-vision", "hiera", "ijepa", "imagegpt", "glpn", "sam", "vitdet", "depth_anything", "vitmatte",
    "table-transformer", "timm_wrapper", "clip_vision_model", "siglip_vision_model", "siglip2_vision_model",
    "aimv2_vision_model", "hgnet_v2", "textnet", "vitpose", "zoedepth", "seggpt", "swin2sr",
}
_TEXT_TYPES = {
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "distilbert", "albert", "electra", "deberta",
    "deberta-v2", "mpnet", "camembert", "flaubert", "xlm", "xlnet", "longformer", "big_bird", "funnel", "ernie",
    "ernie_m", "nezha", "roformer", "mobilebert", "squeezebert", "convbert", "canine", "luke", "mluke", "mega",
    "nystromformer", "rembert", "splinter", "megatron-bert", "xmod", "ibert", "data2vec-text", "modernbert",
    "nomic_bert", "jina_bert", "t5", "mt5", "umt5", "bart", "mbart", "pegasus", "marian", "gpt2", "gpt_neo",
    "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi",
    "phi3", "opt", "bloom", "falcon", "esm", "clip_text_model", "siglip_text_model", "new", "bge-m3",
}
_AUDIO_TYPES = {
    "wav2vec2", "wav2vec2-conformer", "wav2vec2-bert", "hubert", "wavlm", "whisper", "ast",
    "audio-spectrogram-transformer", "data2vec-audio", "unispeech", "unispeech-sat", "sew", "sew-d",
    "speech_to_text", "speecht5", "encodec", "mctct", "clvp", "univnet", "mimi", "dac", "moonshine",
}
_MULTIMODAL_TYPES = {
    "clip", "siglip", "siglip2", "chinese_clip", "align", "altclip", "blip", "blip-2", "owlvit", "owlv2",
    "flava", "groupvit", "x_clip", "clap", "layoutlmv2", "layoutlmv3", "layoutlm", "vilt", "visual_bert", "git",
    "llava", "metaclip_2", "aimv2",
}
_VIDEO_TYPES = {"videomae", "timesformer", "vivit", "video_llava"}
# position ids start after the padding index: usable length = max_position_embeddings - 2
_ROBERTA_STYLE = {
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet", "xmod", "ibert",
    "data2vec-text", "luke", "mluke",
}
_HF_ARCH_TASKS = (
    ("ForImageClassification", "image-classification"),
    ("ForAudioClassification", "audio-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForPreTraining", "fill-mask"),
    ("ForCTC", "speech-recognition"),
    ("ForSpeechSeq2Seq", "speech-recognition"),
    ("WhisperForConditionalGeneration", "speech-recognition"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForInstanceSegmentation", "image-segmentation"),
    ("ForUniversalSegmentation", "image-segmentation"),
    ("ForXVector", "speaker-embedding"),
    ("ForZeroShotImageClassification", "zero-shot-classification"),
)
_PIPELINE_TASKS = {
    "sentence-similarity": "sentence-embedding",
    "feature-extraction": "feature-extraction",
    "image-feature-extraction": "image-embedding",
    "image-classification": "image-classification",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "fill-mask": "fill-mask",
    "zero-shot-classification": "zero-shot-classification",
    "zero-shot-image-classification": "zero-shot-classification",
    "audio-classification": "audio-classification",
    "automatic-speech-recognition": "speech-recognition",
    "object-detection": "object-detection",
    "image-segmentation": "image-segmentation",
}
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


# ---------------------------------------------------------------------------------------------------------
# discovery


@dataclass
class _Found:
    kind: str  # "st" | "timm" | "hf" | "onnx" | "broken" | "unreadable"
    path: Path
    parts: tuple[str, ...]  # id name parts, before slugifying
    config: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    id: str = ""


def _read_json(path: Path) -> Any:
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise ValueError(f"{path.name} is larger than {_MAX_JSON_BYTES // 2**20} MiB")
    return json.loads(path.read_bytes().decode("utf-8"))


def _classify(d: Path, parts: tuple[str, ...]) -> _Found | None:
    """What kind of model folder ``d`` is, or ``None`` when it is not one."""
    modules, config = d / "modules.json", d / "config.json"
    if modules.is_file():
        try:
            mods = _read_json(modules)
            if not isinstance(mods, list):
                raise ValueError("expected a list of modules")
        except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _Found("broken", d, parts, reason=f"{modules}: not valid sentence-transformers modules.json ({e})")
        return _Found("st", d, parts, config={"modules": mods})
    if not config.is_file():
        return None
    try:
        cfg = _read_json(config)
    except (OSError, ValueError) as e:
        return _Found("broken", d, parts, reason=f"{config}: not valid JSON ({e}); fix or remove the file")
    if not isinstance(cfg, dict):
        return None
    if "architecture" in cfg and isinstance(cfg.get("pretrained_cfg") or cfg.get("default_cfg"), dict):
        return _Found("timm", d, parts, config=cfg)
    if "model_type" in cfg or "architectures" in cfg:
        return _Found("hf", d, parts, config=cfg)
    return None  # some other tool's config.json


def _discover(root: Path, recursive: bool) -> list[_Found]:
    if root.is_file():
        if root.suffix.lower() == ".onnx":
            return [_Found("onnx", root, (root.name,))]
        if root.name in ("config.json", "modules.json"):
            return _discover(root.parent, recursive)
        raise SourceError(
            f"{root} is not a model: give a model folder (config.json or modules.json), an .onnx file, "
            "or a folder that contains them."
        )
    found = _classify(root, (root.name,))
    if found is not None:
        return [found]
    try:
        os.listdir(root)
    except OSError as e:
        raise SourceError(f"Cannot read {root}: {e.strerror or e}.") from None
    out: list[_Found] = []
    seen: set[str] = set()
    _walk(root, (), out, seen, recursive)
    return out


def _walk(d: Path, parts: tuple[str, ...], out: list[_Found], seen: set[str], recursive: bool) -> None:
    real = os.path.realpath(d)
    if real in seen:  # symlink loop
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as e:
        out.append(_Found("unreadable", d, parts, reason=f"cannot read folder {d}: {e.strerror or e}"))
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
            is_file = entry.is_file()
        except OSError:
            continue
        sub = parts + (name,)
        if is_file and name.lower().endswith(".onnx"):
            out.append(_Found("onnx", Path(entry.path), sub))
        elif is_dir and name not in _SKIP_DIRS:
            child = Path(entry.path)
            found = _classify(child, sub)
            if found is not None:
                out.append(found)
            elif recursive:
                _walk(child, sub, out, seen, recursive)


def _name_from_parts(parts: Iterable[str]) -> str:
    name = "/".join(slugify(p) for p in parts)
    while ".." in name:
        name = name.replace("..", ".")
    return name


def _resolve_user_id(value: str) -> str:
    text = value.strip()
    if ":" in text:
        mid = ModelId.parse(text)
        if mid.source != SOURCE:
            raise UsageError(f"--id {value!r}: local models take a local: id (e.g. local:{mid.name}) or a bare NAME.")
        return str(mid)
    return make_id(SOURCE, text)


# ---------------------------------------------------------------------------------------------------------
# entry point


def iter_records(
    path: str | Path,
    *,
    id: str | None = None,
    recursive: bool = True,
    known_revisions: Mapping[str, str] | None = None,
    **_: Any,
) -> Iterator[SourceItem]:
    """Yield a record (or ``Failed`` / ``Unchanged``) for every model under ``path``; see the module docstring.

    Discovery and the id checks run before anything is yielded, so a bad path or an id clash raises
    :class:`SourceError` up front.
    """
    root = Path(os.path.expanduser(str(path)))
    try:
        exists = root.exists()
    except OSError as e:
        raise SourceError(f"Cannot read {root}: {e}.") from None
    if not exists:
        raise SourceError(f"{root}: no such file or folder; give a model folder, an .onnx file or a folder of models.")
    root = Path(os.path.abspath(root))  # absolute, symlinks kept: the id uses the name the user gave
    found = _discover(root, recursive)
    if not found:
        raise SourceError(f"no models found in {root} (looked for config.json, modules.json, *.onnx).")

    if id is not None:
        if len(found) != 1:
            raise UsageError(
                f"--id names one model, but {root} holds {len(found)}; point at one model folder or file."
            )
        found[0].id = _resolve_user_id(id)
    else:
        for f in found:
            f.id = make_id(SOURCE, _name_from_parts(f.parts))
    by_id: dict[str, _Found] = {}
    for f in found:
        if f.id in by_id:
            raise SourceError(
                f"two models in {root} map to the id {f.id}: {by_id[f.id].path} and {f.path}; rename one of them, "
                "or register them one at a time with --id NAME."
            )
        by_id[f.id] = f

    known = known_revisions or {}
    for f in found:
        if f.kind in ("broken", "unreadable"):
            yield Failed(f.id, f.reason)
            continue
        try:
            rev = _fingerprint(f)
        except OSError as e:
            yield Failed(f.id, f"cannot read {f.path}: {e.strerror or e}")
            continue
        if known.get(f.id) == rev:
            yield Unchanged(f.id)
            continue
        try:
            rec = _BUILDERS[f.kind](f)
            rec.revision = rev
            rec.validate()
        except _NotAModel as e:
            yield Failed(f.id, str(e))
            continue
        except Exception as e:  # one bad model must not stop the scan
            yield Failed(f.id, f"cannot read {f.path}: {type(e).__name__}: {e}")
            continue
        yield rec


class _NotAModel(Exception):
    """The folder looked like a model but lacks something essential (e.g. weights)."""


# ---------------------------------------------------------------------------------------------------------
# fingerprint


def _fingerprint(f: _Found) -> str:
    h = hashlib.sha256()
    if f.kind == "onnx":
        files = [f.path]
        ext = [p for p in f.path.parent.iterdir() if p.name.startswith(f.path.name) and p != f.path]
        files += sorted(ext)  # external data files named after the model
        for p in files:
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]
    dirs = [f.path]
    if f.kind == "st":
        for m in f.config.get("modules", []):
            sub = f.path / str(m.get("path") or "") if isinstance(m, dict) else f.path
            if sub not in dirs and sub.is_dir():
                dirs.append(sub)
    for d in dirs:
        for p in sorted(d.iterdir()):
            if not p.is_file():
                continue
            st = p.stat()
            rel = p.relative_to(f.path).as_posix()
            if p.suffix.lower() in _WEIGHT_SUFFIXES or st.st_size > _MAX_README_BYTES:
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            elif p.suffix.lower() in (".json", ".md", ".yaml", ".yml", ".txt"):
                h.update(f"{rel}\0".encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# README


def _read_readme(d: Path) -> tuple[dict[str, Any], str]:
    """(front-matter, first prose paragraph) of ``d/README.md``; empty when absent or unreadable."""
    p = d / "README.md"
    if not p.is_file():
        return {}, ""
    try:
        with open(p, "rb") as fh:
            text = fh.read(_MAX_README_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return {}, ""
    meta: dict[str, Any] = {}
    body = text
    m = re.match(r"^\ufeff?---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if m:
        body = text[m.end():]
        try:
            import yaml

            doc = yaml.safe_load(m.group(1))
            if isinstance(doc, dict):
                meta = doc
        except Exception:  # a broken front-matter only loses the metadata
            meta = {}
    return meta, _first_paragraph(body)


def _first_paragraph(body: str, limit: int = 400) -> str:
    para: list[str] = []
    in_code = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("```") or line.startswith("~~~"):
            in_code = not in_code
            if para:
                break
            continue
        if in_code:
            continue
        if not line:
            if para:
                break
            continue
        if line.startswith(("#", "<", "|", "![", "[![", ">", "---", "===")):
            if para:
                break
            continue
        para.append(line)
    text = " ".join(para)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def _readme_license(meta: dict[str, Any]) -> str | None:
    lic = meta.get("license")
    if isinstance(lic, list):
        lic = lic[0] if len(lic) == 1 else None
    if not isinstance(lic, str) or not lic.strip():
        return None
    if lic.strip().lower() == "other" and isinstance(meta.get("license_name"), str):
        return meta["license_name"]
    return lic


def _readme_tasks(meta: dict[str, Any]) -> list[str]:
    tag = meta.get("pipeline_tag")
    task = _PIPELINE_TASKS.get(tag) if isinstance(tag, str) else None
    return [task] if task and task in vocab.TASKS else []


def _has_tokenizer(d: Path) -> bool:
    return any((d / n).is_file() for n in _TOKENIZER_FILES)


def _add(tasks: list[str], *more: str) -> list[str]:
    for t in more:
        if t in vocab.TASKS and t not in tasks:
            tasks.append(t)
    return tasks


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


# ---------------------------------------------------------------------------------------------------------
# Hugging Face transformers


def _sub(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    v = cfg.get(key)
    return v if isinstance(v, dict) else {}


def _preprocessor_config(d: Path) -> dict[str, Any]:
    """``d/preprocessor_config.json``, or {} when it is absent, unreadable or not an object: it only refines
    what config.json says, so a broken one must not fail the folder."""
    pre = d / "preprocessor_config.json"
    if not pre.is_file():
        return {}
    try:
        pc = _read_json(pre)
    except (OSError, ValueError):
        return {}
    return pc if isinstance(pc, dict) else {}


def _hf_modality(cfg: dict[str, Any], d: Path) -> str | None:
    mt = str(cfg.get("model_type") or "").lower()
    for types, modality in ((_MULTIMODAL_TYPES, "multimodal"), (_VIDEO_TYPES, "video"), (_AUDIO_TYPES, "audio"),
                            (_IMAGE_TYPES, "image"), (_TEXT_TYPES, "text")):
        if mt in types:
            return modality
    archs = " ".join(str(a) for a in cfg.get("architectures") or [])
    if _sub(cfg, "vision_config") and _sub(cfg, "text_config"):
        return "multimodal"
    if re.search(r"Image|Vision|Depth|Segmentation|ObjectDetection", archs):
        return "image"
    if re.search(r"Audio|CTC|Speech|XVector", archs):
        return "audio"
    if re.search(r"MaskedLM|CausalLM|SequenceClassification|TokenClassification|QuestionAnswering", archs):
        return "text"
    pc = _preprocessor_config(d)
    if "image_mean" in pc or "crop_size" in pc:
        return "image"
    if "sampling_rate" in pc:
        return "audio"
    if _has_tokenizer(d):
        return "text"
    return None


def _hf_feature_dim(cfg: dict[str, Any], modality: str) -> int | None:
    if modality == "multimodal":
        for v in (cfg.get("projection_dim"), _sub(cfg, "vision_config").get("hidden_size"),
                  _sub(cfg, "text_config").get("hidden_size"), cfg.get("hidden_size")):
            if _int(v):
                return v
        return None
    sizes = cfg.get("hidden_sizes")
    if modality == "image" and isinstance(sizes, list) and sizes and _int(sizes[-1]):
        return sizes[-1]
    for key in ("hidden_size", "dim", "d_model", "n_embd", "hidden_dim", "embed_dim"):
        if _int(cfg.get(key)):
            return cfg[key]
    if isinstance(sizes, list) and sizes and _int(sizes[-1]):
        return sizes[-1]
    return None


def _hf_max_length(cfg: dict[str, Any], modality: str) -> int | None:
    if modality not in ("text", "multimodal"):
        return None
    src = cfg if modality == "text" else (_sub(cfg, "text_config") or cfg)
    n = _int(src.get("max_position_embeddings")) or _int(src.get("n_positions"))
    if n is None:
        return None
    mt = str(src.get("model_type") or cfg.get("model_type") or "").lower()
    if mt in _ROBERTA_STYLE and n > 2:
        n -= 2
    return n


def _image_prep(cfg: dict[str, Any], d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    vis = _sub(cfg, "vision_config") or cfg
    size = vis.get("image_size")
    chans = _int(vis.get("num_channels")) or 3
    pc = _preprocessor_config(d)
    if size is None:
        crop = pc.get("crop_size") if pc.get("do_center_crop", True) else None
        size = crop if crop is not None else pc.get("size")
    if isinstance(size, dict):
        h, w = size.get("height"), size.get("width")
        if h is None and "shortest_edge" in size:
            h = w = size["shortest_edge"]
        size = [h, w]
    if _int(size):
        out["input_size"] = [chans, size, size]
    elif isinstance(size, (list, tuple)) and len(size) == 2 and all(_int(x) for x in size):
        out["input_size"] = [chans, int(size[0]), int(size[1])]
    for key in ("mean", "std"):
        v = pc.get(f"image_{key}")
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            out[key] = [float(x) for x in v]
    if isinstance(pc.get("resample"), int):
        out["interpolation"] = _PIL_RESAMPLE.get(pc["resample"])
    if isinstance(pc.get("crop_pct"), (int, float)) and not isinstance(pc.get("crop_pct"), bool):
        out["crop_pct"] = float(pc["crop_pct"])
    if _int(pc.get("sampling_rate")):
        out["sampling_rate"] = pc["sampling_rate"]
    return out


def _hf_tasks(cfg: dict[str, Any], modality: str) -> list[str]:
    tasks: list[str] = []
    archs = [str(a) for a in cfg.get("architectures") or []]
    for arch in archs:
        if modality == "audio" and arch.endswith("ForSequenceClassification"):
            _add(tasks, "audio-classification")
        elif arch.endswith("ForSequenceClassification"):
            _add(tasks, "text-classification")
        for suffix, task in _HF_ARCH_TASKS:
            if arch.endswith(suffix):
                _add(tasks, task)
    if modality == "multimodal":
        _add(tasks, "zero-shot-classification", "image-embedding")
    elif modality == "image":
        _add(tasks, "image-embedding")
    else:
        _add(tasks, "feature-extraction")
    return tasks


def _folder_record(d: Path, metadata_file: str, meta: dict[str, Any], extra: dict[str, Any],
                   **fields: Any) -> ModelRecord:
    """A transformers or sentence-transformers folder's record: both take the license and base model from
    the README front-matter and point ``weights`` at the folder, so their provenance is built once, here."""
    license_ = _readme_license(meta)
    if isinstance(meta.get("base_model"), str):
        extra["base_model"] = meta["base_model"]
    sources = {"metadata": f"file:{d / metadata_file}"}
    if license_:
        sources["license"] = f"file:{d / 'README.md'} (front-matter)"
    return ModelRecord(license=license_, weights=f"file:{d}", source=SOURCE, source_version=None,
                       sources=sources, extra=extra, **fields)


def _build_hf(f: _Found) -> ModelRecord:
    d, cfg = f.path, f.config
    modality = _hf_modality(cfg, d)
    if modality is None:
        raise _NotAModel(
            f"cannot tell the modality of model_type {cfg.get('model_type')!r} in {d}; "
            "describe the model in a manifest instead."
        )
    wkind, wfiles = _weight_files(d)
    if not wfiles:
        raise _NotAModel(f"{d} has a config.json but no weights (model.safetensors, *.safetensors, pytorch_model.bin).")
    meta, prose = _read_readme(d)
    mt = str(cfg.get("model_type") or "") or None
    archs = [str(a) for a in cfg.get("architectures") or []]
    prep = _image_prep(cfg, d) if modality in ("image", "multimodal", "video", "audio") else {}
    tasks = _readme_tasks(meta)
    tasks = _add(tasks, *_hf_tasks(cfg, modality))
    extra: dict[str, Any] = {"path": str(d), "architectures": archs, "weight_files": [p.name for p in wfiles]}
    if "sampling_rate" in prep:
        extra["sampling_rate"] = prep.pop("sampling_rate")
    what = archs[0] if archs else (mt or "model")
    return _folder_record(
        d, "config.json", meta, extra,
        id=f.id,
        modality=modality,
        tasks=tasks,
        architecture=mt or (archs[0] if archs else None),
        library="transformers",
        params=_params(wkind, wfiles),
        feature_dim=_hf_feature_dim(cfg, modality),
        tokenizer=str(d) if _has_tokenizer(d) else None,
        max_length=_hf_max_length(cfg, modality),
        description=prose or f"Local transformers {what} from {d.name}.",
        **{k: v for k, v in prep.items() if v is not None},
    )


# ---------------------------------------------------------------------------------------------------------
# sentence-transformers


def _module_dirs(d: Path, modules: list[Any]) -> list[tuple[str, Path]]:
    out = []
    for m in modules:
        if not isinstance(m, dict):
            continue
        sub = d / str(m.get("path") or "")
        out.append((str(m.get("type") or ""), sub))
    return out


def _pooling_dim(pcfg: dict[str, Any]) -> int | None:
    dim = _int(pcfg.get("word_embedding_dimension"))
    if dim is None:
        return None
    modes = [k for k, v in pcfg.items() if k.startswith("pooling_mode_") and v is True]
    return dim * max(1, len(modes))


def _build_st(f: _Found) -> ModelRecord:
    d = f.path
    mods = _module_dirs(d, f.config.get("modules", []))
    if not mods:
        raise _NotAModel(f"{d / 'modules.json'} lists no modules.")
    tdir = next((p for t, p in mods if t.endswith("Transformer") or "CLIPModel" in t), mods[0][1])
    tcfg: dict[str, Any] = {}
    if (tdir / "config.json").is_file():
        try:
            c = _read_json(tdir / "config.json")
        except (OSError, ValueError) as e:
            raise _NotAModel(f"{tdir / 'config.json'}: not valid JSON ({e}); fix or remove the file") from None
        tcfg = c if isinstance(c, dict) else {}
    sb: dict[str, Any] = {}
    for cand in (tdir / "sentence_bert_config.json", d / "sentence_bert_config.json"):
        if cand.is_file():
            c = _read_json(cand)
            sb = c if isinstance(c, dict) else {}
            break
    feature_dim = None
    for t, p in mods:
        if t.endswith("Dense") and (p / "config.json").is_file():
            dc = _read_json(p / "config.json")
            feature_dim = _int(dc.get("out_features")) if isinstance(dc, dict) else feature_dim
        elif t.endswith("Pooling") and feature_dim is None and (p / "config.json").is_file():
            pc = _read_json(p / "config.json")
            feature_dim = _pooling_dim(pc) if isinstance(pc, dict) else None
    if feature_dim is None and tcfg:
        feature_dim = _hf_feature_dim(tcfg, "text")

    params: int | None = 0
    wnames: list[str] = []
    any_weights = False
    for p in dict.fromkeys(p for _, p in mods):
        if not p.is_dir():
            continue
        wkind, wfiles = _weight_files(p)
        if not wfiles:
            continue
        any_weights = True
        wnames += [fp.relative_to(d).as_posix() for fp in wfiles]
        n = _params(wkind, wfiles)
        params = None if n is None or params is None else params + n
    if not any_weights:
        raise _NotAModel(f"{d} is a sentence-transformers folder without weights (model.safetensors, pytorch_model.bin).")

    multimodal = any("CLIPModel" in t for t, _ in mods) or str(tcfg.get("model_type")) in _MULTIMODAL_TYPES
    modality = "multimodal" if multimodal else "text"
    tasks = ["sentence-embedding"] + (["image-embedding"] if multimodal else [])
    meta, prose = _read_readme(d)
    max_length = _int(sb.get("max_seq_length")) or (_hf_max_length(tcfg, "text") if tcfg else None)
    mt = str(tcfg.get("model_type") or "") or None
    extra: dict[str, Any] = {"path": str(d), "modules": [t for t, _ in mods], "weight_files": wnames}
    if (d / "config_sentence_transformers.json").is_file():
        try:
            stc = _read_json(d / "config_sentence_transformers.json")
            if isinstance(stc, dict) and isinstance(stc.get("similarity_fn_name"), str):
                extra["similarity_fn_name"] = stc["similarity_fn_name"]
        except (OSError, ValueError):
            pass
    tok = tdir if _has_tokenizer(tdir) else (d if _has_tokenizer(d) else None)
    return _folder_record(
        d, "modules.json", meta, extra,
        id=f.id,
        modality=modality,
        tasks=tasks,
        architecture=mt,
        library="sentence-transformers",
        params=params,
        feature_dim=feature_dim,
        tokenizer=str(tok) if tok else None,
        max_length=max_length,
        description=prose or f"Local sentence-transformers model {d.name} ({mt or 'transformer'}).",
    )


# ---------------------------------------------------------------------------------------------------------
# timm


def _build_timm(f: _Found) -> ModelRecord:
    d, cfg = f.path, f.config
    pcfg = cfg.get("pretrained_cfg") if isinstance(cfg.get("pretrained_cfg"), dict) else cfg.get("default_cfg")
    wkind, wfiles = _weight_files(d, timm_style=True)
    if not wfiles:
        raise _NotAModel(f"{d} has a timm config.json but no model.safetensors or pytorch_model.bin.")
    arch = str(cfg["architecture"])
    tag = str(pcfg.get("tag") or "")
    meta, prose = _read_readme(d)
    license_ = _readme_license(meta) or (pcfg.get("license") if isinstance(pcfg.get("license"), str) else None)
    num_classes = cfg.get("num_classes", pcfg.get("num_classes"))
    tasks = ["image-classification", "image-embedding"] if _int(num_classes) else ["image-embedding"]
    input_size = pcfg.get("input_size")
    mean, std = pcfg.get("mean"), pcfg.get("std")
    crop = pcfg.get("crop_pct")
    sources = {"metadata": f"file:{d / 'config.json'}"}
    if license_:
        sources["license"] = (f"file:{d / 'README.md'} (front-matter)" if _readme_license(meta)
                              else f"file:{d / 'config.json'} (pretrained_cfg.license)")
    return ModelRecord(
        id=f.id,
        modality="image",
        tasks=tasks,
        pretraining_data=vocab.pretraining_from_tag(tag) if tag else [],
        architecture=arch,
        library="timm",
        params=_params(wkind, wfiles),
        feature_dim=_int(cfg.get("num_features")),
        input_size=[int(x) for x in input_size] if isinstance(input_size, list) and len(input_size) == 3 else None,
        mean=[float(x) for x in mean] if isinstance(mean, list) else None,
        std=[float(x) for x in std] if isinstance(std, list) else None,
        interpolation=pcfg.get("interpolation") if isinstance(pcfg.get("interpolation"), str) else None,
        crop_pct=float(crop) if isinstance(crop, (int, float)) and not isinstance(crop, bool) else None,
        license=license_,
        description=prose or f"Local timm {arch}{'.' + tag if tag else ''} checkpoint from {d.name}.",
        weights=f"file:{d}",
        source=SOURCE,
        source_version=None,
        sources=sources,
        extra={"path": str(d), "tag": tag or None, "num_classes": num_classes,
               "global_pool": cfg.get("global_pool"), "weight_files": [p.name for p in wfiles],
               "test_input_size": pcfg.get("test_input_size")},
    )


# ---------------------------------------------------------------------------------------------------------
# ONNX

def _build_onnx(f: _Found) -> ModelRecord:
    from zoo.sources.onnx_file import NotDescribed, onnx_record

    has_tok = _has_tokenizer(f.path.parent)
    try:
        return onnx_record(f.path, f.id, source=SOURCE, tokenizer=f.path.parent if has_tok else None)
    except NotDescribed as e:
        raise _NotAModel(str(e)) from None


_BUILDERS = {"hf": _build_hf, "st": _build_st, "timm": _build_timm, "onnx": _build_onnx}
