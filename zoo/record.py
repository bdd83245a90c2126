"""The model record: one flat dataclass, the single source of truth for a model's fields.

Like timm's ``PretrainedCfg``: flat, typed, defaults for everything but the id. Sources build
records; the registry stores them; the recommender reads them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from zoo import vocab
from zoo.ids import ModelId


def _dumps(value: Any) -> str:
    # orjson: several times faster than json.dumps, which dominated indexing time; sorted keys keep
    # the text (and so content hashes and the catalog's dump) stable.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# Fields stored as JSON text in SQLite.
JSON_FIELDS = (
    "tasks", "domains", "pretraining_data", "input_size", "mean", "std", "results", "extra", "sources",
)


# Bounds on what one record may hold (``validate``). Manifests and Hub cards come from elsewhere: one field
# must not become a 100 MB row. The shipped catalog's largest values are far below (description 459 chars,
# extra 1.4 kB as JSON); a Hub card's prose is cut at 2,000 chars (zoo.sources.hf).
MAX_DESCRIPTION_CHARS = 20_000
MAX_STRING_CHARS = 1_000  # any other string: ids, names, locations, list items, mapping keys
MAX_LIST_ITEMS = 256  # tasks, domains, pretraining_data, input_size, mean, std
MAX_JSON_CHARS = 65_536  # results, sources and extra, each as JSON
MAX_JSON_DEPTH = 16  # nesting inside extra
MAX_INT = 2**63 - 1  # SQLite's INTEGER

_FLOAT_FIELDS = ("crop_pct", "imagenet_top1", "cpu_latency_ms")
_INT_FIELDS = ("params", "feature_dim", "max_length", "downloads", "likes")
_STRING_FIELDS = ("id", "modality", "architecture", "library", "interpolation", "tokenizer", "license",
                  "license_class", "description", "weights", "same_weights_as", "source", "source_version",
                  "revision", "indexed_at")


def is_number(v: Any) -> bool:
    """A finite float, or an int SQLite and JSON can hold (64 bits), not a bool: what a numeric field may hold."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -MAX_INT - 1 <= v <= MAX_INT
    return isinstance(v, float) and math.isfinite(v)


class FieldError(ValueError):
    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


