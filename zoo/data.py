"""The user's sample data, loaded for data-aware ranking.

``load_sample(path)`` reads one of:

* an image folder ``root/<class>/<image>`` (class folders may nest further; extensions
  jpg/jpeg/png/bmp/gif/webp/tif/tiff) -> ``task="classification"``;
* an unlabelled image folder (images directly under ``root``, no class folders) -> ``"unlabelled"``;
* a ``.csv`` / ``.tsv`` (``.tab``) / ``.jsonl`` (``.ndjson``) file with a text column and a label column
  (``text_column`` / ``label_column``); without a label column the texts are unlabelled;
* a ``.npz`` with an array ``x`` (one row per sample) and optionally ``y``.

Labels: strings, ints, or numbers that are all integral (``"3"``, ``3.0``) -> classification; numbers with
fractional values and many distinct values (more than ``min(10, n // 2)``) -> regression; a JSONL list
label (``["cat", "indoor"]``) or a 2-D ``y`` -> multilabel (``labels`` is then an ``(n, n_classes)``
multi-hot ``uint8`` matrix).

Subsampling: at most ``max_samples_per_class`` (default 300; ``None`` = no cap) items per class, chosen by
a ``seed``-ed shuffle, so the same data and seed always give the same sample. Multilabel keeps an item
while any of its classes is under the cap; unlabelled and regression data are one group under the same cap.
Images are verified (``PIL.Image.verify``, header-level and cheap) in that shuffled order only until a
class is full, so ``skipped`` lists the unreadable files that were looked at, and a huge folder is not
read end to end.

Unreadable items (corrupt images, malformed JSONL lines, rows with empty text) are recorded in
``Sample.skipped`` as ``(item, reason)``; ``strict=True`` raises on the first one instead. A text file
that is not valid UTF-8 is an error (naming the file and byte offset, suggesting ``iconv``) rather than
being decoded with replacement characters, because silently mangled text would skew the ranking.

Every problem with the data raises ``DataError`` (a ``UsageError``) whose message says what to do next.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import UsageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TABLE_EXTENSIONS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_EXTENSIONS = frozenset({".jsonl", ".ndjson"})
DEFAULT_MAX_PER_CLASS = 300

SUPPORTED = ("an image folder (root/<class>/<image>, or images directly under root), "
             ".csv, .tsv, .jsonl (text + label columns), or .npz (arrays x, y)")


class DataError(UsageError):
    """The sample data cannot be used as given; the message says what to fix."""


@dataclass
class Sample:
    modality: str  # "image" | "text" | "array"
    items: list | None  # image paths (str) | texts (str) | None for arrays
    arrays: np.ndarray | None  # the .npz x rows in use
    labels: np.ndarray | None  # int64 class indices | float64 (regression) | uint8 multi-hot | None
    classes: list[str]  # class names in index order ([] for regression/unlabelled)
    task: str  # "classification" | "regression" | "multilabel" | "unlabelled"
    skipped: list[tuple[str, str]]  # (item, reason)
    content_hash: str  # 16 hex chars of a sha256 over what is used, independent of order
    source: str  # the path given
    available: dict[str, int] = field(default_factory=dict)  # per-class counts before the cap
    max_samples_per_class: int | None = DEFAULT_MAX_PER_CLASS
    notes: list[str] = field(default_factory=list)  # what the user should know (no label column, huge images)

    def __len__(self) -> int:
        if self.arrays is not None:
            return len(self.arrays)
        return len(self.items or [])

    def class_counts(self) -> dict[str, int]:
        """Samples per class in class order; ``{}`` for regression and unlabelled data."""
        if self.labels is None or self.task not in ("classification", "multilabel"):
            return {}
        if self.task == "multilabel":
            sums = self.labels.sum(axis=0) if len(self.labels) else np.zeros(len(self.classes))
            return {c: int(s) for c, s in zip(self.classes, sums, strict=True)}
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


# ----------------------------------------------------------------------------------------- public API


def load_sample(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    max_samples_per_class: int | None = DEFAULT_MAX_PER_CLASS,
    seed: int = 0,
    strict: bool = False,
) -> Sample:
    """Load ``path`` (see the module docstring for formats) into a validated, subsampled ``Sample``."""
    if max_samples_per_class is not None and (
        not isinstance(max_samples_per_class, int) or isinstance(max_samples_per_class, bool)
        or max_samples_per_class < 1
    ):
        raise DataError(f"max_samples_per_class must be a positive integer (or None for no cap), "
                        f"got {max_samples_per_class!r}.")
    source = str(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"Sample data not found: {source}. Check the path; expected {SUPPORTED}.")
    loader = _Loader(source, text_column, label_column, max_samples_per_class, seed, strict)
    if p.is_dir():
        return loader.image_folder(p)
    suffix = p.suffix.lower()
    if suffix in TABLE_EXTENSIONS or suffix in JSONL_EXTENSIONS:
        return loader.text_file(p, suffix)
    if suffix == ".npz":
        return loader.npz(p)
    raise DataError(f"Unsupported sample data file {source} (extension {suffix or 'none'!r}); "
                    f"give {SUPPORTED}.")


def describe(sample: Sample) -> str:
    """A one-paragraph, human-readable summary for the CLI and reports."""
    kind = {"image": "images", "text": "texts", "array": "array rows"}[sample.modality]
    n = len(sample)
    parts = [f"{sample.source}: {n} {kind}"]
    if sample.task in ("classification", "multilabel"):
        counts = sample.class_counts()
        shown = ", ".join(f"{c}: {k}" for c, k in list(counts.items())[:20])
        more = f", ... ({len(counts) - 20} more)" if len(counts) > 20 else ""
        label = "multilabel, " if sample.task == "multilabel" else ""
        parts.append(f"{label}{len(sample.classes)} classes ({shown}{more})")
    elif sample.task == "regression":
        y = sample.labels
        parts.append(f"regression target in [{float(y.min()):.4g}, {float(y.max()):.4g}]" if len(y)
                     else "regression target")
    else:
        parts.append("unlabelled (domain signals only)")
    text = "; ".join(parts) + "."
    dropped = sum(sample.available.values()) - n if sample.task != "multilabel" else 0
    if sample.max_samples_per_class is not None and dropped > 0:
        per = " per class" if sample.task == "classification" else ""
        text += (f" Subsampled to at most {sample.max_samples_per_class}{per} "
                 f"({sum(sample.available.values())} available).")
    for note in sample.notes:
        text += f" {note}"
    return text + " " + (skipped_summary(sample) or "Nothing skipped.")


def skipped_summary(sample: Sample) -> str | None:
    """``Skipped N item(s): <reasons> (e.g. <first three>).``, or None when nothing was skipped."""
    if not sample.skipped:
        return None
    reasons = Counter(_reason_kind(r) for _, r in sample.skipped)
    why = ", ".join(f"{k} {r}" for r, k in reasons.most_common())
    examples = ", ".join(Path(i).name if sample.modality == "image" else i for i, _ in sample.skipped[:3])
    return f"Skipped {len(sample.skipped)} item(s): {why} (e.g. {examples})."


# ----------------------------------------------------------------------------------------- internals


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def _natural_key(name: str):
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


class _Loader:
    def __init__(self, source, text_column, label_column, cap, seed, strict):
        self.source, self.text_column, self.label_column = source, text_column, label_column
        self.cap, self.seed, self.strict = cap, seed, strict
        self.skipped: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.large_images: list[tuple[str, int]] = []  # (path, pixels) over PIL's decompression-bomb warning limit

    def skip(self, item: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{item}: {reason}. Fix or remove it, or load without strict to skip it.")
        self.skipped.append((item, reason))

    # ---------------------------------------------------------------- images

    def image_folder(self, root: Path) -> Sample:
        def images_in(d: Path, recursive: bool) -> list[Path]:
            it = d.rglob("*") if recursive else d.iterdir()
            return sorted(f for f in it if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                          and not any(part.startswith(".") for part in f.relative_to(root).parts))

        class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                            key=lambda d: _natural_key(d.name))
        by_class = {d.name: images_in(d, True) for d in class_dirs}
        by_class = {c: files for c, files in by_class.items() if files}
        loose = images_in(root, False)
        if not by_class and not loose:
            raise DataError(f"No images found in {self.source} (looked for "
                            f"{', '.join(sorted(IMAGE_EXTENSIONS))}). Put images in root/<class>/ folders, "
                            "or directly under the folder for unlabelled data.")
        if not by_class:  # unlabelled
            rng = np.random.default_rng(self.seed)
            kept = self._verify_in_order([loose[i] for i in rng.permutation(len(loose))], self.cap)
            kept.sort()
            self._note_large_images()
            if not kept:
                raise DataError(f"None of the {len(loose)} images in {self.source} could be read "
                                f"(e.g. {self.skipped[0][0]}: {self.skipped[0][1]}). Check the files.")
            records = [(_file_bytes(f), b"") for f in kept]
            return self._sample("image", [str(f) for f in kept], None, None, [], "unlabelled",
                                records, {"": len(loose)})
        for f in loose:
            self.skip(str(f), "not in a class folder: images directly under the root are ignored "
                              "when class folders exist")
        classes = list(by_class)
        self._check_classes({c: len(v) for c, v in by_class.items()})  # file counts; re-checked once read
        rng = np.random.default_rng(self.seed)
        items: list[Path] = []
        idx: list[int] = []
        for ci, c in enumerate(classes):
            files = by_class[c]
            kept = sorted(self._verify_in_order([files[i] for i in rng.permutation(len(files))], self.cap))
            items += kept
            idx += [ci] * len(kept)
        self._check_classes(dict(zip(classes, np.bincount(idx, minlength=len(classes)).tolist(), strict=True)),
                            unreadable=True)
        self._note_large_images()
        labels = np.asarray(idx, dtype=np.int64)
        # A folder name that is not UTF-8 comes back with surrogate escapes: its bytes are hashed as they are.
        records = [(_file_bytes(f), classes[i].encode("utf-8", "surrogateescape")) for f, i in zip(items, idx, strict=True)]
        return self._sample("image", [str(f) for f in items], None, labels, classes, "classification",
                            records, {c: len(v) for c, v in by_class.items()})

    def _verify_in_order(self, files: list[Path], cap: int | None) -> list[Path]:
        kept = []
        for f in files:
            if cap is not None and len(kept) >= cap:
                break
            reason, pixels = _unreadable_image(f)
            if reason:
                self.skip(str(f), reason)
            else:
                kept.append(f)
                if pixels:
                    self.large_images.append((str(f), pixels))
        return kept

    def _note_large_images(self) -> None:
        """One note for every image above PIL's decompression-bomb warning limit, instead of PIL's raw warning
        per image per decode (those over twice the limit are refused by PIL: skipped as unreadable)."""
        if not self.large_images:
            return
        from PIL import Image

        path, pixels = max(self.large_images, key=lambda t: t[1])
        self.notes.append(
            f"{len(self.large_images)} image(s) are very large (up to {pixels:,} pixels, e.g. {Path(path).name}; PIL "
            f"warns above {Image.MAX_IMAGE_PIXELS:,}): they are decoded and resized, which is slow and needs "
            "memory. Shrink them first if that is a problem.")

    # ---------------------------------------------------------------- text tables

    def text_file(self, path: Path, suffix: str) -> Sample:
        raw = path.read_bytes()
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{self.source} is not valid UTF-8 (bad byte at offset {e.start}). Re-encode it as UTF-8, "
                f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{suffix}`, and load that.") from None
        if suffix in JSONL_EXTENSIONS:
            rows, columns = self._jsonl_rows(content)
        else:
            rows, columns = self._table_rows(content, TABLE_EXTENSIONS[suffix])
        if not rows:
            raise DataError(f"{self.source} has no data rows. Give a file with a {self.text_column!r} column "
                            "and one row per sample.")
        if self.text_column not in columns:
            raise DataError(f"{self.source} has no text column {self.text_column!r} (columns: "
                            f"{', '.join(columns) or 'none'}). Pass text_column=<one of those>.")
        has_labels = self.label_column in columns
        texts: list[str] = []
        raw_labels: list = []
        empty_label_rows: list[str] = []
        for where, row in rows:
            text = row.get(self.text_column)
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                text = str(text)
            if not isinstance(text, str) or not text.strip():
                self.skip(where, f"empty text: no value in column {self.text_column!r}")
                continue
            if has_labels:
                lab = row.get(self.label_column)
                if lab is None or (isinstance(lab, str) and not lab.strip()):
                    empty_label_rows.append(where)
                    continue
                if isinstance(lab, str):
                    lab = lab.strip()
                raw_labels.append(lab)
            texts.append(text)
        if empty_label_rows:
            shown = ", ".join(empty_label_rows[:5]) + (", ..." if len(empty_label_rows) > 5 else "")
            raise DataError(
                f"Label column {self.label_column!r} in {self.source} has {len(empty_label_rows)} empty "
                f"value(s) ({shown}). Fill them in or remove those rows; to use the texts without labels, "
                "drop the label column.")
        if not texts:
            raise DataError(f"{self.source} has no non-empty texts in column {self.text_column!r}. "
                            "Check the file and text_column.")
        if not has_labels:
            self.notes.append(_no_label_column_note(self.label_column, self.text_column, columns, rows))
            return self._unlabelled("text", texts, None, [t.encode() for t in texts])
        return self._labelled("text", texts, None, raw_labels, [t.encode() for t in texts])

    def _table_rows(self, content: str, delimiter: str):
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
        try:
            columns = [c for c in (reader.fieldnames or []) if c is not None]
            rows = [(f"line {reader.line_num}", row) for row in reader]
        except csv.Error as e:
            raise DataError(f"{self.source} could not be parsed as {'TSV' if delimiter == chr(9) else 'CSV'} "
                            f"near line {reader.line_num}: {e}. Fix the quoting on that line.") from None
        return rows, columns

    def _jsonl_rows(self, content: str):
        rows, columns = [], {}
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            where = f"line {n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                self.skip(where, f"invalid JSON: {e.msg}")
                continue
            if not isinstance(obj, dict):
                self.skip(where, f"invalid JSON: expected an object, got {type(obj).__name__}")
                continue
            if "\\u" in line and not _is_unicode(obj):  # an escaped lone surrogate ("\ud800") is not text
                self.skip(where, "invalid JSON: a string holds a lone surrogate escape such as \\ud800, which is not text")
                continue
            columns.update(dict.fromkeys(obj))
            rows.append((where, obj))
        return rows, list(columns)

    # ---------------------------------------------------------------- arrays

    def npz(self, path: Path) -> Sample:
        if not zipfile.is_zipfile(path):
            raise DataError(f"{self.source} is not a readable .npz file (not a zip archive). "
                            "Re-save it with np.savez(path, x=..., y=...).")
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                if "x" not in keys:
                    raise DataError(f"{self.source} has no array 'x' (arrays: {', '.join(keys) or 'none'}). "
                                    "Save it with np.savez(path, x=features, y=labels).")
                x = np.asarray(z["x"])
                y = np.asarray(z["y"]) if "y" in keys else None
        except DataError:
            raise
        except ValueError as e:
            raise DataError(f"{self.source} could not be read ({e}). Save plain numeric/string arrays "
                            "(no object arrays) with np.savez(path, x=..., y=...).") from None
        except Exception as e:  # zipfile.BadZipFile, OSError, EOFError, ...
            raise DataError(f"{self.source} is not a readable .npz file ({type(e).__name__}: {e}). "
                            "Re-save it with np.savez(path, x=..., y=...).") from None
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"Array 'x' in {self.source} has no rows. Give one row per sample.")
        if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
            raise DataError(f"Array 'x' in {self.source} has dtype {x.dtype}; it must be numeric.")
        if y is None:
            return self._unlabelled("array", None, x, [r.tobytes() for r in x])
        if y.ndim == 0 or len(y) != len(x):
            raise DataError(f"Array 'y' in {self.source} has {y.shape[0] if y.ndim else 0} entries but 'x' has "
                            f"{len(x)} rows. Give one label per row.")
        if y.dtype.kind == "U" and not _is_unicode(y.ravel().tolist()):
            raise DataError(f"Array 'y' in {self.source} holds a label that is not valid Unicode text (a lone "
                            "surrogate such as \\ud800). Fix the labels and save it again.")
        if y.ndim == 2:
            labels = [[str(j) for j in np.flatnonzero(r)] for r in y]
            classes = [str(j) for j in range(y.shape[1])]
            return self._labelled("array", None, x, labels, [r.tobytes() for r in x], classes=classes)
        if y.dtype.kind == "f":
            nan = np.flatnonzero(np.isnan(y))
            if len(nan):
                raise DataError(f"Array 'y' in {self.source} has {len(nan)} empty (NaN) value(s) (rows "
                                f"{', '.join(map(str, nan[:5]))}). Fill them in or drop those rows.")
        labels = [v.item() if hasattr(v, "item") else v for v in y]
        return self._labelled("array", None, x, labels, [r.tobytes() for r in x])

    # ---------------------------------------------------------------- shared

    def _unlabelled(self, modality, items, arrays, payloads) -> Sample:
        n = len(payloads)
        order = np.random.default_rng(self.seed).permutation(n)
        keep = np.sort(order[: self.cap] if self.cap is not None else order)
        records = [(payloads[i], b"") for i in keep]
        return self._sample(modality, [items[i] for i in keep] if items is not None else None,
                            arrays[keep] if arrays is not None else None, None, [], "unlabelled", records,
                            {"": n})

    def _labelled(self, modality, items, arrays, raw_labels, payloads, classes=None) -> Sample:
        n = len(raw_labels)
        rng = np.random.default_rng(self.seed)
        if classes is not None or any(isinstance(v, list) for v in raw_labels):  # multilabel
            sets = []
            for v in raw_labels:
                vals = v if isinstance(v, list) else [v]
                if any(isinstance(e, (list, dict)) or e is None for e in vals):
                    raise DataError(f"Unsupported label {v!r} in {self.source}: a multilabel value must be a "
                                    "flat list of class names.")
                sets.append(sorted({str(e) for e in vals}))
            classes = classes or sorted({c for s in sets for c in s}, key=_natural_key)
            index = {c: i for i, c in enumerate(classes)}
            label_counts = Counter(c for s in sets for c in s)
            self._check_classes({c: label_counts[c] for c in classes})
            taken = Counter()
            keep = []
            for i in rng.permutation(n):
                if self.cap is None or not sets[i] or any(taken[c] < self.cap for c in sets[i]):
                    keep.append(i)
                    taken.update(sets[i])
            keep.sort()
            y = np.zeros((len(keep), len(classes)), dtype=np.uint8)
            for r, i in enumerate(keep):
                y[r, [index[c] for c in sets[i]]] = 1
            records = [(payloads[i], _label_bytes("|".join(sets[i]))) for i in keep]
            return self._sample(modality, [items[i] for i in keep] if items is not None else None,
                                arrays[keep] if arrays is not None else None, y, classes, "multilabel",
                                records, {c: label_counts[c] for c in classes})
        for v in raw_labels:
            if isinstance(v, dict):
                raise DataError(f"Unsupported label {v!r} in {self.source}: use a class name, a number, "
                                "or (for multilabel) a list of class names.")
        if _is_regression(raw_labels):
            y_all = np.asarray([float(v) for v in raw_labels], dtype=np.float64)
            order = rng.permutation(n)
            keep = np.sort(order[: self.cap] if self.cap is not None else order)
            if len(keep) < 2:
                raise DataError(f"{self.source} has only {len(keep)} labelled sample(s); regression needs at "
                                "least 2.")
            records = [(payloads[i], repr(float(y_all[i])).encode()) for i in keep]
            return self._sample(modality, [items[i] for i in keep] if items is not None else None,
                                arrays[keep] if arrays is not None else None, y_all[keep], [], "regression",
                                records, {"": n})
        names = [_class_name(v) for v in raw_labels]
        counts = Counter(names)
        classes = sorted(counts, key=_natural_key)
        self._check_classes({c: counts[c] for c in classes})
        index = {c: i for i, c in enumerate(classes)}
        by_class: dict[str, list[int]] = {c: [] for c in classes}
        for i, c in enumerate(names):
            by_class[c].append(i)
        keep_list: list[int] = []
        for c in classes:
            members = by_class[c]
            perm = rng.permutation(len(members))
            keep_list += [members[j] for j in (perm[: self.cap] if self.cap is not None else perm)]
        keep = np.sort(np.asarray(keep_list, dtype=np.int64))
        y = np.asarray([index[names[i]] for i in keep], dtype=np.int64)
        records = [(payloads[i], _label_bytes(names[i])) for i in keep]
        return self._sample(modality, [items[i] for i in keep] if items is not None else None,
                            arrays[keep] if arrays is not None else None, y, classes, "classification",
                            records, {c: counts[c] for c in classes})

    def _check_classes(self, counts: dict[str, int], *, unreadable: bool = False) -> None:
        if len(counts) < 2:
            only = f" (only {next(iter(counts))!r})" if counts else ""
            raise DataError(
                f"{self.source} has a single class{only}; ranking by transferability needs at least 2 classes. "
                "Add more classes, or give an unlabelled folder (images directly under it) or unlabelled "
                "texts for domain signals only.")
        small = {c: k for c, k in counts.items() if k < 2}
        if small:
            shown = ", ".join(f"{c!r} ({k})" for c, k in list(small.items())[:10])
            more = f" and {len(small) - 10} more" if len(small) > 10 else ""
            extra = " readable" if unreadable else ""
            raise DataError(
                f"{self.source}: every class needs at least 2{extra} samples; these have fewer: {shown}{more}. "
                "Add samples to those classes or remove them.")

    def _sample(self, modality, items, arrays, labels, classes, task, records, available) -> Sample:
        return Sample(modality=modality, items=items, arrays=arrays, labels=labels, classes=list(classes),
                      task=task, skipped=list(self.skipped), notes=list(self.notes),
                      content_hash=_content_hash(modality, task, records), source=self.source,
                      available=available, max_samples_per_class=self.cap)


def _label_bytes(name: str) -> bytes:
    """A label's bytes for the content hash; a lone surrogate (an .npz string array may hold one) never raises."""
    return name.encode("utf-8", "surrogatepass")


