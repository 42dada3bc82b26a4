"""Unsupervised detection by a spatial transformer, re-synthesis over the background, and the gravity prior
(Honari et al. 2022, Sec. 3.1, 3.2 and S.1; notebook ``07_temporal_representation``).

A box is ``(sx, sy, ux, uy)`` in ``F.affine_grid`` normalised coordinates (x right, y *down*, the image
spans [-1, 1] from pixel edge to pixel edge): the crop covers ``[ux - sx, ux + sx] x [uy - sy, uy + sy]``, so
``sx = 0.5`` is half the image width.

- :class:`Detector` -- a ResNet18 on the downsampled frame -> a box, scales in ``[s_min, 1]`` (sigmoid),
  centres in ``(-1, 1)`` (tanh).
- :func:`box_to_theta`, :func:`box_to_pixels`, :func:`windows_to_box`, :func:`box_iou` -- conversions.
- :func:`crop`, :func:`uncrop`, :func:`resynthesize` -- the STN, its inverse (zero outside the box) and
  Eq. 1, ``I~ = M * D + (1 - M) * B``.
- :func:`optimal_mask`, :func:`soft_iou` -- diagnosis with the ground truth: the mask that best composites a
  given decoded image over the background (Eq. 1 by least squares), and the overlap of a soft mask with the
  true person mask.
- :func:`median_background` -- the per-pixel median over a static camera's video (Sec. S.1).
- :func:`box_prior` -- the Gaussian prior on the mini-batch *mean* box (Sec. S.1).
- :func:`constant_acceleration_loss`, :func:`order_loss`, :func:`scale_loss`, :func:`track_loss` -- the
  gravity losses of Sec. 3.2 on four equidistant frames (:func:`sample_equidistant`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.nets.resnet import resnet

S_MIN = 0.1  # smallest box scale: a box never degenerates


class Detector(nn.Module):
    """ResNet18 (first-stage ``width`` channels) on a ``(B, 3, input_size, input_size)`` image -> box ``(B, 4)``.

    The head starts at zero weights with biases giving the box ``(0.5, 0.5, 0, 0)`` (half the image, centred),
    the usual identity-like start of a spatial transformer.
    """

    def __init__(self, width: int = 8, input_size: int = 32, s_min: float = S_MIN):
        super().__init__()
        if not 0 < s_min < 0.5:
            raise ValueError(f"s_min must be in (0, 0.5), got {s_min}")
        self.input_size, self.s_min = input_size, s_min
        self.net = resnet(18, width)
        self.head = nn.Linear(self.net.out_dim, 4)
        nn.init.zeros_(self.head.weight)
        start = (0.5 - s_min) / (1 - s_min)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([np.log(start / (1 - start))] * 2 + [0.0, 0.0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Full frames ``(B, 3, H, W)`` in [0, 1] -> boxes ``(B, 4)`` (resized to ``input_size`` first)."""
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="area")
        raw = self.head(self.net.pooled(x * 2 - 1))
        scales = self.s_min + (1 - self.s_min) * torch.sigmoid(raw[:, :2])
        return torch.cat([scales, torch.tanh(raw[:, 2:])], 1)


def _check_box(box: torch.Tensor) -> None:
    if box.ndim != 2 or box.shape[1] != 4:
        raise ValueError(f"box must be (B, 4) = (sx, sy, ux, uy), got shape {tuple(box.shape)}")
    if bool((box[:, :2] <= 0).any()):
        raise ValueError(f"box scales must be > 0, got min {float(box[:, :2].min())}: a degenerate box")


