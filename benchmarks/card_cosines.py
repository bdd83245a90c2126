"""Where the thresholds of the recommender's reasons come from: the distribution of raw cosines between
task descriptions and the catalog's model cards, and of the catalog's ImageNet top-1.

    python benchmarks/card_cosines.py

A reason names a component only when it is strong in absolute terms (zoo.recommender.reason_for), not
because it tops a min-max scaled column: "card closely matches the task" needs a raw cosine at the 99th
percentile of every (task description, card) pair, "card is related to the task" the 95th; "strong
ImageNet top-1" needs the catalog's 75th percentile. The task descriptions are the labelled examples the
recommender already reads (zoo/manifests/task_examples.json, drawn from the benchmark's non-test sets);
the percentiles are of all their pairs with every card, not of any benchmark case's outcome. Prints the
percentiles and the constants in zoo.recommender beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from zoo import recommender
    from zoo.recommender import load_state
    from zoo.understand import task_examples

    state = load_state()
    records = state.records
    assert records is not None, "the shipped catalog is small enough to hold every record"
    keys = [f"card:{r.id}" for r in records]
    texts = [e["text"] for e in task_examples()]
    queries = state.embedder.encode(texts)
    cos = np.stack([state.card_index.cosines(q, keys) for q in queries])
    print(f"{len(texts)} task descriptions x {len(keys)} model cards = {cos.size:,} raw cosines")
    for p in (50, 90, 95, 99, 99.9):
        print(f"  {p:>5}th percentile: {np.percentile(cos, p):.3f}")
    top = cos.max(axis=1)
    p95, p99 = np.percentile(cos, 95), np.percentile(cos, 99)
    print(f"  best card per description: median {np.median(top):.3f}; {(top >= p95).mean():.0%} reach the 95th "
          f"percentile, {(top >= p99).mean():.0%} the 99th")
    print(f"zoo.recommender.CARD_RELATED_COSINE = {recommender.CARD_RELATED_COSINE} (95th percentile, rounded)")
    print(f"zoo.recommender.CARD_CLOSE_COSINE = {recommender.CARD_CLOSE_COSINE} (99th percentile, rounded)")
    top1 = np.array([r.imagenet_top1 for r in records if r.imagenet_top1 is not None])
    print(f"{len(top1)} catalog models report an ImageNet top-1: median {np.median(top1):.2f} %, "
          f"75th percentile {np.percentile(top1, 75):.2f} %")
    print(f"zoo.recommender.STRONG_TOP1 = {recommender.STRONG_TOP1} (75th percentile, rounded)")


if __name__ == "__main__":
    main()
