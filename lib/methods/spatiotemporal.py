"""Sümer, Dencker & Ommer 2017: pose embeddings from temporal ordering and spatial placement, with a flow
curriculum and repetition mining. The method of ``notebooks/04_spatiotemporal_relations.ipynb``.

Two binary tasks share AlexNet's conv layers (:class:`lib.nets.alexnet.AlexNet`):

- *temporal ordering* (Siamese): is the candidate crop exactly ``tau_pos`` frames after the anchor
  (positive) or ``tau_neg`` frames before or after it (negative)? :func:`sample_temporal_pairs`.
- *spatial placement*: does a random crop overlap the person box with IoU in ``pos_iou`` (positive) or in
  ``neg_iou`` (negative)? :func:`iou`, :func:`sample_placement_crops`, :func:`crop_windows`.

Curriculum: anchors ordered by the ratio of foreground to background optical flow (:func:`fg_bg_ratio`),
easy (high ratio) first; :func:`curriculum_fractions`, :func:`curriculum_order`, :func:`curriculum_pool`.
Repetition mining: :func:`self_similarity`, :func:`circulant_filter`, :func:`mine_repetitions`,
:func:`repetition_groups`, :func:`mine_sequences`; mined pairs become temporal samples
(:func:`sample_repetition_pairs`).

Training: :class:`SpatioTemporalNet`, :class:`SpatioTemporalConfig`, :func:`train_spatiotemporal`
(resumable); held-out checks :func:`task_logits`, :func:`ranked_first`; the embedding :func:`embed_pool5`;
everything in one call for another notebook: :func:`train_with_repetitions`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import nn
from torch.nn import functional as F

from lib.images import images_to_tensor
from lib.nets.alexnet import AlexNet
from lib.training import resumable_training, sequence_groups, step_generators

TASKS = ("T", "S", "TS")
DEFAULT_FRACTIONS = (0.05, 0.10, 0.20, 0.40, 0.60, 0.80, 0.95, 1.00)
MAX_GROWTH = 0.25  # the curriculum never adds more than this share of the pool in one update

# ---------------------------------------------------------------------------------------------------------
# temporal ordering samples


def _check_offsets(tau_pos: int, tau_neg: tuple[int, int], neg_per_pos: int) -> None:
    if tau_pos < 1:
        raise ValueError(f"tau_pos must be a positive number of frames, got {tau_pos}")
    if not 0 < tau_neg[0] <= tau_neg[1]:
        raise ValueError(f"tau_neg must be (min, max) with 0 < min <= max frames, got {tau_neg}")
    if tau_neg[0] <= tau_pos:
        raise ValueError(f"tau_neg[0] = {tau_neg[0]} must exceed tau_pos = {tau_pos}: a negative is farther away")
    if neg_per_pos < 1:
        raise ValueError(f"neg_per_pos must be >= 1, got {neg_per_pos}")


def temporal_anchors(
    groups: Sequence[np.ndarray], tau_pos: int = 4, tau_neg: tuple[int, int] = (8, 16)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The usable anchors: ``(rows, group, position)``, each ``(n,)``, of every frame whose positive at
    ``+tau_pos`` and at least one negative offset in ``±[tau_neg]`` lie in its sequence.

    ``groups``: the rows of each sequence in time order (:func:`lib.training.sequence_groups`). Sequences
    shorter than ``tau_neg[0] + 1`` frames have none; an error names the longest when no sequence has any.
    """
    _check_offsets(tau_pos, tau_neg, 1)
    rows, grp, pos = [], [], []
    for k, g in enumerate(groups):
        n = len(g)
        p = np.arange(n)
        ok = (p + tau_pos < n) & ((p + tau_neg[0] < n) | (p - tau_neg[0] >= 0))
        rows.append(np.asarray(g)[ok])
        grp.append(np.full(int(ok.sum()), k))
        pos.append(p[ok])
    rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if len(rows_a) == 0:
        longest = max((len(g) for g in groups), default=0)
        raise ValueError(
            f"no sequence is long enough for tau_pos={tau_pos}, tau_neg={tau_neg}: the longest has {longest} "
            f"frames, at least {tau_neg[0] + 1} are needed"
        )
    return rows_a, np.concatenate(grp), np.concatenate(pos)


