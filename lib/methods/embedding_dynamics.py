"""Temporal models on a frozen posture embedding (Milbich et al. 2017, Sect. 2.4 and 3.5-3.7).
Taught in ``notebooks/05_posture_reconciliation.ipynb``.

Next-frame prediction (Sect. 2.4, Fig. 7b, Fig. 8):

- :func:`next_frame_windows` -- all ``l`` consecutive frames of a sequence and the frame that follows.
- :class:`EmbeddingLSTM`, :func:`train_lstm` -- an LSTM (hidden size much smaller than d) reads the
  embeddings of ``l = 4`` frames; one FC layer maps its last hidden state back to d; Euclidean loss to
  the next frame's embedding (Eq. 5). With ``residual`` the FC output is added to the last input, so the
  LSTM predicts the *change* (our variant: the paper's form tends to a fixed point, see the notebook).
- :func:`copy_last` -- the trivial predictor "the next frame looks like the last one", the baseline any
  next-frame prediction must beat.
- :func:`knn_distances` -- the distances of each true next frame to its k-th nearest neighbours in the
  other videos, k = 1..K: the yardstick for the prediction error.
- :func:`synthesize` -- recursive prediction from a seed window.

Temporal super-resolution (Sect. 3.5, Fig. 6), a small DeePSiM-style inversion (Dosovitskiy & Brox 2016):

- :func:`interpolate_embeddings` -- points between consecutive frames' embeddings (renormalised).
- :class:`Generator`, :class:`Discriminator`, :func:`train_inverter` -- a generator from the embedding to
  the crop, trained with a pixel loss, a feature loss (the frozen embedding network's pool5 features of
  the generated vs the real crop) and an adversarial loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.evaluation.metrics import squared_distances
from lib.images import images_to_tensor
from lib.nets.vgg import VGGS
from lib.training import resumable_training, step_generators

# ---------------------------------------------------------------------------------------------------------
# next-frame prediction


def next_frame_windows(groups: list[np.ndarray], l: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(K, l)`` frame indices of every window of ``l`` consecutive frames and ``(K,)`` the next frame."""
    if l < 1:
        raise ValueError(f"window length l must be >= 1, got {l}")
    inputs, targets = [], []
    for g in groups:
        for t in range(len(g) - l):
            inputs.append(g[t : t + l])
            targets.append(g[t + l])
    if not inputs:
        raise ValueError(f"no sequence is longer than l = {l} frames")
    return np.stack(inputs), np.asarray(targets)


class EmbeddingLSTM(nn.Module):
    """``(B, l, d)`` embeddings -> ``(B, d)`` predicted next embedding: LSTM(d -> hidden), FC(hidden -> d),
    plus the last input when ``residual``."""

    def __init__(self, dim: int, hidden: int = 32, residual: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, dim)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        change = self.fc(out[:, -1])
        return x[:, -1] + change if self.residual else change


@dataclass(frozen=True)
class LSTMConfig:
    """Next-frame LSTM hyper-parameters (defaults: smoke-sized)."""

    l: int = 4
    hidden: int = 32
    steps: int = 300
    batch: int = 128
    lr: float = 3e-3
    residual: bool = False  # the paper: False (the FC output is the prediction)
    checkpoint_every: int = 100


def new_lstm(dim: int, config: LSTMConfig = LSTMConfig(), seed: int = 0) -> EmbeddingLSTM:
    """The randomly initialised LSTM of ``config`` for ``dim``-d embeddings (seeded, on the CPU)."""
    torch.manual_seed(seed)
    return EmbeddingLSTM(dim, config.hidden, config.residual)


