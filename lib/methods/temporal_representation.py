"""Temporal representation learning on monocular videos (Honari, Constantin, Rhodin, Salzmann & Fua,
IEEE TPAMI 2022; notebook ``07_temporal_representation``).

A spatial transformer (:mod:`lib.methods.stn`) crops the person; one encoder trunk with two output layers
splits the crop's code into a *time-variant* part (TV, pose; from a colour-jittered crop) and a
*time-invariant* part (TI, appearance; swapped between frames of the same video); a decoder re-synthesises
the crop and a mask, pasted back over the background (Eq. 1) and compared with the frame in pixels and in
the features of a frozen ResNet18 (Eq. 2). The distance-based similarity loss (DSL, Eq. 5-6) makes TV codes
of nearby frames similar and of distant frames dissimilar, with weights that change linearly with the
frame distance. On divers, the gravity losses of Sec. 3.2 pre-train the detector.

- :func:`dsl_weights`, :func:`distance_similarity_loss`, :func:`dsl_all` -- Eq. 5 and 6;
  :func:`css_loss` -- the InfoNCE baseline of Eq. 3.
- :func:`sample_frame_quads` -- (reference, near, intermediate, far) frames of one video;
  :func:`ti_derangement` -- the TI swap; :func:`colour_jitter` -- the TV input's jitter.
- :class:`Decoder`, :class:`TemporalRepModel`, :func:`feature_network` -- the networks (Sec. S.1.1).
- :class:`TemporalRepConfig` (and :data:`VARIANTS`, the ablation rows) -- every model with one code path;
  :class:`VideoFrames`, :func:`video_frames` -- the training videos with their backgrounds;
  :func:`objective` -- every loss term of Eq. 14 per item; :func:`train_temporal_rep` (resumable),
  :func:`encode`, :func:`reconstruct`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.methods.stn import (
    Detector,
    box_iou,
    box_prior,
    box_to_pixels,
    crop,
    median_background,
    resynthesize,
    sample_equidistant,
    track_loss,
    windows_to_box,
)
from lib.nets.resnet import resnet
from lib.training import resumable_training, sequence_groups, step_generators
from lib.world.synth import World

# ---------------------------------------------------------------------------------------------------------
# the distance-based similarity loss (Eq. 5, 6) and the CSS baseline (Eq. 3)


def _check_distances(pos_max: int, d_max: int) -> None:
    if d_max < 2 or pos_max < 1 or pos_max >= d_max / 2:
        raise ValueError(
            f"need 1 <= pos_max < d_max / 2 and d_max >= 2 (else DSL's similar and dissimilar ranges overlap), "
            f"got pos_max={pos_max}, d_max={d_max}"
        )


def dsl_weights(d: torch.Tensor | np.ndarray, d_max: float) -> tuple[Any, Any]:
    """Eq. 5's weights at frame distance ``d``: ``w_sim = 1 - 2d/d_max`` for ``d <= d_max/2`` (else 0) and
    ``w_dis = min(2d/d_max - 1, 1)`` beyond (else 0). Both are 0 at ``d = d_max/2``; ``w_dis = 1`` from
    ``d_max`` on. Works on numpy arrays and torch tensors alike."""
    if d_max <= 0:
        raise ValueError(f"d_max must be > 0, got {d_max}")
    lib = torch if isinstance(d, torch.Tensor) else np
    r = 2 * abs(d) / d_max
    near = r <= 1
    w_sim = lib.where(near, 1 - r, 0 * r)
    w_dis = lib.where(near, 0 * r, lib.clip(r - 1, 0, 1))
    return w_sim, w_dis


def distance_similarity_loss(z_m: torch.Tensor, z_n: torch.Tensor, d: torch.Tensor, d_max: float) -> torch.Tensor:
    """Eq. 5 per pair: ``w_sim(d) |1 - sim| + w_dis(d) |sim|`` with ``sim`` the cosine similarity of the rows
    of ``z_m``, ``z_n`` ``(B, D)`` and ``d`` ``(B,)`` their frame distances -> ``(B,)``."""
    sim = F.cosine_similarity(z_m, z_n, dim=1, eps=1e-8)
    w_sim, w_dis = dsl_weights(d.to(sim.dtype), d_max)
    return w_sim * (1 - sim).abs() + w_dis * sim.abs()


def dsl_all(z: torch.Tensor, t: torch.Tensor, d_max: float) -> torch.Tensor:
    """Eq. 6: ``L_DSL(ref, near) + L_DSL(ref, intermediate) + L_DSL(ref, far)`` for codes ``z`` ``(B, 4, D)``
    of (reference, near, intermediate, far) frames at times ``t`` ``(B, 4)`` -> ``(B,)``."""
    return sum(distance_similarity_loss(z[:, 0], z[:, k], (t[:, k] - t[:, 0]).abs(), d_max) for k in (1, 2, 3))


def css_loss(z: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Eq. 3 (InfoNCE) for codes ``z`` ``(B, 1 + 1 + n_neg, D)``: anchor, one positive, negatives; cosine
    similarity over temperature ``tau`` -> ``(B,)``."""
    if z.ndim != 3 or z.shape[1] < 3:
        raise ValueError(f"z must be (B, anchor + positive + >= 1 negative, D), got {tuple(z.shape)}")
    sims = F.cosine_similarity(z[:, :1], z[:, 1:], dim=2, eps=1e-8) / tau
    return -F.log_softmax(sims, dim=1)[:, 0]


