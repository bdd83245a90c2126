"""Fetch a catalog model's weights from the Hugging Face Hub on demand, into the standard HF cache.

zoo never reads weights from anywhere but a local folder; this module is how an ``hf:`` location gets
there. :func:`plan_one` asks the Hub what a record's loader needs (the repo's file listing, and the small
JSON files that say whether it is safe and loadable) and how many bytes that is; :func:`fetch` downloads
it with ``huggingface_hub.snapshot_download`` (``allow_patterns`` = exactly the planned files), which
gives zoo the Hub client's guarantees for free: files land in ``blobs/`` as ``*.incomplete`` and are
linked into ``snapshots/<commit>/`` only when whole (no partial file is ever read as weights), a
download cut mid-file is resumed in the same call with a ``Range`` request (from the last whole 10 MiB
chunk, huggingface_hub 2.x), and a file lock per blob lets two processes fetch the same model at once. A
call that fails anyway leaves no snapshot folder behind that could pass for a model; a rerun fetches
what is missing and nothing else.

What a loader needs, per library (:func:`zoo.loadable.wanted_files`): the config, the tokenizer or
processor files and the weights, safetensors first. A repo with only pickled weights is refused unless ``allow_pickle``
(the loaders then read it with ``weights_only=True``); a config with ``auto_map`` (custom code) or a
sentence-transformers ``modules.json`` that names a class outside sentence_transformers is refused, since
zoo never sets ``trust_remote_code``. Every refusal happens before the weights are downloaded.

:class:`FetchPolicy` is what a command threads through scoring, probing and loading: whether fetching is
on (default: when the Hub is reachable and ``HF_HUB_OFFLINE`` is not set), the download budget of the
command (``--max-download``, ``ZOO_MAX_DOWNLOAD``, default 10 GB) and what was fetched (the resolved
commits go into stored runs). Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoo.errors import UsageError, WeightsUnavailable
from zoo.loadable import loadable_reason, wanted_files
from zoo.weights import hf_cache_dir, hub_repo, local_snapshot, repo_cache_folder, snapshot_complete

__all__ = [
    "DEFAULT_MAX_DOWNLOAD", "FetchError", "FetchPlan", "FetchPolicy", "FetchReport", "FetchResult", "GatedModel",
    "HubUnavailable", "ModelNotOnHub", "NotLoadable", "OverBudget", "current_policy", "download", "ensure", "fetch",
    "hub_endpoint", "offline_mode", "parse_size", "plan_one", "using",
]

DEFAULT_MAX_DOWNLOAD = 10 * 10**9  # bytes one command may download unless --max-download says otherwise
# Until this machine has measured a download, time estimates assume this rate (said as "assumed").
ASSUMED_BYTES_PER_S = 20e6
REACHABILITY_TIMEOUT_S = 5.0
_RETRIES = 3  # attempts at the first request per model (model info) on a 5xx or a dropped connection
_BACKOFF_S = (0.5, 2.0)


# ---------------------------------------------------------------------------------------- errors


class FetchError(WeightsUnavailable):
    """Weights could not be fetched; the message names the model and the fix."""


class NotLoadable(FetchError):
    """zoo cannot load this record (library, modality, custom code, pickle-only): refused before downloading."""


class GatedModel(FetchError):
    """The Hub answered 401/403: a gated or private repo."""


class ModelNotOnHub(FetchError):
    """404: the repo, its revision or a file is not on the Hub."""


class HubUnavailable(FetchError):
    """The Hub cannot be reached (offline mode, no network, or it keeps answering 5xx)."""


class OverBudget(FetchError):
    """The download would exceed what the command may download (``--max-download``)."""


# ---------------------------------------------------------------------------------------- settings


def parse_size(value: str | int | float | None) -> int | None:
    """Bytes from ``10GB``, ``500MB``, ``1.5G``, ``750k`` or a plain number; ``None``/``"none"`` = no limit."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value < 0:
            raise UsageError(f"A download size cannot be negative (got {value}).")
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    if text in ("none", "unlimited", "inf"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)([kmgt]?)(i?b?)", text)
    if not m:
        raise UsageError(f"{value!r} is not a size; write e.g. 10GB, 500MB or 1.5G (or 'none' for no limit).")
    base = 1024 if m.group(3).startswith("i") else 1000
    power = " kmgt".index(m.group(2) or " ")
    return int(float(m.group(1)) * base**power)


