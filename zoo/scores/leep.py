"""LEEP and NCE: scores computed from the source model's predictions on the target data."""

from __future__ import annotations

import numpy as np

from zoo.scores._base import check_classification, check_source_probs, register_score


def _joint(y: np.ndarray, n_classes: int, probs: np.ndarray) -> np.ndarray:
    """Empirical joint P(y, z) = 1/n sum_i probs[i, z] [y_i = y], shape (C, Z)."""
    joint = np.zeros((n_classes, probs.shape[1]))
    np.add.at(joint, y, probs)
    return joint / y.shape[0]


@register_score("leep", requires_source_probs=True)
def leep(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """LEEP, the Log Expected Empirical Prediction (Nguyen, Hassner, Seeger & Archambeau, ICML 2020,
    "LEEP: A New Measure to Evaluate Transferability of Learned Representations").

    With ``theta(x)`` the source model's softmax over source classes ``z``: the empirical joint
    ``P(y, z) = 1/n sum_i theta_z(x_i) [y_i = y]``, conditional ``P(y | z) = P(y, z) / P(z)``, and
    ``LEEP = 1/n sum_i log sum_z P(y_i | z) theta_z(x_i)`` (<= 0; higher is better). ``features``
    are only validated (LEEP uses ``source_probs``, which is required).
    """
    f, y, n_classes = check_classification(features, labels)
    p = check_source_probs(source_probs, f.shape[0], "leep")
    joint = _joint(y, n_classes, p)
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)  # P(y | z)
    eep = np.einsum("iz,iz->i", p, cond[y])  # sum_z P(y_i | z) theta_z(x_i)
    return float(np.mean(np.log(np.maximum(eep, np.finfo(np.float64).tiny))))


@register_score("nce", requires_source_probs=True)
def nce(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """NCE, Negative Conditional Entropy (Tran, Nguyen & Hassner, ICCV 2019, "Transferability and
    Hardness of Supervised Classification Tasks").

    The source model's hard predictions ``z_i = argmax_z theta_z(x_i)`` stand in for source labels;
    with the empirical joint ``P(y, z)`` of (target label, predicted source label) pairs,
    ``NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z)`` (<= 0; higher is better).
    """
    f, y, n_classes = check_classification(features, labels)
    p = check_source_probs(source_probs, f.shape[0], "nce")
    z = np.argmax(p, axis=1)
    joint = np.zeros((n_classes, p.shape[1]))
    np.add.at(joint, (y, z), 1.0)
    joint /= y.shape[0]
    pz = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / np.where(pz > 0, pz, 1.0))[nz])))
