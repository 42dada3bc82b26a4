"""Is identity in a code? KMeans clusters scored against subject labels (Honari et al. 2022, Sec. 4.4.3).

- :func:`cluster_accuracy` -- accuracy of cluster ids under the best one-to-one mapping to labels
  (``scipy.optimize.linear_sum_assignment``), invariant to renaming the clusters.
- :func:`kmeans_identity_accuracy` -- KMeans (scikit-learn) with ``k`` = the number of subjects on a code,
  scored by :func:`cluster_accuracy`, with the chance level of the best constant assignment.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray, per_item: bool = False) -> float | np.ndarray:
    """Share of items whose cluster maps to their label under the best one-to-one mapping of cluster ids to
    labels (unmatched clusters count as wrong). ``labels``, ``clusters``: ``(N,)`` integer-like. With
    ``per_item``, the ``(N,)`` bool array of the items counted right instead (its mean is the accuracy)."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1 or len(labels) == 0:
        raise ValueError(
            f"labels and clusters must be two non-empty (N,) arrays, got {labels.shape} and {clusters.shape}"
        )
    lab, li = np.unique(labels, return_inverse=True)
    clu, ci = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(clu), len(lab)), np.int64)
    np.add.at(counts, (ci, li), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    label_of_cluster = np.full(len(clu), -1)
    label_of_cluster[rows] = cols
    correct = label_of_cluster[ci] == li
    return correct if per_item else float(correct.mean())


def kmeans_identity_accuracy(
    codes: np.ndarray, subjects: np.ndarray, k: int | None = None, seed: int = 0
) -> dict[str, float | int | np.ndarray]:
    """KMeans on ``codes`` ``(N, D)`` (standardised per dimension) with ``k`` clusters (default: the number of
    distinct ``subjects``); returns ``accuracy`` (:func:`cluster_accuracy`), ``chance`` (the largest subject's share:
    every item in one cluster), ``k``, the ``clusters`` (N,) and ``correct`` (N,) (:func:`cluster_accuracy`
    per item)."""
    codes, subjects = np.asarray(codes, np.float64), np.asarray(subjects)
    k = len(np.unique(subjects)) if k is None else k
    if codes.ndim != 2 or len(codes) != len(subjects):
        raise ValueError(f"codes must be (N, D) with one subject each, got {codes.shape} and {subjects.shape}")
    if k > len(codes):
        raise ValueError(f"KMeans with k={k} clusters needs at least {k} items, got {len(codes)}")
    z = (codes - codes.mean(0)) / np.maximum(codes.std(0), 1e-12)
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    chance = float(np.unique(subjects, return_counts=True)[1].max() / len(subjects))
    correct = cluster_accuracy(subjects, clusters, per_item=True)
    return {"accuracy": float(correct.mean()), "chance": chance, "k": k, "clusters": clusters, "correct": correct}
