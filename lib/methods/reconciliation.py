"""Unsupervised posture embedding by reconciling sequence matchings (Milbich et al. 2017, Algorithm 1).
Taught in ``notebooks/05_posture_reconciliation.ipynb``; the initial similarity (HOG-LDA) is in
:mod:`lib.methods.hog_lda`.

The pieces of one step of Algorithm 1, which the notebook calls one by one:

- :func:`sequence_descriptors`, :func:`nearest_sequences` -- temporally pooled sequence descriptors and
  each sequence's nearest-neighbour sequences; :func:`choose_pair` draws S and S' among them.
- :func:`match_pair` -- Eq. 1/2 between S and each sub-sequence of S', with costs relative to the pair.
- :func:`percentile_negatives` -- negatives among the frames of S' whose similarity to the positive is at
  most the p-th percentile; :func:`negative_percentile` -- p = 100, then -10 per epoch.
- :func:`triplets_from_matching` -- (anchor in S, positive = its match in S', negative) triplets.
- :func:`triplet_loss` -- Eq. 3/4: mean of ``[||a - p||^2 - ||a - n||^2 + margin]_+``;
  :func:`triplet_step` -- one augmented SGD step on a batch of triplets, at the learning rate of
  :func:`linear_decay`.
- :func:`triplet_correct`, :func:`correspondence_errors` -- diagnostics from the ground truth (never used
  for training): is the positive closer in true pose to the anchor than the negative? How close in true
  pose are matched frames, compared with nearest neighbours on the same frames?

:func:`uses_network` -- which similarity an epoch matches with: the start similarity in epoch 0, then the
CNN being trained (the paper) or the start again (``ReconciliationConfig.match_with``).

:class:`ReconciliationConfig` and :func:`train_reconciliation` put them together in one resumable call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from lib.evaluation.metrics import normalise_pose, squared_distances
from lib.images import images_to_tensor, random_affine
from lib.methods.matching import MATCHERS, match_subsequences, split_target
from lib.nets.vgg import VGGS, embed_images, vgg_s
from lib.training import resumable_training, sequence_groups, step_generators

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


def choose_pair(neighbours: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A training pair (s, s'): ``s`` uniformly among all sequences, ``s'`` uniformly among its
    ``neighbours[s]`` (``(S, k)`` from :func:`nearest_sequences`)."""
    s = int(rng.integers(len(neighbours)))
    return s, int(rng.choice(neighbours[s]))


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


def linear_decay(step: int, total: int, lr: float) -> float:
    """The learning rate of step ``step`` (0-based) of ``total``: ``lr`` falling linearly to 0 at ``total``."""
    if not 0 <= step < total:
        raise ValueError(f"step must be in 0..{total - 1} (total steps {total}), got {step}")
    return lr * (1.0 - step / total)