def sample_temporal_pairs(
    groups: Sequence[np.ndarray],
    n_anchors: int,
    rng: np.random.Generator,
    tau_pos: int = 4,
    tau_neg: tuple[int, int] = (8, 16),
    neg_per_pos: int = 3,
    anchors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_anchors`` anchors, each with its positive and ``neg_per_pos`` negatives: pairs ``(n, 2)`` of rows
    ``(anchor, candidate)`` and labels ``(n,)`` (1 = the candidate is ``tau_pos`` frames later), with
    ``n = n_anchors (1 + neg_per_pos)``, in blocks ``[pos, neg, ..., neg]`` per anchor.

    The positive is at exactly ``+tau_pos`` (future only); each negative's offset is drawn uniformly over
    the offsets in ``[-tau_neg[1], -tau_neg[0]] ∪ [tau_neg[0], tau_neg[1]]`` that exist in the sequence.
    Anchors are drawn uniformly from ``anchors`` (rows, a subset of :func:`temporal_anchors`; default all).
    """
    _check_offsets(tau_pos, tau_neg, neg_per_pos)
    rows, grp, pos = temporal_anchors(groups, tau_pos, tau_neg)
    if anchors is not None:
        anchors = np.asarray(anchors).ravel()
        by_row = np.argsort(rows, kind="stable")
        where = by_row[np.minimum(np.searchsorted(rows, anchors, sorter=by_row), len(rows) - 1)]
        bad = anchors[rows[where] != anchors]
        if len(bad) or len(anchors) == 0:
            raise ValueError(f"anchors {bad[:5].tolist()} are not usable anchors (or none given; {len(rows)} usable)")
        pick = where[rng.integers(len(anchors), size=n_anchors)]
    else:
        pick = rng.integers(len(rows), size=n_anchors)
    offsets = np.r_[-np.arange(tau_neg[1], tau_neg[0] - 1, -1), np.arange(tau_neg[0], tau_neg[1] + 1)]
    pairs = np.empty((n_anchors, 1 + neg_per_pos, 2), np.int64)
    for k, i in enumerate(pick):
        g, p = groups[grp[i]], pos[i]
        ok = offsets[(p + offsets >= 0) & (p + offsets < len(g))]
        pairs[k, :, 0] = g[p]
        pairs[k, 0, 1] = g[p + tau_pos]
        pairs[k, 1:, 1] = g[p + rng.choice(ok, neg_per_pos)]
    labels = np.tile(np.r_[1, np.zeros(neg_per_pos, np.int64)], n_anchors)
    return pairs.reshape(-1, 2), labels


def sample_repetition_pairs(
    rep_pairs: np.ndarray, n_anchors: int, rng: np.random.Generator, neg_per_pos: int = 3, margin: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Temporal samples from mined repetitions ``rep_pairs`` ``(m, 2)`` (rows ``i < j`` of one sequence whose
    rows are consecutive in time): the anchor ``i`` with its repetition ``j`` (positive) and
    ``neg_per_pos`` frames strictly between them, at least ``margin`` frames from both (negatives).
    Same layout as :func:`sample_temporal_pairs`. Pairs with no such frame (``j - i < 2 margin``) are
    never drawn; an error when none is usable."""
    rep = np.sort(np.asarray(rep_pairs, np.int64).reshape(-1, 2), axis=1)
    rep = rep[rep[:, 1] - rep[:, 0] >= 2 * margin]
    if len(rep) == 0:
        raise ValueError(f"no mined pair is {2 * margin} or more frames apart (margin {margin}): no negatives between")
    pairs = np.empty((n_anchors, 1 + neg_per_pos, 2), np.int64)
    for k, (i, j) in enumerate(rep[rng.integers(len(rep), size=n_anchors)]):
        pairs[k, :, 0] = i
        pairs[k, 0, 1] = j
        pairs[k, 1:, 1] = rng.integers(i + margin, j - margin + 1, size=neg_per_pos)
    return pairs.reshape(-1, 2), np.tile(np.r_[1, np.zeros(neg_per_pos, np.int64)], n_anchors)


# ---------------------------------------------------------------------------------------------------------
# spatial placement samples


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``(..., 4)`` ``(x0, y0, x1, y1)`` (broadcast) -> ``(...)``; 0 for
    disjoint boxes and for two empty ones."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def jitter_boxes(
    boxes: np.ndarray, jitter: float, rng: np.random.Generator, image_shape: tuple[int, int]
) -> np.ndarray:
    """Person boxes ``(N, 4)`` ``(x0, y0, x1, y1)`` as a noisy detector would give them: each centre moved by
    ``N(0, jitter)`` times the box's width and height, each side scaled by ``exp(N(0, jitter))``, clipped to
    the image ``(H, W)`` (at least 1 px wide and high). ``jitter = 0`` returns the boxes unchanged."""
    boxes = np.asarray(boxes, np.float64)
    if not (np.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0 (a fraction of the box size), got {jitter!r}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) (x0, y0, x1, y1), got shape {boxes.shape}")
    if jitter == 0:
        return boxes.copy()
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.normal(0, jitter, size.shape) * size
    half = size * np.exp(rng.normal(0, jitter, size.shape)) / 2
    hi = np.array([image_shape[1], image_shape[0]], np.float64)
    lo_xy = np.clip(centre - half, 0, hi - 1)
    hi_xy = np.clip(centre + half, lo_xy + 1, hi)
    return np.concatenate([lo_xy, hi_xy], axis=1)


