"""Fine-tuning a backbone for classification, the way Purushwalkam & Gupta 2016 test a representation on
action recognition (Sec. 4.3, Table 3) and on static images with few labels (Sec. 4.4, Table 4), and for
pose regression, the way Sümer et al. 2017 test an initialisation (Sec. 4.4, Table 4).

The network is the backbone to fc6 (:meth:`lib.nets.vgg.VGGS.fc6_features`) and two new FC layers
(``hidden``, then the classes). Training samples are random ``crop``-pixel windows of random images,
mirrored with probability 1/2. At test time a video is 25 uniformly spaced frames x (4 corners + centre)
x (plain + mirrored) = 250 samples whose softmax outputs are averaged.

- :class:`Classifier`, :class:`ClassifierConfig`, :func:`init_classifier`, :func:`train_classifier` --
  resumable training of the whole network or of the two new layers only (``freeze_backbone``).
- :func:`fine_tune` -- the one training loop both heads share.
- :class:`Regressor`, :class:`RegressorConfig`, :func:`train_regressor`, :func:`predict_joints`,
  :func:`normalise_joints` -- pool5 + two new FC layers regressing ``2J`` normalised joint coordinates
  with the L2 loss on whole images (no crop or mirror: the targets stay where they are).
- :func:`make_optimizer` -- SGD with momentum or Adam (shared with the pretext trainings).
- :func:`ten_crops` -- the 4 corners and the centre, plain and mirrored.
- :func:`video_predictions` -- the averaged class probabilities of each video (or still image).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.images import crop_batch, images_to_tensor
from lib.nets.alexnet import AlexNet
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
    x_all = images_to_tensor(images, device)
    y_all = torch.as_tensor(labels, device=device)

    def sample(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = rng.integers(len(images), size=config.batch)
        x0, y0 = rng.integers(W - c + 1, size=config.batch), rng.integers(H - c + 1, size=config.batch)
        flip = torch.as_tensor(rng.random(config.batch) < 0.5, device=device)[:, None, None, None]
        x = crop_batch(x_all, idx, np.column_stack([x0, y0]), c)
        return torch.where(flip, x.flip(-1), x), y_all[torch.as_tensor(idx, device=device)]

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean().item()}

    meta = {"model": "classifier", "seed": seed, "n_images": len(images), "n_classes": n_classes,
            **dataclasses.asdict(config)}  # fmt: skip
    history = fine_tune(model, config, seed, sample, loss_fn, meta, checkpoint_dir, progress)
    return model.eval(), history


def fine_tune(
    model: nn.Module,
    config: ClassifierConfig | RegressorConfig,
    seed: int,
    sample: Callable[[np.random.Generator], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    meta: dict[str, Any],
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """The training loop of every head: ``config.steps`` steps at ``config.lr`` then ``config.low_lr_steps``
    at ``config.low_lr``, resumable. ``model`` has a ``backbone`` (frozen when ``config.freeze_backbone``:
    no gradient, eval mode) and is trained in place. Per step ``sample(rng)`` (``rng`` from
    :func:`step_generators`) gives the batch ``(x, y)`` and ``loss_fn(model(x), y)`` the loss and the
    batch's further logs. Returns the history (``loss``, the logs, ``lr``).
    """
    if config.freeze_backbone:
        model.backbone.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(config.optimizer, params, config.lr, config.momentum, config.weight_decay)

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        lr = config.lr if step < config.steps else config.low_lr
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = sample(rng)
        model.train()
        if config.freeze_backbone:
            model.backbone.eval()  # frozen: batch-norm statistics and dropout as at test time
        loss, logs = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **logs, "lr": lr}

    return resumable_training(
        {"model": model, "opt": opt},
        config.total_steps,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
        progress=progress,
    )


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


class Regressor(nn.Module):
    """``backbone`` to pool5 (AlexNet or VGG), then FC ``hidden`` -> ReLU -> FC ``2 n_joints``: the joints'
    ``(x, y)`` in normalised image coordinates (see :func:`normalise_joints`)."""

    def __init__(self, backbone: AlexNet | VGGS, n_joints: int, hidden: int):
        super().__init__()
        self.backbone = copy.deepcopy(backbone)
        self.n_joints = n_joints
        self.head = nn.Sequential(nn.Linear(backbone.n_pool5, hidden), nn.ReLU(True), nn.Linear(hidden, 2 * n_joints))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, 2 n_joints)`` (x0, y0, x1, y1, ...)."""
        return self.head(self.backbone.pool5(x))