# ---------------------------------------------------------------------------------------------------------
# sampling, swapping, jitter


def usable_groups(groups: Sequence[np.ndarray], d_max: int) -> list[int]:
    """Indices of the videos long enough to hold a frame pair ``d_max`` apart (``> d_max`` frames)."""
    return [i for i, g in enumerate(groups) if len(g) > d_max]


def sample_frame_quads(
    groups: Sequence[np.ndarray],
    n: int,
    rng: np.random.Generator,
    pos_max: int,
    d_max: int,
    third: str = "intermediate",
) -> np.ndarray:
    """``(n, 4)`` frame indices (reference, near, third, far) of one video each.

    ``near``: ``1 <= |d| <= pos_max`` from the reference; ``far``: ``|d| >= d_max``; ``third``:
    ``"intermediate"`` (``pos_max < |d| < d_max``, for DSL) or ``"far"`` (a second far frame, for the CSS
    baseline's two negatives). ``groups``: each video's frame indices in time order. Videos with no frame
    pair ``d_max`` apart are skipped (:func:`usable_groups`); a ValueError when none is left.
    """
    _check_distances(pos_max, d_max)
    if third not in ("intermediate", "far"):
        raise ValueError(f"third must be 'intermediate' or 'far', got {third!r}")
    usable = usable_groups(groups, d_max)
    if not usable:
        longest = max((len(g) for g in groups), default=0)
        raise ValueError(f"no video is long enough for d_max={d_max} (needs {d_max + 1} frames, longest: {longest})")
    out = np.empty((n, 4), np.int64)
    for i in range(n):
        g = groups[usable[int(rng.integers(len(usable)))]]
        T = len(g)
        t = np.arange(T)
        refs = t[(t <= T - 1 - d_max) | (t >= d_max)]
        r = int(refs[rng.integers(len(refs))])
        d = np.abs(t - r)
        far = t[d >= d_max]
        pick = [
            rng.choice(t[(d >= 1) & (d <= pos_max)]),
            rng.choice(t[(d > pos_max) & (d < d_max)]) if third == "intermediate" else None,
            rng.choice(far),
        ]
        if third == "far":
            rest = far[far != pick[2]]
            pick[1] = rng.choice(rest) if len(rest) else pick[2]
        out[i] = g[[r, *pick]]
    return out