def max_download_default() -> int | None:
    """``ZOO_MAX_DOWNLOAD`` or 10 GB."""
    env = os.environ.get("ZOO_MAX_DOWNLOAD")
    return parse_size(env) if env else DEFAULT_MAX_DOWNLOAD


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, as huggingface_hub reads it."""
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
           for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    if "huggingface_hub" in sys.modules:  # its constant was read at import; tests flip it there
        from huggingface_hub import constants

        return bool(constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE)
    return False


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as it is now (huggingface_hub read it once at import), else huggingface.co."""
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return constants.ENDPOINT.rstrip("/")
    return "https://huggingface.co"


# ---------------------------------------------------------------------------------------- plan


@dataclass
class PlannedFile:
    path: str
    size: int
    cached: bool


@dataclass
class FetchPlan:
    """What fetching one record means, found out before downloading any weights."""

    id: str
    repo: str | None
    revision: str | None  # asked for (``main`` or a pinned one)
    commit: str | None  # what it resolved to on the Hub
    files: list[PlannedFile] = field(default_factory=list)
    refused: str | None = None  # why it will not be fetched (never downloaded)
    new_snapshot: bool = False  # planning created the snapshot folder (its JSON files): remove it if never fetched

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files if not f.cached)

    @property
    def cached(self) -> bool:
        return bool(self.files) and all(f.cached for f in self.files)


@dataclass
class FetchResult:
    """One record's fetch: ``status`` is downloaded, cached (nothing to download), local (weights that
    are not Hub repos: shipped files, packages), refused (zoo will not load it), over-budget or failed."""

    id: str
    status: str
    repo: str | None = None
    commit: str | None = None
    path: str | None = None
    bytes: int = 0  # downloaded by this call
    total_bytes: int = 0  # the files the loader reads
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("downloaded", "cached", "local")


@dataclass
class FetchReport:
    """What :func:`fetch` returns: ``results``, one :class:`FetchResult` per model (``status`` downloaded, cached, local,
    refused, over-budget or failed; ``commit``, ``path``, ``bytes``, ``seconds``, ``error``), the total
    ``seconds``, the ``max_download`` budget applied and the Hub ``endpoint``; ``downloaded_bytes`` and
    ``failed`` sum them up."""

    results: list[FetchResult]
    seconds: float
    max_download: int | None
    endpoint: str

    @property
    def downloaded_bytes(self) -> int:
        return sum(r.bytes for r in self.results)

    @property
    def failed(self) -> list[FetchResult]:
        return [r for r in self.results if not r.ok]


def _api(endpoint: str, token: str | bool | None = None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token, library_name="zoo")


def _model_page(endpoint: str, repo: str) -> str:
    return f"{endpoint}/{repo}"


def _translate(e: BaseException, record_id: str, repo: str, endpoint: str) -> FetchError:
    """One place where the Hub client's errors become zoo's, each with the fix."""
    from huggingface_hub import errors as hf

    if isinstance(e, hf.LocalEntryNotFoundError) and isinstance(e.__cause__, hf.HfHubHTTPError):
        e = e.__cause__  # snapshot_download wraps the Hub's answer when it found nothing cached to fall back on
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, hf.GatedRepoError) or status in (401, 403):
        return GatedModel(
            f"The Hub refused access to {repo} (HTTP {status or 'gated'}): it is gated or private. "
            f"Request access on its model page, {_model_page(endpoint, repo)}, then set HF_TOKEN to a token of the "
            "account that was granted access (or run `hf auth login`), and rerun.")
    if isinstance(e, hf.RevisionNotFoundError):
        return ModelNotOnHub(f"The Hub has no revision of {repo} matching the registry's; "
                             f"check {_model_page(endpoint, repo)} and re-index the model.")
    if isinstance(e, hf.RepositoryNotFoundError) or status == 404:
        return ModelNotOnHub(f"{repo} is not on the Hub at {endpoint} (404: removed, renamed or private). "
                             "Re-index the catalog, or pick another candidate.")
    if isinstance(e, hf.EntryNotFoundError):
        return ModelNotOnHub(f"A file of {repo} listed by the Hub is missing (404): {e}.")
    if isinstance(e, hf.OfflineModeIsEnabled) or (isinstance(e, hf.LocalEntryNotFoundError) and offline_mode()):
        return HubUnavailable(_offline_message(record_id))
    if status is not None and status >= 500:
        return HubUnavailable(f"The Hub at {endpoint} kept answering HTTP {status} for {repo} "
                              "after retries; try again later.")
    if isinstance(e, (OSError, ConnectionError)) or type(e).__module__.startswith(("httpx", "httpcore")):
        return HubUnavailable(f"The Hub at {endpoint} could not be reached for {repo} ({type(e).__name__}: "
                              f"{str(e)[:200]}). Check the network and HF_ENDPOINT, or fetch on a connected machine "
                              "and copy the Hugging Face cache (HF_HOME) here.")
    return FetchError(f"Fetching {repo} for {record_id} failed ({type(e).__name__}: {str(e)[:300]}).")