def _is_unicode(obj) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _class_name(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        try:
            f = float(v)
            if f.is_integer() and "." in v:
                return str(int(f))  # "3.0" -> "3", the same class as "3"
        except ValueError:
            pass
    return str(v)


def _is_regression(values: list) -> bool:
    """Numbers with fractional values and many distinct values; integral numbers are class ids."""
    nums = []
    for v in values:
        if isinstance(v, bool):
            return False
        try:
            f = float(v)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(f):
            return False
        nums.append(f)
    if not nums or all(f.is_integer() for f in nums):
        return False
    return len(set(nums)) > min(10, len(nums) // 2)


_LABEL_NAMES = ("labels", "class", "classes", "category", "categories", "target", "y", "sentiment", "tag", "intent",
                "topic", "emotion", "gold", "answer")


def _no_label_column_note(label_column: str, text_column: str, columns: list[str], rows: list) -> str:
    """Why the texts are unlabelled, and the option that labels them: the column most like a label first (a
    label-like name, else the fewest distinct values)."""
    others = [c for c in columns if c != text_column]
    if not others:
        return (f"No label column {label_column!r} (the only column is {text_column!r}): the texts are used "
                "unlabelled, for domain signals only. Add a label column to rank by fit to your classes.")

    def distinct(c: str) -> int:
        return len({str(r.get(c)) for _, r in rows[:2000]})

    named = [c for c in others if c.strip().lower() in _LABEL_NAMES]
    guess = named[0] if named else min(others, key=distinct)
    shown = ", ".join(repr(c) for c in others[:8]) + (", ..." if len(others) > 8 else "")
    return (f"No label column {label_column!r} (other columns: {shown}): the texts are used unlabelled, for domain "
            f"signals only. If a column holds the labels, name it: --label-column {guess} (label_column={guess!r} "
            "in the API).")


def _unreadable_image(path: Path) -> tuple[str | None, int]:
    """``(why it cannot be read, or None; its pixels when above PIL's decompression-bomb warning limit, else 0)``."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
                im.verify()
    except Image.DecompressionBombError as e:
        return f"unreadable image: too large to decode safely ({str(e)[:120]})", 0
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError, ...)
        return f"unreadable image: {type(e).__name__}: {str(e)[:120]}", 0
    large = any(issubclass(w.category, Image.DecompressionBombWarning) for w in seen)
    return None, size[0] * size[1] if large else 0


def _file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _content_hash(modality: str, task: str, records: list[tuple[bytes, bytes]]) -> str:
    """sha256 over the sorted per-item digests of (payload, label): order- and path-independent."""
    digests = sorted(hashlib.sha256(len(p).to_bytes(8, "little") + p + b"\0" + lab).digest()
                     for p, lab in records)
    h = hashlib.sha256(f"zoo-sample-v1\0{modality}\0{task}\0".encode())
    for d in digests:
        h.update(d)
    return h.hexdigest()[:16]