def ti_derangement(video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation ``p`` of ``len(video)`` items with ``video[p[i]] == video[i]`` and ``p[i] != i``: item ``i``
    takes the time-invariant code of another frame of its own video (uniform over derangements)."""
    video = np.asarray(video)
    perm = np.arange(len(video))
    for v in np.unique(video):
        members = np.flatnonzero(video == v)
        if len(members) < 2:
            raise ValueError(f"video {v} has one frame in the batch; a TI swap needs two frames of every video")
        while True:
            p = rng.permutation(len(members))
            if np.all(p != np.arange(len(members))):
                break
        perm[members] = members[p]
    return perm


def colour_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
) -> torch.Tensor:
    """Random colour jitter of ``(B, 3, H, W)`` RGB images in [0, 1], one draw per image, in this order:
    brightness ``x * b``; contrast ``(x - mean grey) * c + mean grey``; saturation ``(x - grey) * s + grey``
    (``b, c, s ~ U[1 - strength, 1 + strength]``); hue: a rotation of the chroma plane of YIQ by
    ``h * 2 pi`` (``h ~ U[-hue, hue]``). Clamped to [0, 1]. All strengths 0: the identity."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"colour_jitter needs (B, 3, H, W) RGB images, got {tuple(x.shape)}")
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError(f"strengths must be >= 0 and hue <= 0.5, got {brightness, contrast, saturation, hue}")
    B = len(x)

    def factor(strength: float) -> torch.Tensor:
        u = torch.rand(B, generator=generator).to(x) * 2 - 1
        return (1 + strength * u).view(B, 1, 1, 1)

    grey_w = torch.tensor([0.299, 0.587, 0.114]).to(x).view(1, 3, 1, 1)
    if brightness:
        x = (x * factor(brightness)).clamp(0, 1)
    if contrast:
        m = (x * grey_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = ((x - m) * factor(contrast) + m).clamp(0, 1)
    if saturation:
        g = (x * grey_w).sum(1, keepdim=True)
        x = ((x - g) * factor(saturation) + g).clamp(0, 1)
    if hue:
        a = (torch.rand(B, generator=generator).to(x) * 2 - 1) * hue * 2 * np.pi
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]).to(x)
        cos, sin, one, zero = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
        rot = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                           torch.stack([zero, sin, cos], 1)], 1)  # fmt: skip
        m = torch.linalg.inv(yiq) @ rot @ yiq  # (B, 3, 3) in RGB
        x = torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)
    return x


# ---------------------------------------------------------------------------------------------------------
# the networks


