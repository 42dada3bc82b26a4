"""Shuffle & Learn (Misra et al. 2016): temporal-order verification of frame triplets, the baseline that
Milbich et al. 2017 compare with, trained on the same crops with the same backbone (:class:`lib.nets.vgg.VGGS`,
VGG-S by default, VGG-M with ``ShuffleLearnConfig(variant="vgg_m")``).
The baseline of ``notebooks/05_posture_reconciliation.ipynb``.

From five frames ``a < b < c < d < e`` of one sequence, the tuple ``(b, c, d)`` is in order (positive,
also when reversed: ``(d, c, b)``), while ``(b, a, d)`` and ``(b, e, d)`` are not (negatives). The three
frames go through shared copies of the backbone; a classifier on the concatenated embeddings predicts
"in order". The backbone's embedding is then used as a posture representation.

- :func:`sample_order_tuples` -- balanced positive / negative frame triplets with their labels.
- :class:`OrderClassifier` -- backbone + classifier over concatenated triplet embeddings.
- :class:`ShuffleLearnConfig`, :func:`new_order_classifier`, :func:`train_order_classifier` -- resumable
  training of the classifier; :func:`train_shuffle_learn` -- the same, returning the backbone (the embedding).
- :func:`order_correct` -- per-tuple correctness of the classifier on held-out tuples: the check that the
  baseline learned its pretext task at all (chance is 0.5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.images import images_to_tensor, random_affine
from lib.nets.vgg import VGGS
from lib.training import resumable_training, sequence_groups, step_generators


def sample_order_tuples(
    groups: list[np.ndarray], n: int, rng: np.random.Generator, min_gap: int = 2, max_gap: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frame-index triplets ``(n, 3)`` and labels ``(n,)`` (1 = temporally ordered), half of each.

    Five frames ``a < b < c < d < e`` of one random sequence with consecutive gaps in
    ``[min_gap, max_gap]``; a positive is ``(b, c, d)`` (reversed with probability 1/2), a negative
    ``(b, a, d)`` or ``(b, e, d)``. Sequences shorter than ``4 * min_gap + 1`` frames are never used.
    """
    if not 1 <= min_gap <= max_gap:
        raise ValueError(f"need 1 <= min_gap <= max_gap, got {min_gap}, {max_gap}")
    usable = [g for g in groups if len(g) >= 4 * min_gap + 1]
    if not usable:
        raise ValueError(f"no sequence has the {4 * min_gap + 1} frames that five ordered frames need")
    tuples = np.empty((n, 3), np.int64)
    labels = (np.arange(n) % 2 == 0).astype(np.int64)
    for k in range(n):
        g = usable[int(rng.integers(len(usable)))]
        gaps = rng.integers(min_gap, max_gap + 1, size=4)
        while gaps.sum() > len(g) - 1:  # shrink the largest gap until the five frames fit
            gaps[gaps.argmax()] -= 1
        start = int(rng.integers(0, len(g) - gaps.sum()))
        a, b, c, d, e = g[start + np.concatenate([[0], np.cumsum(gaps)])]
        if labels[k]:
            tuples[k] = (b, c, d) if rng.random() < 0.5 else (d, c, b)
        else:
            tuples[k] = (b, a, d) if rng.random() < 0.5 else (b, e, d)
    return tuples, labels


class OrderClassifier(nn.Module):
    """Shared backbone on three frames; an MLP on the concatenated embeddings -> 2 logits (in order?)."""

    def __init__(self, backbone: VGGS):
        super().__init__()
        self.backbone = backbone
        d = backbone.dim
        self.head = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(True), nn.Linear(d, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, C, S, S)`` frame triplets -> ``(B, 2)`` logits."""
        B = x.shape[0]
        z = self.backbone(x.flatten(0, 1)).view(B, -1)
        return self.head(z)


@dataclass(frozen=True)
class ShuffleLearnConfig:
    """Hyper-parameters (defaults: smoke-sized)."""

    steps: int = 90
    batch: int = 32  # tuples per step (each 3 frames)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    min_gap: int = 2
    max_gap: int = 6
    image_size: int = 64
    dim: int = 128
    width: int = 32
    variant: str = "vgg_s"  # lib.nets.vgg variant: "vgg_s", or "vgg_m" (conv2 with stride 2)
    checkpoint_every: int = 25


def new_order_classifier(config: ShuffleLearnConfig, channels: int = 3, seed: int = 0) -> OrderClassifier:
    """The randomly initialised classifier of ``config`` (seeded, on the CPU): the start of training."""
    torch.manual_seed(seed)
    return OrderClassifier(VGGS(channels, config.image_size, config.dim, config.width, variant=config.variant))


def train_order_classifier(
    crops: np.ndarray,
    seq: np.ndarray,
    config: ShuffleLearnConfig = ShuffleLearnConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[OrderClassifier, dict[str, list[float]]]:
    """Train temporal-order verification on uint8 ``(N, s, s, 3)`` crops with sequence ids ``seq`` ``(N,)``.

    Returns the classifier (eval mode; ``.backbone``'s L2-normalised output is the embedding) and the
    history (``loss``, ``acc``: training accuracy of the batch).
    """
    if crops.shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(f"crops are {crops.shape[1:3]} px but config.image_size is {config.image_size}")
    groups = sequence_groups(seq)
    model = new_order_classifier(config, crops.shape[3], seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def step_fn(step: int) -> dict[str, float]:
        rng, gen = step_generators(seed, step)
        tuples, labels = sample_order_tuples(groups, config.batch, rng, config.min_gap, config.max_gap)
        x = random_affine(images_to_tensor(crops[tuples.ravel()], device), gen)
        x = x.view(config.batch, 3, *x.shape[1:])
        y = torch.as_tensor(labels, device=device)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item()}

    meta = {"model": "shuffle_learn", "seed": seed, "n_frames": len(crops), **dataclasses.asdict(config)}
    history = resumable_training(
        {"model": model, "opt": opt},
        config.steps,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
        progress=progress,
    )
    return model.eval(), history


def train_shuffle_learn(
    crops: np.ndarray,
    seq: np.ndarray,
    config: ShuffleLearnConfig = ShuffleLearnConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[VGGS, dict[str, list[float]]]:
    """:func:`train_order_classifier`, returning only its backbone (eval mode; the embedding) and history."""
    model, history = train_order_classifier(crops, seq, config, seed, device, checkpoint_dir, progress)
    return model.backbone.eval(), history


@torch.no_grad()
def order_correct(model: OrderClassifier, crops: np.ndarray, tuples: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: does ``model`` (eval mode) classify each frame triplet ``tuples`` ``(n, 3)`` (indices
    into uint8 ``crops``) as its ``labels`` ``(n,)`` (1 = in order) say?"""
    tuples, labels = np.asarray(tuples), np.asarray(labels)
    if tuples.ndim != 2 or tuples.shape[1] != 3 or len(labels) != len(tuples):
        raise ValueError(f"need (n, 3) tuples and (n,) labels, got {tuples.shape} and {labels.shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(tuples), 128):
        x = images_to_tensor(crops[tuples[i : i + 128].ravel()], device)
        out.append(model(x.view(-1, 3, *x.shape[1:])).argmax(1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) == labels if out else np.zeros(0, bool)
