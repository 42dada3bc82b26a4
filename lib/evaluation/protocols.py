"""Evaluation protocols run on the synthetic world and on real labels alike.

- Posture retrieval (CliqueCNN, Bautista et al. 2016; used by Sümer et al. and Milbich et al. 2017 on
  Olympic Sports): per class, anchors with about 10 positives and 10 negatives
  (:class:`lib.data.base.PostureLabels`, the schema of the CliqueCNN label files).
  :func:`make_posture_benchmark` builds it from the world's ground truth;
  :func:`lib.data.olympic_sports.load_olympic_labels` reads the real one; :func:`evaluate_posture` scores
  any features on either.
- Zero-shot pose estimation by nearest-neighbour joint transfer (Sümer et al. Sec. 5.3; Milbich et al.
  Table 3): each query crop takes the joints of its nearest retrieval-set crop (both in crop pixels, the
  LSP-style person-centred frame) and is scored by PCP; :func:`zero_shot_pcp`, with the upper bound of
  the nearest neighbour by true pose (:func:`zero_shot_upper_bound`).
- The frozen-feature 3D pose probe is in :mod:`lib.evaluation.probes`; the baselines in :mod:`lib.evaluation.baselines`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lib.data.base import PostureLabels
from lib.evaluation.metrics import pcp, pose_distance, posture_retrieval_auc, squared_distances

SIMILARITIES = ("cosine", "euclidean")
NEGATIVES = ("any", "other_sequences")


def make_posture_benchmark(
    world,
    splits: Sequence[str] = ("val", "test"),
    anchors_per_class: int = 20,
    n_pos: int = 10,
    n_neg: int = 10,
    far_quantile: float = 0.5,
    seed: int = 0,
    negatives: str = "any",
) -> list[PostureLabels]:
    """A CliqueCNN-style posture benchmark from the world's ground truth, one :class:`PostureLabels` per class.

    For each activity, anchors are random frames of ``splits``; the positives of an anchor are the
    ``n_pos`` frames of the same activity, from *other sequences and other subjects*, with the smallest
    normalised 2D pose distance (:func:`lib.evaluation.metrics.pose_distance`); its negatives are ``n_neg`` random
    frames of the same activity (any sequence, its own included) whose pose distance lies above the
    ``far_quantile`` of its distances. ``negatives="other_sequences"`` draws the negatives from other
    sequences only (the positives already are): then sequence identity (who, where) cannot separate
    positives from negatives. Ids are world frame indices; no flips (flipvals 0).
    """
    if not 0 < far_quantile < 1:
        raise ValueError(f"far_quantile must be in (0, 1), got {far_quantile}")
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {list(NEGATIVES)}, got {negatives!r}")
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([world.split_indices(s) for s in splits]))
    out = []
    for a, name in enumerate(world.activity_names):
        frames = idx[world.activity[idx] == a]
        if len(frames) == 0:
            continue
        dist = pose_distance(world.joints2d[frames], world.joints2d[frames])
        seq, subj = world.seq[frames], world.subject[frames]
        anchors, pos, neg = [], [], []
        for k in rng.permutation(len(frames)):
            other = (seq != seq[k]) & (subj != subj[k])
            far = dist[k] > np.quantile(dist[k], far_quantile)
            if negatives == "other_sequences":
                far &= seq != seq[k]
            if other.sum() < n_pos or far.sum() < n_neg:
                continue
            cand = np.flatnonzero(other)
            anchors.append(frames[k])
            pos.append(frames[cand[np.argsort(dist[k, cand], kind="stable")[:n_pos]]])
            neg.append(frames[rng.choice(np.flatnonzero(far), n_neg, replace=False)])
            if len(anchors) == anchors_per_class:
                break
        if anchors:
            zeros = [np.zeros(n_pos, np.int64) for _ in anchors]
            out.append(
                PostureLabels(name, np.array(anchors), pos, neg, zeros, [np.zeros(n_neg, np.int64) for _ in anchors])
            )
    if not out:
        raise ValueError(f"no class of splits {tuple(splits)} has frames of two subjects; use more splits")
    return out


def similarities(a: np.ndarray, b: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    """``(Na, d)``, ``(Nb, d)`` features -> ``(Na, Nb)`` similarities (larger = more alike): ``"cosine"``, or
    ``"euclidean"`` (minus the Euclidean distance, as Sümer et al. 2017 compare pool5 features)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if similarity == "euclidean":
        return -np.sqrt(squared_distances(a, b))
    if similarity != "cosine":
        raise ValueError(f"similarity must be one of {list(SIMILARITIES)}, got {similarity!r}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def evaluate_posture(
    features: np.ndarray | Mapping[str, np.ndarray],
    benchmark: Sequence[PostureLabels],
    flipped_features: np.ndarray | Mapping[str, np.ndarray] | None = None,
    similarity: str = "cosine",
) -> dict[str, float | dict[str, float] | np.ndarray]:
    """Posture-retrieval AUC of ``features`` on a benchmark, ranking by ``similarity`` (:func:`similarities`).

    ``features``: ``(N, D)`` indexed by the labels' frame ids, or a mapping class -> ``(N_c, D)`` when each
    class has its own frame list (Olympic Sports). ``flipped_features`` (same layout): the features of the
    horizontally flipped frames, used for the positives and negatives whose flipval is 1; without them
    every comparison uses the unflipped frame. Returns ``mean_auc`` (the mean over classes of the mean
    per-anchor AUC, the number CliqueCNN, Sümer et al. and Milbich et al. report), ``auc_of_mean_roc``
    (mean over classes of the AUC of the class's mean ROC), ``per_class`` and ``per_anchor`` (every
    anchor's AUC, classes in benchmark order: the items of a bootstrap interval).
    """
    per_class, per_class_mean_roc, per_anchor = {}, {}, []
    for lab in benchmark:
        f = features[lab.category] if isinstance(features, Mapping) else features
        f = np.asarray(f, np.float64)
        if lab.frame_ids().max() >= len(f):
            raise ValueError(f"{lab.category}: frame id {lab.frame_ids().max()} but only {len(f)} feature rows")
        pos, neg = lab.pos_ids, lab.neg_ids
        if flipped_features is not None:
            ff = flipped_features[lab.category] if isinstance(flipped_features, Mapping) else flipped_features
            ff = np.asarray(ff, np.float64)
            if ff.shape != f.shape:
                raise ValueError(f"{lab.category}: flipped features {ff.shape} differ from features {f.shape}")
            f = np.concatenate([f, ff])  # id + N is the flipped frame
            n = len(ff)
            pos = [p + n * (np.asarray(fl) > 0) for p, fl in zip(pos, lab.pos_flipvals, strict=True)]
            neg = [q + n * (np.asarray(fl) > 0) for q, fl in zip(neg, lab.neg_flipvals, strict=True)]
        sim = similarities(f[lab.anchors], f, similarity)  # (A, N): row k is anchor k
        res = posture_retrieval_auc(sim, np.arange(len(lab.anchors)), pos, neg)
        per_class[lab.category] = res["mean_auc"]
        per_anchor.append(res["per_anchor"])
        per_class_mean_roc[lab.category] = res["auc_of_mean_roc"]
    return {
        "mean_auc": float(np.mean(list(per_class.values()))),
        "auc_of_mean_roc": float(np.mean(list(per_class_mean_roc.values()))),
        "per_class": per_class,
        "per_anchor": np.concatenate(per_anchor),
    }


