"""The model record: one flat dataclass, the single source of truth for a model's fields.

Like timm's ``PretrainedCfg``: flat, typed, defaults for everything but the id. Sources build
records; the registry stores them; the recommender reads them.
"""

from __future__ import annotations

import hashlib
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
        if self.imagenet_top1 is None and "imagenet_top1" in self.results:
            self.imagenet_top1 = float(self.results["imagenet_top1"])

    @property
    def name(self) -> str:
        return ModelId.parse(self.id).name

    def validate(self) -> None:
        """Raise ``FieldError`` naming the first field that breaks the vocabulary."""
        checks = [("modality", lambda: vocab.check_member("modality", self.modality, vocab.MODALITIES))]
        checks += [("tasks", lambda t=t: vocab.check_member("task", t, vocab.TASKS)) for t in self.tasks]
        checks += [("domains", lambda d=d: vocab.check_member("domain", d, vocab.DOMAINS)) for d in self.domains]
        checks += [("pretraining_data", lambda p=p: vocab.normalize_pretraining(p)) for p in self.pretraining_data]
        for name, check in checks:
            try:
                check()
            except ValueError as e:
                raise FieldError(name, str(e)) from None
        for name in ("params", "feature_dim", "max_length", "downloads", "likes"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise FieldError(name, f"{name} must be a non-negative integer, got {v!r}")
        for name in ("input_size", "mean", "std"):
            v = getattr(self, name)
            if v is not None and not all(isinstance(x, (int, float)) for x in v):
                raise FieldError(name, f"{name} must be a list of numbers, got {v!r}")

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
        kwargs = {name: row[name] for name in RECORD_FIELDS if name in row}
        for name in JSON_FIELDS:
            v = kwargs.get(name)
            if isinstance(v, str):
                kwargs[name] = orjson.loads(v)
        kwargs["gated"] = bool(kwargs.get("gated"))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_hash(self) -> str:
        return self.to_row()["content_hash"]


RECORD_FIELDS = tuple(f.name for f in fields(ModelRecord))
ROW_COLUMNS = (*RECORD_FIELDS, "content_hash")
_JSON_POSITIONS = tuple(RECORD_FIELDS.index(name) for name in JSON_FIELDS)
_GATED_POSITION = RECORD_FIELDS.index("gated")
_INDEXED_AT_POSITION = RECORD_FIELDS.index("indexed_at")