def _offline_message(record_id: str) -> str:
    return (f"The weights of {record_id} are not on this machine and offline mode is on (HF_HUB_OFFLINE). Unset "
            f"HF_HUB_OFFLINE to fetch them (`zoo fetch {record_id}`), or fetch on a connected machine and copy its "
            "Hugging Face cache (HF_HOME) here.")


def _retrying(call: Callable[[], Any]) -> Any:
    from huggingface_hub import errors as hf

    for attempt in range(_RETRIES):
        try:
            return call()
        except hf.HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status is None or status < 500 or attempt == _RETRIES - 1:
                raise
        except (hf.OfflineModeIsEnabled, hf.GatedRepoError, hf.EntryNotFoundError):
            raise
        except OSError as e:  # dropped connections: httpx errors are not OSErrors, handled below
            if attempt == _RETRIES - 1 or isinstance(e, FileNotFoundError):
                raise
        except Exception as e:
            if not type(e).__module__.startswith(("httpx", "httpcore")) or attempt == _RETRIES - 1:
                raise
        time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
    raise AssertionError("unreachable")


def _check_custom_code(record_id: str, library: str, repo: str, commit: str, files: Sequence[str],
                       endpoint: str, token: Any) -> str | None:
    """Read the repo's small JSON files (into the cache: the download needs them anyway) and refuse what
    would need custom code. The caller removes them again when the repo is refused."""
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    def get(name: str) -> Any:
        path = hf_hub_download(repo, name, revision=commit, cache_dir=str(hf_cache_dir()), endpoint=endpoint,
                               token=token)
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    names = [n for n in (*_CONFIGS, "modules.json") if n in files]
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:  # a round trip each: in parallel
        docs = dict(zip(names, pool.map(get, names), strict=True))
    return _custom_code_reason(record_id, library, files, docs.get)


# The JSON files that can ask for a repo's own code (``auto_map``).
_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


def _custom_code_reason(record_id: str, library: str, files: Sequence[str], read: Callable[[str], Any]) -> str | None:
    for name in _CONFIGS:
        if name in files:
            doc = read(name)
            if isinstance(doc, dict) and doc.get("auto_map"):
                return (f"{record_id} needs custom code from its repo ({name} has auto_map: "
                        f"{', '.join(sorted(doc['auto_map']))[:120]}); zoo never runs a repo's code "
                        "(trust_remote_code), so it cannot load this model")
    if library == "sentence-transformers" and "modules.json" in files:
        mods = read("modules.json")
        if not isinstance(mods, list):
            return f"{record_id}: modules.json is not a list of modules"
        for m in mods:
            cls = str((m or {}).get("type", "")) if isinstance(m, dict) else ""
            path = str((m or {}).get("path", "")) if isinstance(m, dict) else ""
            if not cls.startswith("sentence_transformers."):
                return (f"{record_id}: modules.json names the class {cls!r}, which is not part of "
                        "sentence-transformers; zoo never imports a repo's own code")
            if path.startswith(("/", "..")) or ".." in Path(path).parts:
                return f"{record_id}: modules.json names a module path outside the repo ({path!r})"
    return None