def train_lstm(
    embeddings: np.ndarray,
    groups: list[np.ndarray],
    config: LSTMConfig = LSTMConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
) -> tuple[EmbeddingLSTM, dict[str, list[float]]]:
    """Fit Eq. 5, ``||phi'(phi(I_{t-l+1..t})) - phi(I_{t+1})||^2``, on all windows of ``groups``.

    ``embeddings`` ``(N, d)`` frozen frame embeddings; ``groups`` frame indices per sequence in time order.
    Windows are drawn uniformly, so every posture of every sequence is equally represented.
    """
    inputs, targets = next_frame_windows(groups, config.l)
    E = torch.as_tensor(np.asarray(embeddings, np.float32), device=device)
    model = new_lstm(E.shape[1], config, seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        pick = rng.integers(0, len(targets), size=config.batch)
        pred = model(E[torch.as_tensor(inputs[pick], device=device)])
        loss = (pred - E[torch.as_tensor(targets[pick], device=device)]).square().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    meta = {"model": "embedding_lstm", "seed": seed, "n_frames": len(E), **dataclasses.asdict(config)}
    history = resumable_training(
        {"model": model, "opt": opt}, config.steps, step_fn, checkpoint_dir, meta, every=config.checkpoint_every
    )
    return model.eval(), history


@torch.no_grad()
def predict_next(model: EmbeddingLSTM, embeddings: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """``(K, d)`` predictions for the windows ``inputs`` ``(K, l)`` of frame indices into ``embeddings``."""
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(embeddings, np.float32)[inputs], device=device)
    return model(x).cpu().numpy()


def copy_last(embeddings: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The copy-last baseline: the embedding of each window's last frame ``(K, d)`` as its prediction
    (``inputs`` ``(K, l)`` frame indices into ``embeddings`` ``(N, d)``)."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[1] < 1:
        raise ValueError(f"inputs must be (K, l) frame indices with l >= 1, got shape {inputs.shape}")
    return np.asarray(embeddings)[inputs[:, -1]]


def knn_distances(queries: np.ndarray, bank: np.ndarray, k: int = 10, exclude: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance of each query ``(K, d)`` to its 1st..k-th nearest bank rows ``(N, d)`` -> ``(K, k)``.

    ``exclude`` ``(K, N)`` bool marks bank rows a query may not use (its own frame, its own video).
    """
    d = np.sqrt(squared_distances(queries, bank))
    if exclude is not None:
        d = np.where(exclude, np.inf, d)
    if k > d.shape[1]:
        raise ValueError(f"k = {k} exceeds the bank size {d.shape[1]}")
    return np.sort(d, axis=1)[:, :k]


@torch.no_grad()
def synthesize(model: EmbeddingLSTM, seed_window: np.ndarray, steps: int) -> np.ndarray:
    """Recursive prediction: start from ``(l, d)`` embeddings, append each prediction, ``steps`` times ->
    ``(steps, d)``."""
    device = next(model.parameters()).device
    window = torch.as_tensor(np.asarray(seed_window, np.float32), device=device)[None]
    out = []
    for _ in range(steps):
        nxt = model(window)
        out.append(nxt[0].cpu().numpy())
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------------
# temporal super-resolution: inverting the embedding


def interpolate_embeddings(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``n`` points from embedding ``a`` to ``b`` (both ``(d,)``, ends included), linearly interpolated and
    renormalised onto the unit sphere -> ``(n, d)``."""
    if n < 2:
        raise ValueError(f"need n >= 2 points (both ends), got {n}")
    w = np.linspace(0.0, 1.0, n)[:, None]
    z = (1 - w) * np.asarray(a, np.float64) + w * np.asarray(b, np.float64)
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class Generator(nn.Module):
    """``(B, d)`` embedding -> ``(B, C, S, S)`` image in [-1, 1]: FC to ``S/16`` grid, four x2 up-blocks."""

    def __init__(self, dim: int, image_size: int = 64, channels: int = 3, width: int = 32):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        self.base, self.width = image_size // 16, width
        self.fc = nn.Sequential(nn.Linear(dim, 4 * width * self.base**2), nn.LeakyReLU(0.2, True))
        ups = []
        for cin, cout in ((4 * width, 4 * width), (4 * width, 2 * width), (2 * width, width), (width, width)):
            ups += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2, True)]
        self.up = nn.Sequential(*ups, nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.fc(z).view(-1, 4 * self.width, self.base, self.base))


class Discriminator(nn.Module):
    """``(B, C, S, S)`` image and ``(B, d)`` embedding -> ``(B,)`` real/fake logit (DeePSiM feeds both)."""

    def __init__(self, dim: int, image_size: int = 64, channels: int = 3, width: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(4 * width + dim, 2 * width), nn.LeakyReLU(0.2, True), nn.Linear(2 * width, 1)
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(x), z], dim=1))[:, 0]


@dataclass(frozen=True)
class InverterConfig:
    """DeePSiM-style inversion hyper-parameters (defaults: smoke-sized)."""

    steps: int = 200
    batch: int = 32
    lr: float = 2e-4
    width: int = 32
    w_pixel: float = 1.0
    w_feature: float = 0.01
    w_adv: float = 0.01
    checkpoint_every: int = 100


def new_generator(dim: int, image_size: int, channels: int, config: InverterConfig, seed: int = 0) -> Generator:
    """The randomly initialised generator of ``config`` (seeded, on the CPU): the start of training."""
    torch.manual_seed(seed)
    return Generator(dim, image_size, channels, config.width)


def train_inverter(
    encoder: VGGS,
    crops: np.ndarray,
    config: InverterConfig = InverterConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
) -> tuple[Generator, dict[str, list[float]]]:
    """Train a generator that inverts the frozen ``encoder``'s embedding of uint8 ``(N, S, S, C)`` crops.

    Generator loss = ``w_pixel`` mean squared pixel error + ``w_feature`` squared error of the encoder's
    pool5 features + ``w_adv`` non-saturating GAN loss; the discriminator sees (image, embedding) pairs.
    """
    encoder = encoder.eval().to(device)
    for p in encoder.parameters():
        p.requires_grad_(False)
    size, channels = crops.shape[1], crops.shape[3]
    G = new_generator(encoder.dim, size, channels, config, seed).to(device)
    Dn = Discriminator(encoder.dim, size, channels, config.width).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(Dn.parameters(), lr=config.lr, betas=(0.5, 0.999))

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        x = images_to_tensor(crops[rng.integers(0, len(crops), size=config.batch)], device)
        with torch.no_grad():
            z, feat = encoder(x), encoder.pool5(x)
        fake = G(z)
        d_loss = F.softplus(-Dn(x, z)).mean() + F.softplus(Dn(fake.detach(), z)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        pixel = (fake - x).square().mean()
        feature = (encoder.pool5(fake) - feat).square().mean()
        adv = F.softplus(-Dn(fake, z)).mean()
        g_loss = config.w_pixel * pixel + config.w_feature * feature + config.w_adv * adv
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return {"pixel": pixel.item(), "feature": feature.item(), "adv": adv.item(), "d_loss": d_loss.item()}

    meta = {"model": "deepsim_inverter", "seed": seed, "n_frames": len(crops), **dataclasses.asdict(config)}
    history = resumable_training(
        {"G": G, "D": Dn, "opt_g": opt_g, "opt_d": opt_d},
        config.steps,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
    )
    return G.eval(), history


@torch.no_grad()
def invert(generator: Generator, embeddings: np.ndarray) -> np.ndarray:
    """``(K, d)`` embeddings -> uint8 ``(K, S, S, C)`` images."""
    device = next(generator.parameters()).device
    x = generator(torch.as_tensor(np.asarray(embeddings, np.float32), device=device))
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
