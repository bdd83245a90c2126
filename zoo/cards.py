"""The domain card: the text written from a record that is embedded for domain similarity.
One function, so the catalog build, the user's index and the recommender agree on it."""

from __future__ import annotations

import hashlib

from zoo import vocab
from zoo.record import ModelRecord

_MAX_DESCRIPTION = 600  # characters of card prose: enough for the domain, cheap to embed


def card_text(rec: ModelRecord) -> str:
    parts = [f"{rec.modality} model"]
    if rec.domains:
        parts.append("for " + "; ".join(vocab.DOMAINS.get(d, d) for d in rec.domains))
    if rec.pretraining_data:
        parts.append(
            "pretrained on " + "; ".join(vocab.PRETRAINING_DATA.get(p, p).split(" (")[0] for p in rec.pretraining_data)
        )
    if rec.tasks:
        parts.append("tasks: " + ", ".join(t.replace("-", " ") for t in rec.tasks))
    head = ", ".join(parts) + "."
    desc = " ".join(rec.description.split())[:_MAX_DESCRIPTION]
    return f"{head} {desc}".strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
