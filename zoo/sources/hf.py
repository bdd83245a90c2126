"""The Hugging Face Hub source: list models on a Hub endpoint and map their metadata to records.

Only metadata is read (the model-info JSON and the README card). Weights are never downloaded and
no remote code is ever run. ``record_from_info`` is the single place that normalises Hub JSON.

Incremental runs: ``known_revisions`` maps ``hf:<repo>`` to the stored revision (the repo sha); a
model whose listed sha is unchanged is yielded as ``Unchanged`` without fetching its info or card.

Errors: a model that cannot be read (404, private, gated 401/403) is yielded as ``Failed`` and the
run goes on; server and connection errors are retried, then raised as ``HubError`` so the caller
can roll the whole run back.

``huggingface_hub`` is imported inside functions only, so ``zoo --help`` does not pay for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from zoo import vocab
from zoo.errors import HubError, SourceError, ZooError
from zoo.record import ModelRecord
from zoo.sources import Failed, SourceItem, Unchanged

DEFAULT_HOST = "huggingface.co"
CARD_MAX_CHARS = 2000
# Properties asked of the model-info endpoint (only these come back).
INFO_EXPAND = [
    "author", "cardData", "config", "createdAt", "disabled", "downloads", "evalResults", "gated",
    "lastModified", "library_name", "likes", "model-index", "pipeline_tag", "private", "safetensors",
    "sha", "tags",
]
# Properties asked of the listing: just enough to tell whether a model changed.
LIST_EXPAND = ["sha", "lastModified"]

# --- normalisation tables (keys and values reference zoo.vocab only) --------------------------------

# Hub pipeline tag -> modality.
_PIPELINE_MODALITY: dict[str, str] = {
    **dict.fromkeys([
        "image-classification", "image-feature-extraction", "object-detection", "image-segmentation",
        "mask-generation", "depth-estimation", "image-to-image", "keypoint-detection",
        "unconditional-image-generation", "image-to-3d",
    ], "image"),
    **dict.fromkeys([
        "text-classification", "token-classification", "fill-mask", "sentence-similarity",
        "question-answering", "zero-shot-classification", "table-question-answering", "summarization",
        "translation", "text-generation", "text2text-generation", "text-ranking",
    ], "text"),
    **dict.fromkeys([
        "audio-classification", "automatic-speech-recognition", "audio-to-audio", "voice-activity-detection",
        "text-to-speech", "text-to-audio", "zero-shot-audio-classification",
    ], "audio"),
    "video-classification": "video",
    **dict.fromkeys([
        "zero-shot-image-classification", "image-text-to-text", "image-to-text", "visual-question-answering",
        "document-question-answering", "zero-shot-object-detection", "text-to-image", "any-to-any",
        "video-text-to-text", "visual-document-retrieval",
    ], "multimodal"),
}
# Used when the pipeline tag is missing or generic (feature-extraction).
_LIBRARY_MODALITY: dict[str, str] = {
    "timm": "image", "open_clip": "multimodal", "sentence-transformers": "text", "speechbrain": "audio",
    "pyannote-audio": "audio", "nemo": "audio", "espnet": "audio", "fasttext": "text", "flair": "text",
}
_TAG_MODALITY: dict[str, str] = {
    "vision": "image", "image": "image", "audio": "audio", "speech": "audio", "video": "video", "text": "text",
    "clip": "multimodal",
}

# Hub pipeline tag -> zoo task (vocab.TASKS keys).
_PIPELINE_TASKS: dict[str, list[str]] = {
    "image-classification": ["image-classification"],
    "image-feature-extraction": ["image-embedding"],
    "object-detection": ["object-detection"],
    "image-segmentation": ["image-segmentation"],
    "mask-generation": ["image-segmentation"],
    "text-classification": ["text-classification"],
    "token-classification": ["token-classification"],
    "question-answering": ["question-answering"],
    "fill-mask": ["fill-mask"],
    "feature-extraction": ["feature-extraction"],
    "sentence-similarity": ["sentence-embedding"],
    "zero-shot-classification": ["zero-shot-classification"],
    "zero-shot-image-classification": ["zero-shot-classification"],
    "zero-shot-audio-classification": ["zero-shot-classification"],
    "audio-classification": ["audio-classification"],
    "automatic-speech-recognition": ["speech-recognition"],
    "document-question-answering": ["document-understanding"],
}
# zoo task -> Hub pipeline tag, for the ``task`` filter when the zoo name differs.
_TASK_TO_PIPELINE: dict[str, str] = {
    "image-embedding": "image-feature-extraction",
    "sentence-embedding": "sentence-similarity",
    "speech-recognition": "automatic-speech-recognition",
    "document-understanding": "document-question-answering",
}

# Domain inference: (hub tag or dataset name, modality or None for any) -> vocab.DOMAINS key.
# Conservative: exact tag / dataset-name matches only. Nothing found -> "general".
_DOMAIN_KEYWORDS: dict[tuple[str, str | None], str] = {
    ("radiology", None): "medical-radiology", ("x-ray", None): "medical-radiology",
    ("xray", None): "medical-radiology", ("chest-x-ray", None): "medical-radiology",
    ("ct", "image"): "medical-radiology", ("mri", "image"): "medical-radiology",
    ("mimic-cxr", None): "medical-radiology", ("chexpert", None): "medical-radiology",
    ("pathology", "image"): "medical-pathology", ("histopathology", None): "medical-pathology",
    ("histology", None): "medical-pathology", ("tcga", "image"): "medical-pathology",
    ("dermatology", None): "medical-dermatology", ("skin-lesion", None): "medical-dermatology",
    ("ophthalmology", None): "medical-ophthalmology", ("retina", None): "medical-ophthalmology",
    ("fundus", None): "medical-ophthalmology",
    ("medical", "image"): "medical-other", ("endoscopy", None): "medical-other",
    ("ultrasound", None): "medical-other",
    ("medical", "text"): "biomedical-text", ("biomedical", "text"): "biomedical-text",
    ("biology", "text"): "biomedical-text", ("pubmed", None): "biomedical-text",
    ("pmc", "text"): "biomedical-text",
    ("clinical", "text"): "clinical-text", ("mimic-iii", None): "clinical-text", ("ehr", "text"): "clinical-text",
    ("scientific", "text"): "scientific-text", ("s2orc", None): "scientific-text",
    ("remote-sensing", None): "remote-sensing", ("satellite", None): "remote-sensing",
    ("earth-observation", None): "remote-sensing", ("aerial", None): "remote-sensing",
    ("face", "image"): "faces", ("faces", None): "faces", ("face-recognition", None): "faces",
    ("vggface2", None): "faces", ("fer2013", None): "faces",
    ("document", None): "documents", ("documents", None): "documents", ("ocr", None): "documents",
    ("layoutlm", None): "documents",
    ("handwriting", None): "handwriting", ("mnist", None): "handwriting",
    ("sketch", "image"): "art-sketch", ("art", "image"): "art-sketch",
    ("cifar10", None): "low-resolution", ("cifar100", None): "low-resolution",
    ("legal", None): "legal", ("law", "text"): "legal",
    ("finance", None): "finance", ("financial", None): "finance",
    ("code", "text"): "code",
    ("twitter", None): "social-media", ("tweets", None): "social-media", ("tweet", None): "social-media",
    ("news", "text"): "news",
    ("reviews", "text"): "reviews",
    ("dialogue", None): "dialogue", ("conversational", "text"): "dialogue",
    ("multilingual", None): "multilingual",
    ("speech", "audio"): "speech", ("librispeech_asr", None): "speech", ("librispeech", None): "speech",
    ("music", None): "music",
    ("audioset", None): "environmental-audio", ("esc50", None): "environmental-audio",
    ("imagenet-1k", None): "natural-images", ("imagenet-21k", None): "natural-images",
    ("imagenet", "image"): "natural-images", ("imagenet-22k", None): "natural-images",
    ("laion2b", None): "web-image-text",
}
_PIPELINE_DOMAIN: dict[str, str] = {"automatic-speech-recognition": "speech"}

# Hub dataset name (last path segment, lower case) -> vocab.PRETRAINING_DATA key, where
# vocab.PRETRAIN_ALIASES does not already know it. Unknown datasets are skipped, never invented.
_DATASET_PRETRAINING: dict[str, str] = {
    "imagenet-1k": "in1k", "imagenet_1k": "in1k", "imagenet1k": "in1k", "imagenet": "in1k", "ilsvrc2012": "in1k",
    "imagenet-21k": "in21k", "imagenet_21k": "in21k", "imagenet21k": "in21k",
    "imagenet-22k": "in22k", "imagenet22k": "in22k",
    "laion2b-en": "laion2b", "laion2b": "laion2b", "laion400m": "laion400m", "laion-400m": "laion400m",
    "datacomp-1b": "datacomp", "conceptual_12m": "cc12m", "cc12m": "cc12m",
    "wikipedia": "wikipedia", "wikimedia/wikipedia": "wikipedia", "bookcorpus": "bookcorpus",
    "c4": "common-crawl", "cc100": "common-crawl", "cc_news": "common-crawl", "oscar": "common-crawl",
    "openwebtext": "openwebtext", "pubmed": "pubmed", "pubmed_qa": "pubmed", "pmc": "pmc",
    "mimic-iii": "mimic-iii", "mimic-cxr": "mimic-cxr", "chexpert": "chexpert", "tcga": "tcga",
    "s2orc": "s2orc", "librispeech_asr": "librispeech", "librispeech": "librispeech",
    "libri-light": "librilight", "librilight": "librilight", "voxceleb": "voxceleb",
    "voxceleb1": "voxceleb", "voxceleb2": "voxceleb", "audioset": "audioset", "mnist": "mnist",
    "cifar10": "cifar10", "fer2013": "fer2013", "vggface2": "vggface2", "github-code": "github-code",
    "places365": "places365", "sa-1b": "sa1b",
}

_IMAGENET_DATASETS = {"imagenet", "imagenet-1k", "imagenet_1k", "ilsvrc2012", "ilsvrc/imagenet-1k", "in1k"}
_TOP1_METRICS = {"accuracy", "acc", "top-1", "top1", "top-1 accuracy", "top1_accuracy", "acc@1", "top_1_accuracy"}
_TOP5_METRICS = {"top-5", "top5", "top-5 accuracy", "top5_accuracy", "acc@5", "top_5_accuracy"}


# --- public API ------------------------------------------------------------------------------------

def iter_records(
    *,
    endpoint: str | None = None,
    token: str | None = None,
    task: str | None = None,
    library: str | None = None,
    author: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    ids: list[str] | None = None,
    known_revisions: dict[str, str] | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    progress: Callable[[int], None] | None = None,
    **_: Any,
) -> Iterator[SourceItem]:
    """Yield a ``ModelRecord``, ``Unchanged`` or ``Failed`` per Hub model.

    ``ids`` (``hf:org/name`` or ``org/name``) replaces the listing; otherwise the listing is filtered
    by ``task`` (a zoo task or a Hub pipeline tag), ``library``, ``author``, ``search`` and ``limit``.
    ``progress(1)`` is called after each item. Server errors are retried ``retries`` times with a
    ``backoff * attempt`` second pause, then raised as ``HubError``.
    """
    _check_online()
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    host = urlparse(str(api.endpoint)).netloc or DEFAULT_HOST
    known = known_revisions or {}
    ctx = _Ctx(api=api, endpoint=str(api.endpoint), token=token, retries=max(0, retries), backoff=backoff)

    if ids:
        entries: Iterable[tuple[str, str | None]] = ((_repo_id(i), None) for i in ids)
    else:
        entries = _listing(ctx, task=task, library=library, author=author, search=search, limit=limit)

    for repo_id, listed_sha in entries:
        item = _one(ctx, repo_id, listed_sha, known.get(f"hf:{repo_id}"), host)
        yield item
        if progress is not None:
            progress(1)


def record_from_json(data: Any, card_text: str | None, *, source_version: str = DEFAULT_HOST) -> ModelRecord:
    """The record of one model-info JSON document as the Hub's API returns it (what ``HfApi.model_info`` parses),
    or ``SourceError`` saying why not: whatever the JSON holds, nothing else is raised."""
    from huggingface_hub import ModelInfo

    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise SourceError(f"Hub model info must be a JSON object with an 'id', got {str(data)[:100]!r}")
    try:
        info = ModelInfo(**data)
    except Exception as e:  # noqa: BLE001 - the library's parser: any error means this document is unusable
        raise SourceError(f"the Hub's model info for {data['id'][:200]!r} could not be read "
                          f"({type(e).__name__}: {str(e)[:200]})") from None
    return record_from_info(info, card_text, source_version=source_version)


def record_from_info(info: Any, card_text: str | None, *, source_version: str = DEFAULT_HOST) -> ModelRecord:
    """Map a ``huggingface_hub.ModelInfo`` (and the README text) to a ``ModelRecord``.

    The one place that normalises Hub JSON into zoo's vocabularies. Raises only ``ZooError``: a value that does
    not fit a record (a repo id zoo cannot use, an oversized card field) is ``SourceError`` naming the model.
    """
    try:
        return _record_from_info(info, card_text, source_version=source_version)
    except ZooError as e:
        raise SourceError(f"hf:{str(getattr(info, 'id', '?'))[:200]}: {e}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as e:  # a field of an unexpected shape
        raise SourceError(f"hf:{str(getattr(info, 'id', '?'))[:200]}: the Hub's metadata has a value zoo cannot "
                          f"use ({type(e).__name__}: {str(e)[:200]})") from None


def _record_from_info(info: Any, card_text: str | None, *, source_version: str) -> ModelRecord:
    repo_id = info.id
    tags = [str(t) for t in (getattr(info, "tags", None) or [])]
    card = _card_dict(getattr(info, "card_data", None))
    pipeline = getattr(info, "pipeline_tag", None) or card.get("pipeline_tag")
    library = getattr(info, "library_name", None) or card.get("library_name")
    tag_set = {t.lower() for t in tags}

    modality = _modality(pipeline, library, tag_set)
    tasks = list(_PIPELINE_TASKS.get(pipeline or "", []))
    if (library == "sentence-transformers" or "sentence-transformers" in tag_set) and "sentence-embedding" not in tasks:
        tasks.append("sentence-embedding")
    tasks = [t for t in tasks if t in vocab.TASKS]

    datasets = _datasets(tags, card)
    pretraining: list[str] = []
    unmapped: list[str] = []
    for d in datasets:
        canon = _pretraining_name(d)
        if canon is None:
            unmapped.append(d)
        elif canon not in pretraining:
            pretraining.append(canon)

    domains = _domains(tag_set, datasets, modality, pipeline)
    license_id = _license(tags, card)
    results = _results(info, card)

    safetensors = getattr(info, "safetensors", None)
    params = _int(getattr(safetensors, "total", None)) if safetensors is not None else None
    if params is None and safetensors is not None:
        per_dtype = getattr(safetensors, "parameters", None) or {}
        total = sum(v for v in per_dtype.values() if isinstance(v, int))
        params = total or None

    config = getattr(info, "config", None) or {}
    gated_raw = getattr(info, "gated", None)
    last_modified = getattr(info, "last_modified", None)
    created_at = getattr(info, "created_at", None)
    url = f"https://{source_version}/{repo_id}" if source_version == DEFAULT_HOST else None

    extra: dict[str, Any] = {"pipeline_tag": pipeline, "last_modified": _iso(last_modified)}
    if created_at:
        extra["created_at"] = _iso(created_at)
    if gated_raw:
        extra["gated_mode"] = str(gated_raw)
    if isinstance(config, dict):
        if config.get("model_type"):
            extra["model_type"] = config["model_type"]
        if config.get("architectures"):
            extra["architectures"] = list(config["architectures"])
    if unmapped:
        extra["datasets"] = unmapped
    if card.get("base_model"):
        extra["base_model"] = card["base_model"]
    if card.get("language"):
        extra["language"] = card["language"]
    if tags:
        extra["tags"] = tags[:50]
    extra = {k: v for k, v in extra.items() if v not in (None, "", [], {})}

    sources: dict[str, str] = {}
    cite = url or f"hf:{repo_id}@{getattr(info, 'sha', None) or 'main'}"
    if license_id:
        sources["license"] = cite
    if results:
        sources["results"] = cite
    if card_text:
        sources["description"] = cite

    rec = ModelRecord(
        id=f"hf:{repo_id}",
        modality=modality,
        tasks=tasks,
        domains=domains,
        pretraining_data=pretraining,
        library=library,
        params=params,
        license=license_id,
        results=results,
        downloads=_int(getattr(info, "downloads", None)),
        likes=_int(getattr(info, "likes", None)),
        description=card_prose(card_text or ""),
        weights=f"hf:{repo_id}",
        gated=bool(gated_raw),
        source="hf",
        source_version=source_version,
        revision=getattr(info, "sha", None),
        sources=sources,
        extra=extra,
    )
    rec.validate()
    return rec


def card_prose(text: str, max_chars: int = CARD_MAX_CHARS) -> str:
    """The README prose: YAML front-matter, HTML comments and images removed, cut at ``max_chars``."""
    t = text.lstrip("\ufeff").replace("\r\n", "\n")
    if t.lstrip().startswith("---"):
        t = t.lstrip()
        m = re.search(r"^---[ \t]*$", t[3:], flags=re.MULTILINE)
        if m:
            t = t[3 + m.end():]
    t = re.sub(r"<!--.*?-->", "", t, flags=re.DOTALL)
    t = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", t)  # markdown images
    t = re.sub(r"<img\b[^>]*>", "", t, flags=re.IGNORECASE)
    t = re.sub(r"\n{3,}", "\n\n", t).strip()
    if len(t) > max_chars:
        cut = t[:max_chars]
        space = cut.rfind(" ")
        t = (cut[:space] if space > max_chars * 0.8 else cut).rstrip() + " …"
    return t


# --- fetching --------------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, *, api: Any, endpoint: str, token: str | None, retries: int, backoff: float):
        self.api, self.endpoint, self.token, self.retries, self.backoff = api, endpoint, token, retries, backoff


class _Unavailable(Exception):
    """A client error (4xx) for one model: it becomes ``Failed``."""


def _one(ctx: _Ctx, repo_id: str, listed_sha: str | None, known_sha: str | None, host: str) -> SourceItem:
    mid = f"hf:{repo_id}"
    if listed_sha and known_sha and listed_sha == known_sha:
        return Unchanged(mid)
    try:
        info = _with_retries(
            ctx, f"model info for {repo_id}",
            lambda: ctx.api.model_info(repo_id, revision=listed_sha, expand=INFO_EXPAND),
        )
    except _Unavailable as e:
        return Failed(mid, str(e))
    except ZooError:
        raise  # the Hub is down or offline: the whole run stops and rolls back
    except Exception as e:  # noqa: BLE001 - huggingface_hub could not parse this model's JSON: skip it, go on
        return Failed(mid, f"the Hub's model info could not be read ({type(e).__name__}: {str(e)[:200]})")
    if known_sha and getattr(info, "sha", None) == known_sha:
        return Unchanged(mid)
    card = _fetch_card(ctx, repo_id, getattr(info, "sha", None) or listed_sha or "main")
    try:
        return record_from_info(info, card, source_version=host)
    except ZooError as e:
        return Failed(mid, f"its metadata could not be mapped to a record: {e}")


def _listing(ctx: _Ctx, *, task: str | None, library: str | None, author: str | None, search: str | None,
             limit: int | None) -> Iterator[tuple[str, str | None]]:
    pipeline = _TASK_TO_PIPELINE.get(task, task) if task else None
    it = iter(ctx.api.list_models(
        filter=[library] if library else None, pipeline_tag=pipeline, author=author, search=search,
        limit=limit, expand=LIST_EXPAND,
    ))
    # huggingface_hub already retries the listing pages itself (http_backoff, 5 tries), so a failure
    # here is final: no second retry loop.
    while True:
        try:
            m = next(it)
        except StopIteration:
            return
        except Exception as e:
            kind = _classify(e)
            if kind == "offline":
                raise _offline_error() from None
            if kind in ("server", "network"):
                raise _hub_down(ctx, "the model listing", e) from None
            if kind == "client":
                raise HubError(
                    f"The Hub at {ctx.endpoint} refused the model listing ({_status(e)}): {_short(e)}. "
                    "Check the filters (task, library, author) and the token."
                ) from None
            raise
        yield m.id, getattr(m, "sha", None)


def _fetch_card(ctx: _Ctx, repo_id: str, revision: str) -> str:
    """README text at ``revision``, or "" when the repo has none or it is not readable (gated files)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, "README.md", revision=revision, endpoint=ctx.endpoint)

    def get() -> Any:
        r = get_session().get(url, headers=build_hf_headers(token=ctx.token), follow_redirects=True)
        hf_raise_for_status(r)
        return r

    try:
        r = _with_retries(ctx, f"the model card of {repo_id}", get)
    except _Unavailable:
        return ""
    content = r.content
    return content.decode("utf-8", errors="replace") if isinstance(content, bytes) else str(content)


