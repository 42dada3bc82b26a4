"""Frozen-feature 3D pose probe (Honari et al. 2022, second phase).

Features are frozen; a small regressor maps them to the root-relative 3D pose (camera frame, mm) and is
trained on a fraction of the labelled frames (0.3 % ... 100 % in the paper). Two heads, as in the paper:

- ``"mlp"``: two hidden layers of 2048 with ReLU and dropout 0.5.
- ``"resmlp"``: the residual MLP of Martinez et al. 2017 that Honari et al. use: a linear layer to 1024,
  three residual blocks (two Linear-BatchNorm-ReLU-Dropout layers of 1024 each plus the skip), a linear
  output.

:func:`train_pose_probe` fits one (on a random or, as the paper, a uniform "every K-th frame" subset of the
labels), :func:`evaluate_pose_probe` scores it by MPJPE, N-MPJPE and P-MPJPE (:mod:`lib.evaluation.metrics`),
:func:`per_pose_errors` gives those errors per pose (the items of a bootstrap interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lib.evaluation.metrics import mpjpe, n_mpjpe, p_mpjpe
from lib.runtime import check_finite

PROBES = ("mlp", "resmlp")
SUBSAMPLING = ("random", "uniform")
METRICS = {"mpjpe": mpjpe, "n_mpjpe": n_mpjpe, "p_mpjpe": p_mpjpe}


class ResidualBlock(nn.Module):
    """Two Linear-BatchNorm-ReLU-Dropout layers with a skip connection (Martinez et al. 2017)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        layers = []
        for _ in range(2):
            layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(True), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def pose_probe(kind: str, in_dim: int, n_joints: int, width: int | None = None, dropout: float = 0.5) -> nn.Module:
    """The probe head ``kind`` (``"mlp"`` or ``"resmlp"``): ``(B, in_dim)`` -> ``(B, n_joints * 3)``.

    ``width``: hidden size; ``None`` is the paper's (2048 for ``mlp``, 1024 for ``resmlp``). Smoke runs may
    pass a smaller one.
    """
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r}; expected one of {PROBES}")
    if width is not None and width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if kind == "mlp":
        w = width or 2048
        return nn.Sequential(
            nn.Linear(in_dim, w), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(w, w), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(w, n_joints * 3),
        )  # fmt: skip
    w = width or 1024
    return nn.Sequential(
        nn.Linear(in_dim, w), *[ResidualBlock(w, dropout) for _ in range(3)], nn.Linear(w, n_joints * 3)
    )


@dataclass
class PoseProbe:
    """A trained probe with the feature standardisation it was trained with."""

    model: nn.Module
    mean: np.ndarray
    std: np.ndarray
    n_joints: int

    def predict(self, features: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """``(N, D)`` features -> ``(N, J, 3)`` root-relative poses (mm)."""
        device = next(self.model.parameters()).device
        x = (np.asarray(features, np.float32) - self.mean) / self.std
        self.model.eval()
        with torch.no_grad():
            out = [
                self.model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu().numpy()
                for i in range(0, len(x), batch_size)
            ]
        return np.concatenate(out).reshape(len(x), self.n_joints, 3)


def root_relative(poses: np.ndarray, root: int = 0) -> np.ndarray:
    """``(N, J, 3)`` poses minus their root joint (canonical order: the pelvis)."""
    poses = np.asarray(poses, np.float32)
    return poses - poses[:, root : root + 1]


def labelled_frames(n: int, fraction: float, subsample: str = "random", seed: int = 0) -> np.ndarray:
    """The sorted indices of the labelled frames among ``n``: ``"random"``, a random ``round(fraction * n)`` of
    them (at least 2), or ``"uniform"``, every K-th frame with ``K = round(1 / fraction)`` capped at ``n // 2``
    (so at least 2 are kept), as Honari et al. sub-sample their training videos."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if subsample not in SUBSAMPLING:
        raise ValueError(f"subsample must be one of {SUBSAMPLING}, got {subsample!r}")
    if n < 2:
        raise ValueError(f"a probe needs at least 2 labelled frames, got {n}")
    if subsample == "uniform":
        return np.arange(0, n, min(max(1, round(1 / fraction)), n // 2))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, max(2, int(round(fraction * n))), replace=False))


def train_pose_probe(
    features: np.ndarray,
    poses: np.ndarray,
    kind: str = "mlp",
    fraction: float = 1.0,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 1e-3,
    width: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    subsample: str = "random",
) -> PoseProbe:
    """Fit a probe on a ``fraction`` of the labelled frames (at least 2 frames).

    ``subsample``: which frames are labelled (:func:`labelled_frames`): ``"random"`` or ``"uniform"`` (every
    K-th frame; pass the frames in video and time order).

    ``features`` ``(N, D)`` frozen features; ``poses`` ``(N, J, 3)`` root-relative targets (mm, see
    :func:`root_relative`). Features are standardised with the labelled frames' statistics (standard
    deviations floored at 1 % of their mean); the loss is
    the mean squared joint error in metres; Adam; the subset and the weights depend only on ``seed``.
    ``width`` as in :func:`pose_probe`.
    """
    features, poses = np.asarray(features, np.float32), np.asarray(poses, np.float32)
    if features.ndim != 2 or poses.ndim != 3 or poses.shape[2] != 3 or len(features) != len(poses):
        raise ValueError(f"expected features (N, D) and poses (N, J, 3), got {features.shape} and {poses.shape}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    sel = labelled_frames(len(features), fraction, subsample, seed)
    n = len(sel)
    x, y = features[sel], poses[sel].reshape(n, -1) / 1000.0
    mean, std = x.mean(0), x.std(0)
    # floor near-constant dimensions (dead ReLUs of a random CNN): else test-time noise in them explodes
    std = np.maximum(std, 0.01 * std.mean() + 1e-6)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = pose_probe(kind, x.shape[1], poses.shape[1], width).to(device)
    xt = torch.from_numpy((x - mean) / std).to(device)
    yt = torch.from_numpy(y).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            b = perm[i : i + batch_size]
            if len(b) < 2 and kind == "resmlp":  # batch norm needs two samples
                continue
            loss = ((model(xt[b]) - yt[b]) ** 2).mean()
            check_finite(step, probe_loss=loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    probe = PoseProbe(model=model, mean=mean, std=std, n_joints=poses.shape[1])
    probe.model.eval()
    return probe


def evaluate_pose_probe(probe: PoseProbe, features: np.ndarray, poses: np.ndarray) -> dict[str, float]:
    """MPJPE, N-MPJPE and P-MPJPE (mm) of the probe's predictions against root-relative ``poses``."""
    pred = probe.predict(features) * 1000.0
    poses = np.asarray(poses, np.float64)
    return {"mpjpe": mpjpe(pred, poses), "n_mpjpe": n_mpjpe(pred, poses), "p_mpjpe": p_mpjpe(pred, poses)}


def per_pose_errors(
    pred: np.ndarray, poses: np.ndarray, metrics: tuple[str, ...] = ("mpjpe", "n_mpjpe")
) -> dict[str, np.ndarray]:
    """Each pose's error ``(N,)`` (mm) by each of ``metrics`` (``mpjpe``, ``n_mpjpe``, ``p_mpjpe``) for predictions
    ``pred`` and root-relative ``poses`` ``(N, J, 3)``: the per-item values whose means the metrics report."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; expected some of {list(METRICS)}")
    pred, poses = np.asarray(pred, np.float64), np.asarray(poses, np.float64)
    return {m: np.array([METRICS[m](pred[i : i + 1], poses[i : i + 1]) for i in range(len(pred))]) for m in metrics}
