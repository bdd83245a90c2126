"""A small real HTTP server that answers like the Hugging Face Hub, for offline tests.

Shapes follow the real Hub's answers as ``huggingface_hub`` 2.x parses them (checked against its source:
``hf_api.py``, ``file_download.py``, ``_snapshot_download.py``, ``utils/_http.py``).

Metadata (the Hub indexer's tests):

- ``GET /api/models`` — listing with ``search``, ``author``, ``filter`` (repeatable, matched against
  tags), ``pipeline_tag``, ``sort``/``direction``, ``limit``, ``expand`` / ``expand[]`` (repeatable:
  only those properties come back, plus ``id``/``_id``), ``full``, ``cardData``; paginated with a
  GitHub-style ``Link: <...>; rel="next"`` header and an opaque ``cursor``.
- ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{rev}`` (``expand`` honoured;
  ``?blobs=true``, what ``model_info(files_metadata=True)`` sends, adds ``size``/``blobId``/``lfs`` to
  ``siblings`` of repos served from disk).

Files (``add_repo(repo_id, folder)`` serves a folder on disk as a repo; JSON-only models serve their README):

- ``GET /api/models/{repo_id}/tree/{rev}[/{path}]?recursive=&expand=`` — ``{"type": "file", "oid",
  "size", "path"}`` (+ ``"lfs": {"oid": sha256, "size", "pointerSize"}`` for LFS files: weight suffixes or
  > 1 MB) and ``{"type": "directory", "oid", "size": 0, "path"}``; oids are real git blob/tree ids
  (an LFS file's oid is its pointer's blob id, as in git); paginated by ``Link`` past ``tree_page_size``.
- ``POST /api/models/{repo_id}/paths-info/{rev}`` (``HfApi.get_paths_info``).
- ``HEAD`` / ``GET /{repo_id}/resolve/{rev}/{path}`` — ``X-Repo-Commit``, ``ETag`` (git blob id; sha256
  for LFS files), ``Content-Length``, ``Accept-Ranges: bytes``; never ``X-Xet-Hash``. An LFS file
  answers ``302`` to ``http://localhost:{port}/cdn-lfs/...`` with ``X-Linked-Etag``/``X-Linked-Size``,
  as the real Hub redirects to its CDN (``lfs_redirect=False``: served in place). ``Range: bytes=a-b``,
  ``a-`` or ``-n`` → ``206`` + ``Content-Range``; unsatisfiable → ``416``.
- Errors: 404 ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` (only ``main`` and the sha exist) /
  ``EntryNotFound`` (with ``X-Repo-Commit``); gated repos (``gated=``) answer 401/403 ``GatedRepo`` for
  files other than README.md/.gitattributes unless the request's bearer token was ``grant``-ed.

Switches (thread-safe): ``fail_repos`` (every request for that repo answers 500), ``fail_next(n, prefix)``
(the next ``n`` requests whose path starts with ``prefix`` answer 500), ``deny_repos`` (repo -> 401/403
``GatedRepo`` on every request, info included), ``cut_next(path_suffix, at_bytes=None)`` (the next GET of
a matching file announces its full ``Content-Length`` and closes the connection mid-body),
``slow_bytes_per_s`` (throttle file bodies), ``page_size``, ``tree_page_size``, ``lfs_redirect``.
Every request is logged in ``requests`` as ``(method, path, query)`` (a POST's form fields join
``query``); requests with a ``Range`` header also in ``ranges`` as ``(method, path, range)``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

# --- fixtures ------------------------------------------------------------------------------------

RADIOLOGY_README = """---
license: apache-2.0
library_name: transformers
pipeline_tag: image-classification
tags:
- medical
- radiology
- x-ray
datasets:
- chexpert
- mimic-cxr
- imagenet-21k
model-index:
- name: vit-base-patch16-224-cxr
  results:
  - task:
      type: image-classification
    dataset:
      type: chexpert
      name: CheXpert
      split: validation
    metrics:
    - type: auroc
      value: 0.887
      name: Mean AUROC
---

# ViT-Base chest X-ray classifier

<!-- Provide a quick summary of what the model is/does. -->

A Vision Transformer (ViT-B/16) pretrained on ImageNet-21k and fine-tuned on CheXpert and
MIMIC-CXR frontal chest radiographs to detect 14 findings.

