"""Model ids: ``source:name``. The one place that builds and parses them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from zoo.errors import InvalidModelId

SOURCES = ("timm", "hf", "local")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/+@]*$")


@dataclass(frozen=True)
class ModelId:
    source: str
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> ModelId:
        source, sep, name = str(text).strip().partition(":")
        if not sep:
            raise InvalidModelId(
                f"Model id {text!r} has no source prefix; write it as source:name, "
                f"e.g. timm:resnet50.a1_in1k, hf:microsoft/rad-dino or local:my-model."
            )
        if source not in SOURCES:
            raise InvalidModelId(f"Model id {text!r}: unknown source {source!r}; use one of {', '.join(SOURCES)}.")
        if not _NAME_RE.match(name) or ".." in name or "//" in name:
            raise InvalidModelId(
                f"Model id {text!r}: the name may use letters, digits and . _ - / + @ only, "
                "and must start with a letter or digit."
            )
        return cls(source, name)


def make_id(source: str, name: str) -> str:
    return str(ModelId.parse(f"{source}:{name}"))


def slugify(text: str) -> str:
    """A name usable in an id, from a folder or file name (documented rule for local scans)."""
    slug = re.sub(r"[^A-Za-z0-9._\-]+", "-", text.strip()).strip("-.")
    return slug or "model"
