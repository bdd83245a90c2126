"""A small real HTTP server that answers like the Hugging Face Hub API, for offline tests.

Supports (shapes follow the real Hub responses that ``huggingface_hub`` parses):

- ``GET /api/models`` — listing with ``search``, ``author``, ``filter`` (repeatable, matched against
  tags), ``pipeline_tag``, ``sort``/``direction``, ``limit``, ``expand`` / ``expand[]`` (repeatable:
  only those properties come back, plus ``id``/``_id``), ``full``, ``cardData``; paginated with a
  GitHub-style ``Link: <...>; rel="next"`` header and an opaque ``cursor``.
- ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{rev}`` (``expand`` honoured).
- ``HEAD`` / ``GET /{repo_id}/resolve/{rev}/{filename}`` — with ``ETag``, ``X-Repo-Commit`` and
  ``Content-Length``, as ``hf_hub_download`` requires; ``EntryNotFound`` 404 for a missing file.
- 404 with ``X-Error-Code: RepoNotFound`` for unknown repos (``RevisionNotFound`` for a bad rev).

Switches: ``fail_repos`` (a repo whose requests answer 500 forever), ``fail_next(n, prefix)``
(the next ``n`` requests whose path starts with ``prefix`` answer 500), ``deny_repos``
(repo -> 401/403 with ``X-Error-Code: GatedRepo``), ``page_size``. Every request is logged in
``requests`` as ``(method, path, query)``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
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


# --- server --------------------------------------------------------------------------------------

_LIST_FIELDS = ("_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                "library_name", "createdAt", "modelId")
_FULL_LIST_FIELDS = _LIST_FIELDS + ("author", "sha", "lastModified", "gated", "disabled", "siblings")


class HubServer:
    """``with HubServer() as hub: HfApi(endpoint=hub.url)``."""

    def __init__(self, models: list[dict[str, Any]] | None = None, readmes: dict[str, str] | None = None,
                 page_size: int = 1000):
        self.models: dict[str, dict[str, Any]] = {m["id"]: m for m in (models or default_models())}
        self.readmes: dict[str, str] = dict(default_readmes() if readmes is None else readmes)
        self.page_size = page_size
        self.fail_repos: set[str] = set()
        self.deny_repos: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self._fail_next: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

    def fail_next(self, n: int, prefix: str = "/") -> None:
        """The next ``n`` requests whose path starts with ``prefix`` answer 500."""
        with self._lock:
            self._fail_next.append((prefix, n))

    def bump(self, repo_id: str) -> str:
        """Simulate a new commit: new sha and lastModified. Returns the new sha."""
        m = self.models[repo_id]
        m["sha"] = _sha(m["sha"])
        m["lastModified"] = "2025-01-15T12:00:00.000Z"
        return m["sha"]

    def paths(self, method: str = "GET") -> list[str]:
        return [p for (m, p, _) in self.requests if m == method]

    # -- used by the handler --
    def _take_failure(self, path: str) -> bool:
        with self._lock:
            for i, (prefix, n) in enumerate(self._fail_next):
                if path.startswith(prefix) and n > 0:
                    self._fail_next[i] = (prefix, n - 1)
                    return True
        return False


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    pad = "=" * (-len(cursor) % 4)
    return int(json.loads(base64.urlsafe_b64decode(cursor + pad))["offset"])


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

    # -- routing --
    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        self.hub.requests.append((self.command, path, query))
        if self.hub._take_failure(path):
            return self._error(500, "Internal Error - We're working hard to fix this as soon as possible!")
        if path == "/api/models" and self.command == "GET":
            return self._list(query)
        if path.startswith("/api/models/") and self.command == "GET":
            return self._info(path[len("/api/models/"):], query)
        if "/resolve/" in path:
            return self._resolve(path)
        return self._error(404, "Sorry, we can't find the page you are looking for.")

    def _check_repo(self, repo_id: str) -> dict[str, Any] | None:
        if repo_id in self.hub.fail_repos:
            self._error(500, "Internal Error - We're working hard to fix this as soon as possible!")
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
        if revision and revision not in ("main", model["sha"]):
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        expand = self._expand(query)
        self._json(200, self._project(model, expand) if expand else copy.deepcopy(model))

    def _resolve(self, path: str) -> None:
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        model = self._check_repo(repo_id)
        if model is None:
            return
        sha = model["sha"]
        if revision not in ("main", sha):
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        text = self.hub.readmes.get(repo_id) if filename == "README.md" else None
        if text is None:
            return self._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        body = text.encode("utf-8")
        blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()  # git blob oid, as the Hub's ETag
        headers = {
            "ETag": f'"{blob}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename*=UTF-8\'\'{quote(filename)}; filename="{filename}";',
            "Vary": "Origin, Accept",
        }
        self._send(200, body, headers, content_type="text/plain; charset=utf-8")