def box_to_theta(box: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` boxes -> ``(B, 2, 3)`` affine matrices ``[[sx, 0, ux], [0, sy, uy]]`` (crop -> image)."""
    _check_box(box)
    sx, sy, ux, uy = box.unbind(1)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, ux], 1), torch.stack([zero, sy, uy], 1)], 1)


def inverse_theta(box: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 3)`` inverse of :func:`box_to_theta`: ``[[1/sx, 0, -ux/sx], [0, 1/sy, -uy/sy]]`` (image -> crop)."""
    _check_box(box)
    sx, sy, ux, uy = box.unbind(1)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([1 / sx, zero, -ux / sx], 1), torch.stack([zero, 1 / sy, -uy / sy], 1)], 1)


def box_to_pixels(box: torch.Tensor | np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``(B, 4)`` boxes -> ``(B, 4)`` float pixel edges ``x0, y0, x1, y1`` in an image of ``size`` (H, W)."""
    h, w = (size, size) if isinstance(size, int) else size
    b = box.detach().cpu().numpy() if isinstance(box, torch.Tensor) else np.asarray(box, np.float64)
    sx, sy, ux, uy = b.T
    return np.column_stack([(ux - sx + 1) * w / 2, (uy - sy + 1) * h / 2, (ux + sx + 1) * w / 2, (uy + sy + 1) * h / 2])


def windows_to_box(windows: np.ndarray, size: int | tuple[int, int], s_min: float = S_MIN) -> np.ndarray:
    """Square pixel windows ``(B, 3)`` ``cx, cy, side`` (:meth:`lib.world.synth.World.crop_boxes`) -> boxes
    ``(B, 4)`` float32, scales floored at ``s_min``."""
    h, w = (size, size) if isinstance(size, int) else size
    cx, cy, side = np.asarray(windows, np.float64).T
    box = np.column_stack([side / w, side / h, 2 * cx / w - 1, 2 * cy / h - 1])
    box[:, :2] = np.maximum(box[:, :2], s_min)
    return box.astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of pixel boxes ``(n, 4)`` ``x0, y0, x1, y1``, row by row -> ``(n,)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"box_iou needs two (n, 4) arrays, got {a.shape} and {b.shape}")
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area - inter, 1e-12)


def crop(images: torch.Tensor, box: torch.Tensor, size: int) -> torch.Tensor:
    """The STN crop: ``(B, C, H, W)`` images and ``(B, 4)`` boxes -> ``(B, C, size, size)`` (bilinear,
    ``align_corners=False``, zeros outside the image), differentiable in the box."""
    grid = F.affine_grid(
        box_to_theta(box).to(images.dtype), [len(images), images.shape[1], size, size], align_corners=False
    )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def uncrop(crops: torch.Tensor, box: torch.Tensor, out_size: int | tuple[int, int]) -> torch.Tensor:
    """The inverse STN: ``(B, C, s, s)`` crops back into ``(B, C, H, W)`` images at ``box``, 0 outside it."""
    h, w = (out_size, out_size) if isinstance(out_size, int) else out_size
    grid = F.affine_grid(inverse_theta(box).to(crops.dtype), [len(crops), crops.shape[1], h, w], align_corners=False)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resynthesize(
    decoded: torch.Tensor, mask: torch.Tensor, box: torch.Tensor, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 1: ``I~ = M * D + (1 - M) * B`` with the decoded crop ``D`` ``(B, 3, s, s)`` and mask ``M``
    ``(B, 1, s, s)`` pasted back at ``box`` over ``background`` ``(B, 3, H, W)``.

    Returns ``(image, mask, decoded)`` at full resolution; outside the box the mask is 0 and the image is
    the background.
    """
    size = background.shape[-2:]
    m, d = uncrop(mask, box, size), uncrop(decoded, box, size)
    return m * d + (1 - m) * background, m, d


def optimal_mask(decoded: np.ndarray, frames: np.ndarray, background: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """The per-pixel mask ``M`` in [0, 1] that makes Eq. 1, ``M * D + (1 - M) * B``, closest to the frame ``I`` in
    squared error, for a *given* decoded image ``D``: ``clip(<I - B, D - B> / |D - B|^2, 0, 1)`` over the colour
    channels (0 where ``|D - B|^2 <= eps``, where the mask does not matter). Arrays ``(..., H, W, 3)`` in
    [0, 1], channels last -> ``(..., H, W)``. It says where the decoder draws the frame better than the
    background does: a mask head can do no better than this for that ``D``."""
    d, i, b = (np.asarray(a, np.float64) for a in (decoded, frames, background))
    if not d.shape == i.shape == b.shape or d.shape[-1] != 3:
        raise ValueError(
            f"decoded, frames, background must share a (..., H, W, 3) shape, got {d.shape}, {i.shape}, {b.shape}"
        )
    db = d - b
    den = (db**2).sum(-1)
    num = ((i - b) * db).sum(-1)
    return np.where(den > eps, np.clip(num / np.maximum(den, eps), 0, 1), 0.0)


def soft_iou(mask: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Soft intersection over union ``sum min(M, G) / sum max(M, G)`` of masks ``(N, H, W)`` in [0, 1] with the
    true person masks ``(N, H, W)`` (bool or [0, 1]) -> ``(N,)``; the usual IoU for binary masks, NaN where
    both are empty."""
    m, g = np.asarray(mask, np.float64), np.asarray(person, np.float64)
    if m.shape != g.shape or m.ndim != 3:
        raise ValueError(f"soft_iou needs two (N, H, W) masks of one shape, got {m.shape} and {g.shape}")
    if m.size and (m.min() < 0 or m.max() > 1 or g.min() < 0 or g.max() > 1):
        raise ValueError("soft_iou needs masks in [0, 1]")
    inter, union = np.minimum(m, g).sum((1, 2)), np.maximum(m, g).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def median_background(frames: np.ndarray) -> np.ndarray:
    """Per-pixel median over the frames of one static-camera video: ``(T, H, W, 3)`` uint8 -> ``(H, W, 3)``
    uint8 (rounded). A person who stays at a place for more than half the video stays in it."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames (T >= 1, H, W, 3), got {frames.dtype} array of shape {frames.shape}")
    return np.round(np.median(frames, axis=0)).astype(np.uint8)


def box_prior(box: torch.Tensor, size: float = 0.5, centre: bool = True) -> torch.Tensor:
    """Gaussian prior on the mini-batch mean box: ``(mean sx - size)^2 + (mean sy - size)^2`` and, with
    ``centre``, ``+ (mean ux)^2 + (mean uy)^2``. Never on individual boxes (Sec. S.1). Returns a scalar."""
    _check_box(box)
    m = box.mean(0)
    loss = (m[0] - size) ** 2 + (m[1] - size) ** 2
    return loss + m[2] ** 2 + m[3] ** 2 if centre else loss


# ---------------------------------------------------------------------------------------------------------
# gravity (Sec. 3.2), on four equidistant times t1..t4 of one video


def constant_acceleration_loss(u: torch.Tensor) -> torch.Tensor:
    """``((u1 + 3 u3) - (u4 + 3 u2))^2`` per row of ``u`` ``(B, 4)``: the squared third finite difference of the
    box centre's height, zero for any quadratic (free-fall) trajectory. Returns ``(B,)``."""
    if u.ndim != 2 or u.shape[1] != 4:
        raise ValueError(f"u must be (B, 4) positions at four equidistant times, got {tuple(u.shape)}")
    return ((u[:, 0] + 3 * u[:, 2]) - (u[:, 3] + 3 * u[:, 1])) ** 2


def order_loss(u: torch.Tensor, tau: float) -> torch.Tensor:
    """``sum_t max(0, tau - (u_{t+1} - u_t))`` per row of ``u`` ``(B, 4)``: the box centre must move *down*
    the image by at least ``tau`` per step. The paper writes ``u_t - u_{t+1}`` because its y axis points up;
    in image (``affine_grid``) coordinates y grows downwards, so a falling diver's ``u`` increases and the
    sign flips. Returns ``(B,)``."""
    if u.ndim != 2 or u.shape[1] != 4:
        raise ValueError(f"u must be (B, 4) positions at four equidistant times, got {tuple(u.shape)}")
    return F.relu(tau - (u[:, 1:] - u[:, :-1])).sum(1)


def scale_loss(s: torch.Tensor) -> torch.Tensor:
    """``sum_t ||(sx_t, sy_t) - (sx_{t+1}, sy_{t+1})||^2`` per row of ``s`` ``(B, 4, 2)`` -> ``(B,)``."""
    if s.ndim != 3 or s.shape[1:] != (4, 2):
        raise ValueError(f"s must be (B, 4, 2) box scales at four equidistant times, got {tuple(s.shape)}")
    return ((s[:, 1:] - s[:, :-1]) ** 2).sum((1, 2))


def track_loss(boxes: torch.Tensor, tau: float) -> torch.Tensor:
    """``L_track = L_const-acc + L_order + L_sc`` on boxes ``(B, 4 times, 4)`` -> ``(B,)``."""
    if boxes.ndim != 3 or boxes.shape[1:] != (4, 4):
        raise ValueError(f"boxes must be (B, 4 times, 4), got {tuple(boxes.shape)}")
    u = boxes[:, :, 3]
    return constant_acceleration_loss(u) + order_loss(u, tau) + scale_loss(boxes[:, :, :2])


def sample_equidistant(groups: Sequence[np.ndarray], n: int, spacing: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 4)`` frame indices ``t, t + k, t + 2k, t + 3k`` (``k = spacing``) of one video each.

    ``groups``: the frame indices of each video in time order (:func:`lib.training.sequence_groups`).
    Videos shorter than ``3 * spacing + 1`` frames are skipped; a ValueError when none is long enough.
    """
    if spacing < 1 or n < 1:
        raise ValueError(f"spacing and n must be >= 1, got spacing={spacing}, n={n}")
    usable = [g for g in groups if len(g) >= 3 * spacing + 1]
    if not usable:
        longest = max((len(g) for g in groups), default=0)
        raise ValueError(f"no video has the {3 * spacing + 1} frames spacing={spacing} needs (longest: {longest})")
    out = np.empty((n, 4), np.int64)
    for i in range(n):
        g = usable[int(rng.integers(len(usable)))]
        t = int(rng.integers(len(g) - 3 * spacing))
        out[i] = g[t + spacing * np.arange(4)]
    return out