![architecture](https://example.org/vit.png)

## Intended uses

Research on chest X-ray classification; not for clinical use.
"""

BIOMED_README = """---
language: en
license: mit
tags:
- biology
- medical
datasets:
- pubmed
- pmc
---
# BiomedBERT (abstracts + full text)

A BERT-base masked language model pretrained from scratch on PubMed abstracts and PubMed Central
full-text articles, with a domain-specific vocabulary.
"""

ST_README = """---
license: apache-2.0
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags:
- sentence-transformers
- feature-extraction
datasets:
- s2orc
- ms_marco
- sentence-transformers/reddit-title-body
---

# mpnet-base sentence embeddings

This is a [sentence-transformers](https://www.SBERT.net) model: it maps sentences and paragraphs
to a 768 dimensional dense vector space and can be used for clustering or semantic search.
""" + "\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 8 for i in range(40))

ASR_README = """---
language: en
license: apache-2.0
datasets:
- librispeech_asr
tags:
- audio
- automatic-speech-recognition
model-index:
- name: wav2vec2-base-960h
  results:
  - task:
      name: Automatic Speech Recognition
      type: automatic-speech-recognition
    dataset:
      name: LibriSpeech (clean)
      type: librispeech_asr
      config: clean
      split: test
    metrics:
    - name: Test WER
      type: wer
      value: 3.4
  - task:
      name: Automatic Speech Recognition
      type: automatic-speech-recognition
    dataset:
      name: LibriSpeech (other)
      type: librispeech_asr
      config: other
      split: test
    metrics:
    - name: Test WER
      type: wer
      value: 8.6
---

# Wav2Vec2-Base-960h

The base model pretrained and fine-tuned on 960 hours of LibriSpeech 16kHz sampled speech audio.
"""

GATED_README = """---
license: cc-by-nc-4.0
extra_gated_prompt: You agree to not use the model for commercial purposes.
pipeline_tag: image-feature-extraction
datasets:
- imagenet-1k
model-index:
- name: gated-vision-encoder
  results:
  - task:
      type: image-classification
    dataset:
      type: imagenet-1k
      name: ImageNet-1k
      split: validation
    metrics:
    - type: accuracy
      value: 0.842
      name: Top-1 Accuracy (linear probe)
---
# Gated vision encoder

A self-supervised ViT-L/14 image encoder. Access is granted after accepting the license terms.
"""


def _sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def _model(repo_id: str, *, pipeline_tag: str | None, library_name: str | None, tags: list[str],
           card_data: dict[str, Any] | None, params: int | None, downloads: int, likes: int,
           gated: Any = False, model_type: str | None = None, architectures: list[str] | None = None,
           created: str = "2023-05-02T10:11:12.000Z", modified: str = "2024-11-20T08:00:00.000Z",
           files: list[str] | None = None) -> dict[str, Any]:
    """A full model-info document, shaped like ``GET https://huggingface.co/api/models/{repo_id}``."""
    sha = _sha(repo_id + "@v1")
    doc: dict[str, Any] = {
        "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
        "id": repo_id,
        "modelId": repo_id,
        "author": repo_id.split("/")[0],
        "sha": sha,
        "lastModified": modified,
        "createdAt": created,
        "private": False,
        "disabled": False,
        "gated": gated,
        "downloads": downloads,
        "likes": likes,
        "library_name": library_name,
        "pipeline_tag": pipeline_tag,
        "tags": tags,
        "cardData": card_data,
        "config": {"architectures": architectures, "model_type": model_type} if model_type else None,
        "siblings": [{"rfilename": f} for f in (files or [".gitattributes", "README.md", "config.json"])],
        "spaces": [],
        "usedStorage": (params or 0) * 4,
        "widgetData": None,
        "trendingScore": 0,
    }
    if card_data and card_data.get("model-index"):
        doc["model-index"] = card_data["model-index"]
    if params is not None:
        doc["safetensors"] = {"parameters": {"F32": params}, "total": params}
    if pipeline_tag == "fill-mask":
        doc["mask_token"] = "[MASK]"
    if library_name == "transformers":
        doc["transformersInfo"] = {"auto_model": "AutoModel", "pipeline_tag": pipeline_tag, "processor": "AutoProcessor"}
    return {k: v for k, v in doc.items() if v is not None or k in ("pipeline_tag", "library_name")}


def default_models() -> list[dict[str, Any]]:
    cxr_index = [{"name": "vit-base-patch16-224-cxr", "results": [{
        "task": {"type": "image-classification"},
        "dataset": {"type": "chexpert", "name": "CheXpert", "split": "validation"},
        "metrics": [{"type": "auroc", "value": 0.887, "name": "Mean AUROC"}]}]}]
    asr_index = [{"name": "wav2vec2-base-960h", "results": [
        {"task": {"name": "Automatic Speech Recognition", "type": "automatic-speech-recognition"},
         "dataset": {"name": "LibriSpeech (clean)", "type": "librispeech_asr", "config": "clean", "split": "test"},
         "metrics": [{"name": "Test WER", "type": "wer", "value": 3.4}]},
        {"task": {"name": "Automatic Speech Recognition", "type": "automatic-speech-recognition"},
         "dataset": {"name": "LibriSpeech (other)", "type": "librispeech_asr", "config": "other", "split": "test"},
         "metrics": [{"name": "Test WER", "type": "wer", "value": 8.6}]}]}]
    gated_index = [{"name": "gated-vision-encoder", "results": [{
        "task": {"type": "image-classification"},
        "dataset": {"type": "imagenet-1k", "name": "ImageNet-1k", "split": "validation"},
        "metrics": [{"type": "accuracy", "value": 0.842, "name": "Top-1 Accuracy (linear probe)"}]}]}]
    return [
        _model(
            "radiology-lab/vit-base-patch16-224-cxr", pipeline_tag="image-classification", library_name="transformers",
            tags=["transformers", "safetensors", "vit", "image-classification", "medical", "radiology", "x-ray",
                  "dataset:chexpert", "dataset:mimic-cxr", "dataset:imagenet-21k", "license:apache-2.0",
                  "autotrain_compatible", "endpoints_compatible", "region:us"],
            card_data={"license": "apache-2.0", "library_name": "transformers", "pipeline_tag": "image-classification",
                       "tags": ["medical", "radiology", "x-ray"], "datasets": ["chexpert", "mimic-cxr", "imagenet-21k"],
                       "model-index": cxr_index},
            params=85_812_238, downloads=15_234, likes=41, model_type="vit",
            architectures=["ViTForImageClassification"],
            files=[".gitattributes", "README.md", "config.json", "model.safetensors", "preprocessor_config.json"],
        ),
        _model(
            "biomed-nlp/BiomedBERT-base-uncased-abstract-fulltext", pipeline_tag="fill-mask",
            library_name="transformers",
            tags=["transformers", "pytorch", "safetensors", "bert", "fill-mask", "biology", "medical", "en",
                  "dataset:pubmed", "dataset:pmc", "license:mit", "autotrain_compatible", "region:us"],
            card_data={"language": "en", "license": "mit", "tags": ["biology", "medical"], "datasets": ["pubmed", "pmc"]},
            params=109_514_298, downloads=380_112, likes=231, model_type="bert", architectures=["BertForMaskedLM"],
        ),
        _model(
            "st-org/mpnet-base-sentence", pipeline_tag="sentence-similarity", library_name="sentence-transformers",
            tags=["sentence-transformers", "pytorch", "safetensors", "mpnet", "fill-mask", "feature-extraction",
                  "sentence-similarity", "en", "dataset:s2orc", "dataset:ms_marco",
                  "dataset:sentence-transformers/reddit-title-body", "license:apache-2.0", "region:us"],
            card_data={"license": "apache-2.0", "library_name": "sentence-transformers",
                       "pipeline_tag": "sentence-similarity", "tags": ["sentence-transformers", "feature-extraction"],
                       "datasets": ["s2orc", "ms_marco", "sentence-transformers/reddit-title-body"]},
            params=109_486_464, downloads=12_345_678, likes=1050, model_type="mpnet", architectures=["MPNetForMaskedLM"],
        ),
        _model(
            "speech-lab/wav2vec2-base-960h", pipeline_tag="automatic-speech-recognition", library_name="transformers",
            tags=["transformers", "pytorch", "safetensors", "wav2vec2", "automatic-speech-recognition", "audio",
                  "en", "dataset:librispeech_asr", "license:apache-2.0", "model-index", "region:us"],
            card_data={"language": "en", "license": "apache-2.0", "datasets": ["librispeech_asr"],
                       "tags": ["audio", "automatic-speech-recognition"], "model-index": asr_index},
            params=94_396_320, downloads=1_234_567, likes=340, model_type="wav2vec2", architectures=["Wav2Vec2ForCTC"],
        ),
        _model(
            "bigvision/gated-vision-encoder", pipeline_tag="image-feature-extraction", library_name="transformers",
            tags=["transformers", "safetensors", "vit", "image-feature-extraction", "dataset:imagenet-1k",
                  "license:cc-by-nc-4.0", "region:us"],
            card_data={"license": "cc-by-nc-4.0", "pipeline_tag": "image-feature-extraction",
                       "datasets": ["imagenet-1k"], "model-index": gated_index,
                       "extra_gated_prompt": "You agree to not use the model for commercial purposes."},
            params=304_368_640, downloads=9_876, likes=77, gated="manual", model_type="dinov2",
            architectures=["Dinov2Model"],
        ),
        _model(
            "someone/resnet18-tiny", pipeline_tag="image-classification", library_name="timm",
            tags=["timm", "pytorch", "image-classification", "license:apache-2.0", "region:us"],
            card_data=None, params=None, downloads=12, likes=0, files=[".gitattributes", "pytorch_model.bin"],
        ),
    ]


def default_readmes() -> dict[str, str]:
    return {
        "radiology-lab/vit-base-patch16-224-cxr": RADIOLOGY_README,
        "biomed-nlp/BiomedBERT-base-uncased-abstract-fulltext": BIOMED_README,
        "st-org/mpnet-base-sentence": ST_README,
        "speech-lab/wav2vec2-base-960h": ASR_README,
        "bigvision/gated-vision-encoder": GATED_README,
        # someone/resnet18-tiny has no README (404 EntryNotFound)
    }


# --- repo files ----------------------------------------------------------------------------------

# Suffixes the Hub's default .gitattributes stores with git-lfs (a subset: the weight formats).
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".onnx", ".h5", ".msgpack", ".pkl", ".pickle",
                ".gguf", ".ot", ".tflite", ".npy", ".npz", ".zip", ".tar", ".gz", ".model", ".joblib")
LFS_MIN_SIZE = 1_000_000  # larger files go to LFS whatever their suffix
_CHUNK = 1 << 20
_COMMIT_DATE = "2024-11-20T08:00:00.000Z"
_HASH_MEMO: dict[tuple[str, int, int], tuple[str, str]] = {}
_HASH_LOCK = threading.Lock()


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob with this content (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs(path: str, size: int) -> bool:
    return size > LFS_MIN_SIZE or path.lower().endswith(LFS_SUFFIXES)


def _hash_file(disk: Path) -> tuple[str, str]:
    """(git blob sha1, sha256) of a file, in one pass; memoised on (path, size, mtime)."""
    st = disk.stat()
    key = (str(disk), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_MEMO:
            return _HASH_MEMO[key]
    sha1 = hashlib.sha1(b"blob %d\0" % st.st_size)
    sha256 = hashlib.sha256()
    with open(disk, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
    out = (sha1.hexdigest(), sha256.hexdigest())
    with _HASH_LOCK:
        _HASH_MEMO[key] = out
    return out


@dataclass(frozen=True)
class RepoEntry:
    """One file of a served repo, with the ids the Hub gives it."""

    path: str                 # path inside the repo, "/"-separated
    size: int                 # the file's real size
    blob_id: str              # git blob sha1 (of the LFS pointer for an LFS file), the tree's "oid"
    sha256: str | None        # LFS files only
    pointer_size: int | None  # LFS files only
    disk: Path | None = None  # where the bytes are (or ``data``)
    data: bytes | None = None

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """What the Hub puts in ``ETag``/``X-Linked-Etag``: the sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 or self.blob_id

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> RepoEntry:
        if is_lfs(path, len(data)):
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = lfs_pointer(sha256, len(data))
            return cls(path, len(data), git_blob_oid(pointer), sha256, len(pointer), data=data)
        return cls(path, len(data), git_blob_oid(data), None, None, data=data)

    @classmethod
    def from_file(cls, path: str, disk: Path) -> RepoEntry:
        blob, sha256 = _hash_file(disk)
        size = disk.stat().st_size
        if is_lfs(path, size):
            pointer = lfs_pointer(sha256, size)
            return cls(path, size, git_blob_oid(pointer), sha256, len(pointer), disk=disk)
        return cls(path, size, blob, None, None, disk=disk)

    def tree_item(self, expand_commit: dict[str, Any] | None = None) -> dict[str, Any]:
        """The entry as ``GET /api/models/{repo}/tree/{rev}`` lists it."""
        item: dict[str, Any] = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            item["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        if expand_commit is not None:
            item["lastCommit"] = expand_commit
            item["securityFileStatus"] = {"status": "safe"}
        return item

    def sibling(self) -> dict[str, Any]:
        """The entry as ``siblings`` lists it with ``?blobs=true``."""
        item: dict[str, Any] = {"rfilename": self.path, "size": self.size, "blobId": self.blob_id}
        if self.lfs:
            item["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return item

    def open(self) -> BinaryIO:
        return open(self.disk, "rb") if self.disk is not None else io.BytesIO(self.data or b"")


def _tree_oids(files: dict[str, RepoEntry]) -> dict[str, str]:
    """Git tree ids of every folder ("" is the root), as git computes them."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path, entry in files.items():
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent, name = "/".join(parts[:i - 1]), parts[i - 1]
            children.setdefault("/".join(parts[:i]), {})
            children.setdefault(parent, {})[name] = ("40000", "")
        children.setdefault("/".join(parts[:-1]), {})[parts[-1]] = ("100644", entry.blob_id)
    oids: dict[str, str] = {}
    for folder in sorted(children, key=lambda d: -d.count("/") - (d != "")):  # deepest first, root last
        body = b""
        for name in sorted(children[folder], key=lambda n: n + "/" if children[folder][n][0] == "40000" else n):
            mode, oid = children[folder][name]
            if mode == "40000":
                oid = oids[f"{folder}/{name}" if folder else name]
            body += f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid)
        oids[folder] = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
    return oids


def _commit_oid(tree: str, repo_id: str) -> str:
    who = "zoo-tests <tests@example.org> 1732089600 +0000"
    body = f"tree {tree}\nauthor {who}\ncommitter {who}\n\nUpload {repo_id}\n".encode()
    return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()


def _safetensors_params(disk: Path) -> dict[str, int]:
    """Parameter count per dtype from a .safetensors header (what the Hub shows as ``safetensors``)."""
    counts: dict[str, int] = {}
    with open(disk, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    for name, meta in header.items():
        if name != "__metadata__":
            counts[meta["dtype"]] = counts.get(meta["dtype"], 0) + math.prod(meta["shape"])
    return counts


def _front_matter(text: str) -> dict[str, Any] | None:
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    try:
        import yaml

        data = yaml.safe_load(text[3:end])
    except Exception:
        return None
    return data if isinstance(data, dict) else None


# --- server --------------------------------------------------------------------------------------

_LIST_FIELDS = ("_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                "library_name", "createdAt", "modelId")
_FULL_LIST_FIELDS = _LIST_FIELDS + ("author", "sha", "lastModified", "gated", "disabled", "siblings")


class HubServer:
    """``with HubServer() as hub: HfApi(endpoint=hub.url)``.

    ``lfs_redirect`` (default on, as the real Hub): a ``resolve`` of an LFS file answers ``302`` to a
    "CDN" URL on ``http://localhost:{port}/cdn-lfs/...`` (another origin than ``hub.url``, so
    huggingface_hub takes the file's metadata from ``X-Linked-Etag``/``X-Linked-Size`` on the redirect,
    drops the Authorization header and GETs the CDN URL). Off: LFS files are served from ``resolve``
    directly, with ``ETag`` = sha256.
    """

    def __init__(self, models: list[dict[str, Any]] | None = None, readmes: dict[str, str] | None = None,
                 page_size: int = 1000, *, lfs_redirect: bool = True, tree_page_size: int = 1000):
        self.models: dict[str, dict[str, Any]] = {m["id"]: m for m in (models or default_models())}
        self.readmes: dict[str, str] = dict(default_readmes() if readmes is None else readmes)
        self.files: dict[str, dict[str, RepoEntry]] = {}  # repos served from disk (add_repo)
        self.page_size = page_size
        self.tree_page_size = tree_page_size
        self.lfs_redirect = lfs_redirect
        self.fail_repos: set[str] = set()
        self.deny_repos: dict[str, int] = {}
        self.access: dict[str, set[str]] = {}  # gated repo -> tokens granted access (see grant)
        self.slow_bytes_per_s: float | None = None
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.ranges: list[tuple[str, str, str]] = []  # (method, path, Range header) of requests that sent one
        self._fail_next: list[tuple[str, int]] = []
        self._cuts: list[tuple[str, int | None]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        """The "CDN" origin LFS downloads are redirected to: the same server under another host name."""
        assert self._httpd is not None, "server not started"
        return f"http://localhost:{self._httpd.server_address[1]}"

    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hubserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_repo(self, repo_id: str, folder: str | Path, *, library_name: str | None = None,
                 pipeline_tag: str | None = None, tags: Iterable[str] = (), gated: bool | str = False,
                 model_type: str | None = None, sha: str | None = None, card_data: dict[str, Any] | None = None,
                 downloads: int = 0, likes: int = 0) -> str:
        """Serve every file under ``folder`` (``.git`` excluded) as model repo ``repo_id``; returns its commit sha.

        The sha is the git commit id of that file tree (deterministic) unless ``sha`` is given. ``gated``
        (True = "manual", or "auto"): info, tree and README stay public, other files need a token given to
        ``grant``. ``card_data`` defaults to the README's YAML front matter. The model-info document is
        shaped like ``_model(...)``, with ``safetensors`` counted from the .safetensors headers and
        ``config`` taken from config.json (``architectures``, ``model_type``, ``auto_map``)."""
        root = Path(folder)
        files: dict[str, RepoEntry] = {}
        for disk in sorted(root.rglob("*")):
            rel = disk.relative_to(root).as_posix()
            if disk.is_file() and ".git" not in rel.split("/"):
                files[rel] = RepoEntry.from_file(rel, disk)
        if not files:
            raise ValueError(f"{folder} holds no files")
        if sha is None:
            sha = _commit_oid(_tree_oids(files)[""], repo_id)
        if not (len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)):
            raise ValueError(f"sha must be 40 lowercase hex digits, not {sha!r}")

        params: dict[str, int] = {}
        for entry in files.values():
            if "/" not in entry.path and entry.path.endswith(".safetensors") and entry.disk is not None:
                for dtype, n in _safetensors_params(entry.disk).items():
                    params[dtype] = params.get(dtype, 0) + n
        config: dict[str, Any] = {}
        if "config.json" in files and files["config.json"].disk is not None:
            try:
                raw = json.loads(files["config.json"].disk.read_text(encoding="utf-8"))
                config = {k: raw[k] for k in ("architectures", "model_type", "auto_map") if k in raw}
            except (ValueError, UnicodeDecodeError):
                pass
        if model_type:
            config["model_type"] = model_type
        if card_data is None and "README.md" in files and files["README.md"].disk is not None:
            card_data = _front_matter(files["README.md"].disk.read_text(encoding="utf-8"))
        all_tags = list(dict.fromkeys([
            *([library_name] if library_name else []), *tags,
            *(["pytorch"] if any(p.endswith((".bin", ".pth", ".pt")) for p in files) else []),
            *(["safetensors"] if any(p.endswith(".safetensors") for p in files) else []),
            *(["custom_code"] if config.get("auto_map") else []),
            *([pipeline_tag] if pipeline_tag else []), "region:us"]))
        doc = _model(repo_id, pipeline_tag=pipeline_tag, library_name=library_name, tags=all_tags,
                     card_data=card_data, params=None, downloads=downloads, likes=likes,
                     gated=("manual" if gated is True else gated), model_type=None, files=sorted(files),
                     modified=_COMMIT_DATE)
        doc["sha"] = sha
        doc["usedStorage"] = sum(e.size for e in files.values())
        if config:
            doc["config"] = config
        if params:
            doc["safetensors"] = {"parameters": params, "total": sum(params.values())}
        with self._lock:
            self.files[repo_id] = files
            self.models[repo_id] = doc
        return sha

    def grant(self, repo_id: str, token: str) -> None:
        """Requests that send ``Authorization: Bearer {token}`` may download the gated repo's files."""
        with self._lock:
            self.access.setdefault(repo_id, set()).add(token)

    def fail_next(self, n: int, prefix: str = "/") -> None:
        """The next ``n`` requests whose path starts with ``prefix`` answer 500."""
        with self._lock:
            self._fail_next.append((prefix, n))

    def cut_next(self, path_suffix: str, at_bytes: int | None = None) -> None:
        """The next GET whose path ends with ``path_suffix`` and that sends a file's bytes (``resolve``
        or CDN, 200 or 206) announces its full ``Content-Length`` but closes the connection after
        ``at_bytes`` bytes of the body (default: half of it)."""
        with self._lock:
            self._cuts.append((path_suffix, at_bytes))

    def bump(self, repo_id: str) -> str:
        """Simulate a new commit: new sha and lastModified. Returns the new sha."""
        m = self.models[repo_id]
        m["sha"] = _sha(m["sha"])
        m["lastModified"] = "2025-01-15T12:00:00.000Z"
        return m["sha"]

    def paths(self, method: str = "GET") -> list[str]:
        return [p for (m, p, _) in self.requests if m == method]

    def entries(self, repo_id: str) -> dict[str, RepoEntry]:
        """The files a repo serves: the add_repo folder, or for a JSON-only model its README (if any)."""
        files = self.files.get(repo_id)
        if files is not None:
            return files
        text = self.readmes.get(repo_id)
        return {"README.md": RepoEntry.from_bytes("README.md", text.encode("utf-8"))} if text is not None else {}

    # -- used by the handler --
    def _take_failure(self, path: str) -> bool:
        with self._lock:
            for i, (prefix, n) in enumerate(self._fail_next):
                if path.startswith(prefix) and n > 0:
                    self._fail_next[i] = (prefix, n - 1)
                    return True
        return False

    def _take_cut(self, path: str) -> tuple[bool, int | None]:
        with self._lock:
            for i, (suffix, at) in enumerate(self._cuts):
                if path.endswith(suffix):
                    del self._cuts[i]
                    return True, at
        return False, None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away mid-answer (or a cut_next): nothing to report
        super().handle_error(request, client_address)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    pad = "=" * (-len(cursor) % 4)
    return int(json.loads(base64.urlsafe_b64decode(cursor + pad))["offset"])


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[0].lower() in ("true", "1")


def _content_type(path: str) -> str:
    """The Hub's Content-Type for a file: text types for text, octet-stream for the rest."""
    if path.endswith(".json"):
        return "application/json; charset=utf-8"
    if path.endswith((".md", ".txt", ".py", ".yaml", ".yml", ".gitattributes", ".model_card")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_INTERNAL = "Internal Error - We're working hard to fix this as soon as possible!"


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "hubserver/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing --
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    # -- routing --
    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"), keep_blank_values=True)
            query = {**query, **form}
        self.hub.requests.append((self.command, path, query))
        if rng := self.headers.get("Range"):
            self.hub.ranges.append((self.command, path, rng))
        if self.hub._take_failure(path):
            return self._error(500, _INTERNAL)
        if path == "/api/models" and self.command == "GET":
            return self._list(query)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            if "/tree/" in rest and self.command == "GET":
                return self._tree(rest, query)
            if "/paths-info/" in rest and self.command == "POST":
                return self._paths_info(rest, query)
            if self.command == "GET" and ("/revision/" in rest or rest.count("/") <= 1):
                return self._info(rest, query)
        if path.startswith("/cdn-lfs/") and self.command in ("GET", "HEAD"):
            return self._cdn(path)
        if "/resolve/" in path and self.command in ("GET", "HEAD"):
            return self._resolve(path)
        return self._error(404, "Sorry, we can't find the page you are looking for.")

    def _check_repo(self, repo_id: str) -> dict[str, Any] | None:
        if repo_id in self.hub.fail_repos:
            self._error(500, _INTERNAL)
            return None
        if repo_id in self.hub.deny_repos:
            status = self.hub.deny_repos[repo_id]
            self._error(status, f"Access to model {repo_id} is restricted. You must have access to it and be "
                                "authenticated to access it. Please log in.", "GatedRepo")
            return None
        model = self.hub.models.get(repo_id)
        if model is None:
            self._error(404, "Repository not found", "RepoNotFound")
        return model

    def _check_revision(self, model: dict[str, Any], revision: str) -> bool:
        if revision in ("main", model["sha"]):
            return True
        self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return False

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    @staticmethod
    def _expand(query: dict[str, list[str]]) -> list[str]:
        return query.get("expand", []) + query.get("expand[]", [])

    @staticmethod
    def _project(model: dict[str, Any], fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
        out = {"_id": model["_id"], "id": model["id"]}
        for f in fields:
            if f in model:
                out[f] = copy.deepcopy(model[f])
        return out

    def _list(self, query: dict[str, list[str]]) -> None:
        models = list(self.hub.models.values())
        if search := query.get("search", [""])[0].lower():
            models = [m for m in models if search in m["id"].lower()]
        if author := query.get("author", [""])[0]:
            models = [m for m in models if m["id"].split("/")[0] == author]
        for f in query.get("filter", []):
            models = [m for m in models if f in m.get("tags", []) or f in (m.get("library_name"), m.get("pipeline_tag"))]
        if pipeline := query.get("pipeline_tag", [""])[0]:
            models = [m for m in models if m.get("pipeline_tag") == pipeline]
        if sort := query.get("sort", [""])[0]:
            reverse = query.get("direction", ["-1"])[0] != "1"
            models.sort(key=lambda m: m.get(sort) or 0, reverse=reverse)
        offset = _decode_cursor(query["cursor"][0]) if query.get("cursor") else 0
        page = self.hub.page_size
        if query.get("limit"):
            page = min(page, int(query["limit"][0]))
        chunk = models[offset:offset + page]
        expand = self._expand(query)
        if expand:
            fields: list[str] | tuple[str, ...] = expand
        else:
            fields = list(_FULL_LIST_FIELDS if query.get("full") else _LIST_FIELDS)
            if query.get("cardData"):
                fields = [*fields, "cardData"]
        body = [self._project(m, fields) for m in chunk]
        headers = {}
        if offset + page < len(models):
            nxt = {k: v for k, v in query.items() if k != "cursor"}
            nxt["cursor"] = [_encode_cursor(offset + page)]
            host = self.headers.get("Host") or "127.0.0.1"
            headers["Link"] = f'<http://{host}/api/models?{urlencode(nxt, doseq=True)}>; rel="next"'
        self._json(200, body, headers)

    def _info(self, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        model = self._check_repo(repo_id)
        if model is None:
            return
        if revision and not self._check_revision(model, revision):
            return
        expand = self._expand(query)
        doc = self._project(model, expand) if expand else copy.deepcopy(model)
        files = self.hub.files.get(repo_id)
        if files is not None and "siblings" in doc and query.get("blobs", ["false"])[0].lower() == "true":
            doc["siblings"] = [files[p].sibling() for p in sorted(files)]
        self._json(200, doc)

    def _folder_items(self, repo_id: str, files: dict[str, RepoEntry], under: str, recursive: bool,
                      expand: bool, sha: str) -> list[dict[str, Any]] | None:
        """Tree entries below folder ``under`` ("" = root), in git order, folders before their contents;
        ``None`` when ``under`` is not a folder."""
        oids = _tree_oids(files)
        if under not in oids:
            return None
        commit = {"id": sha, "title": f"Upload {repo_id}", "date": _COMMIT_DATE} if expand else None
        prefix = f"{under}/" if under else ""
        items: list[tuple[str, dict[str, Any]]] = []
        for folder, oid in oids.items():
            if folder and folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                item: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
                if commit:
                    item["lastCommit"] = commit
                items.append((folder, item))
        for path, entry in files.items():
            if path.startswith(prefix) and (recursive or "/" not in path[len(prefix):]):
                items.append((path, entry.tree_item(commit)))
        items.sort(key=lambda kv: kv[0].split("/"))
        return [item for _, item in items]

    def _tree(self, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, _, tail = rest.partition("/tree/")
        revision, _, under = tail.partition("/")
        model = self._check_repo(repo_id)
        if model is None or not self._check_revision(model, revision):
            return
        items = self._folder_items(repo_id, self.hub.entries(repo_id), under.strip("/"),
                                   _flag(query, "recursive"), _flag(query, "expand"), model["sha"])
        if items is None:
            return self._error(404, f"Entry not found: {under}", "EntryNotFound", {"X-Repo-Commit": model["sha"]})
        offset = _decode_cursor(query["cursor"][0]) if query.get("cursor") else 0
        page = self.hub.tree_page_size
        headers = {"X-Repo-Commit": model["sha"]}
        if offset + page < len(items):
            nxt = {k: v for k, v in query.items() if k != "cursor"}
            nxt["cursor"] = [_encode_cursor(offset + page)]
            host = self.headers.get("Host") or "127.0.0.1"
            url = f"http://{host}{quote(urlsplit(self.path).path)}"
            headers["Link"] = f'<{url}?{urlencode(nxt, doseq=True)}>; rel="next"'
        self._json(200, items[offset:offset + page], headers)

    def _paths_info(self, rest: str, form: dict[str, list[str]]) -> None:
        repo_id, _, revision = rest.partition("/paths-info/")
        model = self._check_repo(repo_id)
        if model is None or not self._check_revision(model, revision):
            return
        files = self.hub.entries(repo_id)
        oids = _tree_oids(files)
        out: list[dict[str, Any]] = []
        for p in form.get("paths", []):
            p = p.strip("/")
            if p in files:
                out.append(files[p].tree_item())
            elif p in oids and p:
                out.append({"type": "directory", "oid": oids[p], "size": 0, "path": p})
        self._json(200, out)

    def _resolve(self, path: str) -> None:
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        model = self._check_repo(repo_id)
        if model is None or not self._check_revision(model, revision):
            return
        sha = model["sha"]
        entry = self.hub.entries(repo_id).get(filename)
        if entry is None:
            return self._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        if model.get("gated") and filename not in ("README.md", ".gitattributes"):
            token = self._token()
            if token is None:
                return self._error(401, f"Access to model {repo_id} is restricted. You must have access to it and "
                                        "be authenticated to access it. Please log in.", "GatedRepo")
            if token not in self.hub.access.get(repo_id, set()):
                return self._error(403, f"Access to model {repo_id} is restricted and you are not in the authorized "
                                        f"list. Visit https://huggingface.co/{repo_id} to ask for access.", "GatedRepo")
        base = filename.rsplit("/", 1)[-1]
        disposition = f"inline; filename*=UTF-8''{quote(base)}; filename=\"{base}\";"
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": disposition, "Vary": "Origin, Accept"}
        if entry.lfs and self.hub.lfs_redirect:
            location = f"{self.hub.cdn_url}/cdn-lfs/{quote(repo_id)}/{entry.sha256}/{quote(filename)}"
            body = f"Found. Redirecting to {location}".encode()
            headers = {**headers, "Location": location, "X-Linked-Etag": f'"{entry.etag}"',
                       "X-Linked-Size": str(entry.size)}
            return self._send(302, body, headers, content_type="text/plain; charset=utf-8")
        self._send_entry(entry, headers, path)

    def _cdn(self, path: str) -> None:
        """``/cdn-lfs/{repo_id}/{sha256}/{filename}``: the signed-URL storage an LFS resolve redirects to."""
        head, _, filename = path[len("/cdn-lfs/"):].partition("/")  # head = namespace
        name, _, rest = filename.partition("/")
        sha256, _, filename = rest.partition("/")
        repo_id = f"{head}/{name}"
        entry = next((e for e in self.hub.files.get(repo_id, {}).values() if e.sha256 == sha256), None)
        if entry is None:
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
        headers = {"ETag": f'"{entry.sha256}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{filename}\";",
                   "Cache-Control": "public, max-age=604800, immutable"}
        self._send_entry(entry, headers, path)

    def _send_entry(self, entry: RepoEntry, headers: dict[str, str], path: str) -> None:
        """Send a file (all of it, or the one ``Range`` asked), honouring ``cut_next`` and ``slow_bytes_per_s``."""
        size, start, end, status = entry.size, 0, entry.size - 1, 200
        if (rng := self.headers.get("Range")) and (m := _RANGE.match(rng)) and (m.group(1) or m.group(2)):
            a, b = m.group(1), m.group(2)
            if a:
                start, end = int(a), min(int(b), size - 1) if b else size - 1
            else:  # suffix range: the last n bytes
                start, end = max(size - int(b), 0), size - 1
            if start >= size or start > end:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"},
                                  content_type="text/plain; charset=utf-8")
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", _content_type(entry.path))
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut, at = self.hub._take_cut(path)
        limit = (length // 2 if at is None else min(at, length)) if cut else length
        rate = self.hub.slow_bytes_per_s
        step = max(1024, int(rate // 20)) if rate else _CHUNK
        sent = 0
        try:
            with entry.open() as f:
                f.seek(start)
                while sent < limit:
                    chunk = f.read(min(step, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if rate:
                        time.sleep(len(chunk) / rate)
            if cut:
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
