"""The Pose ConvNet of Purushwalkam & Gupta 2016 (Sec. 4.2): a backbone's conv1-conv5, one transposed
convolution that upsamples, and a 1x1 convolution per joint giving heatmaps, fine-tuned end to end to say
how much a backbone's initialisation helps 2D pose estimation.

- :func:`heatmap_targets` -- ``-1`` background, ``+1`` on the 3x3 neighbourhood of each joint's heatmap pixel.
- :func:`balanced_heatmap_loss` -- the Euclidean loss with positives and negatives weighted equally (the
  paper's gradient reweighting; without it the net predicts -1 everywhere); :func:`plain_heatmap_loss`.
- :func:`heatmap_centroids`, :func:`scaled_k` -- the prediction: centroid of the k highest pixels.
- :class:`PoseConvNet`, :class:`PoseConvConfig`, :func:`init_pose_convnet`, :func:`train_pose_convnet`,
  :func:`predict_joints` -- the network and its resumable training.
- :func:`pose_scores` -- per-image strict PCP (upper arms, lower arms, all parts) and PDJ of elbows and
  wrists (LSP-14 joints), the items of the paper's Tables 1 and 2.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lib.evaluation.metrics import PCP_STICKS, pcp_sticks, pdj
from lib.images import images_to_tensor
from lib.nets.vgg import VGGS
from lib.skeleton import FORMATS
from lib.training import resumable_training, step_generators

PDJ_THRESHOLDS = (0.1, 0.2, 0.3, 0.4)


def heatmap_targets(joints: np.ndarray, visible: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``(N, J, h, h)`` float32 in {-1, +1} (``h = size // stride``) and ``valid`` ``(N, J)`` bool.

    Joint ``(x, y)`` (input pixels) falls in heatmap pixel ``(row, col) = (floor(y / stride),
    floor(x / stride))``; that pixel and its 8 neighbours (inside the map) are +1, the rest -1. An
    invisible joint, or one outside the map, has no positive pixel and is not valid (excluded from the loss).
    """
    joints, visible = np.asarray(joints, np.float64), np.asarray(visible, bool)
    if joints.ndim != 3 or joints.shape[-1] != 2 or visible.shape != joints.shape[:2]:
        raise ValueError(f"expected joints (N, J, 2) and visible (N, J), got {joints.shape} and {visible.shape}")
    if stride < 1 or size < stride:
        raise ValueError(f"need 1 <= stride <= size, got stride {stride}, size {size}")
    h = size // stride
    col, row = np.floor(joints[..., 0] / stride), np.floor(joints[..., 1] / stride)
    valid = visible & (col >= 0) & (col < h) & (row >= 0) & (row < h)
    grid = np.arange(h)
    near_r = np.abs(grid[None, None, :] - row[..., None]) <= 1  # (N, J, h)
    near_c = np.abs(grid[None, None, :] - col[..., None]) <= 1
    pos = near_r[..., :, None] & near_c[..., None, :] & valid[..., None, None]
    return np.where(pos, 1.0, -1.0).astype(np.float32), valid