def plan_one(record: Any, *, allow_pickle: bool = False, endpoint: str | None = None,
             token: str | bool | None = None) -> FetchPlan:
    """Ask the Hub what fetching ``record`` means (files, sizes, what is cached), or why it will not be fetched.

    Raises :class:`FetchError` subclasses for what the Hub answers (gated, 404, unreachable)."""
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    why = loadable_reason(record)
    parsed = hub_repo(record.weights)
    if why is None and parsed is None:
        why = f"{record.id}'s weights ({record.weights}) are not a Hub repo; zoo only reads them where they are"
    if why is not None:
        return FetchPlan(record.id, None, None, None, refused=why)
    repo, revision = parsed
    if offline_mode():
        raise HubUnavailable(_offline_message(record.id))
    api = _api(endpoint, token)
    try:
        info = _retrying(lambda: api.model_info(repo, revision=revision))
        commit = info.sha
        # the listing and the downloads retry 5xx with backoff inside huggingface_hub already
        tree = [f for f in api.list_repo_tree(repo, revision=commit, recursive=True)
                if getattr(f, "size", None) is not None]
    except Exception as e:  # noqa: BLE001 - every client error becomes a typed zoo error
        raise _translate(e, record.id, repo, endpoint) from None
    sizes = {f.path: int(f.size) for f in tree}
    files, why = wanted_files(record.library, sizes, allow_pickle=allow_pickle)
    snap = repo_cache_folder(repo) / "snapshots" / commit
    cached = {p: (snap / p).is_file() for p in files}  # before the JSON reads below, which count as this fetch's
    existed = snap.is_dir()
    if why is None:
        try:
            why = _check_custom_code(record.id, record.library, repo, commit, files, endpoint, token)
        except Exception as e:  # noqa: BLE001
            _drop_new_snapshot(snap, existed)
            raise _translate(e, record.id, repo, endpoint) from None
    if why is not None:
        _drop_new_snapshot(snap, existed)
        return FetchPlan(record.id, repo, revision, commit, refused=why)
    planned = [PlannedFile(p, sizes[p], cached[p]) for p in files]
    return FetchPlan(record.id, repo, revision, commit, planned, new_snapshot=not existed)


def _drop_new_snapshot(snap: Path, existed: bool) -> None:
    """Remove a snapshot folder this call created and left incomplete (links only; blobs stay for a resume),
    so nothing in the cache looks like a model that is there."""
    if not existed and snap.is_dir() and not snapshot_complete(snap):
        shutil.rmtree(snap, ignore_errors=True)


# ---------------------------------------------------------------------------------------- download

_locks: dict[str, threading.Lock] = {}


def _silent_tqdm():
    from tqdm.auto import tqdm

    class Silent(tqdm):  # huggingface_hub's bars, turned off for --json and API calls without progress
        def __init__(self, *a: Any, **kw: Any) -> None:
            kw["disable"] = True
            super().__init__(*a, **kw)

    return Silent


def _write_ref(repo: str, revision: str, commit: str) -> None:
    """Point ``refs/<revision>`` at the fetched commit (snapshot_download skips it when given a commit)."""
    if revision == commit:
        return
    ref = repo_cache_folder(repo) / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)
    except OSError:
        pass  # the snapshot is still found by commit


