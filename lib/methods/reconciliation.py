"""Unsupervised posture embedding by reconciling sequence matchings (Milbich et al. 2017, Algorithm 1).
Taught in ``notebooks/05_posture_reconciliation.ipynb``.

- :class:`HogLDA`, :func:`fit_hog_lda`, :func:`random_windows` -- the initial similarity: HOG whitened by
  the covariance of generic ("background") image windows (Hariharan et al. 2012), L2-normalised, so
  squared distances between descriptors compare LDA-whitened HOG.
- :func:`sequence_descriptors`, :func:`nearest_sequences` -- temporally pooled sequence descriptors and
  each sequence's nearest-neighbour sequences, from which S' is drawn for S.
- :func:`percentile_negatives` -- negatives among the frames of S' whose similarity to the positive is at
  most the p-th percentile; :func:`negative_percentile` -- p = 100, then -10 per epoch.
- :func:`triplets_from_matching` -- (anchor in S, positive = its match in S', negative) triplets.
- :func:`triplet_loss` -- Eq. 3/4: mean of ``[||a - p||^2 - ||a - n||^2 + margin]_+``.
- :class:`ReconciliationConfig`, :func:`train_reconciliation` -- alternate matching and triplet training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from lib.evaluation.metrics import squared_distances
from lib.images import hog_features, images_to_tensor, random_affine
from lib.methods.matching import MATCHERS, match_subsequences
from lib.nets.vgg import VGGS, embed_images, vgg_s
from lib.training import resumable_training, sequence_groups, step_generators

# ---------------------------------------------------------------------------------------------------------
# HOG-LDA initial similarity


@dataclass
class HogLDA:
    """LDA-whitened HOG: ``z = normalise(W (hog(x) - mean))`` with ``W = (Sigma + ridge I)^(-1/2)``.

    ``mean`` (F,) and ``whitening`` (F, F) come from generic image windows (:func:`fit_hog_lda`), as the
    background statistics of Hariharan et al. 2012, so the same whitening serves every exemplar.
    """

    mean: np.ndarray
    whitening: np.ndarray

    def transform(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(N, s, s, 3)`` crops -> ``(N, F)`` float32 unit-norm whitened HOG descriptors."""
        z = (hog_features(images).astype(np.float64) - self.mean) @ self.whitening
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def random_windows(images: np.ndarray, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random square windows (side between a third of and the whole image) from uint8 ``(N, H, W, C)``
    ``images``, resized to ``size`` px -> uint8 ``(n, size, size, C)``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 (N, H, W, C) array, got {images.shape} {images.dtype}")
    N, H, W = images.shape[:3]
    lo = max(8, min(H, W) // 3)
    out = np.empty((n, size, size, images.shape[3]), np.uint8)
    for k in range(n):
        side = int(rng.integers(lo, min(H, W) + 1))
        y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        win = images[int(rng.integers(N)), y : y + side, x : x + side]
        out[k] = cv2.resize(win, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
    return out


def fit_hog_lda(background: np.ndarray, ridge: float = 0.01) -> HogLDA:
    """Background mean and whitening of HOG from uint8 ``(N, s, s, 3)`` generic windows.

    ``ridge`` is relative: ``Sigma + ridge * mean(eig(Sigma)) I`` keeps the inverse square root stable
    when there are fewer windows than HOG dimensions.
    """
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    h = hog_features(background).astype(np.float64)
    if len(h) < 2:
        raise ValueError(f"need at least 2 background windows, got {len(h)}")
    mean = h.mean(0)
    cov = np.cov(h, rowvar=False)
    cov += ridge * np.trace(cov) / len(cov) * np.eye(len(cov))
    evals, evecs = np.linalg.eigh(cov)
    return HogLDA(mean=mean, whitening=(evecs / np.sqrt(evals)) @ evecs.T)


# ---------------------------------------------------------------------------------------------------------
# sequence pairs, negatives, triplets, loss


def sequence_descriptors(embeddings: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Temporally pooled descriptor per sequence: the unit-norm mean of its frames' embeddings -> (S, d)."""
    desc = np.stack([embeddings[g].mean(0) for g in groups])
    return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)


def nearest_sequences(descriptors: np.ndarray, k: int) -> np.ndarray:
    """``(S, k)`` indices of each sequence's ``k`` nearest other sequences (squared Euclidean)."""
    S = len(descriptors)
    if not 1 <= k <= S - 1:
        raise ValueError(f"k must be in 1..{S - 1} (number of other sequences), got {k}")
    d = squared_distances(descriptors, descriptors)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def negative_percentile(epoch: int, start: float = 100.0, step: float = 10.0, floor: float = 10.0) -> float:
    """The percentile p of epoch ``epoch`` (0-based): ``start`` (100), minus ``step`` (10) per epoch,
    never below ``floor``."""
    return max(start - step * epoch, floor)


def percentile_negatives(
    similarity: np.ndarray, positives: np.ndarray, p: float, rng: np.random.Generator
) -> np.ndarray:
    """One negative per row: a uniformly drawn frame whose similarity is at most the row's p-th percentile.

    ``similarity`` ``(k, m)``: similarity of each positive to every frame of S'; ``positives`` ``(k,)``
    the positives' own columns, which are never returned. Returns ``(k,)`` column indices, ``-1`` for a
    row with no candidate.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile p must be in [0, 100], got {p}")
    similarity = np.asarray(similarity, np.float64)
    rows = np.arange(len(similarity))
    allowed = similarity <= np.percentile(similarity, p, axis=1, keepdims=True)
    allowed[rows, positives] = False
    keys = np.where(allowed, rng.random(similarity.shape), -1.0)
    choice = keys.argmax(1)
    return np.where(allowed[rows, choice], choice, -1)


def triplets_from_matching(
    matchings: np.ndarray,
    target_similarity: np.ndarray,
    p: float,
    n_triplets: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Triplets ``(T, 3)``: anchor frame of S, its match in S' (positive), a percentile negative in S'.

    ``matchings`` ``(k, n)``: one matching of S per sub-sequence of S' (global S' indices, -1 outlier).
    ``target_similarity`` ``(m, m)``: similarities between the frames of S'. Anchors are drawn uniformly
    (with replacement) from all matched pairs; rows without a negative are dropped.
    """
    chunk, anchor = np.nonzero(matchings >= 0)
    if len(anchor) == 0:
        return np.zeros((0, 3), np.int64)
    pick = rng.integers(0, len(anchor), size=n_triplets)
    a, pos = anchor[pick], matchings[chunk[pick], anchor[pick]]
    neg = percentile_negatives(target_similarity[pos], pos, p, rng)
    keep = neg >= 0
    return np.stack([a[keep], pos[keep], neg[keep]], axis=1).astype(np.int64)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 3/4: ``mean_t [||a_t - p_t||^2 - ||a_t - n_t||^2 + margin]_+`` over ``(T, d)`` embeddings."""
    d_pos = (anchor - positive).square().sum(1)
    d_neg = (anchor - negative).square().sum(1)
    return F.relu(d_pos - d_neg + margin).mean()


# ---------------------------------------------------------------------------------------------------------
# resumable training


# ---------------------------------------------------------------------------------------------------------
# Algorithm 1


@dataclass(frozen=True)
class ReconciliationConfig:
    """Hyper-parameters of Algorithm 1 (defaults: a smoke-sized run).

    The matching costs are relative: ``lam1..lam3`` are multiplied by the median of the pair's squared
    distances and the outlier cost is the ``outlier_quantile`` of them, so one setting serves HOG-LDA and
    the CNN embedding alike.
    """

    epochs: int = 3
    steps_per_epoch: int = 30
    triplets_per_step: int = 48  # the paper: 300
    margin: float = 0.2  # delta of Eq. 4 (unit-norm embeddings: squared distances in [0, 4])
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lam1: float = 0.5  # back in time
    lam2: float = 0.2  # one-to-many
    lam3: float = 0.05  # per skipped frame
    outlier_quantile: float = 0.3
    chunk: int = 40  # sub-sequence length n'
    neighbours: int = 5  # S' is drawn from the S's nearest sequences
    p_start: float = 100.0
    p_step: float = 10.0
    p_floor: float = 10.0
    matcher: str = "dp"
    image_size: int = 64
    dim: int = 128
    width: int = 32
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {self.matcher!r}; expected one of {list(MATCHERS)}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.triplets_per_step < 1:
            raise ValueError("epochs, steps_per_epoch and triplets_per_step must be >= 1")
        if not 0 < self.outlier_quantile < 1:
            raise ValueError(f"outlier_quantile must be in (0, 1), got {self.outlier_quantile}")


def match_pair(E: np.ndarray, E2: np.ndarray, config: ReconciliationConfig) -> np.ndarray:
    """Sub-sequence matchings ``(k, n)`` of S onto S' from their embeddings ``(n, d)``, ``(m, d)``."""
    D = squared_distances(E, E2)
    scale = float(np.median(D)) + 1e-12
    return match_subsequences(
        D,
        config.lam1 * scale,
        config.lam2 * scale,
        config.lam3 * scale,
        float(np.quantile(D, config.outlier_quantile)),
        chunk=config.chunk,
        matcher=config.matcher,
    )


def train_reconciliation(
    crops: np.ndarray,
    seq: np.ndarray,
    init_embedding: np.ndarray,
    config: ReconciliationConfig = ReconciliationConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[VGGS, dict[str, list[float]]]:
    """Algorithm 1: alternate sequence matching and triplet training of a VGG-S-like CNN.

    ``crops`` uint8 ``(N, s, s, 3)`` person crops of the training frames, ``seq`` ``(N,)`` their sequence
    ids (each sequence's frames in time order), ``init_embedding`` ``(N, d0)`` the epoch-0 similarity
    (HOG-LDA). Epoch 0 matches with ``init_embedding``; later epochs with the CNN being trained. Sequence
    neighbours are recomputed at each epoch start. Returns the network (eval mode) and the history
    (``loss``, ``p``, ``matched``: share of S frames matched, ``triplets``).
    """
    if crops.shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(f"crops are {crops.shape[1:3]} px but config.image_size is {config.image_size}")
    if not len(crops) == len(seq) == len(init_embedding):
        raise ValueError(f"crops, seq, init_embedding lengths differ: {len(crops)}, {len(seq)}, {len(init_embedding)}")
    groups = sequence_groups(seq)
    k = min(config.neighbours, len(groups) - 1)
    if k < 1:
        raise ValueError("need at least 2 training sequences to match")
    torch.manual_seed(seed)
    net = vgg_s(crops.shape[3], config.image_size, config.dim, config.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state: dict[str, Any] = {"neighbours": None, "epoch": -1}

    def embedding(idx: np.ndarray, epoch: int) -> np.ndarray:
        return init_embedding[idx] if epoch == 0 else embed_images(net, crops[idx])

    def step_fn(step: int) -> dict[str, float]:
        epoch = step // config.steps_per_epoch
        if state["epoch"] != epoch:
            all_emb = init_embedding if epoch == 0 else embed_images(net, crops)
            state["neighbours"] = nearest_sequences(sequence_descriptors(all_emb, groups), k)
            state["epoch"] = epoch
        rng, gen = step_generators(seed, step)
        s = int(rng.integers(len(groups)))
        s2 = int(rng.choice(state["neighbours"][s]))
        S, S2 = groups[s], groups[s2]
        E, E2 = embedding(S, epoch), embedding(S2, epoch)
        matchings = match_pair(E, E2, config)
        p = negative_percentile(epoch, config.p_start, config.p_step, config.p_floor)
        trip = triplets_from_matching(matchings, -squared_distances(E2, E2), p, config.triplets_per_step, rng)
        net.train()
        if len(trip) == 0:
            return {"loss": 0.0, "p": p, "matched": 0.0, "triplets": 0.0}
        idx = np.concatenate([S[trip[:, 0]], S2[trip[:, 1]], S2[trip[:, 2]]])
        x = random_affine(images_to_tensor(crops[idx], device), gen)
        za, zp, zn = net(x).split(len(trip))
        loss = triplet_loss(za, zp, zn, config.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "p": p, "matched": float((matchings >= 0).mean()), "triplets": len(trip)}

    def extra_state() -> dict[str, Any]:
        return {"neighbours": torch.as_tensor(state["neighbours"]), "epoch": state["epoch"]}

    def load_extra(extra: dict[str, Any]) -> None:
        state["neighbours"], state["epoch"] = extra["neighbours"].numpy(), int(extra["epoch"])

    meta = {"model": "reconciliation", "seed": seed, "n_frames": len(crops), **dataclasses.asdict(config)}
    history = resumable_training(
        {"net": net, "opt": opt},
        config.epochs * config.steps_per_epoch,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
        extra_state=extra_state,
        load_extra=load_extra,
        progress=progress,
    )
    return net.eval(), history
