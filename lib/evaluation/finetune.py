"""Fine-tuning a backbone for classification, the way Purushwalkam & Gupta 2016 test a representation on
action recognition (Sec. 4.3, Table 3) and on static images with few labels (Sec. 4.4, Table 4).

The network is the backbone to fc6 (:meth:`lib.nets.vgg.VGGS.fc6_features`) and two new FC layers
(``hidden``, then the classes). Training samples are random ``crop``-pixel windows of random images,
mirrored with probability 1/2. At test time a video is 25 uniformly spaced frames x (4 corners + centre)
x (plain + mirrored) = 250 samples whose softmax outputs are averaged.

- :class:`Classifier`, :class:`ClassifierConfig`, :func:`init_classifier`, :func:`train_classifier` --
  resumable training of the whole network or of the two new layers only (``freeze_backbone``).
- :func:`make_optimizer` -- SGD with momentum or Adam (shared with the pretext trainings).
- :func:`ten_crops` -- the 4 corners and the centre, plain and mirrored.
- :func:`video_predictions` -- the averaged class probabilities of each video (or still image).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.images import crop_batch, images_to_tensor
from lib.nets.vgg import VGGS
from lib.training import resumable_training, step_generators


class Classifier(nn.Module):
    """``backbone`` to fc6, then FC ``hidden`` -> ReLU -> dropout -> FC ``n_classes`` (logits)."""

    def __init__(self, backbone: VGGS, n_classes: int, hidden: int):
        super().__init__()
        self.backbone = copy.deepcopy(backbone)
        self.head = nn.Sequential(
            nn.Linear(backbone.n_fc6, hidden), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(hidden, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, crop, crop)`` -> ``(B, n_classes)`` logits."""
        return self.head(self.backbone.fc6_features(x))


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters (defaults: smoke-sized). The paper: 14k then 6k iterations at a lower learning
    rate, batch 256; the rates were lost in extraction (we read SGD 0.01, then 0.001, momentum 0.9)."""

    steps: int = 100
    low_lr_steps: int = 40
    batch: int = 32
    crop: int = 56
    hidden: int = 128  # 2048 in the paper (half of fc6)
    lr: float = 0.01
    low_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    freeze_backbone: bool = False  # train only the two new layers ("last 2 layers")
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adam"
    checkpoint_every: int = 50

    @property
    def total_steps(self) -> int:
        return self.steps + self.low_lr_steps


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``"sgd"`` (with ``momentum``) or ``"adam"`` (``momentum`` unused) over ``params``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}")


def init_classifier(backbone: VGGS, n_classes: int, config: ClassifierConfig, seed: int) -> Classifier:
    """The classifier at initialisation: a copy of ``backbone`` and new FC layers drawn from ``seed``."""
    if backbone.image_size != config.crop:
        raise ValueError(f"the backbone takes {backbone.image_size} px inputs but config.crop is {config.crop}")
    torch.manual_seed(seed)
    return Classifier(backbone, n_classes, config.hidden)


def train_classifier(
    backbone: VGGS,
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: ClassifierConfig = ClassifierConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[Classifier, dict[str, list[float]]]:
    """Fine-tune ``backbone`` (copied) with two new FC layers on uint8 images ``(N, H, W, 3)`` (video
    frames or stills, ``H, W >= crop``) with class ``labels`` ``(N,)`` in ``0 .. n_classes - 1``.

    Returns the classifier (eval mode) and the history (``loss``, ``acc`` of the batch, ``lr``).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.dtype != np.uint8 or labels.shape != (len(images),):
        raise ValueError(
            f"expected uint8 images (N, H, W, 3) and labels (N,), got {images.dtype} {images.shape}, {labels.shape}"
        )
    if len(labels) and not 0 <= labels.min() <= labels.max() < n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    H, W, c = images.shape[1], images.shape[2], config.crop
    if c > min(H, W):
        raise ValueError(f"a {c} px crop does not fit in {H}x{W} images")
    model = init_classifier(backbone, n_classes, config, seed).to(device)
    if config.freeze_backbone:
        model.backbone.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(config.optimizer, params, config.lr, config.momentum, config.weight_decay)
    x_all = images_to_tensor(images, device)
    y_all = torch.as_tensor(labels, device=device)

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        lr = config.lr if step < config.steps else config.low_lr
        for group in opt.param_groups:
            group["lr"] = lr
        idx = rng.integers(len(images), size=config.batch)
        x0, y0 = rng.integers(W - c + 1, size=config.batch), rng.integers(H - c + 1, size=config.batch)
        flip = torch.as_tensor(rng.random(config.batch) < 0.5, device=device)[:, None, None, None]
        x = crop_batch(x_all, idx, np.column_stack([x0, y0]), c)
        x = torch.where(flip, x.flip(-1), x)
        y = y_all[torch.as_tensor(idx, device=device)]
        model.train()
        if config.freeze_backbone:
            model.backbone.eval()  # frozen: batch-norm statistics and dropout as at test time
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item(), "lr": lr}

    meta = {"model": "classifier", "seed": seed, "n_images": len(images), "n_classes": n_classes,
            **dataclasses.asdict(config)}  # fmt: skip
    history = resumable_training(
        {"model": model, "opt": opt},
        config.total_steps,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
        progress=progress,
    )
    return model.eval(), history


def ten_crops(images: np.ndarray, crop: int) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` -> ``(N, 10, crop, crop, C)``: top-left, top-right, bottom-left, bottom-right,
    centre, then the same five mirrored."""
    images = np.asarray(images)
    H, W = images.shape[1:3]
    if crop > min(H, W):
        raise ValueError(f"a {crop} px crop does not fit in {H}x{W} images")
    cy, cx = (H - crop) // 2, (W - crop) // 2
    corners = [(0, 0), (0, W - crop), (H - crop, 0), (H - crop, W - crop), (cy, cx)]
    five = np.stack([images[:, y : y + crop, x : x + crop] for y, x in corners], 1)
    return np.concatenate([five, five[:, :, :, ::-1]], 1)


@torch.no_grad()
def video_predictions(
    model: Classifier, videos: Sequence[np.ndarray], crop: int, n_frames: int = 25, batch: int = 500
) -> np.ndarray:
    """Mean softmax ``(V, n_classes)`` of each uint8 video ``(T, H, W, 3)`` over ``n_frames`` uniformly
    spaced frames (all of them when ``T < n_frames``) x :func:`ten_crops`. A still image is a video of one
    frame (10 samples). Samples of several videos share a forward pass of up to about ``batch``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        x = np.concatenate(pending)
        probs = torch.cat(
            [
                torch.softmax(model(images_to_tensor(x[i : i + batch], device)), 1).float().cpu()
                for i in range(0, len(x), batch)
            ]
        )
        out.extend(chunk.mean(0).numpy() for chunk in torch.split(probs, [len(p) for p in pending]))
        pending.clear()

    try:
        for video in videos:
            t = np.unique(np.round(np.linspace(0, len(video) - 1, min(n_frames, len(video)))).astype(int))
            pending.append(ten_crops(video[t], crop).reshape(-1, crop, crop, video.shape[-1]))
            if sum(len(p) for p in pending) >= batch:
                flush()
        if pending:
            flush()
    finally:
        model.train(was_training)
    return np.stack(out) if out else np.zeros((0, model.head[-1].out_features), np.float32)
