"""Small builders shared by tests (real SQLite files in tmp_path, no mocks)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from zoo.record import ModelRecord
from zoo.registry import Registry


def rec(name: str, **kw) -> ModelRecord:
    kw.setdefault("modality", "image")
    kw.setdefault("description", f"{name} test model")
    return ModelRecord(id=name if ":" in name else f"local:{name}", **kw)


SAMPLE = [
    rec("timm:resnet50.a1_in1k", params=25_557_032, license="apache-2.0", results={"imagenet_top1": 81.2},
        domains=["natural-images"], architecture="resnet50", description="ResNet-50 trained on ImageNet"),
    rec("timm:resnet50.tv_in1k", params=25_557_032, license="bsd-3-clause", results={"imagenet_top1": 76.1},
        domains=["natural-images"], architecture="resnet50", description="ResNet-50 torchvision weights"),
    rec("timm:vit_small.augreg", params=22_000_000, license="apache-2.0", results={"imagenet_top1": 78.8},
        domains=["natural-images"], architecture="vit_small"),
    rec("hf:microsoft/rad-dino", params=86_600_000, license="cc-by-nc-4.0", domains=["medical-radiology"],
        description="Vision transformer for chest X-ray radiology images"),
    rec("hf:nlpaueb/legal-bert-base-uncased", modality="text", params=110_000_000, license="cc-by-sa-4.0",
        domains=["legal"], description="BERT for legal text: contracts and case law"),
    rec("hf:unknown/license-model", modality="text", params=None, license=None, domains=["general"]),
]


def make_catalog(path: Path, records=SAMPLE) -> Path:
    """A catalog file built like the shipped one (same code path), from the given records."""
    reg = Registry(db=path, catalog=path.with_suffix(".none"), create=True)
    reg.index("manifest", list(records), indexed_at="2026-01-01T00:00:00Z")
    reg.close()
    return path


def write_digits(root: Path, per_class: int, classes: Iterable[int] = (0, 1, 2), size: int | None = None) -> Path:
    """scikit-learn's 8x8 digits as grayscale PNGs, ``root/<digit>/<i>.png``: a small real image sample.
    ``size`` upscales them to ``size`` x ``size``."""
    # Imported here: most tests that use these helpers need neither, and sklearn is slow to import.
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for c in classes:
        (root / str(c)).mkdir(parents=True)
        for i, img in enumerate(d.images[d.target == c][:per_class]):
            im = Image.fromarray((img * (255 / 16)).astype(np.uint8))
            (im.resize((size, size)) if size else im).save(root / str(c) / f"{i}.png")
    return root