def _with_retries(ctx: _Ctx, what: str, fn: Callable[[], Any]) -> Any:
    last: Exception | None = None
    for attempt in range(ctx.retries + 1):
        try:
            return fn()
        except Exception as e:
            kind = _classify(e)
            if kind == "offline":
                raise _offline_error() from None
            if kind == "client":
                raise _Unavailable(_client_reason(e)) from None
            if kind not in ("server", "network"):
                raise
            last = e
        if attempt < ctx.retries:
            time.sleep(ctx.backoff * (attempt + 1))
    assert last is not None
    raise _hub_down(ctx, what, last, tries=ctx.retries + 1) from None


def _classify(e: Exception) -> str:
    """offline | client (4xx but 429) | server (5xx, 429) | network | other."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        return "offline"
    if isinstance(e, HFValidationError):
        return "client"
    if isinstance(e, HfHubHTTPError):
        status = _status(e)
        if status is None or status >= 500 or status in (408, 429):
            return "server"
        return "client"
    if isinstance(e, _transport_errors()):
        return "network"
    return "other"


def _transport_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from huggingface_hub.utils import httpx as _httpx  # the HTTP library huggingface_hub uses

        errs.append(_httpx.TransportError)
    except (ImportError, AttributeError):
        pass
    try:
        import requests

        errs.extend([requests.ConnectionError, requests.Timeout])
    except ImportError:
        pass
    return tuple(errs)


def _status(e: Exception) -> int | None:
    resp = getattr(e, "response", None)
    status = getattr(resp, "status_code", None)
    return status if isinstance(status, int) else None


def _short(e: Exception) -> str:
    first = str(e).strip().splitlines()
    return first[0] if first else type(e).__name__


def _client_reason(e: Exception) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(e, HFValidationError):
        return f"not a valid Hub repo id: {_short(e)}"
    status = _status(e)
    if isinstance(e, GatedRepoError) or status == 403:
        return f"gated or access denied ({status}): request access on the Hub and pass a token that has it"
    if isinstance(e, RevisionNotFoundError):
        return f"revision not found ({status}): the repo changed while indexing; run the index again"
    if isinstance(e, RepositoryNotFoundError) or status in (401, 404):
        return f"not found or private ({status}): check the repo id, or pass a token that can read it"
    return f"refused by the Hub ({status}): {_short(e)}"


def _hub_down(ctx: _Ctx, what: str, e: Exception, tries: int | None = None) -> HubError:
    status = _status(e)
    cause = f"HTTP {status}" if status else f"{type(e).__name__}: {_short(e)}"
    after = f" after {tries} tries" if tries else ""
    return HubError(
        f"Could not fetch {what} from {ctx.endpoint} ({cause}{after}); indexing stopped. "
        "Check the network and the HF_ENDPOINT setting (and a proxy, if any), or try again later."
    )


def _offline_error() -> HubError:
    return HubError(
        "Indexing the Hugging Face Hub needs the network, but offline mode is on (HF_HUB_OFFLINE or "
        "TRANSFORMERS_OFFLINE is set). Unset it (e.g. `unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE`) and run "
        "the index again; searching the existing registry works offline."
    )


def _check_online() -> None:
    from huggingface_hub import constants

    offline = constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE
    if offline:
        raise _offline_error()


def _repo_id(text: str) -> str:
    t = str(text).strip()
    if t.startswith("hf:"):
        t = t[3:]
    return t.split("@", 1)[0]


# --- mapping helpers -------------------------------------------------------------------------------

def _card_dict(card_data: Any) -> dict[str, Any]:
    if card_data is None:
        return {}
    if isinstance(card_data, dict):
        return dict(card_data)
    to_dict = getattr(card_data, "to_dict", None)
    try:
        return dict(to_dict()) if callable(to_dict) else dict(vars(card_data))
    except Exception:  # a malformed card must not sink the record
        return {}


def _modality(pipeline: str | None, library: str | None, tags: set[str]) -> str:
    if pipeline and pipeline in _PIPELINE_MODALITY:
        return _PIPELINE_MODALITY[pipeline]
    if library and library in _LIBRARY_MODALITY:
        return _LIBRARY_MODALITY[library]
    for t in ("image-feature-extraction", "image-classification"):
        if t in tags:
            return "image"
    for tag, modality in _TAG_MODALITY.items():
        if tag in tags:
            return modality
    return "text" if pipeline == "feature-extraction" else "image"


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v if x]
    return []


def _datasets(tags: list[str], card: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for d in [t[len("dataset:"):] for t in tags if t.startswith("dataset:")] + _as_list(card.get("datasets")):
        if d and d not in out:
            out.append(d)
    return out


def _pretraining_name(dataset: str) -> str | None:
    full = dataset.strip().lower()
    last = full.rsplit("/", 1)[-1]
    for key in (full, last):
        if key in _DATASET_PRETRAINING:
            return _DATASET_PRETRAINING[key]
        # vocab.PRETRAIN_ALIASES is not used: its short timm-tag tokens ("wit", "ig", "ssl") are
        # other datasets' names on the Hub (google/wit is not OpenAI's WIT).
        if key in vocab.PRETRAINING_DATA and key != "other":
            return key
    return None


def _domains(tags: set[str], datasets: list[str], modality: str, pipeline: str | None) -> list[str]:
    words = set(tags)
    for d in datasets:
        words.add(d.lower())
        words.add(d.lower().rsplit("/", 1)[-1])
    out: list[str] = []
    for (word, only), domain in _DOMAIN_KEYWORDS.items():
        if word in words and (only is None or only == modality) and domain not in out:
            out.append(domain)
    if pipeline in _PIPELINE_DOMAIN and _PIPELINE_DOMAIN[pipeline] not in out:
        out.append(_PIPELINE_DOMAIN[pipeline])
    if "medical-other" in out and any(d.startswith("medical-") and d != "medical-other" for d in out):
        out.remove("medical-other")  # a generic "medical" tag next to a specific one
    if any(d.startswith("medical-") for d in out) and "natural-images" in out:
        out.remove("natural-images")  # ImageNet init of a medical model: the medical domain says it
    out = [d for d in out if d in vocab.DOMAINS]
    return out or ["general"]


def _license(tags: list[str], card: dict[str, Any]) -> str | None:
    for t in tags:
        if t.startswith("license:"):
            return t[len("license:"):] or None
    lic = card.get("license")
    if isinstance(lic, list):
        lic = lic[0] if lic else None
    return str(lic) if lic else None


def _slug(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


def _float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _results(info: Any, card: dict[str, Any]) -> dict[str, float]:
    """Metrics from ``model-index`` as ``<dataset>_<metric>``; ImageNet top-1/top-5 as percentages."""
    model_index = getattr(info, "model_index", None) or card.get("model-index") or card.get("model_index")
    out: dict[str, float] = {}
    models = model_index if isinstance(model_index, list) else []
    for model in models:
        if not isinstance(model, dict):
            continue
        for res in model.get("results") or []:
            if not isinstance(res, dict):
                continue
            ds = res.get("dataset") or {}
            if not isinstance(ds, dict):
                continue
            ds_type = str(ds.get("type") or ds.get("name") or "").strip()
            config, split = ds.get("config"), ds.get("split")
            for metric in res.get("metrics") or []:
                if not isinstance(metric, dict):
                    continue
                _add_metric(out, ds_type, config, split, metric.get("type") or metric.get("name"), metric.get("value"))
    # The newer ``.eval_results`` format (entries with dataset_id / task_id / value).
    for entry in getattr(info, "eval_results", None) or []:
        ds_id = getattr(entry, "dataset_id", None)
        task_id = getattr(entry, "task_id", None)
        if ds_id and task_id:
            _add_metric(out, str(ds_id).rsplit("/", 1)[-1], None, None, task_id, getattr(entry, "value", None))
    return out


def _add_metric(out: dict[str, float], dataset: str, config: Any, split: Any, metric: Any, value: Any) -> None:
    v = _float(value)
    if v is None or not dataset or not metric:
        return
    ds, m = dataset.lower(), str(metric).strip().lower()
    if ds in _IMAGENET_DATASETS and (m in _TOP1_METRICS or m in _TOP5_METRICS):
        key = "imagenet_top1" if m in _TOP1_METRICS else "imagenet_top5"
        out.setdefault(key, vocab.result_value(key, v))
        return
    base = _slug(dataset)
    if config and _slug(config) not in (base, "default") and _slug(config) not in base:
        base += "_" + _slug(config)
    key = f"{base}_{_slug(metric)}"
    v = vocab.result_value(key, v)
    if key in out and out[key] != v and split:
        key = f"{base}_{_slug(split)}_{_slug(metric)}"
    out.setdefault(key, v)


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        i = int(v)
    except (TypeError, ValueError):
        return None
    return i if i >= 0 else None


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    return v.isoformat() if isinstance(v, datetime) else str(v)