class Decoder(nn.Module):
    """Sec. S.1.1: TV -> FC + ReLU + dropout -> ``2w x g x g``; TI likewise; concatenated ``4w x g x g``
    (``g = crop / 8``); three stages of (bilinear x2, three 3x3 convs + ReLU) to ``2w``, ``w``, ``w/2``
    channels; a 3x3 conv to 4 channels: RGB crop (sigmoid) and mask (sigmoid). ``w = 64`` gives the paper's
    128 / 256 / 128 / 64 / 32 channels (``2w`` per stream). Initialisation (the paper does not say): He for
    the hidden layers, zeros for the output conv, so decoding starts from a flat grey crop and a mask of 0.5."""

    def __init__(self, tv_dim: int, ti_dim: int, crop_size: int, width: int, dropout: float = 0.1):
        super().__init__()
        if crop_size % 8 or crop_size < 8:
            valid = ", ".join(str(8 * k) for k in range(1, 17))
            raise ValueError(f"crop size {crop_size} cannot be reached by three x2 stages; valid: {valid}, ...")
        self.grid, c = crop_size // 8, max(2 * width, 4)
        n = c * self.grid**2
        self.fc_tv = nn.Sequential(nn.Linear(tv_dim, n), nn.ReLU(True), nn.Dropout(dropout))
        self.fc_ti = nn.Sequential(nn.Linear(ti_dim, n), nn.ReLU(True), nn.Dropout(dropout))
        stages, cin = [], 2 * c
        for cout in (c, max(c // 2, 4), max(c // 4, 4)):
            convs = []
            for k in range(3):
                convs += [nn.Conv2d(cin if k == 0 else cout, cout, 3, 1, 1), nn.ReLU(True)]
            stages += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), *convs]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out = nn.Conv2d(cin, 4, 3, 1, 1)
        self.channels = c
        for m in self.modules():  # He initialisation: PyTorch's default shrinks the signal through 9 ReLU convs
            if isinstance(m, nn.Conv2d | nn.Linear) and m is not self.out:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)  # start flat (grey crop, mask 0.5) instead of random noise
        nn.init.zeros_(self.out.bias)

    def forward(self, tv: torch.Tensor, ti: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, tv_dim)``, ``(B, ti_dim)`` -> RGB crop ``(B, 3, s, s)`` and mask ``(B, 1, s, s)`` in (0, 1)."""
        shape = (-1, self.channels, self.grid, self.grid)
        h = torch.cat([self.fc_tv(tv).view(shape), self.fc_ti(ti).view(shape)], 1)
        y = torch.sigmoid(self.out(self.stages(h)))
        return y[:, :3], y[:, 3:]


CROPS = ("stn", "gt", "frame")
CONTRASTIVE = ("dsl", "css", None)


@dataclass(frozen=True)
class TemporalRepConfig:
    """One model of the ablation, and its training. Defaults: the smoke profile's sizes.

    ``crop``: ``"stn"`` (the detector), ``"gt"`` (ground-truth person windows, Table 6's "cropped") or
    ``"frame"`` (the whole frame resized to the crop, no detector). ``decode``: re-synthesis and Eq. 2.
    ``split``: TV/TI split (jittered TV input, TI swapped within a video); without it the whole latent
    (TV + TI) is time-variant: the contrastive loss acts on all of it, no swap, no jitter.
    ``contrastive``: ``"dsl"`` (Eq. 6), ``"css"`` (Eq. 3: near positive, two far negatives) or None.
    ``gravity``: the first ``pretrain_steps`` steps use equidistant frames and ``L_track`` (no contrastive
    loss); then the contrastive loss is switched on and the gravity loss off. ``box_prior``: Sec. S.1's
    prior on the batch mean box (``centre``: also its position), weight ``prior_weight``.
    Loss weights as Eq. 14 (``lam``, ``rho`` in Eq. 2; ``alpha`` DSL/CSS; ``gamma`` L_track).
    ``batch``: tuples of 4 frames of one video per step.
    """

    crop: str = "stn"
    decode: bool = True
    split: bool = True
    contrastive: str | None = "dsl"
    gravity: bool = False
    box_prior: bool = True
    centre_prior: bool = True
    steps: int = 100
    pretrain_steps: int = 0
    batch: int = 4
    lr: float = 1e-3
    crop_size: int = 32
    detector_size: int = 32
    depth: int = 18
    width: int = 8
    feature_width: int = 8
    tv_dim: int = 64
    ti_dim: int = 16
    dropout: float = 0.1
    lam: float = 2.0
    rho: float = 2.0
    alpha: float = 0.01
    gamma: float = 1.0
    prior_weight: float = 1.0
    pos_max: int = 3
    d_max: int = 20
    css_tau: float = 0.1
    order_tau: float = 0.01
    spacing: int = 3
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.contrastive not in CONTRASTIVE:
            raise ValueError(f"contrastive must be one of {CONTRASTIVE}, got {self.contrastive!r}")
        if not self.decode and self.contrastive is None:
            raise ValueError("a model without decoder and without contrastive loss has nothing to learn")
        if self.split and not self.decode:
            raise ValueError("split=True needs decode=True: the TI swap only acts through the decoder")
        if self.decode and self.crop == "frame":
            raise ValueError("decode=True needs crop='stn' or 'gt': re-synthesis pastes the crop back at its box")
        if self.gravity and (self.crop != "stn" or not 0 < self.pretrain_steps <= self.steps):
            raise ValueError(f"gravity needs crop='stn' and 0 < pretrain_steps <= steps, got {self}")
        if self.depth not in (18, 50) or min(self.steps, self.batch, self.width, self.tv_dim, self.ti_dim) < 1:
            raise ValueError(f"depth must be 18 or 50 and steps, batch, width, dims >= 1, got {self}")
        if self.crop_size % 8:
            valid = ", ".join(str(8 * k) for k in range(1, 17))
            raise ValueError(f"crop_size {self.crop_size} cannot be reached by the decoder; valid: {valid}, ...")
        _check_distances(self.pos_max, self.d_max)

    @property
    def latent_dim(self) -> int:
        return self.tv_dim + self.ti_dim

    @property
    def objective_term(self) -> str:
        """The loss term that says whether this model learned: ``reconst`` with a decoder, else the contrastive."""
        return "reconst" if self.decode else str(self.contrastive)


# the sizes of each profile (the paper's are in the notebook's profile table); every row gets the same
PROFILE_SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(crop_size=32, detector_size=32, width=8, feature_width=8, tv_dim=64, ti_dim=16, batch=4,
                  steps=60, lr=1e-3),
    "full": dict(crop_size=64, detector_size=32, width=32, feature_width=32, tv_dim=256, ti_dim=64, batch=8,
                 steps=300, lr=1e-3),
}  # fmt: skip

# the rows of Table 5 and Table 1's single-view CSS (same architecture and capacity; only the losses differ)
VARIANTS: dict[str, dict[str, Any]] = {
    "DSL": dict(crop="frame", decode=False, split=False, contrastive="dsl", box_prior=False),
    "DSL-STN": dict(crop="stn", decode=False, split=False, contrastive="dsl"),
    "DSL-STN-Dec": dict(crop="stn", decode=True, split=False, contrastive="dsl"),
    "AE-STN-Dec": dict(crop="stn", decode=True, split=False, contrastive=None),
    "CSS-STN-Dec-Split": dict(crop="stn", decode=True, split=True, contrastive="css"),
    "Ours": dict(crop="stn", decode=True, split=True, contrastive="dsl"),
    "CSS": dict(crop="frame", decode=False, split=False, contrastive="css", box_prior=False),
}


def variant(name: str, **overrides: Any) -> TemporalRepConfig:
    """The config of ablation row ``name`` (:data:`VARIANTS`) with ``overrides`` (the profile's sizes, or a
    changed factor such as ``crop="gt"``) taking precedence."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {list(VARIANTS)}")
    return TemporalRepConfig(**{**VARIANTS[name], **overrides})