@dataclass
class ModelRecord:
    id: str
    modality: str = "image"
    tasks: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    pretraining_data: list[str] = field(default_factory=list)
    architecture: str | None = None  # family key used to group near-duplicates (e.g. timm architecture)
    library: str | None = None  # timm | transformers | sentence-transformers | onnx | local adapter name
    params: int | None = None
    feature_dim: int | None = None
    input_size: list[int] | None = None  # [C, H, W] for images
    mean: list[float] | None = None
    std: list[float] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    tokenizer: str | None = None
    max_length: int | None = None
    license: str | None = None
    license_class: str = "unknown"
    # upstream results, e.g. {"imagenet_top1": 80.4}; scores in percent (see vocab.result_value)
    results: dict[str, float] = field(default_factory=dict)
    imagenet_top1: float | None = None  # denormalised from results for sorting/filtering
    cpu_latency_ms: float | None = None  # batch-1 CPU inference, timm's published benchmark
    downloads: int | None = None
    likes: int | None = None
    description: str = ""
    weights: str | None = None  # location URI, see zoo.weights
    gated: bool = False
    same_weights_as: str | None = None
    source: str = ""
    source_version: str | None = None
    revision: str | None = None  # upstream sha / last-modified, for incremental indexing
    indexed_at: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # fact -> citation (card URL, paper)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mid = ModelId.parse(self.id)
        self.id = str(mid)
        if not self.source:
            self.source = mid.source
        self.license = vocab.normalize_license(self.license)
        self.license_class = vocab.license_class(self.license)
        top1 = self.results.get("imagenet_top1") if isinstance(self.results, dict) else None
        if self.imagenet_top1 is None and is_number(top1):  # validate() refuses any other value
            self.imagenet_top1 = float(top1)

    @property
    def name(self) -> str:
        return ModelId.parse(self.id).name

    def validate(self) -> None:
        """Raise ``FieldError`` naming the first field that breaks the vocabulary, a type, or a bound."""
        for name in _INT_FIELDS:
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_INT):
                raise FieldError(name, f"{name} must be a non-negative integer below 2**63, got {_short(v)}")
        for name in _FLOAT_FIELDS:
            v = getattr(self, name)
            if v is not None and not is_number(v):
                raise FieldError(name, f"{name} must be a finite number within 64 bits, got {_short(v)} (NaN and "
                                       "infinities are not values; leave the field out when it is unknown)")
        for name in ("input_size", "mean", "std"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, list) or len(v) > MAX_LIST_ITEMS or not all(map(is_number, v))):
                raise FieldError(name, f"{name} must be a list of finite numbers within 64 bits, got {_short(v)}")
        for name in _STRING_FIELDS:
            v = getattr(self, name)
            if v is not None:
                _check_text(name, v, MAX_DESCRIPTION_CHARS if name == "description" else MAX_STRING_CHARS)
        for name in ("tasks", "domains", "pretraining_data"):
            v = getattr(self, name)
            if not isinstance(v, list) or len(v) > MAX_LIST_ITEMS:
                raise FieldError(name, f"{name} must be a list of at most {MAX_LIST_ITEMS} names, got {_short(v)}")
            for x in v:
                _check_text(name, x, MAX_STRING_CHARS)
        if not isinstance(self.results, dict):
            raise FieldError("results", f"results must be a mapping of metric name to number, got {_short(self.results)}")
        for k, v in self.results.items():
            _check_text("results", k, MAX_STRING_CHARS)
            if not is_number(v):
                raise FieldError("results", f"results[{k!r}] must be a finite number within 64 bits, got {_short(v)} "
                                            "(NaN and infinities are not results; leave the metric out)")
        if not isinstance(self.sources, dict) or not all(isinstance(v, str) for v in self.sources.values()):
            raise FieldError("sources", f"sources must map a fact to a citation (text), got {_short(self.sources)}")
        for k, v in self.sources.items():
            _check_text("sources", k, MAX_STRING_CHARS)
            _check_text("sources", v, MAX_STRING_CHARS)
        if not isinstance(self.extra, dict):
            raise FieldError("extra", f"extra must be a mapping, got {_short(self.extra)}")
        _check_json("extra", self.extra, 0)
        for name in ("results", "sources", "extra"):
            size = len(_dumps(getattr(self, name)))
            if size > MAX_JSON_CHARS:
                raise FieldError(name, f"{name} is {size:,} characters as JSON; at most {MAX_JSON_CHARS:,} are kept "
                                       "in a record. Trim it.")
        checks = [("modality", lambda: vocab.check_member("modality", self.modality, vocab.MODALITIES))]
        checks += [("tasks", lambda t=t: vocab.check_member("task", t, vocab.TASKS)) for t in self.tasks]
        checks += [("domains", lambda d=d: vocab.check_member("domain", d, vocab.DOMAINS)) for d in self.domains]
        checks += [("pretraining_data", lambda p=p: vocab.normalize_pretraining(p)) for p in self.pretraining_data]
        for name, check in checks:
            try:
                check()
            except ValueError as e:
                raise FieldError(name, str(e)) from None

    def to_row(self) -> dict[str, Any]:
        """The SQLite row, with ``content_hash`` over every fact (not over when it was indexed)."""
        return dict(zip(ROW_COLUMNS, self.row_values(), strict=True))

    def row_values(self) -> list[Any]:
        """``to_row``'s values in ``ROW_COLUMNS`` order (the bulk-indexing path: no dict per row)."""
        values = [getattr(self, name) for name in RECORD_FIELDS]
        for i in _JSON_POSITIONS:
            if values[i] is not None:
                values[i] = _dumps(values[i])
        values[_GATED_POSITION] = int(self.gated)
        facts = orjson.dumps(values[:_INDEXED_AT_POSITION] + values[_INDEXED_AT_POSITION + 1 :])
        values.append(hashlib.sha256(facts).hexdigest()[:16])
        return values

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ModelRecord:
        """The record of a stored row. Values an older zoo let through are read leniently rather than crashing
        every command that shows the model: a null where a number belongs (a NaN that SQLite stored as NULL),
        a JSON field that does not parse or has the wrong shape."""
        kwargs = {name: row[name] for name in RECORD_FIELDS if name in row}
        for name in JSON_FIELDS:
            v = kwargs.get(name)
            if isinstance(v, str):
                try:
                    kwargs[name] = orjson.loads(v)
                except orjson.JSONDecodeError:
                    kwargs[name] = None
        for name in ("tasks", "domains", "pretraining_data"):
            if not isinstance(kwargs.get(name), list):
                kwargs[name] = []
        for name in ("results", "extra", "sources"):
            if not isinstance(kwargs.get(name), dict):
                kwargs[name] = {}
        kwargs["results"] = {k: v for k, v in kwargs["results"].items() if is_number(v)}
        for name in ("input_size", "mean", "std"):
            v = kwargs.get(name)
            if v is not None and (not isinstance(v, list) or not all(map(is_number, v))):
                kwargs[name] = None
        for name in _FLOAT_FIELDS:
            if name in kwargs and not (kwargs[name] is None or is_number(kwargs[name])):
                kwargs[name] = None
        kwargs["gated"] = bool(kwargs.get("gated"))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_hash(self) -> str:
        return self.to_row()["content_hash"]


def _short(v: Any, limit: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _check_text(name: str, v: Any, limit: int) -> None:
    if not isinstance(v, str):
        raise FieldError(name, f"{name} must be text, got {type(v).__name__} {_short(v)}")
    if len(v) > limit:
        raise FieldError(name, f"{name} is {len(v):,} characters long; at most {limit:,} are kept in a record. Trim it.")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(name, f"{name} is not valid Unicode text (a lone surrogate such as \\ud800)") from None


def _check_json(name: str, v: Any, depth: int) -> None:
    """``v`` is plain JSON (text keys, finite numbers) nested at most ``MAX_JSON_DEPTH`` deep."""
    if depth > MAX_JSON_DEPTH:
        raise FieldError(name, f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise FieldError(name, f"{name} has a key that is not text: {_short(k)}")
            _check_text(name, k, MAX_STRING_CHARS)
            _check_json(name, x, depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_json(name, x, depth + 1)
    elif isinstance(v, str):
        _check_text(name, v, MAX_JSON_CHARS)
    elif isinstance(v, float) and not math.isfinite(v):
        raise FieldError(name, f"{name} holds {v!r}: only finite numbers are stored")
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
        raise FieldError(name, f"{name} holds an integer beyond 64 bits: {_short(v)}")
    elif not (v is None or isinstance(v, (bool, int, float))):
        raise FieldError(name, f"{name} holds a {type(v).__name__} ({_short(v)}), which is not JSON: write it as text")


RECORD_FIELDS = tuple(f.name for f in fields(ModelRecord))
ROW_COLUMNS = (*RECORD_FIELDS, "content_hash")
_JSON_POSITIONS = tuple(RECORD_FIELDS.index(name) for name in JSON_FIELDS)
_GATED_POSITION = RECORD_FIELDS.index("gated")
_INDEXED_AT_POSITION = RECORD_FIELDS.index("indexed_at")
