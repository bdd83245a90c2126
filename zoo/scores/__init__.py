"""Transferability scores: how well do a pre-trained model's features suit a labelled target task?

Every scorer has the signature ``fn(features, labels, *, source_probs=None) -> float`` where
``features`` is an (n, d) float array of the backbone's features on the target samples, ``labels`` an
(n,) array of integer class ids, and ``source_probs`` the backbone's (n, Z) softmax output over its
own source classes (needed only by LEEP and NCE). Higher is better. Invalid input raises
:class:`zoo.errors.UsageError`.

Use ``get_score(name)`` to look a scorer up, ``score_names()`` to list them, and the
``@register_score(name)`` decorator to add one. These modules import only NumPy.
"""

from __future__ import annotations

from zoo.scores import hscore, knn, leep, logme, transrate  # noqa: F401  (registers the scorers)
from zoo.scores._base import Scorer, get_score, register_score, score_names

__all__ = ["Scorer", "get_score", "register_score", "score_names"]