def triplet_step(
    net: VGGS,
    opt: torch.optim.Optimizer,
    crops: np.ndarray,
    triplets: np.ndarray,
    margin: float,
    generator: torch.Generator,
    augment: float = 1.0,
) -> float:
    """One SGD step of Eq. 3 on ``(T, 3)`` frame indices (anchor, positive, negative) into uint8 crops
    ``(N, s, s, 3)``, each crop randomly translated, scaled and rotated (the paper's augmentation) by up to
    ``augment`` times 8% of the size, 10% and 10 degrees (0: none). Returns the loss before the step."""
    triplets = np.asarray(triplets)
    if triplets.ndim != 2 or triplets.shape[1] != 3 or len(triplets) == 0:
        raise ValueError(f"triplets must be a non-empty (T, 3) index array, got shape {triplets.shape}")
    device = next(net.parameters()).device
    net.train()
    x = images_to_tensor(crops[triplets.T.ravel()], device)
    if augment > 0:
        x = random_affine(x, generator, shift=0.08 * augment, scale=0.1 * augment, degrees=10.0 * augment)
    za, zp, zn = net(x).split(len(triplets))
    loss = triplet_loss(za, zp, zn, margin)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def triplet_correct(triplets: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """``(T,)`` bool: is the positive closer to the anchor in true pose than the negative?
    (:func:`lib.evaluation.metrics.pose_distance` of the ``(N, J, 2)`` ground-truth ``joints``; ties count as
    wrong). A diagnostic the synthetic world allows; training never sees it."""
    triplets = np.asarray(triplets)
    if triplets.ndim != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must be a (T, 3) index array, got shape {triplets.shape}")
    a, p, n = (normalise_pose(joints[triplets[:, i]]) for i in range(3))
    # pose_distance of each (anchor, positive) and (anchor, negative) pair, without the (T, T) matrices
    return np.linalg.norm(a - p, axis=-1).mean(-1) < np.linalg.norm(a - n, axis=-1).mean(-1)


def correspondence_errors(D: np.ndarray, matchings: np.ndarray, pose_dist: np.ndarray, chunk: int) -> dict[str, float]:
    """How good the matching's correspondences are against nearest neighbours, *on the same frames*.

    ``D`` ``(n, m)`` embedding distances of S to S', ``matchings`` ``(k, n)`` from :func:`match_pair`
    (chunk ``i`` of :func:`lib.methods.matching.split_target` ``(m, chunk)``, ``-1`` outliers),
    ``pose_dist`` ``(n, m)`` true pose distances. Over the (frame, chunk) pairs the matching keeps:
    ``matching`` the mean pose distance of its correspondences, ``nn_same_frames`` that of each kept frame's
    nearest neighbour in the same chunk; ``nn_same_rate`` the nearest neighbours of the same *number* of
    (frame, chunk) pairs, those with the smallest embedding distance (NN with the same rejection rate);
    ``random`` the mean over all frame pairs; ``kept`` the share kept. Without kept frames all but
    ``random`` and ``kept`` are NaN.
    """
    D, pose_dist, matchings = np.asarray(D), np.asarray(pose_dist), np.asarray(matchings)
    n, m = D.shape
    bounds = split_target(m, chunk)
    if pose_dist.shape != D.shape or matchings.shape != (len(bounds) - 1, n):
        raise ValueError(
            f"need D and pose_dist (n, m) and matchings (k, n) for chunk {chunk}; got {D.shape}, "
            f"{pose_dist.shape}, {matchings.shape} (k = {len(bounds) - 1})"
        )
    nn = np.stack([a + D[:, a:b].argmin(1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])  # (k, n)
    rows = np.broadcast_to(np.arange(n), nn.shape)
    keep = matchings >= 0
    out = {"random": float(pose_dist.mean()), "kept": float(keep.mean())}
    if not keep.any():
        return out | {"matching": float("nan"), "nn_same_frames": float("nan"), "nn_same_rate": float("nan")}
    nn_err, nn_dist = pose_dist[rows, nn], D[rows, nn]
    best = np.argsort(nn_dist, axis=None, kind="stable")[: int(keep.sum())]
    out["matching"] = float(pose_dist[rows[keep], matchings[keep]].mean())
    out["nn_same_frames"] = float(nn_err[keep].mean())
    out["nn_same_rate"] = float(nn_err.ravel()[best].mean())
    return out


# ---------------------------------------------------------------------------------------------------------
# Algorithm 1 in one call


MATCH_WITH = ("start", "network")


def uses_network(epoch: int, match_with: str) -> bool:
    """Whether epoch ``epoch`` (0-based) matches with the network being trained rather than the start
    similarity: never in epoch 0; afterwards when ``match_with`` is ``"network"`` (the paper)."""
    if match_with not in MATCH_WITH:
        raise ValueError(f"unknown match_with {match_with!r}; expected one of {list(MATCH_WITH)}")
    return epoch > 0 and match_with == "network"


@dataclass(frozen=True)
class ReconciliationConfig:
    """Hyper-parameters of Algorithm 1 (defaults: a smoke-sized run).

    The matching costs are relative: ``lam1..lam3`` are multiplied by the median of the pair's squared
    distances and the outlier cost is the ``outlier_quantile`` of them, so one setting serves HOG and
    the CNN embedding alike.

    ``match_with`` is the similarity that chooses S', matches and ranks the negatives from epoch 1 on:
    ``"network"`` the CNN being trained (the paper's Algorithm 1), ``"start"`` the epoch-0 similarity in
    every epoch (ours: a CNN that judges posture worse than its start teaches itself its own mistakes;
    notebook 05 measures it).
    """

    epochs: int = 3
    steps_per_epoch: int = 30
    triplets_per_step: int = 48  # the paper: 300
    pairs_per_step: int = 4  # sequence pairs (S, S') per mini-batch, triplets split evenly; the paper: 1
    margin: float = 0.2  # delta of Eq. 4 (unit-norm embeddings: squared distances in [0, 4])
    augment: float = 0.5  # strength of the random translation / scaling / rotation (0: none; see notebook 05)
    lr: float = 3e-3  # the first step's; falls linearly to 0 over the training (linear_decay)
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
    match_with: str = "start"  # similarity of epochs >= 1: "start" (ours) or "network" (the paper)
    image_size: int = 64
    dim: int = 128
    width: int = 32
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {self.matcher!r}; expected one of {list(MATCHERS)}")
        if self.match_with not in MATCH_WITH:
            raise ValueError(f"unknown match_with {self.match_with!r}; expected one of {list(MATCH_WITH)}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.pairs_per_step < 1:
            raise ValueError("epochs, steps_per_epoch and pairs_per_step must be >= 1")
        if self.triplets_per_step < self.pairs_per_step:
            raise ValueError(
                f"triplets_per_step ({self.triplets_per_step}) must be >= pairs_per_step ({self.pairs_per_step})"
            )
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


def new_network(config: ReconciliationConfig, channels: int = 3, seed: int = 0) -> VGGS:
    """The randomly initialised VGG-S-like CNN of ``config`` (seeded), on the CPU."""
    torch.manual_seed(seed)
    return vgg_s(channels, config.image_size, config.dim, config.width)


def new_optimizer(net: VGGS, config: ReconciliationConfig) -> torch.optim.Optimizer:
    """Adam with the learning rate and weight decay of ``config``."""
    return torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def train_reconciliation(
    crops: np.ndarray,
    seq: np.ndarray,
    init_embedding: np.ndarray,
    config: ReconciliationConfig = ReconciliationConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
    joints: np.ndarray | None = None,
    activity: np.ndarray | None = None,
) -> tuple[VGGS, dict[str, list[float]]]:
    """Algorithm 1 in one resumable call: alternate sequence matching and triplet training of a CNN.

    ``crops`` uint8 ``(N, s, s, 3)`` person crops of the training frames, ``seq`` ``(N,)`` their sequence
    ids (each sequence's frames in time order), ``init_embedding`` ``(N, d0)`` the epoch-0 similarity
    (HOG-LDA). Epoch 0 matches with ``init_embedding``; later epochs with it too (``config.match_with
    == "start"``) or with the CNN being trained (``"network"``, the paper: S and S' embedded afresh at every
    step, sequence neighbours recomputed at each epoch start). Each step
    draws ``config.pairs_per_step`` pairs and splits ``config.triplets_per_step`` among them.
    Evaluation-only diagnostics, never used for training: ``joints`` ``(N, J, 2)`` (correct triplets,
    :func:`triplet_correct`) and ``activity`` ``(N,)`` (pairs of the same activity).
    Returns the network (eval mode) and the history per step: ``loss``, ``p``, ``matched`` (share of S
    frames matched), ``triplets`` (their number) and, with the diagnostics, ``correct`` (the number of
    correct triplets) and ``same_activity`` (the share of pairs of one activity).
    """
    if crops.shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(f"crops are {crops.shape[1:3]} px but config.image_size is {config.image_size}")
    if not len(crops) == len(seq) == len(init_embedding):
        raise ValueError(f"crops, seq, init_embedding lengths differ: {len(crops)}, {len(seq)}, {len(init_embedding)}")
    for name, v in (("joints", joints), ("activity", activity)):
        if v is not None and len(v) != len(crops):
            raise ValueError(f"{name} has {len(v)} rows for {len(crops)} crops")
    groups = sequence_groups(seq)
    k = min(config.neighbours, len(groups) - 1)
    if k < 1:
        raise ValueError("need at least 2 training sequences to match")
    net = new_network(config, crops.shape[3], seed).to(device)
    opt = new_optimizer(net, config)
    state: dict[str, Any] = {"neighbours": None, "epoch": -1}
    shares = np.diff(np.linspace(0, config.triplets_per_step, config.pairs_per_step + 1).round().astype(int))

    def embedding(idx: np.ndarray, epoch: int) -> np.ndarray:
        return embed_images(net, crops[idx]) if uses_network(epoch, config.match_with) else init_embedding[idx]

    def step_fn(step: int) -> dict[str, float]:
        epoch = step // config.steps_per_epoch
        if state["epoch"] != epoch:
            all_emb = embed_images(net, crops) if uses_network(epoch, config.match_with) else init_embedding
            state["neighbours"] = nearest_sequences(sequence_descriptors(all_emb, groups), k)
            state["epoch"] = epoch
        rng, gen = step_generators(seed, step)
        p = negative_percentile(epoch, config.p_start, config.p_step, config.p_floor)
        batch, matched, same = [], [], []
        for n_triplets in shares:
            s, s2 = choose_pair(state["neighbours"], rng)
            S, S2 = groups[s], groups[s2]
            E, E2 = embedding(S, epoch), embedding(S2, epoch)
            matchings = match_pair(E, E2, config)
            trip = triplets_from_matching(matchings, -squared_distances(E2, E2), p, n_triplets, rng)
            batch.append(np.stack([S[trip[:, 0]], S2[trip[:, 1]], S2[trip[:, 2]]], axis=1))
            matched.append((matchings >= 0).mean())
            if activity is not None:
                same.append(activity[S[0]] == activity[S2[0]])
        frames = np.concatenate(batch)
        for group in opt.param_groups:
            group["lr"] = linear_decay(step, config.epochs * config.steps_per_epoch, config.lr)
        loss = triplet_step(net, opt, crops, frames, config.margin, gen, config.augment) if len(frames) else 0.0
        logs = {"loss": loss}
        logs |= {"p": p, "matched": float(np.mean(matched)), "triplets": len(frames)}
        if joints is not None:
            logs["correct"] = int(triplet_correct(frames, joints).sum())
        if activity is not None:
            logs["same_activity"] = float(np.mean(same))
        return logs

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