@dataclass(frozen=True)
class RegressorConfig:
    """Hyper-parameters of :func:`train_regressor` (defaults: smoke-sized); the fields mean what they mean
    in :class:`ClassifierConfig` (no crop: the regressor sees whole images, so that the targets stay put)."""

    steps: int = 100
    low_lr_steps: int = 40
    batch: int = 32
    hidden: int = 128
    lr: float = 0.01
    low_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    freeze_backbone: bool = False
    optimizer: str = "sgd"
    checkpoint_every: int = 50

    @property
    def total_steps(self) -> int:
        return self.steps + self.low_lr_steps


def normalise_joints(joints: np.ndarray, size: int) -> np.ndarray:
    """Pixel joints ``(N, J, 2)`` in ``size``-px images -> ``(N, 2J)`` in ``[-0.5, 0.5]`` (centre 0)."""
    joints = np.asarray(joints, np.float64)
    return (joints / size - 0.5).reshape(len(joints), -1).astype(np.float32)


def init_regressor(backbone: AlexNet | VGGS, n_joints: int, config: RegressorConfig, seed: int) -> Regressor:
    """The regressor at initialisation: a copy of ``backbone`` and new FC layers drawn from ``seed``."""
    torch.manual_seed(seed)
    return Regressor(backbone, n_joints, config.hidden)


def train_regressor(
    backbone: AlexNet | VGGS,
    images: np.ndarray,
    joints: np.ndarray,
    config: RegressorConfig = RegressorConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[Regressor, dict[str, list[float]]]:
    """Fine-tune ``backbone`` (copied) with two new FC layers to regress the pixel ``joints`` ``(N, J, 2)``
    of square uint8 ``images`` ``(N, S, S, 3)`` (``S`` = the backbone's input size) as normalised
    coordinates (:func:`normalise_joints`) with the L2 loss (mean squared error over the ``2J`` outputs).

    Returns the regressor (eval mode) and the history (``loss``, ``lr``); :func:`predict_joints` predicts.
    """
    images, joints = np.asarray(images), np.asarray(joints)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square uint8 images (N, S, S, 3), got {images.dtype} {images.shape}")
    if joints.ndim != 3 or joints.shape[0] != len(images) or joints.shape[2] != 2 or not np.isfinite(joints).all():
        raise ValueError(f"expected finite joints ({len(images)}, J, 2), got {joints.shape}")
    if images.shape[1] != backbone.image_size:
        raise ValueError(f"the backbone takes {backbone.image_size} px inputs but the images are {images.shape[1]} px")
    model = init_regressor(backbone, joints.shape[1], config, seed).to(device)
    x_all = images_to_tensor(images, device)
    y_all = torch.as_tensor(normalise_joints(joints, images.shape[1]), device=device)

    def sample(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(rng.integers(len(images), size=config.batch), device=device)
        return x_all[idx], y_all[idx]

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.mse_loss(out, y), {}

    meta = {"model": "regressor", "seed": seed, "n_images": len(images), "n_joints": joints.shape[1],
            **dataclasses.asdict(config)}  # fmt: skip
    history = fine_tune(model, config, seed, sample, loss_fn, meta, checkpoint_dir, progress)
    return model.eval(), history


@torch.no_grad()
def predict_joints(model: Regressor, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Pixel joints ``(N, J, 2)`` predicted for square uint8 ``images`` ``(N, S, S, 3)`` (eval mode; mode
    restored)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [model(images_to_tensor(images[i : i + batch], device)).float().cpu().numpy()
               for i in range(0, len(images), batch)]  # fmt: skip
    finally:
        model.train(was_training)
    S = images.shape[1]
    flat = np.concatenate(out) if out else np.zeros((0, 2 * model.n_joints), np.float32)
    return (flat.reshape(len(flat), -1, 2).astype(np.float64) + 0.5) * S
