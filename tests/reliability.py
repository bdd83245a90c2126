"""What the reliability suites share with benchmarks/bench_reliability.py: the generated inputs of the property
tests (hypothesis strategies and the check each input must pass), and the fault injections (kill -9 of
`zoo index`, a full disk, a read-only database, writers and readers at once, untrusted model files).

Each check returns what happened to one input (``"loaded"`` / ``"refused"``, or a trial's outcome) and raises
anything else: a property test fails on it, the benchmark counts it as a traceback. Everything is real: files
in temporary folders, SQLite databases, `zoo` run as a subprocess where a process has to die or run beside
another. Run as a script, this module is the worker of those subprocesses (``reader`` / ``writer``)."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------ generated inputs


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (hypothesis' integers lean on their bounds, so ``integers(0, n) == 0`` would
    come up far more often)."""
    return st.sampled_from([False] * (n - 1) + [True])


def _mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` four times in five, else ``bad``."""
    return one_in(5).flatmap(lambda odd: bad if odd else good)


_ODD_TEXT = ["", " ", "nan", "NaN", "inf", "-Infinity", "..", "../../etc/passwd", "\x00", "é", "\ud800", "🦓" * 3,
             "a" * 1_200, "x" * 25_000, "label", "text", "local:", "hf:a/b", "timm:x", "file:", "&a", "*a", "---"]
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(_ODD_TEXT),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(_ODD_TEXT), kids,
                                                              max_size=4),
    max_leaves=12,
)


def _deep(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"a": v}
    return v


def _odd_values() -> dict[str, st.SearchStrategy]:
    """Per field, values a hand-written (or hostile) manifest may hold that do not fit it."""
    numbers = st.one_of(st.integers(min_value=-5, max_value=2**66), st.floats(allow_nan=True, allow_infinity=True))
    odd_list = st.lists(st.sampled_from(_ODD_TEXT) | JSON_SCALARS, min_size=1, max_size=3) | JSON_VALUES
    return {
        "id": st.sampled_from(_ODD_TEXT) | JSON_SCALARS,
        "modality": JSON_SCALARS,
        "tasks": odd_list, "domains": odd_list, "pretraining_data": odd_list,
        "params": numbers | JSON_SCALARS, "feature_dim": numbers,
        "input_size": st.lists(numbers | JSON_SCALARS, max_size=4) | JSON_VALUES,
        "mean": st.lists(numbers, min_size=1, max_size=3), "crop_pct": numbers, "cpu_latency_ms": numbers,
        "license": JSON_SCALARS | st.sampled_from(_ODD_TEXT),
        "results": st.fixed_dictionaries({"imagenet_top1": st.sampled_from([math.nan, math.inf, -math.inf, None, "80"])})
        | st.dictionaries(st.text(max_size=12), numbers | JSON_SCALARS, min_size=1, max_size=3) | JSON_VALUES,
        "description": st.sampled_from(_ODD_TEXT) | JSON_VALUES,
        "weights": st.sampled_from(_LOCATIONS_ODD) | JSON_SCALARS,
        "extra": st.dictionaries(st.text(max_size=8) | st.sampled_from(_ODD_TEXT), JSON_VALUES, min_size=1, max_size=3)
        | st.builds(lambda d: {"deep": _deep(d)}, st.integers(0, 40))
        | st.fixed_dictionaries({"tokenizer_file": st.sampled_from(_LOCATIONS_ODD)})
        | st.fixed_dictionaries({"archive_root": st.sampled_from(["../../etc", "/abs", "a/../../b"])}),
        "sources": st.dictionaries(st.text(max_size=8), JSON_SCALARS, min_size=1, max_size=3),
        "gated": JSON_SCALARS,
        "license_class": st.just("permissive"),  # derived by zoo: refused
        "colour": JSON_SCALARS,  # not a field: refused
    }


_LOCATIONS_OK = ["file:w.onnx", "file:sub/w.pth", "file:/opt/models/w.pth", "hf:org/name", "hf:org/name@main",
                 "shared:models/x.pth", "pypi:numpy/core", "url:https://x/y.pth"]
_LOCATIONS_ODD = ["file:../w.pth", "file:../../etc/passwd", "file:sub/../../x", "file:", "file:\x00x",
                  "file:" + "d/" * 400, "shared:../../etc/passwd", "shared:/etc/passwd",
                  "pypi:numpy/../../../etc/passwd", "nonsense", "file:link-out/x"]


@st.composite
def _good_entry(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """An entry a careful author writes: every field right (an unknown license is still right: it warns)."""
    from zoo import vocab

    finite = st.floats(min_value=0, max_value=100, allow_nan=False)
    pick = lambda words, k: st.lists(st.sampled_from(sorted(words)), max_size=k, unique=True)  # noqa: E731
    optional = {
        "modality": st.sampled_from(sorted(vocab.MODALITIES)), "tasks": pick(vocab.TASKS, 2),
        "domains": pick(vocab.DOMAINS, 2),
        "pretraining_data": pick([k for k in vocab.PRETRAINING_DATA if k != "other"], 2),
        "params": st.integers(0, 10**10), "feature_dim": st.integers(1, 4096),
        "input_size": st.just([3, 224, 224]), "mean": st.just([0.5, 0.5, 0.5]), "crop_pct": finite,
        "license": st.sampled_from(["mit", "apache-2.0", "cc-by-nc-4.0", "other", "my-own-license", "GPL-3.0"]),
        "results": st.dictionaries(st.sampled_from(["imagenet_top1", "cifar10_acc", "glue"]), finite, max_size=3),
        "description": st.text(max_size=80), "weights": st.sampled_from(_LOCATIONS_OK),
        "extra": st.dictionaries(st.text(max_size=8), JSON_SCALARS.filter(
            lambda v: not (isinstance(v, float) and not math.isfinite(v)) and not (isinstance(v, int) and abs(v) > 2**62)
            and not (isinstance(v, str) and ("\ud800" in v or len(v) > 1000))), max_size=3),
        "sources": st.dictionaries(st.sampled_from(["license", "results"]), st.just("https://example.org/card")),
        "gated": st.booleans(),
    }
    name = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,16}", fullmatch=True))
    entry = {"id": f"{draw(st.sampled_from(['local', 'hf', 'timm']))}:{name}-{n}"}
    for key, strategy in optional.items():
        if draw(st.booleans()):
            entry[key] = draw(strategy)
    return entry


@st.composite
def manifest_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """``(suffix, bytes)`` of a manifest: careful entries with 0-2 fields made odd (NaN, infinities, huge numbers,
    oversized text, a weights path out of the folder, wrong types), written as JSON or YAML (YAML may share one
    value between entries, which the dumper writes as an anchor and aliases); sometimes cut short, bytes
    flipped, or junk."""
    import yaml

    odd = _odd_values()
    entries = []
    for n in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        entry = draw(_good_entry(n))
        k = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))  # half the entries careful, the others with odd fields
        for key in draw(st.lists(st.sampled_from(sorted(odd)), min_size=k, max_size=k, unique=True)):
            entry[key] = draw(odd[key])
        entries.append(draw(JSON_VALUES) if draw(one_in(20)) else entry)
    if len(entries) > 1 and draw(one_in(6)):  # one object twice: YAML writes &id001 ... *id001
        shared = {"x": draw(JSON_VALUES)}
        for e in entries:
            if isinstance(e, dict):
                e["extra"] = shared
    doc: Any = {"manifest": "fuzz", "version": draw(_mostly(st.sampled_from([None, "1", "2026-01-01"]), JSON_SCALARS)),
                "models": entries}
    if draw(one_in(20)):
        doc = draw(JSON_VALUES)
    suffix = draw(st.sampled_from([".json", ".yaml"]))
    try:
        text = json.dumps(doc) if suffix == ".json" else yaml.safe_dump(doc, allow_unicode=True)
        data = text.encode("utf-8", "surrogatepass")
    except (ValueError, yaml.YAMLError, UnicodeEncodeError):
        data = json.dumps(doc, ensure_ascii=True).encode()
    mutation = draw(st.sampled_from(["none"] * 17 + ["cut", "flip", "junk"]))
    if mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "flip" and data:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 5))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        data = bytes(b)
    elif mutation == "junk":
        data = draw(st.binary(max_size=200))
    return suffix, data


def check_manifest(folder: Path, suffix: str, data: bytes, registry: Any) -> str:
    """Load one manifest; it loads (and its records are stored and read back) or is refused with zoo's error."""
    import warnings

    from zoo.errors import ZooError
    from zoo.sources.manifest import iter_records

    path = folder / f"m{suffix}"
    path.write_bytes(data)
    (folder / "link-out").symlink_to("/etc")  # a link inside the manifest's folder that leads out of it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown license warns: not a failure
            records = list(iter_records(path))
    except ZooError as e:
        assert str(e).strip(), "a ZooError without a message"
        return "refused"
    registry.index("manifest", records)
    for r in records:
        back = registry.get(r.id)
        back.validate()
        assert all(math.isfinite(v) for v in back.results.values())
        if r.weights and r.weights.startswith("file:"):  # stored absolute, never climbing out with ".."
            assert Path(r.weights[5:]).is_absolute() and ".." not in Path(r.weights[5:]).parts, r.weights
    registry.search(limit=5)
    return "loaded"


# -- the sample loader

def _png(rng: random.Random, size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    mode = rng.choice(["RGB", "L", "RGBA", "P", "1"])
    Image.new(mode, (size, max(1, size // 2 + 1)), color=rng.randrange(200)).save(buf, format=rng.choice(["PNG", "JPEG"])
                                                                                  if mode in ("RGB", "L") else "PNG")
    return buf.getvalue()


@st.composite
def sample_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """A description of one sample-data input (built on disk by ``build_sample``): a CSV/TSV/JSONL file, an .npz
    or an image folder; most are plausible (a text and a label column, two classes or more), some have odd
    cells, lines, arrays or files, a few are junk."""
    kind = draw(st.sampled_from(["csv", "tsv", "jsonl", "npz", "images"]))
    spec: dict[str, Any] = {"kind": kind, "seed": draw(st.integers(0, 2**16)),
                            "text_column": draw(st.sampled_from(["text", "text", "text", "review"])),
                            "label_column": draw(st.sampled_from(["label", "label", "label", "labels"])),
                            "cap": draw(st.sampled_from([None, 1, 2, 3, 300, 300])), "strict": draw(one_in(5))}
    odd_cell = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "nan", "inf", "a,b", '"', "\n", "3.0", "-2",
                                                                "1e309", "\ud800", "x" * 5000]))
    label = st.sampled_from(["pos", "neg", "1", "2", "0.5", "1.5", "2.5", "3"])
    if kind in ("csv", "tsv", "jsonl"):
        cols = ["text", "label"] if not draw(one_in(4)) else draw(st.lists(st.sampled_from(
            ["text", "label", "review", "labels", "y", "", "x"]), max_size=4))
        rows = draw(st.lists(st.tuples(st.text(min_size=1, max_size=20), label), min_size=0, max_size=14))
        spec["rows"] = [dict(zip(cols, [t, lab, "extra"], strict=False)) for t, lab in rows]
        for row in spec["rows"]:
            if cols and draw(one_in(10)):
                row[draw(st.sampled_from(cols))] = draw(odd_cell if kind != "jsonl" else JSON_VALUES)
        spec["header"] = cols
        spec["raw"] = draw(st.binary(max_size=120) | st.text(max_size=80)) if draw(one_in(10)) else None
        spec["junk_lines"] = draw(st.lists(st.text(max_size=10) | JSON_VALUES.map(json.dumps), max_size=2))
    elif kind == "npz":
        spec["x"] = draw(st.sampled_from(["f32", "f32", "int", "bool", "str", "empty", "scalar", "3d", "nan", "object",
                                          "complex", "none"]))
        spec["y"] = draw(st.sampled_from(["int", "int", "str", "float", "none", "nan", "2d", "short", "object", "scalar",
                                          "bool", "surrogate"]))
        spec["n"] = draw(st.integers(0, 12))
        spec["junk"] = draw(st.sampled_from([None] * 8 + [b"", b"PK\x03\x04junk", b"not a zip"]))
    else:
        spec["classes"] = draw(st.sampled_from([["a", "b"], ["a", "b", "c"], ["1", "01"], ["a"], [], ["a", ".hidden"],
                                                ["nested/x", "b"], ["caf\udce9", "b"]]))  # a name not in UTF-8
        good = [(c, "png") for c in range(3) for _ in range(2)]
        spec["files"] = good + draw(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(
            ["png", "trunc", "junk", "empty", "txt", "big"])), max_size=4))
        if draw(one_in(5)):
            spec["files"] = spec["files"][draw(st.integers(0, len(good))):]
        spec["loose"] = draw(st.sampled_from([0, 0, 0, 1, 2]))
    return spec


def build_sample(folder: Path, spec: dict[str, Any]) -> Path:
    rng = random.Random(spec["seed"])
    kind = spec["kind"]
    if kind in ("csv", "tsv"):
        path = folder / f"s.{kind}"
        if spec["raw"] is not None:
            raw = spec["raw"]
            path.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
            return path
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="," if kind == "csv" else "\t")
        if spec["header"]:
            w.writerow(spec["header"])
        for row in spec["rows"]:
            w.writerow([str(row.get(c, "")) for c in spec["header"]])
        text = buf.getvalue() + "".join(f"{x}\n" for x in spec["junk_lines"])
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        return path
    if kind == "jsonl":
        path = folder / "s.jsonl"
        lines = [json.dumps(r) for r in spec["rows"]] + list(spec["junk_lines"])
        rng.shuffle(lines)
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        return path
    if kind == "npz":
        path = folder / "s.npz"
        if spec["junk"] is not None:
            path.write_bytes(spec["junk"])
            return path
        n = spec["n"]
        xs = {"f32": lambda: np.random.default_rng(1).random((n, 3), dtype=np.float32),
              "int": lambda: np.arange(n * 2).reshape(n, 2), "bool": lambda: np.ones((n, 2), bool),
              "str": lambda: np.array(["a"] * n), "empty": lambda: np.zeros((0, 3)), "scalar": lambda: np.float32(3),
              "3d": lambda: np.zeros((n, 2, 2)), "nan": lambda: np.full((n, 2), np.nan),
              "object": lambda: np.array([{"a": 1}] * n, dtype=object), "complex": lambda: np.ones((n, 2), complex),
              "none": None}
        ys = {"int": lambda: np.arange(n) % 2, "str": lambda: np.array(["p", "q"] * n)[:n],
              "float": lambda: np.linspace(0, 1, n), "nan": lambda: np.full(n, np.nan), "2d": lambda: np.eye(n, 3),
              "short": lambda: np.arange(max(0, n - 1)), "object": lambda: np.array([[1], "a"] * n, dtype=object)[:n],
              "scalar": lambda: np.int64(1), "bool": lambda: np.arange(n) % 2 == 0, "none": None,
              "surrogate": lambda: np.array(["\ud800", "a"] * n)[:n]}
        arrays = {}
        if xs[spec["x"]] is not None:
            arrays["x"] = xs[spec["x"]]()
        if ys[spec["y"]] is not None:
            arrays["y"] = ys[spec["y"]]()
        np.savez(path, **arrays)  # object arrays are pickled in the file: the loader must refuse them
        return path
    root = folder / "images"
    root.mkdir()
    dirs = [Path(os.fsdecode(os.fsencode(root / c))) for c in spec["classes"]] or [root]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i, (which, kind_) in enumerate(spec["files"]):
        d = dirs[which % len(dirs)]
        if kind_ == "png":
            (d / f"{i}.png").write_bytes(_png(rng, rng.randint(1, 24)))
        elif kind_ == "trunc":
            data = _png(rng, 16)
            (d / f"{i}.png").write_bytes(data[: rng.randint(0, len(data) - 1)])
        elif kind_ == "junk":
            (d / f"{i}.jpg").write_bytes(rng.randbytes(rng.randint(1, 64)))
        elif kind_ == "empty":
            (d / f"{i}.webp").write_bytes(b"")
        elif kind_ == "txt":
            (d / f"{i}.txt").write_text("not an image")
        else:  # a header that claims 100,000 x 100,000 pixels: PIL's decompression-bomb limit
            (d / f"{i}.png").write_bytes(_bomb_png())
    for j in range(spec["loose"]):
        (root / f"loose{j}.png").write_bytes(_png(rng, 8))
    return root


def _bomb_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def check_sample(folder: Path, spec: dict[str, Any]) -> str:
    """Load one sample input; it loads (and describes itself) or is refused with zoo's error."""
    from zoo.data import describe, load_sample
    from zoo.errors import ZooError

    path = build_sample(folder, spec)
    try:
        sample = load_sample(path, text_column=spec["text_column"], label_column=spec["label_column"],
                             max_samples_per_class=spec["cap"], strict=spec["strict"])
    except ZooError as e:
        assert str(e).strip(), "a ZooError without a message"
        return "refused"
    assert describe(sample)
    assert len(sample) > 0 and len(sample.content_hash) == 16
    if sample.labels is not None:
        assert len(sample.labels) == len(sample)
    return "loaded"


# -- the Hub's model-info JSON

@st.composite
def hub_documents(draw: st.DrawFn) -> tuple[Any, str | None]:
    """``(model-info JSON, README text)`` as a Hub could send them: the fields zoo reads, mostly of the right
    shape with odd values, sometimes junk in their place."""
    tag = st.sampled_from(["license:mit", "license:", "license:other", "license:weird-one", "dataset:imagenet-1k",
                           "dataset:", "medical", "timm", "image-classification", "sentence-transformers",
                           "region:us"]) | st.text(max_size=12)
    metric = st.fixed_dictionaries({}, optional={
        "type": _mostly(st.sampled_from(["accuracy", "top1", "f1", "wer"]), JSON_SCALARS),
        "value": _mostly(st.floats(allow_nan=True, allow_infinity=True) | st.integers(), JSON_VALUES),
        "name": JSON_SCALARS})
    dataset = st.fixed_dictionaries({}, optional={
        "type": _mostly(st.sampled_from(["imagenet-1k", "cifar10", "glue"]), JSON_SCALARS),
        "name": JSON_SCALARS, "config": JSON_SCALARS, "split": JSON_SCALARS})
    result = st.fixed_dictionaries({}, optional={"dataset": _mostly(dataset, JSON_SCALARS),
                                                 "metrics": _mostly(st.lists(metric, max_size=3), JSON_VALUES)})
    model_index = st.lists(st.fixed_dictionaries({}, optional={"results": _mostly(st.lists(result, max_size=3),
                                                                                  JSON_VALUES)}), max_size=2)
    card = st.fixed_dictionaries({}, optional={
        "license": _mostly(st.sampled_from(["mit", "apache-2.0", "other", "my-license"]), JSON_VALUES),
        "datasets": _mostly(st.lists(st.sampled_from(["imagenet-1k", "laion/laion2b", ""]), max_size=3), JSON_VALUES),
        "base_model": JSON_VALUES, "language": _mostly(st.lists(st.sampled_from(["en", "fr"]), max_size=2), JSON_VALUES),
        "pipeline_tag": JSON_SCALARS, "library_name": JSON_SCALARS, "model-index": _mostly(model_index, JSON_VALUES),
        "tags": JSON_VALUES})
    date = _mostly(st.sampled_from(["2024-01-02T03:04:05.000Z", "2024-01-02"]), st.sampled_from(["yesterday", ""])
                   | JSON_SCALARS)
    count = _mostly(st.integers(0, 10**9), JSON_SCALARS)
    doc = draw(st.fixed_dictionaries(
        {"id": _mostly(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,12}/[A-Za-z0-9][A-Za-z0-9._\-]{0,12}",
                                     fullmatch=True), JSON_SCALARS)},
        optional={
            "sha": _mostly(st.from_regex(r"[0-9a-f]{40}", fullmatch=True), JSON_SCALARS),
            "tags": _mostly(st.lists(tag, max_size=6), JSON_VALUES),
            "pipeline_tag": _mostly(st.sampled_from(["image-classification", "feature-extraction",
                                                     "text-classification", "automatic-speech-recognition"]),
                                    JSON_SCALARS),
            "library_name": _mostly(st.sampled_from(["timm", "transformers", "sentence-transformers"]), JSON_SCALARS),
            "cardData": _mostly(card, JSON_VALUES), "model-index": _mostly(model_index, JSON_VALUES),
            "config": _mostly(st.fixed_dictionaries({}, optional={"model_type": JSON_SCALARS,
                                                                  "architectures": JSON_VALUES}), JSON_VALUES),
            "downloads": count, "likes": count, "gated": _mostly(st.sampled_from([False, "auto", "manual"]),
                                                                 JSON_SCALARS),
            "safetensors": _mostly(st.fixed_dictionaries({}, optional={"total": count, "parameters": _mostly(
                st.dictionaries(st.sampled_from(["F32", "F16"]), count), JSON_VALUES)}), JSON_VALUES),
            "lastModified": date, "createdAt": date, "private": st.booleans(), "siblings": _mostly(st.just([]),
                                                                                                   JSON_VALUES),
        }))
    if draw(one_in(20)):
        doc = draw(JSON_VALUES)
    readme = draw(st.none() | st.text(max_size=200) | st.just("---\nlicense: mit\n---\n# Card\n<!-- x --> text"))
    return doc, readme


def check_hub(doc: Any, readme: str | None, registry: Any) -> str:
    """Normalise one model-info document; a record (stored and read back) or zoo's error."""
    from zoo.errors import ZooError
    from zoo.sources.hf import record_from_json

    try:
        rec = record_from_json(doc, readme)
    except ZooError as e:
        assert str(e).strip(), "a ZooError without a message"
        return "refused"
    rec.validate()
    registry.index("hf", [rec])
    assert registry.get(rec.id).id == rec.id
    return "loaded"


# ------------------------------------------------------------------------------------------ fault injection

def zoo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "zoo", *args]


def subprocess_env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"ZOO_DB": str(db), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
                **extra})
    return env


def write_big_manifest(path: Path, n: int, version: str) -> Path:
    """``n`` models whose descriptions all start with ``version`` (plus a tenth more ids in the "new" version),
    so a database after a crash can be checked for all-old or all-new rows."""
    extra = n // 10 if version == "new" else 0
    models = [{"id": f"local:kill-{i:06d}", "modality": "image", "domains": ["natural-images"], "params": i + 1,
               "results": {"imagenet_top1": 50.0 + i % 40}, "license": "mit",
               "description": f"{version} model {i} " + "words " * 30} for i in range(n + extra)]
    path.write_text(json.dumps({"manifest": f"kill-{version}", "version": version, "models": models}))
    return path


def db_state(db: Path, n: int) -> str:
    """``old`` / ``new`` when the rows are all of one index run, ``mixed ...`` when not, ``damaged: ...`` when the
    database does not open, fails ``PRAGMA integrity_check`` or its full-text index disagrees with its rows."""
    try:
        conn = sqlite3.connect(db)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                return f"damaged: integrity_check {check[:3]}"
            conn.execute("INSERT INTO models_fts(models_fts) VALUES ('integrity-check')")
            counts = Counter(d.split(" ", 1)[0] for (d,) in conn.execute(
                "SELECT description FROM models WHERE id LIKE 'local:kill-%'"))
            runs = conn.execute("SELECT count(*) FROM index_runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return f"damaged: {e}"
    if counts == Counter(old=n) and runs == 1:
        return "old"
    if counts == Counter(new=n + n // 10) and runs == 2:
        return "new"
    return f"mixed {dict(counts)} runs={runs}"


@dataclass
class KillReport:
    trials: list[dict] = field(default_factory=list)
    index_seconds: float = 0.0  # an uninterrupted `zoo index manifest` of the new version, start to exit
    write_window: tuple[float, float] = (0.0, 0.0)  # when it wrote to the database: first WAL growth to exit

    def count(self, key: str, value: Any) -> int:
        return sum(t[key] == value for t in self.trials)


def _wal_size(db: Path) -> int:
    try:
        return db.with_name(db.name + "-wal").stat().st_size
    except OSError:
        return 0


def _timed_index(db: Path, manifest: Path) -> tuple[float, float, int]:
    """Run `zoo index manifest` to the end, watching the WAL: (seconds until it first grew, seconds to exit, the
    largest size it reached)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(zoo_cmd("index", "manifest", str(manifest)), env=subprocess_env(db),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, largest = None, 0
    while proc.poll() is None:
        size = _wal_size(db)
        largest = max(largest, size)
        if first is None and size > 0:
            first = time.perf_counter() - t0
        time.sleep(0.001)
    end = time.perf_counter() - t0
    assert proc.returncode == 0
    return (first if first is not None else end), end, largest


def kill_trials(folder: Path, trials: int, n: int, rng: random.Random) -> KillReport:
    """``zoo index manifest`` of a new version over ``n`` stored models, killed with SIGKILL ``trials`` times, in
    turn: in the middle of the COMMIT (zoo keeps a run's pages in memory until then), when the WAL has grown to a
    random fraction of its full size; at a random moment of a whole run (start-up, reading and checking the
    manifest, writing); and just after the COMMIT, once the WAL is full-size (while zoo checkpoints and closes).
    Each trial's database must open (zoo reads it), pass the integrity checks and hold all old or all new rows."""
    from zoo.registry import Registry

    old, new = write_big_manifest(folder / "old.json", n, "old"), write_big_manifest(folder / "new.json", n, "new")
    base = folder / "base.db"
    subprocess.run(zoo_cmd("index", "manifest", str(old)), env=subprocess_env(base), check=True, capture_output=True)
    probe = folder / "probe.db"
    shutil.copy(base, probe)
    start_write, end, wal_bytes = _timed_index(probe, new)
    report = KillReport(index_seconds=end, write_window=(start_write, end))
    for i in range(trials):
        db = folder / f"trial{i}.db"
        shutil.copy(base, db)
        aim = ("commit", "run", "after-commit")[i % 3]
        delay = rng.uniform(0.0, end)
        fraction = rng.uniform(0.02, 0.98) if aim == "commit" else 1.0
        t0 = time.perf_counter()
        proc = subprocess.Popen(zoo_cmd("index", "manifest", str(new)), env=subprocess_env(db),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if aim == "run":
            time.sleep(delay)
        else:
            while proc.poll() is None and _wal_size(db) < fraction * wal_bytes:
                time.sleep(0.0005)
        at = time.perf_counter() - t0
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err, err.decode()[-2000:]
        state = db_state(db, n)
        if state in ("old", "new"):
            with Registry(db=db, catalog=folder / "none.db") as reg:  # and zoo opens it and reads
                if reg.get("local:kill-000000").id != "local:kill-000000":
                    state = "damaged: zoo reads another row"
        report.trials.append({"aim": aim, "at_s": round(at, 3), "wal_fraction": round(fraction, 2) if aim != "run"
                              else None, "killed": proc.returncode == -signal.SIGKILL, "state": state})
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
    return report


@functools.cache
def filled_tmpfs_supported() -> bool:
    """Root may mount a small tmpfs (a real full disk); elsewhere a file-size limit (RLIMIT_FSIZE) stands in."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=True)
        return ok


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write a filler file until the file system holding ``folder`` is full."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` (holding a database) read-only: a read-only remount of its tmpfs as root (root ignores
    file modes; ``folder`` must then be a ``tmpfs()``), else the modes of the folder and its files."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, m in modes.items():
            p.chmod(m)