def nearest_neighbours(query: np.ndarray, database: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    """Index ``(Nq,)`` of each query's most similar database row (features ``(N, D)``; :func:`similarities`)."""
    return np.argmax(similarities(query, database, similarity), axis=1)


def zero_shot_pcp(
    query_feats: np.ndarray,
    query_joints: np.ndarray,
    db_feats: np.ndarray,
    db_joints: np.ndarray,
    fmt: str = "lsp14",
    similarity: str = "cosine",
) -> dict[str, float]:
    """Zero-shot pose estimation by joint transfer: strict PCP (%, :func:`lib.evaluation.metrics.pcp`)
    per part and total.

    Each query takes the joints ``(N, J, 2)`` of its nearest database crop by feature ``similarity``.
    Joints are in crop pixels of equally sized, person-centred crops (LSP-style normalisation), so they
    transfer without rescaling.
    """
    nn = nearest_neighbours(query_feats, db_feats, similarity)
    return pcp(np.asarray(db_joints)[nn], query_joints, fmt=fmt)


def zero_shot_upper_bound(query_joints: np.ndarray, db_joints: np.ndarray, fmt: str = "lsp14") -> dict[str, float]:
    """PCP of transferring the joints of the nearest database crop *by true pose* (mean joint distance in
    crop pixels): the ground-truth upper bound of Milbich et al. 2017 (69.2 on LSP)."""
    q, db = np.asarray(query_joints, np.float64), np.asarray(db_joints, np.float64)
    nn = np.array([np.linalg.norm(db - qk, axis=-1).mean(-1).argmin() for qk in q])
    return pcp(db[nn], q, fmt=fmt)