def _check_iou_ranges(pos_iou: tuple[float, float], neg_iou: tuple[float, float]) -> None:
    for name, (lo, hi) in (("pos_iou", pos_iou), ("neg_iou", neg_iou)):
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"{name} must be (low, high) with 0 <= low < high <= 1, got {(lo, hi)}")
    if neg_iou[1] > pos_iou[0] and pos_iou[1] > neg_iou[0]:
        raise ValueError(f"IoU ranges overlap: pos_iou {pos_iou}, neg_iou {neg_iou}")


def sample_placement_crops(
    box: np.ndarray,
    image_size: int | tuple[int, int],
    n_pos: int,
    rng: np.random.Generator,
    pos_iou: tuple[float, float] = (0.65, 0.95),
    neg_iou: tuple[float, float] = (0.25, 0.55),
    neg_per_pos: int = 3,
    max_tries: int = 50,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Random windows around ``box`` ``(x0, y0, x1, y1)`` in an image of ``image_size`` (``H = W`` or
    ``(H, W)``): ``n_pos`` with IoU in ``pos_iou`` and ``n_pos * neg_per_pos`` in ``neg_iou``.

    Vectorised rejection sampling: ``chunk`` candidates at a time, centre shifted by up to 0.6 of the box
    side, width and height scaled independently by ``exp(U(log 0.4, log 2.5))``, clipped to the image.
    Returns windows ``(n, 4)`` float (positives first) and labels ``(n,)``. A range not filled after
    ``max_tries`` chunks raises an error naming the box and the range.
    """
    _check_iou_ranges(pos_iou, neg_iou)
    H, W = (image_size, image_size) if np.isscalar(image_size) else image_size
    box = np.asarray(box, np.float64)
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box {box.tolist()} has zero area")
    if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
        raise ValueError(f"box {box.tolist()} lies outside the {W}x{H} image")
    need = {1: n_pos, 0: n_pos * neg_per_pos}
    ranges = {1: pos_iou, 0: neg_iou}
    found: dict[int, list[np.ndarray]] = {1: [], 0: []}
    have = {1: 0, 0: 0}
    bw, bh, cx, cy = x1 - x0, y1 - y0, (x0 + x1) / 2, (y0 + y1) / 2
    for _ in range(max_tries):
        if all(have[k] >= need[k] for k in need):
            break
        c = np.column_stack([cx + rng.uniform(-0.6, 0.6, chunk) * bw, cy + rng.uniform(-0.6, 0.6, chunk) * bh])
        s = np.exp(rng.uniform(np.log(0.4), np.log(2.5), (chunk, 2))) * [bw, bh]
        win = np.column_stack([c - s / 2, c + s / 2])
        win = np.clip(win, 0, [W, H, W, H])
        v = iou(win, box)
        for k, (lo, hi) in ranges.items():
            if have[k] < need[k]:
                hit = win[(v >= lo) & (v <= hi) & (win[:, 2] - win[:, 0] >= 1) & (win[:, 3] - win[:, 1] >= 1)]
                found[k].append(hit[: need[k] - have[k]])
                have[k] += len(found[k][-1])
    for k in (1, 0):
        if have[k] < need[k]:
            raise ValueError(
                f"could not sample {need[k]} crops with IoU in {ranges[k]} around box {box.tolist()} in a "
                f"{W}x{H} image after {max_tries} x {chunk} tries (found {have[k]})"
            )
    windows = np.concatenate(found[1] + found[0])
    return windows, np.r_[np.ones(need[1], np.int64), np.zeros(need[0], np.int64)]


def crop_windows(image: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """The windows ``(n, 4)`` ``(x0, y0, x1, y1)`` of ``image`` ``(H, W, 3)``, each resized (its own aspect
    ratio squeezed) to ``(size, size)``: uint8 ``(n, size, size, 3)``. Windows are rounded to pixels."""
    out = np.empty((len(windows), size, size, image.shape[2]), image.dtype)
    for k, w in enumerate(np.asarray(windows)):
        x0, y0 = int(np.floor(w[0])), int(np.floor(w[1]))
        x1, y1 = max(int(np.ceil(w[2])), x0 + 1), max(int(np.ceil(w[3])), y0 + 1)
        out[k] = cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def sample_spatial_batch(
    frames: np.ndarray,
    boxes: np.ndarray,
    rows: np.ndarray,
    n_frames: int,
    rng: np.random.Generator,
    size: int,
    pos_iou: tuple[float, float] = (0.65, 0.95),
    neg_iou: tuple[float, float] = (0.25, 0.55),
    neg_per_pos: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_frames`` random frames of ``rows``, each with one positive and ``neg_per_pos`` negative placement
    crops: uint8 crops ``(n, size, size, 3)``, labels ``(n,)``, and the frame row of each crop ``(n,)``."""
    pick = np.asarray(rows)[rng.integers(len(rows), size=n_frames)]
    crops, labels, src = [], [], []
    for r in pick:
        win, lab = sample_placement_crops(boxes[r], frames.shape[1:3], 1, rng, pos_iou, neg_iou, neg_per_pos)
        crops.append(crop_windows(frames[r], win, size))
        labels.append(lab)
        src.append(np.full(len(lab), r))
    return np.concatenate(crops), np.concatenate(labels), np.concatenate(src)


# ---------------------------------------------------------------------------------------------------------
# curriculum


def fg_bg_ratio(flow: np.ndarray, box: np.ndarray, eps: float = 0.05) -> float | np.ndarray:
    """``(mean_fg + eps) / (mean_bg + eps)`` of the flow magnitude (pixels) inside / outside the box.

    ``flow`` ``(H, W, 2)`` with ``box`` ``(4,)`` ``(x0, y0, x1, y1)`` -> float, or ``(N, H, W, 2)`` with
    ``(N, 4)`` -> ``(N,)``. A pixel is foreground when its centre ``(j + 0.5, i + 0.5)`` lies in the box.
    A box with no background pixel (or no foreground pixel) is an error naming it.
    """
    flow, box = np.asarray(flow), np.asarray(box, np.float64)
    single = flow.ndim == 3
    flow, box = (flow[None], box[None]) if single else (flow, box)
    if flow.ndim != 4 or flow.shape[-1] != 2 or box.shape != (len(flow), 4):
        raise ValueError(f"need flow (N, H, W, 2) and boxes (N, 4), got {flow.shape} and {box.shape}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0 pixels, got {eps}")
    H, W = flow.shape[1:3]
    xs, ys = np.arange(W) + 0.5, np.arange(H) + 0.5
    out = np.empty(len(flow))
    for k, b in enumerate(box):
        m = np.linalg.norm(np.asarray(flow[k], np.float32), axis=-1)  # one frame at a time (float16 caches)
        fg = ((ys >= b[1]) & (ys < b[3]))[:, None] & ((xs >= b[0]) & (xs < b[2]))[None, :]
        if fg.all() or not fg.any():
            what = "no background" if fg.all() else "no foreground"
            raise ValueError(f"box {b.tolist()} leaves {what} pixels in the {W}x{H} flow")
        out[k] = (m[fg].mean() + eps) / (m[~fg].mean() + eps)
    return float(out[0]) if single else out


def curriculum_fractions(fractions: Sequence[float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """The checked schedule: shares of the curriculum pool at the start and after each update; strictly
    increasing, in (0, 1], ending at 1, and growing by at most :data:`MAX_GROWTH` per update."""
    f = np.asarray(fractions, np.float64)
    growth = np.diff(np.r_[0.0, f])
    if f.ndim != 1 or len(f) == 0 or (growth <= 0).any() or not np.isclose(f[-1], 1.0) or f[0] <= 0:
        raise ValueError(f"curriculum fractions must increase strictly from > 0 to 1, got {list(fractions)}")
    if (growth[1:] > MAX_GROWTH + 1e-9).any() or f[0] > MAX_GROWTH + 1e-9:
        raise ValueError(f"curriculum fractions may grow by at most {MAX_GROWTH} per update, got {list(fractions)}")
    return f


def curriculum_every(total_steps: int) -> int:
    """Steps between curriculum updates: 2.5k of the paper's 40k iterations, scaled to ``total_steps``."""
    return max(1, round(total_steps * 2.5 / 40))


def curriculum_order(anchors: np.ndarray, ratio: np.ndarray, share: float = 80 / 140) -> np.ndarray:
    """The curriculum pool: the ``share`` of ``anchors`` (rows) with the highest fg/bg ``ratio`` (indexed by
    row), easiest (highest ratio) first; ties in anchor order."""
    if not 0 < share <= 1:
        raise ValueError(f"curriculum share must be in (0, 1], got {share}")
    anchors = np.asarray(anchors)
    r = np.asarray(ratio, np.float64)[anchors]
    if not np.isfinite(r).all():
        raise ValueError(f"the fg/bg ratio of anchor row {int(anchors[~np.isfinite(r)][0])} is not finite")
    order = anchors[np.argsort(-r, kind="stable")]
    return order[: max(1, math.ceil(share * len(order)))]


def curriculum_pool(order: np.ndarray, fractions: Sequence[float], step: int, every: int) -> np.ndarray:
    """The anchors allowed at ``step``: the first ``ceil(f len(order))`` of ``order``, with ``f`` the
    fraction of stage ``step // every`` (the last fraction after the last update)."""
    f = curriculum_fractions(fractions)
    stage = min(step // every, len(f) - 1)
    return order[: max(1, math.ceil(f[stage] * len(order) - 1e-9))]


# ---------------------------------------------------------------------------------------------------------
# repetition mining


def self_similarity(features: np.ndarray, name: str = "video") -> np.ndarray:
    """``S = 2 - D`` ``(T, T)`` for the Euclidean distances ``D`` of the L2-normalised ``features`` ``(T, d)``
    (``D`` in [0, 2], so ``S`` in [0, 2]; monotone in the cosine similarity). NaN features: an error naming
    ``name``."""
    f = np.asarray(features, np.float64)
    if not np.isfinite(f).all():
        raise ValueError(f"{name}: features contain NaN or inf (row {int(np.argwhere(~np.isfinite(f))[0, 0])})")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    d2 = np.maximum(2.0 - 2.0 * f @ f.T, 0.0)
    return 2.0 - np.sqrt(d2)


def circulant_filter(S: np.ndarray, size: int = 5) -> np.ndarray:
    """``S`` convolved with the diagonal filter ``eye(size) / size`` (``scipy.ndimage.convolve``, borders
    by nearest value): the mean along lines parallel to the main diagonal."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the circulant filter size must be odd and >= 1, got {size}")
    return ndimage.convolve(np.asarray(S, np.float64), np.eye(size) / size, mode="nearest")


def mine_repetitions(S_filtered: np.ndarray, min_sep: int = 8, quantile: float = 0.95) -> np.ndarray:
    """Repetition pairs ``(n, 2)`` ``(i, j)``, ``i < j``, of one video's filtered similarity ``(T, T)``.

    For each row ``i`` the partner ``j* = argmax_{|i - j| >= min_sep} S[i, j]``; ``(i, j*)`` is kept when
    ``S[i, j*]`` is at least the ``quantile`` of all the video's values with ``|i - j| >= min_sep``.
    Duplicates (found from both ends) are listed once."""
    S = np.asarray(S_filtered, np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"need a square similarity matrix, got {S.shape}")
    if not 0 <= quantile <= 1 or min_sep < 1:
        raise ValueError(f"need min_sep >= 1 and quantile in [0, 1], got {min_sep}, {quantile}")
    T = len(S)
    i, j = np.indices((T, T))
    band = np.abs(i - j) >= min_sep
    if not band.any():
        return np.zeros((0, 2), np.int64)
    thr = np.quantile(S[band], quantile)
    masked = np.where(band, S, -np.inf)
    best = masked.argmax(1)
    keep = band.any(1) & (masked[np.arange(T), best] >= thr)
    pairs = np.sort(np.column_stack([np.flatnonzero(keep), best[keep]]), axis=1)
    return np.unique(pairs, axis=0).astype(np.int64)


def repetition_groups(pairs: np.ndarray, n: int | None = None) -> list[np.ndarray]:
    """Frames joined by repetition ``pairs`` ``(m, 2)``: the connected components with two or more frames
    (``scipy.sparse.csgraph.connected_components``), each sorted, in order of their first frame."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return []
    n = int(pairs.max()) + 1 if n is None else n
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    used = np.unique(pairs)
    groups = [used[labels[used] == c] for c in np.unique(labels[used])]
    return sorted((g for g in groups if len(g) >= 2), key=lambda g: int(g[0]))


def mine_sequences(
    features: np.ndarray, groups: Sequence[np.ndarray], min_sep: int = 8, quantile: float = 0.95, size: int = 5
) -> np.ndarray:
    """Repetition pairs ``(n, 2)`` (rows) mined in every sequence: :func:`self_similarity` of
    ``features[g]``, :func:`circulant_filter`, :func:`mine_repetitions`, mapped back to rows."""
    out = [np.zeros((0, 2), np.int64)]
    for k, g in enumerate(groups):
        g = np.asarray(g)
        S = circulant_filter(self_similarity(features[g], name=f"sequence {k}"), size)
        out.append(g[mine_repetitions(S, min_sep, quantile)])
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------------------
# the network and its training


def _head(n_in: int, fc: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, fc[0]), nn.BatchNorm1d(fc[0]), nn.ReLU(True),
        nn.Linear(fc[0], fc[1]), nn.BatchNorm1d(fc[1]), nn.ReLU(True), nn.Linear(fc[1], 1),
    )  # fmt: skip


class SpatioTemporalNet(nn.Module):
    """One AlexNet (:attr:`backbone`, shared by both Siamese streams and the spatial stream) and two heads:
    ``temporal_head`` on ``[pool5(anchor), pool5(candidate)]`` and ``spatial_head`` on ``pool5(crop)``,
    each FC ``fc[0]`` -> BN -> ReLU -> FC ``fc[1]`` -> BN -> ReLU -> FC 1 (a logit)."""

    def __init__(self, image_size: int = 64, width: float = 0.125, fc: tuple[int, int] = (256, 128), leak: float = 0.1):
        super().__init__()
        self.backbone = AlexNet(3, image_size, width, leak)
        self.temporal_head = _head(2 * self.backbone.n_pool5, fc)
        self.spatial_head = _head(self.backbone.n_pool5, fc)

    def temporal_logits(self, anchor: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` twice -> ``(B,)`` logits of "the candidate is the frame tau_pos later"."""
        z = self.backbone.pool5(torch.cat([anchor, candidate]))
        return self.temporal_head(torch.cat(z.chunk(2), 1))[:, 0]

    def spatial_logits(self, crop: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B,)`` logits of "the crop overlaps the person box well"."""
        return self.spatial_head(self.backbone.pool5(crop))[:, 0]


@dataclass(frozen=True)
class SpatioTemporalConfig:
    """Hyper-parameters (defaults: the smoke size; the paper's in comments)."""

    tasks: str = "TS"  # "T", "S" or "TS" (joint: L = L_T + spatial_weight L_S)
    curriculum: bool = True  # False: the same pool, uniformly from the first step
    steps: int = 150  # 40k
    batch: int = 24  # temporal pairs and spatial crops per step (48); a quarter positive
    image_size: int = 64  # 227
    width: float = 0.125  # 1 (AlexNet's filter counts)
    fc: tuple[int, int] = (256, 128)  # (2048, 1024)
    lr_fc: float = 1e-4
    lr_conv: float = 1e-5
    spatial_weight: float = 0.1
    tau_pos: int = 4
    tau_neg: tuple[int, int] = (8, 16)
    neg_per_pos: int = 3
    pos_iou: tuple[float, float] = (0.65, 0.95)
    neg_iou: tuple[float, float] = (0.25, 0.55)
    curriculum_share: float = 80 / 140  # the paper uses ~80k of ~140k frames
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    rep_share: float = 0.25  # share of the temporal anchors drawn from mined repetitions (when given)
    rep_margin: int = 4  # negatives between two repetitions lie this far from both
    leak: float = 0.1
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.tasks not in TASKS:
            raise ValueError(f"tasks must be one of {list(TASKS)}, got {self.tasks!r}")
        if self.batch % (1 + self.neg_per_pos):
            raise ValueError(f"batch {self.batch} must be a multiple of 1 + neg_per_pos = {1 + self.neg_per_pos}")
        if not 0 <= self.rep_share < 1:
            raise ValueError(f"rep_share must be in [0, 1), got {self.rep_share}")
        _check_offsets(self.tau_pos, self.tau_neg, self.neg_per_pos)
        _check_iou_ranges(self.pos_iou, self.neg_iou)
        curriculum_fractions(self.fractions)

    @property
    def every(self) -> int:
        """Steps between curriculum updates."""
        return curriculum_every(self.steps)


def new_spatiotemporal_net(config: SpatioTemporalConfig, seed: int = 0) -> SpatioTemporalNet:
    """The randomly initialised network of ``config`` (seeded, on the CPU): where training starts."""
    torch.manual_seed(seed)
    return SpatioTemporalNet(config.image_size, config.width, config.fc, config.leak)


def make_optimizer(net: SpatioTemporalNet, config: SpatioTemporalConfig) -> torch.optim.Adam:
    """Adam with two parameter groups: the conv layers at ``lr_conv``, the FC heads at ``lr_fc``."""
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    return torch.optim.Adam([{"params": net.backbone.parameters(), "lr": config.lr_conv},
                             {"params": heads, "lr": config.lr_fc}])  # fmt: skip


def _check_contiguous(groups: Sequence[np.ndarray]) -> None:
    for k, g in enumerate(groups):
        if len(g) and not np.array_equal(g, np.arange(g[0], g[0] + len(g))):
            raise ValueError(f"the rows of sequence {k} are not consecutive: give each sequence's frames in time order")


def train_spatiotemporal(
    crops: np.ndarray,
    frames: np.ndarray,
    boxes: np.ndarray,
    seq: np.ndarray,
    flow_ratio: np.ndarray,
    config: SpatioTemporalConfig = SpatioTemporalConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    repetitions: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[SpatioTemporalNet, dict[str, list[float]]]:
    """Train the tasks of ``config`` on the rows of one split.

    ``crops`` uint8 ``(N, s, s, 3)`` person crops (temporal task), ``frames`` uint8 ``(N, H, W, 3)`` and
    ``boxes`` ``(N, 4)`` (spatial task), ``seq`` ``(N,)`` sequence ids (each sequence's rows consecutive,
    in time order), ``flow_ratio`` ``(N,)`` :func:`fg_bg_ratio` of each row (finite at every anchor),
    ``repetitions`` mined pairs ``(m, 2)`` of rows (:func:`mine_sequences`): a ``rep_share`` of the temporal
    anchors of every step come from them (:func:`sample_repetition_pairs`).

    Returns the network (eval mode) and the history: ``loss`` and, per trained task, ``loss_T``/``acc_T``,
    ``loss_S``/``acc_S``; ``pool_size`` (curriculum anchors allowed at each step).
    """
    crops, frames, boxes, seq = np.asarray(crops), np.asarray(frames), np.asarray(boxes), np.asarray(seq)
    n = len(crops)
    if not (len(frames) == len(boxes) == len(seq) == len(flow_ratio) == n) or crops.shape[1:3] != (
        config.image_size,
        config.image_size,
    ):
        raise ValueError(
            f"need {config.image_size} px crops and equally many frames, boxes, seq and flow_ratio; got crops "
            f"{crops.shape}, frames {frames.shape}, boxes {boxes.shape}, seq {seq.shape}, "
            f"flow_ratio {np.shape(flow_ratio)}"
        )
    groups = sequence_groups(seq)
    _check_contiguous(groups)
    anchors, _, _ = temporal_anchors(groups, config.tau_pos, config.tau_neg)
    order = curriculum_order(anchors, flow_ratio, config.curriculum_share)
    n_anchor = config.batch // (1 + config.neg_per_pos)
    n_rep = round(config.rep_share * n_anchor) if repetitions is not None and len(repetitions) else 0
    net = new_spatiotemporal_net(config, seed).to(device)
    opt = make_optimizer(net, config)
    all_rows = np.arange(n)

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        net.train()
        logs, loss = {}, torch.zeros((), device=device)
        pool = curriculum_pool(order, config.fractions, step, config.every) if config.curriculum else order
        if "T" in config.tasks:
            pairs, y = sample_temporal_pairs(
                groups, n_anchor - n_rep, rng, config.tau_pos, config.tau_neg, config.neg_per_pos, anchors=pool
            )
            if n_rep:
                rp, ry = sample_repetition_pairs(repetitions, n_rep, rng, config.neg_per_pos, config.rep_margin)
                pairs, y = np.concatenate([pairs, rp]), np.concatenate([y, ry])
            a, c = images_to_tensor(crops[pairs[:, 0]], device), images_to_tensor(crops[pairs[:, 1]], device)
            yt = torch.as_tensor(y, dtype=torch.float32, device=device)
            logit = net.temporal_logits(a, c)
            loss_t = F.binary_cross_entropy_with_logits(logit, yt)
            loss = loss + loss_t
            logs |= {"loss_T": loss_t.item(), "acc_T": ((logit > 0).float() == yt).float().mean().item()}
        if "S" in config.tasks:
            x, y, _ = sample_spatial_batch(frames, boxes, all_rows, n_anchor, rng, config.image_size,
                                           config.pos_iou, config.neg_iou, config.neg_per_pos)  # fmt: skip
            ys = torch.as_tensor(y, dtype=torch.float32, device=device)
            logit = net.spatial_logits(images_to_tensor(x, device))
            loss_s = F.binary_cross_entropy_with_logits(logit, ys)
            loss = loss + (config.spatial_weight if config.tasks == "TS" else 1.0) * loss_s
            logs |= {"loss_S": loss_s.item(), "acc_S": ((logit > 0).float() == ys).float().mean().item()}
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **logs, "pool_size": float(len(pool)) if "T" in config.tasks else 0.0}

    digest = hashlib.sha256(np.ascontiguousarray(flow_ratio, np.float64).tobytes())
    if repetitions is not None:
        digest.update(np.ascontiguousarray(repetitions, np.int64).tobytes())
    meta = {"model": "spatiotemporal", "seed": seed, "n": n, "inputs": digest.hexdigest()[:16],
            **dataclasses.asdict(config)}  # fmt: skip
    history = resumable_training(
        {"net": net, "opt": opt},
        config.steps,
        step_fn,
        checkpoint_dir,
        meta,
        config.checkpoint_every,
        progress=progress,
    )
    return net.eval(), history


@torch.no_grad()
def task_logits(net: SpatioTemporalNet, task: str, inputs: tuple[np.ndarray, ...], batch_size: int = 256) -> np.ndarray:
    """``(n,)`` logits of held-out samples (eval mode; the mode is restored).

    ``task="T"``: ``inputs = (crops, pairs)`` (uint8 crops and row pairs ``(n, 2)``); ``task="S"``:
    ``inputs = (crops,)`` uint8 ``(n, s, s, 3)``."""
    if task not in ("T", "S"):
        raise ValueError(f"task must be 'T' or 'S', got {task!r}")
    device = next(net.parameters()).device
    n = len(inputs[1]) if task == "T" else len(inputs[0])
    was_training = net.training
    net.eval()
    out = []
    try:
        for i in range(0, n, batch_size):
            if task == "T":
                crops, p = inputs[0], inputs[1][i : i + batch_size]
                a, c = images_to_tensor(crops[p[:, 0]], device), images_to_tensor(crops[p[:, 1]], device)
                out.append(net.temporal_logits(a, c).float().cpu().numpy())
            else:
                out.append(
                    net.spatial_logits(images_to_tensor(inputs[0][i : i + batch_size], device)).float().cpu().numpy()
                )
    finally:
        net.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def ranked_first(logits: np.ndarray, neg_per_pos: int = 3) -> np.ndarray:
    """``(n / (1 + neg_per_pos),)`` bool: per block ``[pos, neg, ..., neg]`` (the samplers' layout), does the
    positive get the strictly highest logit? Chance is ``1 / (1 + neg_per_pos)``; unlike accuracy at 1:3 it
    cannot be won by always answering "negative"."""
    blocks = np.asarray(logits).reshape(-1, 1 + neg_per_pos)
    return blocks[:, 0] > blocks[:, 1:].max(1)


@torch.no_grad()
def embed_pool5(net: SpatioTemporalNet | AlexNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """pool5 ``(N, n_pool5)`` float32 of uint8 images ``(N, s, s, 3)`` (eval mode; mode restored)."""
    backbone = net.backbone if isinstance(net, SpatioTemporalNet) else net
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    try:
        out = [backbone.pool5(images_to_tensor(images[i : i + batch_size], device)).float().cpu().numpy()
               for i in range(0, len(images), batch_size)]  # fmt: skip
    finally:
        backbone.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, backbone.n_pool5), np.float32)


# ---------------------------------------------------------------------------------------------------------
# one call: the embedding for another notebook


@dataclass
class TrainingData:
    """The rows of a set of sequences: person ``crops``, full ``frames``, person ``boxes``, ``seq`` ids,
    world frame ``index`` and the fg/bg flow ``ratio`` of each row (NaN at a sequence's last frame)."""

    crops: np.ndarray
    frames: np.ndarray
    boxes: np.ndarray
    seq: np.ndarray
    index: np.ndarray
    ratio: np.ndarray


def training_data(world: Any, flows: Any, crop_size: int, eps: float = 0.05) -> TrainingData:
    """The rows of the sequences of ``flows`` (a :class:`lib.world.flow_cache.FlowCache` of ``world``), in
    its order, with their person crops of ``crop_size`` px and the :func:`fg_bg_ratio` of each frame."""
    index = np.asarray(flows.index)
    crops, _ = world.person_crops(crop_size, index)
    ratio = fg_bg_ratio(flows.flows, world.boxes[index], eps)
    last = np.r_[world.seq[index][1:] != world.seq[index][:-1], True]
    ratio[last] = np.nan  # no next frame: no flow
    return TrainingData(crops, world.frames[index], world.boxes[index], world.seq[index], index, ratio)


def train_with_repetitions(
    world: Any,
    config: SpatioTemporalConfig = SpatioTemporalConfig(),
    mining_rounds: int = 1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    flow_size: int | None = None,
    min_sep: int = 8,
    quantile: float = 0.95,
    flows: Any = None,
) -> tuple[SpatioTemporalNet, dict[str, list[float]]]:
    """The model trained on the sequences of ``flows`` with ``config``, then retrained ``mining_rounds`` times
    with the repetitions its previous round mined ("S&T + rep" for ``tasks="TS"``), and the last round's
    history. ``flows``: a :class:`lib.world.flow_cache.FlowCache` of the training sequences; default
    :func:`lib.world.flow_cache.world_flows` of all the world's training sequences at ``flow_size`` (cached on
    disk). Embed with :func:`embed_pool5` (crops of ``config.image_size`` px)."""
    from lib.world.flow_cache import world_flows

    if mining_rounds < 0:
        raise ValueError(f"mining_rounds must be >= 0, got {mining_rounds}")
    if flows is None:
        flows = world_flows(world, world.split_sequences("train"), size=flow_size)
    data = training_data(world, flows, config.image_size)
    groups = sequence_groups(data.seq)
    reps = None
    for r in range(mining_rounds + 1):
        ck = None if checkpoint_dir is None else Path(checkpoint_dir) / f"round{r}"
        net, history = train_spatiotemporal(data.crops, data.frames, data.boxes, data.seq, data.ratio, config, seed,
                                            device, ck, repetitions=reps)  # fmt: skip
        if r < mining_rounds:
            reps = mine_sequences(embed_pool5(net, data.crops), groups, min_sep, quantile)
    return net, history