def download(fplan: FetchPlan, *, endpoint: str | None = None, token: str | bool | None = None,
             progress: bool = True) -> FetchResult:
    """Download a plan's files (nothing when all are cached) and return where the snapshot is.

    On failure no incomplete snapshot is left that a loader could take for whole weights: a snapshot
    folder this call created is removed (finished blobs and ``.incomplete`` parts stay, for the resume)."""
    from huggingface_hub import snapshot_download

    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    assert fplan.repo and fplan.commit and not fplan.refused
    snap = repo_cache_folder(fplan.repo) / "snapshots" / fplan.commit
    t0 = time.perf_counter()
    if fplan.cached and snapshot_complete(snap):
        _write_ref(fplan.repo, fplan.revision or "main", fplan.commit)
        return FetchResult(fplan.id, "cached", fplan.repo, fplan.commit, str(snap), 0, fplan.total_bytes,
                           time.perf_counter() - t0)
    existed = snap.is_dir() and snapshot_complete(snap)
    try:
        path = snapshot_download(
            fplan.repo, revision=fplan.commit, allow_patterns=[_literal(f.path) for f in fplan.files],
            cache_dir=str(hf_cache_dir()), endpoint=endpoint, token=token, max_workers=4,
            tqdm_class=None if progress else _silent_tqdm())
    except Exception as e:  # noqa: BLE001
        _drop_new_snapshot(snap, existed)
        raise _translate(e, fplan.id, fplan.repo, endpoint) from None
    missing = [f.path for f in fplan.files if not (Path(path) / f.path).is_file()]
    if missing or not snapshot_complete(Path(path)):
        raise FetchError(f"{fplan.id}: the download of {fplan.repo} finished without {', '.join(missing) or 'weights'}; "
                         "rerun `zoo fetch` to complete it.")
    _write_ref(fplan.repo, fplan.revision or "main", fplan.commit)
    got = fplan.download_bytes + _fetch_companions(Path(path), endpoint=endpoint, token=token)
    seconds = time.perf_counter() - t0
    _remember_rate(got, seconds)
    return FetchResult(fplan.id, "downloaded", fplan.repo, fplan.commit, str(path), got, fplan.total_bytes, seconds)


# What OpenCLIP reads from a transformers text model that its config names (BiomedCLIP: PubMedBERT): the
# config to build the tower (the weights are in the OpenCLIP checkpoint) and the tokenizer.
_COMPANION_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model"]


def _fetch_companions(snapshot: Path, *, endpoint: str, token: Any) -> int:
    """Fetch the config and tokenizer of the Hugging Face text model an OpenCLIP config names, if any (a few
    hundred kB). Returns the bytes downloaded; a failure leaves the text tower to say what is missing."""
    cfg = snapshot / "open_clip_config.json"
    if not cfg.is_file():
        return 0
    try:
        text_cfg = (json.loads(cfg.read_text(encoding="utf-8")).get("model_cfg") or {}).get("text_cfg") or {}
    except (OSError, ValueError, AttributeError):
        return 0
    from huggingface_hub import snapshot_download

    got = 0
    for name in dict.fromkeys(str(text_cfg[k]) for k in ("hf_model_name", "hf_tokenizer_name") if text_cfg.get(k)):
        if Path(name).expanduser().is_dir():
            continue
        try:
            folder = Path(snapshot_download(name, allow_patterns=_COMPANION_FILES, cache_dir=str(hf_cache_dir()),
                                            endpoint=endpoint, token=token, tqdm_class=_silent_tqdm()))
        except Exception:  # noqa: BLE001 - the image tower does not need it; the text tower names the fix
            continue
        got += sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        if config.get("auto_map"):  # never used: the tower is built by transformers' own classes only
            shutil.rmtree(folder, ignore_errors=True)
    return got


def _literal(path: str) -> str:
    """An fnmatch pattern that matches only ``path`` (allow_patterns are globs)."""
    return re.sub(r"([\[\]*?])", r"[\1]", path)


def _rate_file() -> Path:
    from zoo.embed import cache_dir

    return cache_dir() / "download_rate.json"


def _remember_rate(nbytes: int, seconds: float) -> None:
    """Keep the last measured download rate (of downloads of at least 1 MB) for time estimates."""
    if nbytes < 1_000_000 or seconds <= 0:
        return
    try:
        path = _rate_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"bytes_per_s": nbytes / seconds, "measured_at": time.time()}))
        os.replace(tmp, path)
    except OSError:
        pass  # an estimate's basis, never essential


def download_rate() -> tuple[float, str]:
    """Bytes per second for estimates and where the figure comes from."""
    try:
        doc = json.loads(_rate_file().read_text())
        rate = float(doc["bytes_per_s"])
        if rate > 0:
            return rate, "the last download measured on this machine"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return ASSUMED_BYTES_PER_S, f"assumed {ASSUMED_BYTES_PER_S / 1e6:.0f} MB/s (no download measured here yet)"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


# ---------------------------------------------------------------------------------------- policy