class TemporalRepModel(nn.Module):
    """Detector (with ``crop="stn"``), one encoder trunk (ResNet ``depth``) with the output layers E_tv and
    E_ti, and the decoder (with ``decode``)."""

    def __init__(self, config: TemporalRepConfig):
        super().__init__()
        c = config
        self.config = c
        self.detector = Detector(c.width, c.detector_size) if c.crop == "stn" else None
        self.trunk = resnet(c.depth, c.width)
        self.e_tv = nn.Linear(self.trunk.out_dim, c.tv_dim)
        self.e_ti = nn.Linear(self.trunk.out_dim, c.ti_dim)
        self.decoder = Decoder(c.tv_dim, c.ti_dim, c.crop_size, c.width, c.dropout) if c.decode else None

    def crops(
        self, frames: torch.Tensor, windows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames ``(B, 3, H, W)`` in [0, 1] -> crops ``(B, 3, s, s)`` and boxes ``(B, 4)`` (None for
        ``crop="frame"``). ``windows``: the ground-truth boxes ``(B, 4)`` that ``crop="gt"`` needs."""
        c = self.config
        if c.crop == "frame":
            return F.interpolate(frames, size=(c.crop_size, c.crop_size), mode="area"), None
        if c.crop == "gt":
            if windows is None:
                raise ValueError("crop='gt' needs the ground-truth boxes (VideoFrames.windows)")
            box = windows
        else:
            box = self.detector(frames)
        return crop(frames, box, c.crop_size), box

    def encode_crops(
        self, plain: torch.Tensor, tv_input: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TV from ``tv_input`` (the jittered crop; default ``plain``) and TI from ``plain`` crops ``(B, 3, s, s)``."""
        h = self.trunk.pooled(plain * 2 - 1)
        h_tv = h if tv_input is None else self.trunk.pooled(tv_input * 2 - 1)
        return self.e_tv(h_tv), self.e_ti(h)


def feature_network(width: int, seed: int, depth: int = 18) -> nn.Module:
    """The frozen feature network of Eq. 2: a *randomly initialised* ResNet (no ImageNet weights can be had
    here), seeded, in eval mode, without gradients; :meth:`lib.nets.resnet.ResNet.features` gives layers 1-3."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = resnet(depth, width)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ---------------------------------------------------------------------------------------------------------
# data


@dataclass
class VideoFrames:
    """Training videos: ``frames`` (N, H, W, 3) uint8 ordered by video and time, ``seq`` (N,) the video of each
    frame (``0 .. S-1``), ``backgrounds`` (S, H, W, 3) uint8, optional ground truth for monitoring and
    ``crop="gt"``: ``boxes`` (N, 4) tight person boxes and ``windows`` (N, 4) crop boxes (STN coordinates);
    ``names`` (S,) for messages."""

    frames: np.ndarray
    seq: np.ndarray
    backgrounds: np.ndarray
    boxes: np.ndarray | None = None
    windows: np.ndarray | None = None
    names: list[str] | None = None

    def __post_init__(self) -> None:
        f, b = self.frames, self.backgrounds
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {f.dtype} array of shape {f.shape}")
        if b.ndim != 4 or b.shape[1:] != f.shape[1:] or b.dtype != np.uint8:
            raise ValueError(f"backgrounds must be uint8 (S, {f.shape[1]}, {f.shape[2]}, 3) like the frames, got "
                             f"{b.dtype} array of shape {b.shape}")  # fmt: skip
        self.seq = np.asarray(self.seq, np.int64)
        if self.seq.shape != (len(f),) or (len(f) and (self.seq.min() < 0 or self.seq.max() >= len(b))):
            raise ValueError(f"seq must be (N,) = ({len(f)},) video ids in 0..{len(b) - 1}, got shape {self.seq.shape}")
        for name in ("boxes", "windows"):
            v = getattr(self, name)
            if v is not None and np.shape(v) != (len(f), 4):
                raise ValueError(f"{name} must be (N, 4) = ({len(f)}, 4), got {np.shape(v)}")
        self.groups = sequence_groups(self.seq)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]

    def digest(self) -> str:
        """A short hash of the shapes, the videos, the backgrounds and every 64th frame: a checkpoint trained
        on other data (another background, world or split) is never resumed."""
        h = hashlib.sha256(str((self.frames.shape, self.backgrounds.shape)).encode())
        for a in (self.seq, self.backgrounds, self.frames[::64]):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def video_frames(
    world: World, sequences: Sequence[int], background: str = "median", margin: float = 1.2
) -> VideoFrames:
    """The frames of ``sequences`` of ``world`` with a background each: ``"median"`` (the per-pixel median of
    the video, Sec. S.1) or ``"exact"`` (the world's clean background). Static cameras only: a moving-camera
    sequence has no valid background and is an error naming it. ``boxes`` / ``windows`` from the ground
    truth (``windows``: square crops of ``margin`` x the longer box side, for ``crop="gt"``)."""
    if background not in ("median", "exact"):
        raise ValueError(f"background must be 'median' or 'exact', got {background!r}")
    sequences = [int(s) for s in sequences]
    moving = [s for s in sequences if world.camera_moving[s]]
    if moving:
        names = [f"{s} ({world.activity_names[world.seq_activity[s]]})" for s in moving]
        raise ValueError(f"sequences {names} have a moving camera, so no background image; leave them out")
    idx = [world.sequence_frames(s) for s in sequences]
    frames = world.frames[np.concatenate(idx)] if idx else world.frames[:0]
    seq = np.concatenate([np.full(len(i), k) for k, i in enumerate(idx)]) if idx else np.zeros(0, np.int64)
    bgs = np.stack([median_background(world.frames[i]) if background == "median" else world.backgrounds[s]
                    for s, i in zip(sequences, idx, strict=True)])  # fmt: skip
    all_idx = np.concatenate(idx)
    windows = windows_to_box(world.crop_boxes(all_idx, margin), world.image_size)
    names = [f"{s} ({world.activity_names[world.seq_activity[s]]})" for s in sequences]
    return VideoFrames(frames, seq, bgs, world.boxes[all_idx], windows, names)


# ---------------------------------------------------------------------------------------------------------
# the objective (Eq. 14), per item


def _images(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float ``(B, 3, H, W)`` in [0, 1]."""
    return x.permute(0, 3, 1, 2).float().div_(255)


def objective(
    model: TemporalRepModel,
    fnet: nn.Module | None,
    data: dict[str, torch.Tensor],
    tuples: np.ndarray,
    stage: str,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Every loss term for ``tuples`` ``(B, 4)`` frame indices (4 frames of one video each), per tuple ``(B,)``:
    ``pixel``, ``feature``, ``reconst`` (Eq. 2, mean squared errors over the whole frame), ``dsl`` / ``css``
    (Eq. 6 / 3 on TV, or the whole latent without split), ``track`` (gravity stage), and the batch's
    ``prior`` (a scalar). ``stage``: ``"main"`` or ``"track"`` (gravity pre-training: no contrastive loss).
    ``data``: tensors ``frames`` (N, H, W, 3) uint8, ``seq``, ``times``, ``backgrounds``, ``windows``.
    """
    c = model.config
    B = len(tuples)
    idx = torch.as_tensor(tuples.reshape(-1), device=data["frames"].device)
    frames = _images(data["frames"][idx])
    windows = data["windows"][idx] if c.crop == "gt" else None
    crops, box = model.crops(frames, windows)
    split = c.split
    tv_in = colour_jitter(crops, gen, *c.jitter) if split else None
    tv, ti = model.encode_crops(crops, tv_in)
    out: dict[str, torch.Tensor] = {}
    zero = frames.new_zeros(B)
    if c.decode:
        ti_dec = ti[torch.as_tensor(ti_derangement(np.repeat(np.arange(B), 4), rng), device=ti.device)] if split else ti
        dec, mask = model.decoder(tv, ti_dec)
        bg = _images(data["backgrounds"][data["seq"][idx]])
        recon, _, _ = resynthesize(dec, mask, box, bg)
        out["pixel"] = ((frames - recon) ** 2).mean((1, 2, 3)).view(B, 4).mean(1)
        f_real, f_fake = fnet.features(frames * 2 - 1, "layer3"), fnet.features(recon * 2 - 1, "layer3")
        out["feature"] = (
            sum(((a - b) ** 2).mean((1, 2, 3)) for a, b in zip(f_real, f_fake, strict=True)).view(B, 4).mean(1)
        )
        out["reconst"] = c.lam * out["pixel"] + c.rho * out["feature"]
    z = (tv if split else torch.cat([tv, ti], 1)).view(B, 4, -1)
    times = data["times"][idx].view(B, 4)
    active = stage == "main"
    out["dsl"] = dsl_all(z, times, c.d_max) if active and c.contrastive == "dsl" else zero
    out["css"] = css_loss(z, c.css_tau) if active and c.contrastive == "css" else zero
    out["track"] = track_loss(box.view(B, 4, 4), c.order_tau) if stage == "track" else zero
    out["prior"] = box_prior(box, centre=c.centre_prior) if c.box_prior and c.crop == "stn" else zero.sum()
    out["box"] = box.detach() if box is not None else None
    return out


def total_loss(config: TemporalRepConfig, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 14 (without the optional 2D term): ``L_reconst + alpha L_DSL/CSS + gamma L_track + prior``, batch mean."""
    c = config
    loss = c.alpha * (terms["dsl"] + terms["css"]).mean() + c.gamma * terms["track"].mean()
    if c.decode:
        loss = loss + terms["reconst"].mean()
    return loss + c.prior_weight * terms["prior"]


def _tensors(data: VideoFrames, device: str | torch.device) -> dict[str, torch.Tensor]:
    times = np.concatenate([np.arange(len(g)) for g in data.groups]) if len(data.frames) else np.zeros(0)
    order = np.concatenate(data.groups) if len(data.frames) else np.zeros(0, np.int64)
    t = np.empty(len(data.frames), np.int64)
    t[order] = times
    windows = data.windows if data.windows is not None else np.zeros((len(data.frames), 4), np.float32)
    return {
        "frames": torch.from_numpy(data.frames).to(device),
        "seq": torch.from_numpy(data.seq).to(device),
        "times": torch.from_numpy(t).to(device),
        "backgrounds": torch.from_numpy(data.backgrounds).to(device),
        "windows": torch.from_numpy(np.asarray(windows, np.float32)).to(device),
    }


def sample_tuples(
    config: TemporalRepConfig, groups: Sequence[np.ndarray], stage: str, rng: np.random.Generator
) -> np.ndarray:
    """The ``(batch, 4)`` frames of one step: equidistant in the gravity stage, else quads for the contrastive
    loss (CSS: two far negatives)."""
    c = config
    if stage == "track":
        return sample_equidistant(groups, c.batch, c.spacing, rng)
    third = "far" if c.contrastive == "css" else "intermediate"
    return sample_frame_quads(groups, c.batch, rng, c.pos_max, c.d_max, third)


def build_model(config: TemporalRepConfig, seed: int, device: str | torch.device = "cpu") -> TemporalRepModel:
    """The model at initialisation, deterministic in ``seed`` (what :func:`train_temporal_rep` starts from)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TemporalRepModel(config).to(device)


def train_temporal_rep(
    data: VideoFrames,
    config: TemporalRepConfig,
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[TemporalRepModel, dict[str, list[float]]]:
    """Train one model on ``data`` with Adam (fixed ``config.lr``), resumably (:func:`lib.training.resumable_training`).

    Returns the model (eval mode) and its history per step: ``loss`` and every term of :func:`objective`
    (0 where a term is off), ``stage`` (1 in gravity pre-training, else 0) and, when ``data.boxes`` is given
    and the model has a detector, ``iou``: the batch's mean IoU of the STN box with the ground-truth box.
    The same seed and data give the same model, also after an interruption.
    """
    c = config
    model = build_model(c, seed, device)
    fnet = feature_network(c.feature_width, seed + 1).to(device) if c.decode else None
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    tensors = _tensors(data, device)
    size = data.image_size

    def step(k: int) -> dict[str, float]:
        rng, gen = step_generators(seed, k)
        stage = "track" if c.gravity and k < c.pretrain_steps else "main"
        tuples = sample_tuples(c, data.groups, stage, rng)
        model.train()
        terms = objective(model, fnet, tensors, tuples, stage, rng, gen)
        loss = total_loss(c, terms)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        zero = loss.new_zeros(())
        names = ("loss", "pixel", "feature", "reconst", "dsl", "css", "track", "prior")
        values = [loss] + [terms[n].mean() if n in terms else zero for n in names[1:]]
        logs = dict(zip(names, torch.stack(values).detach().cpu().tolist(), strict=True))  # one device sync
        logs["stage"] = float(stage == "track")
        if data.boxes is not None and c.crop == "stn":
            logs["iou"] = float(box_iou(box_to_pixels(terms["box"], size), data.boxes[tuples.reshape(-1)]).mean())
        return logs

    meta = {"config": dataclasses.asdict(c), "seed": seed, "data": data.digest()}
    history = resumable_training({"model": model, "opt": opt}, c.steps, step, checkpoint_dir, meta,
                                 every=max(1, c.steps // 4), progress=progress)  # fmt: skip
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------------------------------
# using a trained model


@torch.no_grad()
def heldout_objective(
    model: TemporalRepModel, data: VideoFrames, tuples: np.ndarray, seed: int = 0, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The model's own objective term (:attr:`TemporalRepConfig.objective_term`: the reconstruction loss with
    a decoder, else the contrastive loss) per tuple of held-out frames ``(n, 4)`` -> ``(n,)``, in eval mode,
    with jitter and swap drawn from ``seed`` (so two models are scored on the same draws)."""
    c = model.config
    fnet = feature_network(c.feature_width, seed + 1).to(device) if c.decode else None
    was = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    terms = objective(model, fnet, _tensors(data, device), tuples, "main", rng, gen)
    model.train(was)
    return terms[c.objective_term].cpu().numpy().astype(np.float64)


@torch.no_grad()
def encode(
    model: TemporalRepModel,
    frames: np.ndarray,
    windows: np.ndarray | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Eval-mode codes of uint8 frames ``(N, H, W, 3)``: ``tv`` (N, tv_dim), ``ti`` (N, ti_dim) (both from the
    plain crop) and ``box`` (N, 4) (NaN without a detector). ``windows``: crop boxes for ``crop="gt"``."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"tv": [], "ti": [], "box": []}
    for i in range(0, len(frames), batch_size):
        x = _images(torch.from_numpy(np.ascontiguousarray(frames[i : i + batch_size])).to(device))
        w = None if windows is None else torch.as_tensor(windows[i : i + batch_size], device=device)
        crops, box = model.crops(x, w)
        tv, ti = model.encode_crops(crops)
        out["tv"].append(tv.float().cpu().numpy())
        out["ti"].append(ti.float().cpu().numpy())
        out["box"].append(np.full((len(x), 4), np.nan, np.float32) if box is None else box.float().cpu().numpy())
    model.train(was)
    c = model.config
    empty = {"tv": (0, c.tv_dim), "ti": (0, c.ti_dim), "box": (0, 4)}
    return {k: np.concatenate(v) if v else np.zeros(empty[k], np.float32) for k, v in out.items()}


@torch.no_grad()
def reconstruct(
    model: TemporalRepModel,
    frames: np.ndarray,
    backgrounds: np.ndarray,
    ti_frames: np.ndarray | None = None,
    windows: np.ndarray | None = None,
    ti_windows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Decode uint8 ``frames`` ``(B, H, W, 3)`` over ``backgrounds`` ``(B, H, W, 3)``, taking TI from
    ``ti_frames`` (default: the frames themselves; another subject's frames swap the appearance).
    ``windows`` / ``ti_windows``: their crop boxes for ``crop="gt"``.

    Returns float arrays in [0, 1], channels last: ``crop``, ``jittered`` (an example TV input), ``decoded``
    and ``mask`` (crop size), ``image`` (the re-synthesised frame) and ``box`` (B, 4).
    """
    if model.decoder is None:
        raise ValueError("reconstruct needs a model with a decoder (decode=True)")
    device = next(model.parameters()).device
    was = model.training
    model.eval()

    def t(a):
        return _images(torch.from_numpy(np.ascontiguousarray(a)).to(device))

    def boxes(a):
        return None if a is None else torch.as_tensor(a, device=device)

    crops, box = model.crops(t(frames), boxes(windows))
    tv, ti = model.encode_crops(crops)
    if ti_frames is not None:
        ti = model.encode_crops(model.crops(t(ti_frames), boxes(ti_windows))[0])[1]
    dec, mask = model.decoder(tv, ti)
    image, _, _ = resynthesize(dec, mask, box, t(backgrounds))
    jittered = colour_jitter(crops, torch.Generator().manual_seed(0), *model.config.jitter)
    model.train(was)

    def hwc(a):
        return a.permute(0, 2, 3, 1).float().cpu().numpy()

    return {"crop": hwc(crops), "jittered": hwc(jittered), "decoded": hwc(dec), "mask": hwc(mask)[..., 0],
            "image": hwc(image), "box": box.float().cpu().numpy()}  # fmt: skip