def _check_heatmaps(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4 or valid.shape != pred.shape[:2]:
        raise ValueError(
            f"expected pred and target (B, J, h, w) and valid (B, J), got {pred.shape}, {target.shape}, {valid.shape}"
        )


def balanced_heatmap_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid (sample, joint) of ``[sum_pos (p - t)^2 / n_pos + sum_neg (p - t)^2 / n_neg] / 2``:
    positive (target > 0) and negative pixels weigh equally. ``pred``, ``target`` ``(B, J, h, w)``,
    ``valid`` ``(B, J)`` bool; 0 (with a gradient) when nothing is valid."""
    _check_heatmaps(pred, target, valid)
    d2 = (pred - target) ** 2
    pos = (target > 0).to(pred.dtype)
    n_pos = pos.sum((-1, -2)).clamp(min=1)
    n_neg = (1 - pos).sum((-1, -2)).clamp(min=1)
    per = ((d2 * pos).sum((-1, -2)) / n_pos + (d2 * (1 - pos)).sum((-1, -2)) / n_neg) / 2
    return per[valid].mean() if valid.any() else pred.sum() * 0


def plain_heatmap_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The unweighted Euclidean loss: mean squared error over the pixels of the valid maps."""
    _check_heatmaps(pred, target, valid)
    per = ((pred - target) ** 2).mean((-1, -2))
    return per[valid].mean() if valid.any() else pred.sum() * 0


def heatmap_centroids(heatmaps: torch.Tensor | np.ndarray, k: int) -> np.ndarray:
    """Centroid of the ``k`` highest pixels of each map ``(B, J, h, w)`` -> ``(B, J, 2)`` ``(x, y)`` in
    heatmap pixels, pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``."""
    hm = torch.as_tensor(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got {tuple(hm.shape)}")
    h, w = hm.shape[-2:]
    if not 1 <= k <= h * w:
        raise ValueError(f"k must be in 1..{h * w} (the pixels of a {h}x{w} map), got {k}")
    top = hm.flatten(2).float().topk(k, dim=-1).indices  # (B, J, k)
    xy = torch.stack([top % w, top // w], -1).double() + 0.5
    return xy.mean(2).numpy()


def scaled_k(h: int) -> int:
    """The paper's k = 20 of a 60x60 map, scaled by map area: ``max(1, round(20 (h / 60)^2))``."""
    return max(1, round(20 * (h / 60) ** 2))


class PoseConvNet(nn.Module):
    """conv1-conv5 copied from ``backbone``, a transposed convolution upsampling to ``1 / heatmap_stride``
    of the input (ReLU, optional batch norm), and a 1x1 convolution to ``n_joints`` heatmaps."""

    def __init__(self, backbone: VGGS, n_joints: int = 14, heatmap_stride: int = 2, batch_norm: bool = False):
        super().__init__()
        up = backbone.conv_stride // heatmap_stride
        if up * heatmap_stride != backbone.conv_stride or up < 2 or up % 2:
            raise ValueError(
                f"heatmap_stride {heatmap_stride} must divide the conv5 stride {backbone.conv_stride} into an even "
                "upsampling factor"
            )
        self.features = copy.deepcopy(backbone.conv[:-1])  # conv1-conv5, without pool5
        self.heatmap_stride = heatmap_stride
        c = backbone.conv[-3].num_features  # conv5 channels (its batch norm)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, 2 * up, up, up // 2, bias=not batch_norm),
            nn.BatchNorm2d(c // 2) if batch_norm else nn.Identity(),
            nn.ReLU(True),
        )
        self.joints = nn.Conv2d(c // 2, n_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, n_joints, S / heatmap_stride, S / heatmap_stride)`` heatmaps."""
        return self.joints(self.up(self.features(x)))


@dataclass(frozen=True)
class PoseConvConfig:
    """Hyper-parameters (defaults: smoke-sized). The paper does not give its fine-tuning schedule; we use
    Adam."""

    steps: int = 150
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    heatmap_stride: int = 2
    k: int | None = None  # None: scaled_k of the heatmap size
    balanced: bool = True
    batch_norm: bool = False
    checkpoint_every: int = 50


def init_pose_convnet(backbone: VGGS, n_joints: int, config: PoseConvConfig, seed: int) -> PoseConvNet:
    """The Pose ConvNet at initialisation: ``backbone``'s conv layers (copied) and new layers drawn from ``seed``."""
    torch.manual_seed(seed)
    return PoseConvNet(backbone, n_joints, config.heatmap_stride, config.batch_norm)


def train_pose_convnet(
    backbone: VGGS,
    images: np.ndarray,
    joints: np.ndarray,
    visible: np.ndarray,
    config: PoseConvConfig = PoseConvConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[PoseConvNet, dict[str, list[float]]]:
    """Fine-tune a Pose ConvNet initialised from ``backbone`` on uint8 ``(N, S, S, 3)`` crops with joints
    ``(N, J, 2)`` (crop pixels) and ``visible`` ``(N, J)``. Returns the net (eval mode) and the history (``loss``)."""
    if images.ndim != 4 or images.shape[1] != images.shape[2] or len(images) != len(joints):
        raise ValueError(
            f"expected square crops (N, S, S, 3) and joints (N, J, 2), got {images.shape}, {np.shape(joints)}"
        )
    size = images.shape[1]
    targets, valid = heatmap_targets(joints, visible, size, config.heatmap_stride)
    net = init_pose_convnet(backbone, targets.shape[1], config, seed).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x_all = images_to_tensor(images, device)
    t_all, v_all = torch.as_tensor(targets, device=device), torch.as_tensor(valid, device=device)
    loss_fn = balanced_heatmap_loss if config.balanced else plain_heatmap_loss

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        idx = torch.as_tensor(rng.integers(len(images), size=config.batch), device=device)
        net.train()
        loss = loss_fn(net(x_all[idx]), t_all[idx], v_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    meta = {"model": "pose_convnet", "seed": seed, "n_images": len(images), "size": size, **dataclasses.asdict(config)}
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
def predict_heatmaps(net: PoseConvNet, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Heatmaps ``(N, J, h, h)`` float32 of uint8 crops ``(N, S, S, 3)`` (eval mode, restored afterwards)."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        out = [net(images_to_tensor(images[i : i + batch], device)).float().cpu() for i in range(0, len(images), batch)]
    finally:
        net.train(was_training)
    return torch.cat(out).numpy()


def predict_joints(net: PoseConvNet, images: np.ndarray, k: int | None = None) -> np.ndarray:
    """Joints ``(N, J, 2)`` in crop pixels: :func:`heatmap_centroids` of the top ``k`` (default
    :func:`scaled_k`) pixels times the heatmap stride."""
    hm = predict_heatmaps(net, images)
    k = scaled_k(hm.shape[-1]) if k is None else k
    return heatmap_centroids(hm, k) * net.heatmap_stride


def pose_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image scores ``(N,)`` of LSP-14 predictions: strict PCP (share of correct sticks, %) of
    ``upper_arms``, ``lower_arms`` and ``total`` (all 10 sticks), and PDJ (%) of ``elbow@t`` and ``wrist@t``
    (both sides) for t in :data:`PDJ_THRESHOLDS` x the torso diameter (left shoulder to right hip)."""
    ok = pcp_sticks(pred, gt)
    names = np.array([p for p, _, _ in PCP_STICKS])
    out = {p: 100.0 * ok[:, names == p].mean(1) for p in ("upper_arms", "lower_arms")}
    out["total"] = 100.0 * ok.mean(1)
    per_image = np.stack([pdj(pred[i : i + 1], gt[i : i + 1], PDJ_THRESHOLDS) for i in range(len(gt))])  # (N, T, J)
    lsp = FORMATS["lsp14"]
    for part in ("elbow", "wrist"):
        cols = [lsp.index(f"l_{part}"), lsp.index(f"r_{part}")]
        for k, t in enumerate(PDJ_THRESHOLDS):
            out[f"{part}@{t}"] = per_image[:, k, cols].mean(1)
    return out