def limited_preexec(max_bytes: int | None):
    if max_bytes is None:
        return None

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return limit


def run_zoo(args: list[str], db: Path, *, fsize: int | None = None, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess:
    """`zoo ARGS` in a subprocess (under a file-size limit of ``fsize`` bytes when given)."""
    return subprocess.run(zoo_cmd(*args), env=subprocess_env(db, **env), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limited_preexec(fsize))


def run_commands(db: Path, commands: list[list[str]], *, fsize: int | None = None, **env: str) -> list[dict]:
    """Each of ``commands`` (`zoo` arguments) through the real CLI (click's runner, in one subprocess so the
    imports are paid once), under a file-size limit of ``fsize`` bytes when given: exit code, output (stdout and
    stderr), and the exception that escaped the CLI if one did."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "commands", json.dumps(commands)],
                          env=subprocess_env(db, **env), capture_output=True, text=True, timeout=600,
                          preexec_fn=limited_preexec(fsize))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _commands(commands: list[list[str]]) -> list[dict]:
    from click.testing import CliRunner

    from zoo.cli import cli

    out = []
    for args in commands:
        res = CliRunner().invoke(cli, args)
        escaped = None if res.exception is None or isinstance(res.exception, SystemExit) else repr(res.exception)
        out.append({"args": args, "exit_code": res.exit_code, "output": res.output, "exception": escaped})
    return out


# -- writers and readers at once

def reader(db: str, seconds: float) -> dict[str, Any]:
    """Search, show, count and list runs in a loop for ``seconds``; every error is counted by its text."""
    from zoo.registry import Registry

    ops, errors = 0, Counter()
    end = time.monotonic() + seconds
    rng = random.Random(os.getpid())
    while time.monotonic() < end:
        try:
            with Registry(db=db) as reg:
                reg.search("model", limit=5)
                reg.get(f"local:conc-{rng.randrange(200):04d}")
                reg.stats_total()
                reg.search(source="local", sort="params", limit=3)
            ops += 1
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors[f"{type(e).__name__}: {str(e)[:160]}"] += 1
    return {"ops": ops, "errors": dict(errors)}


def writer(db: str, seconds: float, manifests: list[str]) -> dict[str, Any]:
    """Index the manifests in turn for ``seconds`` (one transaction each), as `zoo index manifest` does."""
    import warnings

    from zoo import api
    from zoo.errors import ZooWarning

    runs, errors, waits = 0, Counter(), 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ZooWarning)
            try:
                api.index("manifest", db=db, path=manifests[i % len(manifests)])
                runs += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors[f"{type(e).__name__}: {str(e)[:160]}"] += 1
        waits += sum("Waiting up to" in str(w.message) for w in seen)
        i += 1
    return {"runs": runs, "errors": dict(errors), "waits": waits}


def concurrency(folder: Path, seconds: float, writers: int = 2, readers: int = 4, n: int = 200) -> dict[str, Any]:
    """``writers`` indexers and ``readers`` readers, each its own process, on one database for ``seconds``."""
    db = folder / "conc.db"
    manifests = []
    for v in ("a", "b"):
        models = [{"id": f"local:conc-{i:04d}", "modality": "image", "params": i + 1, "license": "mit",
                   "description": f"version {v} model {i} " + "words " * 20} for i in range(n)]
        p = folder / f"conc-{v}.json"
        p.write_text(json.dumps({"manifest": v, "models": models}))
        manifests.append(str(p))
    subprocess.run(zoo_cmd("index", "manifest", manifests[0]), env=subprocess_env(db), check=True, capture_output=True)
    procs = []
    for role, count in (("writer", writers), ("reader", readers)):
        for _ in range(count):
            procs.append((role, subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), role, str(db), str(seconds), *manifests],
                env=subprocess_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    out: dict[str, Any] = {"writers": [], "readers": []}
    for role, p in procs:
        stdout, stderr = p.communicate(timeout=seconds + 120)
        assert p.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
        out[f"{role}s"].append(json.loads(stdout.strip().splitlines()[-1]))
    out["integrity"] = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0]
    return out


# -- untrusted model files

def untrusted_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Model files that would run code (each writes ``marker`` if it does) and a garbage ONNX; returns their paths."""
    from safetensors.numpy import save_file

    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"

    class Evil:
        def __reduce__(self):
            return (exec, (code,))

    folder.mkdir(parents=True, exist_ok=True)
    pth = folder / "evil.pth"
    with zipfile.ZipFile(pth, "w") as z:  # torch.save's layout: archive/data.pkl
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")
    raw = folder / "evil_raw.pth"
    raw.write_bytes(pickle.dumps({"state_dict": Evil()}))
    custom = folder / "custom-code"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["EvilModel"], "hidden_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 30,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}}))
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (custom / name).write_text(code)
    save_file({"embeddings.word_embeddings.weight": np.zeros((30, 8), np.float32)}, str(custom / "model.safetensors"))
    st_dir = folder / "st-arbitrary-class"
    st_dir.mkdir()
    (st_dir / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil_module.Evil"}]))
    (st_dir / "evil_module.py").write_text(code + "class Evil:\n    pass\n")
    (st_dir / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    save_file({"w": np.zeros((4, 4), np.float32)}, str(st_dir / "model.safetensors"))
    onnx = folder / "garbage.onnx"
    onnx.write_bytes(random.Random(0).randbytes(4096))
    return {"pickle": pth, "pickle_raw": raw, "custom_code": custom, "st_class": st_dir, "onnx": onnx}


if __name__ == "__main__":  # reader DB SECONDS | writer DB SECONDS MANIFEST... | commands JSON
    if sys.argv[1] == "commands":
        print(json.dumps(_commands(json.loads(sys.argv[2]))))
    else:
        role, db_arg, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
        print(json.dumps(reader(db_arg, secs) if role == "reader" else writer(db_arg, secs, sys.argv[4:])))


# The untrusted candidates index_untrusted registers, by the data they are scored on.
UNTRUSTED_IMAGE = ["local:mobilenet_v2.evil-pickle", "local:mobilenet_v2.evil-raw", "local:garbage-onnx",
                   "local:mobilenet_v2.old-relative"]
UNTRUSTED_TEXT = ["local:evil-custom-code", "local:evil-st-class"]


def index_untrusted(folder: Path, marker: Path, db: Path) -> dict[str, Path]:
    """Build :func:`untrusted_files` under ``folder`` and register them in the user database ``db`` (the current
    ``ZOO_DB``) as :data:`UNTRUSTED_IMAGE` and :data:`UNTRUSTED_TEXT`; returns the files' paths."""
    import sqlite3

    import zoo

    files = untrusted_files(folder, marker)
    manifest = folder.parent / f"{folder.name}.yaml"
    manifest.write_text(
        "models:\n"
        f"  - {{id: local:mobilenet_v2.evil-pickle, modality: image, library: torchvision, weights: 'file:{files['pickle']}'}}\n"
        f"  - {{id: local:mobilenet_v2.evil-raw, modality: image, library: torchvision, weights: 'file:{files['pickle_raw']}'}}\n"
        f"  - {{id: local:garbage-onnx, modality: image, library: onnx, input_size: [3, 32, 32], weights: 'file:{files['onnx']}'}}\n"
        "  - {id: local:mobilenet_v2.old-relative, modality: image, library: torchvision, weights: 'file:x.pth'}\n")
    zoo.index("manifest", path=str(manifest))
    zoo.index("local", path=str(files["custom_code"]), id="evil-custom-code")
    zoo.index("local", path=str(files["st_class"]), id="evil-st-class")
    # A row as an older zoo stored it: the manifest's relative path kept as written (resolved against the cwd).
    conn = sqlite3.connect(db)
    conn.execute("UPDATE models SET weights = 'file:../../../../../../etc/passwd' "
                 "WHERE id = 'local:mobilenet_v2.old-relative'")
    conn.commit()
    conn.close()
    return files