@dataclass
class FetchPolicy:
    """How one command gets weights that are not on the machine: fetched from the Hub (``enabled``),
    within ``max_bytes`` for the whole command; what it fetched is kept in ``results`` by record id."""

    enabled: bool = True
    max_bytes: int | None = DEFAULT_MAX_DOWNLOAD
    allow_pickle: bool = False
    progress: bool = False
    endpoint: str | None = None
    token: str | bool | None = None
    spent: int = 0
    results: dict[str, FetchResult] = field(default_factory=dict)
    plans: dict[str, FetchPlan] = field(default_factory=dict)
    hub_down: str | None = None
    _checked: bool = field(default=False, repr=False)
    _say: Callable[[str], None] | None = field(default=None, repr=False)

    @classmethod
    def make(cls, fetch: bool | FetchPolicy | None = True, *, max_download: str | int | None = None,
             allow_pickle: bool = False, progress: bool = False, say: Callable[[str], None] | None = None) -> FetchPolicy:
        """The policy for an API call: ``fetch=False`` keeps to what is on disk; ``max_download`` as
        ``--max-download`` (default ``ZOO_MAX_DOWNLOAD`` or 10 GB)."""
        if isinstance(fetch, FetchPolicy):
            return fetch
        limit = max_download_default() if max_download is None else parse_size(max_download)
        return cls(enabled=bool(fetch), max_bytes=limit, allow_pickle=allow_pickle, progress=progress, _say=say)

    @property
    def active(self) -> bool:
        """Fetching is on and possible: not turned off, not offline, the Hub not found unreachable."""
        return self.enabled and not offline_mode() and self.hub_down is None

    @property
    def left(self) -> int | None:
        return None if self.max_bytes is None else max(0, self.max_bytes - self.spent)

    def say(self, text: str) -> None:
        if self._say is not None:
            self._say(text)
        elif self.progress:
            print(text, file=sys.stderr, flush=True)

    def reachable(self) -> bool:
        """Whether the Hub answers a TCP connection (once per command, at most 5 s, said before waiting)."""
        if self._checked:
            return self.hub_down is None
        self._checked = True
        endpoint = (self.endpoint or hub_endpoint()).rstrip("/")
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.say(f"Checking that the Hub at {endpoint} answers (at most {REACHABILITY_TIMEOUT_S:.0f} s) …")
        try:
            with socket.create_connection((host, port), timeout=REACHABILITY_TIMEOUT_S):
                pass
        except OSError as e:
            self.hub_down = (f"the Hub at {endpoint} did not answer ({type(e).__name__}: {e}); check the network and "
                             "HF_ENDPOINT, or fetch on a connected machine and copy the Hugging Face cache (HF_HOME) "
                             "here")
            self.say(f"The Hub is unreachable: {self.hub_down}.")
            return False
        return True

    def why_not(self, record: Any = None) -> str:
        """Why this policy will not fetch, as a fix a user can follow (naming the record's commands)."""
        rid = record.id if record is not None else "ID"
        parsed = hub_repo(record.weights) if record is not None else None
        by_hand = f"`zoo fetch {rid}`" + (f" or `hf download {parsed[0]}`" if parsed else "")
        if not self.enabled:
            return f"fetching is off (--no-fetch): drop --no-fetch, or run {by_hand} first"
        if offline_mode():
            return (f"offline mode is on (HF_HUB_OFFLINE): unset it and rerun, or run {by_hand} on a machine that "
                    "reaches the Hub and copy its Hugging Face cache (HF_HOME) here")
        return (self.hub_down or "fetching is not possible") + f" ({by_hand} once it answers)"

    def plan(self, record: Any) -> FetchPlan:
        """The record's plan (asked once per command)."""
        if record.id not in self.plans:
            self.plans[record.id] = plan_one(record, allow_pickle=self.allow_pickle, endpoint=self.endpoint,
                                             token=self.token)
        return self.plans[record.id]

    def discard(self, record_id: str) -> None:
        """Forget a plan that will not be fetched (over budget, passed over), removing the snapshot folder
        its planning created, so the cache holds no snapshot that is not whole."""
        fplan = self.plans.get(record_id)
        if fplan is not None and fplan.new_snapshot and fplan.repo and fplan.commit and record_id not in self.results:
            _drop_new_snapshot(repo_cache_folder(fplan.repo) / "snapshots" / fplan.commit, False)

    def ensure(self, record: Any) -> FetchResult:
        """The record's weights on this machine: already there, or fetched now within the budget.

        Raises :class:`FetchError` (a :class:`~zoo.errors.WeightsUnavailable`) with the reason and the fix."""
        if record.id in self.results and self.results[record.id].ok:
            return self.results[record.id]
        parsed = hub_repo(record.weights)
        if parsed is None:  # shipped files, packages, local folders: there or not (the loader says which)
            res = FetchResult(record.id, "local")
            self.results[record.id] = res
            return res
        snap = local_snapshot(record.weights)
        if snap is not None:
            res = FetchResult(record.id, "cached", parsed[0], snap.name, str(snap))
            self.results[record.id] = res
            return res
        why = loadable_reason(record)
        if why is not None:
            raise NotLoadable(why)
        if not self.active or not self.reachable():
            raise WeightsUnavailable(f"Weights for {record.id} ({record.weights}) are not on this machine, and "
                                     f"{self.why_not(record)}.")
        fplan = self.plan(record)
        if fplan.refused:
            raise NotLoadable(f"zoo will not load {record.id}: {fplan.refused}")
        return self.fetch_planned(record, fplan)

    def fetch_planned(self, record: Any, fplan: FetchPlan) -> FetchResult:
        """Download a planned record within what is left of the budget (nothing when all is cached)."""
        snap = repo_cache_folder(fplan.repo or "") / "snapshots" / (fplan.commit or "")
        if fplan.cached and snapshot_complete(snap):
            _write_ref(fplan.repo or "", fplan.revision or "main", fplan.commit or "")
            res = FetchResult(record.id, "cached", fplan.repo, fplan.commit, str(snap), 0, fplan.total_bytes)
            self.results[record.id] = res
            return res
        need = fplan.download_bytes
        if self.left is not None and need > self.left:
            _drop_new_snapshot(snap, not fplan.new_snapshot)
            raise OverBudget(f"Fetching {record.id} would download {fmt_bytes(need)}, more than the "
                             f"{fmt_bytes(self.left)} left of this command's --max-download "
                             f"({fmt_bytes(self.max_bytes or 0)}); raise --max-download (or ZOO_MAX_DOWNLOAD), or "
                             f"`zoo fetch {record.id}` first.")
        lock = _locks.setdefault(fplan.repo or "", threading.Lock())
        with lock:
            if need:
                self.say(f"Fetching {record.id} from {fplan.repo}: {fmt_bytes(need)} …")
            res = download(fplan, endpoint=self.endpoint, token=self.token, progress=self.progress)
        self.spent += res.bytes
        if res.bytes:
            self.say(f"Fetched {record.id}: {fmt_bytes(res.bytes)} in {res.seconds:.1f} s "
                     f"(commit {(res.commit or '')[:12]}).")
        self.results[record.id] = res
        return res


# ---------------------------------------------------------------------------------------- zoo fetch


def fetch(ids: Sequence[str] | str, *, max_download: str | int | None = None, allow_pickle: bool = False,
          progress: bool = False, db: str | Path | None = None, dry_run: bool = False,
          on_plan: Callable[[list[FetchPlan | FetchError]], None] | None = None,
          say: Callable[[str], None] | None = None) -> FetchReport:
    """Download what each model's loader needs into the Hugging Face cache (``zoo fetch``).

    Plans every model first (sizes from the Hub's listing, refusals), hands the plans to ``on_plan``,
    then downloads within ``max_download`` (default ``ZOO_MAX_DOWNLOAD`` or 10 GB) in the given order. A
    model that fails is reported and the others go on. ``dry_run`` stops after the plan."""
    from zoo.registry import Registry

    t0 = time.perf_counter()
    if isinstance(ids, str):
        ids = [ids]
    if not ids:
        raise UsageError("Name at least one model id to fetch (`zoo search` lists them).")
    with Registry(db=db) as reg:
        records = reg.get_many(list(ids))
    policy = FetchPolicy.make(True, max_download=max_download, allow_pickle=allow_pickle, progress=progress, say=say)
    endpoint = (policy.endpoint or hub_endpoint()).rstrip("/")
    hub_records = [r for r in records if hub_repo(r.weights) and loadable_reason(r) is None and local_snapshot(r.weights) is None]
    if hub_records and offline_mode():
        raise HubUnavailable("Offline mode is on (HF_HUB_OFFLINE is set), so zoo cannot fetch "
                             f"{', '.join(r.id for r in hub_records[:5])}. Unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) "
                             "and rerun, or fetch on a connected machine and copy its Hugging Face cache (HF_HOME) here.")
    if hub_records and not policy.reachable():
        raise HubUnavailable(f"Cannot fetch: {policy.hub_down}.")
    plans: list[FetchPlan | FetchError] = []
    for rec in records:
        if hub_repo(rec.weights) is None or loadable_reason(rec) is not None:
            plans.append(FetchPlan(rec.id, None, None, None, refused=loadable_reason(rec)))
        elif not hub_records:  # everything is cached and nothing needs the Hub: no network at all
            snap = local_snapshot(rec.weights)
            plans.append(FetchPlan(rec.id, hub_repo(rec.weights)[0], hub_repo(rec.weights)[1], snap.name if snap else None,
                                   [PlannedFile(p.relative_to(snap).as_posix(), p.stat().st_size, True)
                                    for p in sorted(snap.rglob("*")) if p.is_file()] if snap else []))
        else:
            try:
                plans.append(policy.plan(rec))
            except FetchError as e:
                plans.append(e)
    if on_plan is not None:
        on_plan(plans)
    results: list[FetchResult] = []
    for rec, fplan in zip(records, plans, strict=True):
        if isinstance(fplan, FetchError):
            results.append(FetchResult(rec.id, "failed", hub_repo(rec.weights)[0] if hub_repo(rec.weights) else None,
                                       error=str(fplan)))
            continue
        if fplan.refused:
            results.append(FetchResult(rec.id, "refused", fplan.repo, fplan.commit, error=fplan.refused))
            continue
        if fplan.repo is None:  # not a Hub repo: it is there or it is not
            from zoo import weights as _weights

            try:
                results.append(FetchResult(rec.id, "local", path=str(_weights.resolve_weights(rec))))
            except WeightsUnavailable as e:
                results.append(FetchResult(rec.id, "failed", error=str(e)))
            continue
        if dry_run:
            results.append(FetchResult(rec.id, "cached" if fplan.cached else "planned", fplan.repo, fplan.commit,
                                       total_bytes=fplan.total_bytes))
            continue
        try:
            results.append(policy.fetch_planned(rec, fplan))
        except OverBudget as e:
            results.append(FetchResult(rec.id, "over-budget", fplan.repo, fplan.commit, total_bytes=fplan.total_bytes,
                                       error=str(e)))
        except FetchError as e:
            results.append(FetchResult(rec.id, "failed", fplan.repo, fplan.commit, error=str(e)))
    return FetchReport(results, time.perf_counter() - t0, policy.max_bytes, endpoint)


# ---------------------------------------------------------------------------------------- the command's policy

_CURRENT: contextvars.ContextVar[FetchPolicy | None] = contextvars.ContextVar("zoo_fetch_policy", default=None)


@contextlib.contextmanager
def using(policy: FetchPolicy):
    """Every weight load inside the block (features, probes, plans, ``load_backbone``) fetches under
    ``policy``: one budget and one record of commits for the whole command."""
    token = _CURRENT.set(policy)
    try:
        yield policy
    finally:
        _CURRENT.reset(token)


def current_policy() -> FetchPolicy:
    """The policy of the command in progress (:func:`using`), else a fresh default one for this call (fetch
    when the Hub is reachable). Never kept outside ``using``: a long-lived process must not carry one call's
    spent budget or a passing Hub outage into every later call."""
    return _CURRENT.get() or FetchPolicy.make(True)


def ensure(record: Any, policy: FetchPolicy | bool | None = None) -> FetchResult:
    """The record's weights on this machine (fetched if allowed), under ``policy`` or the current one."""
    if isinstance(policy, FetchPolicy):
        return policy.ensure(record)
    if policy is False:
        return FetchPolicy(enabled=False).ensure(record)
    return current_policy().ensure(record)
