"""Pose from Action (Purushwalkam & Gupta 2016): does this block of optical flow explain the change between
these two frames? The method of ``notebooks/03_pose_from_action.ipynb``.

Two frames ``t`` and ``t + delta`` (delta = 12) of a video go through one Appearance ConvNet (shared
weights), the ``2 delta`` flow maps between them through a Motion ConvNet (both VGG-M to fc6,
:func:`lib.nets.vgg.vgg_m`), and two FC layers on the concatenated fc6 features say whether the flow
block belongs to the frames (positive: the true block) or not (negatives: blocks of *other* videos, two
per positive). The appearance network's fc6 is the learned pose feature.

- :func:`pretext_sequences` -- the world's sequences a split contributes (all, or a few per activity).
- :func:`sample_frame_pairs`, :func:`random_windows`, :func:`assign_negatives` -- the sampler.
- :func:`gather_blocks`, :func:`augment_triplets` -- flow blocks at one window per sample (frames are cropped
  at the same window by :func:`lib.images.crop_batch`), and the flip / time-reversal augmentation.
- :class:`PoseFromActionNet`, :func:`batch_logits` -- the three networks and the efficient batch (B
  positives, ``n_neg`` B negatives from the same B encodings).
- :class:`PoseFromActionConfig`, :func:`init_pose_from_action`, :func:`train_pose_from_action` -- resumable
  training (SGD with momentum, a lower learning rate for the last steps).
- :func:`make_surrogate_test`, :func:`triplet_probabilities`, :func:`surrogate_probabilities` -- held-out
  surrogate accuracy, with standard
  or *location-matched* negatives (another video of the same activity, cropped so that its person sits
  where the anchor's does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.evaluation.finetune import make_optimizer
from lib.flow import flip_flow_block, reverse_flow_block, stack_flow_maps
from lib.images import crop_batch, images_to_tensor
from lib.nets.vgg import VGGS
from lib.training import resumable_training, sequence_groups, step_generators

DELTA = 12


def pretext_sequences(world: Any, split: str, per_activity: int | None = None, seed: int = 0) -> np.ndarray:
    """Sequence ids of ``split`` in ``world``: all, or at most ``per_activity`` random ones per activity."""
    seqs = world.split_sequences(split)
    if per_activity is None:
        return seqs
    if per_activity < 1:
        raise ValueError(f"per_activity must be >= 1 or None, got {per_activity}")
    rng = np.random.default_rng([seed, len(seqs)])
    act = world.seq_activity[seqs]
    keep = [rng.permutation(seqs[act == a])[:per_activity] for a in np.unique(act)]
    return np.sort(np.concatenate(keep))


def _check_contiguous(groups: list[np.ndarray]) -> None:
    for k, g in enumerate(groups):
        if not np.array_equal(g, np.arange(g[0], g[0] + len(g))):
            raise ValueError(
                f"the frames of sequence {k} are not contiguous: each sequence's frames must be consecutive "
                "rows, in time order"
            )


def sample_frame_pairs(
    groups: list[np.ndarray], n: int, delta: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frame pairs ``(t, t + delta)`` ``(n, 2)`` (row indices) and their video ``(n,)`` (index into
    ``groups``): a random sequence, then a random ``t``. Sequences shorter than ``delta + 1`` frames are
    never used."""
    if not isinstance(delta, int | np.integer) or delta < 1:
        raise ValueError(f"delta must be a positive int, got {delta!r}")
    usable = np.array([k for k, g in enumerate(groups) if len(g) >= delta + 1])
    if len(usable) == 0:
        longest = max((len(g) for g in groups), default=0)
        raise ValueError(f"delta {delta} needs a sequence of >= {delta + 1} frames; the longest has {longest}")
    video = usable[rng.integers(len(usable), size=n)]
    pairs = np.empty((n, 2), np.int64)
    for i, v in enumerate(video):
        g = groups[v]
        t = int(rng.integers(len(g) - delta))
        pairs[i] = g[t], g[t + delta]
    return pairs, video


def random_windows(n: int, height: int, width: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``crop x crop`` windows inside a ``height x width`` frame, as top-left ``(x0, y0)`` ``(n, 2)``."""
    if not 1 <= crop <= min(height, width):
        raise ValueError(f"a {crop} px window does not fit in a {height}x{width} frame")
    return np.column_stack([rng.integers(width - crop + 1, size=n), rng.integers(height - crop + 1, size=n)])


def assign_negatives(video: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
    """For each sample ``i`` of a batch, ``n_neg`` other samples ``j`` of the batch whose video differs,
    ``(B, n_neg)``: distinct when the batch has that many, else drawn with replacement."""
    video = np.asarray(video)
    if len(np.unique(video)) < 2:
        raise ValueError(f"negatives need >= 2 videos in the batch; all {len(video)} samples are from one video")
    out = np.empty((len(video), n_neg), np.int64)
    for i, v in enumerate(video):
        cand = np.flatnonzero(video != v)
        out[i] = rng.choice(cand, n_neg, replace=len(cand) < n_neg)
    return out


def gather_blocks(flows: torch.Tensor, frames: np.ndarray, windows: np.ndarray, crop: int, delta: int) -> torch.Tensor:
    """Flow blocks ``(B, 2 delta, crop, crop)`` float32 (:func:`lib.flow.stack_flow_maps` order) from
    ``flows`` ``(N, H, W, 2)`` (row ``k`` from frame ``k`` to ``k + 1``): the ``delta`` rows from
    ``frames[b]`` on, at the window with top-left ``windows[b]``."""
    x = torch.stack(
        [
            flows[t : t + delta, y0 : y0 + crop, x0 : x0 + crop]
            for t, (x0, y0) in zip(np.asarray(frames).tolist(), np.asarray(windows).tolist(), strict=True)
        ]
    )  # (B, delta, crop, crop, 2)
    return stack_flow_maps(x.float())


def augment_triplets(
    f0: torch.Tensor, f1: torch.Tensor, block: torch.Tensor, flip: torch.Tensor, reverse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample ``b``: mirror both frames and the block (:func:`lib.flow.flip_flow_block`) where
    ``flip[b]``, then swap the frames and reverse the block (:func:`lib.flow.reverse_flow_block`) where
    ``reverse[b]``. Frames ``(B, 3, s, s)``, block ``(B, 2 delta, s, s)``, masks ``(B,)`` bool."""
    flip, reverse = flip[:, None, None, None], reverse[:, None, None, None]
    f0, f1 = torch.where(flip, f0.flip(-1), f0), torch.where(flip, f1.flip(-1), f1)
    block = torch.where(flip, flip_flow_block(block), block)
    f0, f1 = torch.where(reverse, f1, f0), torch.where(reverse, f0, f1)
    block = torch.where(reverse, reverse_flow_block(block), block)
    return f0, f1, block


class PoseFromActionNet(nn.Module):
    """Appearance ConvNet (3 channels) and Motion ConvNet (``2 delta`` channels), VGG-M (or ``variant``) to
    fc6, and the fusion head: concatenated ``[A(t), A(t + delta), T(block)]`` -> FC fc6 -> ReLU -> FC 2."""

    def __init__(self, crop: int, width: int, delta: int = DELTA, variant: str = "vgg_m"):
        super().__init__()
        self.appearance = VGGS(3, crop, width=width, variant=variant)
        self.motion = VGGS(2 * delta, crop, width=width, variant=variant)
        d = self.appearance.n_fc6
        self.head = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(True), nn.Linear(d, 2))

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, 3, s, s)`` x2 and blocks ``(B, 2 delta, s, s)`` -> ``(B, 2)`` logits (1 = belongs)."""
        a = self.appearance.fc6_features(torch.cat([f0, f1]))
        return self.head(torch.cat([a[: len(f0)], a[len(f0) :], self.motion.fc6_features(block)], 1))


def batch_logits(
    net: PoseFromActionNet, f0: torch.Tensor, f1: torch.Tensor, block: torch.Tensor, negatives: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode B frame pairs and B blocks once; score the B positives ``(i, i)`` and the ``B n_neg``
    negatives ``(i, negatives[i, k])``. Returns logits ``(B (1 + n_neg), 2)`` and labels (1 = positive)."""
    B = len(f0)
    a = net.appearance.fc6_features(torch.cat([f0, f1]))
    m = net.motion.fc6_features(block)
    dev = f0.device
    rows = torch.cat([torch.arange(B, device=dev), torch.arange(B, device=dev).repeat_interleave(negatives.shape[1])])
    cols = torch.cat([torch.arange(B, device=dev), torch.as_tensor(negatives.ravel(), device=dev)])
    logits = net.head(torch.cat([a[:B][rows], a[B:][rows], m[cols]], 1))
    labels = (torch.arange(len(rows), device=dev) < B).long()
    return logits, labels


@dataclass(frozen=True)
class PoseFromActionConfig:
    """Hyper-parameters (defaults: smoke-sized). The paper: batch 128, 75k steps at the learning rate then
    25k lower; the values of the rates and the momentum were lost in extraction (we read 0.01, 0.001, 0.9)."""

    steps: int = 150  # at lr
    low_lr_steps: int = 50  # then at low_lr
    batch: int = 16  # positives per step; each brings n_neg negatives
    n_neg: int = 2
    delta: int = DELTA
    crop: int = 56  # window side = network input, pixels
    width: int = 16  # conv1 channels; fc6 has 16 x width
    variant: str = "vgg_m"  # lib.nets.vgg variant of both networks ("vgg_s": conv2 without stride)
    lr: float = 0.01
    low_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    flip: bool = True
    reverse: bool = True
    optimizer: str = "sgd"  # "sgd" (with momentum, the paper) or "adam" (lr and low_lr as given)
    checkpoint_every: int = 50

    @property
    def total_steps(self) -> int:
        return self.steps + self.low_lr_steps


def init_pose_from_action(config: PoseFromActionConfig, seed: int, device: str | torch.device = "cpu"):
    """The network at initialisation (the same weights :func:`train_pose_from_action` starts from)."""
    torch.manual_seed(seed)
    return PoseFromActionNet(config.crop, config.width, config.delta, config.variant).to(device)


def _check_inputs(frames: np.ndarray, flows: np.ndarray, seq: np.ndarray) -> None:
    frames, flows = np.asarray(frames), np.asarray(flows)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if flows.shape != (*frames.shape[:3], 2) or flows.dtype not in (np.float16, np.float32):
        want = (*frames.shape[:3], 2)
        raise ValueError(f"flows must be float16/32 (N, H, W, 2) = {want}, got {flows.dtype} {flows.shape}")
    if np.shape(seq) != (len(frames),):
        raise ValueError(f"seq must be ({len(frames)},), got {np.shape(seq)}")


def train_pose_from_action(
    frames: np.ndarray,
    flows: np.ndarray,
    seq: np.ndarray,
    config: PoseFromActionConfig = PoseFromActionConfig(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[PoseFromActionNet, dict[str, list[float]]]:
    """Train the pretext task on uint8 frames ``(N, H, W, 3)`` with their flows ``(N, H, W, 2)`` (row ``k``
    from frame ``k`` to the next of its sequence) and sequence ids ``seq`` ``(N,)`` (each sequence's frames
    consecutive, in time order).

    Returns the network (eval mode; ``net.appearance`` is the pose feature) and the history: ``loss``,
    ``acc`` (all triplets of the batch), ``pos_acc``, ``neg_acc``, ``lr``.
    """
    _check_inputs(frames, flows, seq)
    groups = sequence_groups(seq)
    _check_contiguous(groups)
    c, H, W = config.crop, frames.shape[1], frames.shape[2]
    random_windows(1, H, W, c, np.random.default_rng(0))  # fails early on a window larger than the frame
    net = init_pose_from_action(config, seed, device)
    opt = make_optimizer(config.optimizer, net.parameters(), config.lr, config.momentum, config.weight_decay)
    images = images_to_tensor(frames, device)  # (N, 3, H, W) in [-1, 1]
    flow_t = torch.as_tensor(np.asarray(flows), device=device)

    def step_fn(step: int) -> dict[str, float]:
        rng, _ = step_generators(seed, step)
        lr = config.lr if step < config.steps else config.low_lr
        for group in opt.param_groups:
            group["lr"] = lr
        pairs, video = sample_frame_pairs(groups, config.batch, config.delta, rng)
        windows = random_windows(config.batch, H, W, c, rng)
        flip = torch.as_tensor(rng.random(config.batch) < (0.5 if config.flip else 0.0), device=device)
        reverse = torch.as_tensor(rng.random(config.batch) < (0.5 if config.reverse else 0.0), device=device)
        negatives = assign_negatives(video, config.n_neg, rng)
        f0, f1 = crop_batch(images, pairs[:, 0], windows, c), crop_batch(images, pairs[:, 1], windows, c)
        block = gather_blocks(flow_t, pairs[:, 0], windows, c, config.delta)
        f0, f1, block = augment_triplets(f0, f1, block, flip, reverse)
        net.train()
        logits, labels = batch_logits(net, f0, f1, block, negatives)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hit = (logits.argmax(1) == labels).float()
        pos = labels == 1
        return {
            "loss": loss.item(),
            "acc": hit.mean().item(),
            "pos_acc": hit[pos].mean().item(),
            "neg_acc": hit[~pos].mean().item(),
            "lr": lr,
        }

    meta = {"model": "pose_from_action", "seed": seed, "n_frames": len(frames), **dataclasses.asdict(config)}
    history = resumable_training(
        {"net": net, "opt": opt},
        config.total_steps,
        step_fn,
        checkpoint_dir,
        meta,
        every=config.checkpoint_every,
        progress=progress,
    )
    return net.eval(), history


# ---------------------------------------------------------------------------------------------------------
# held-out surrogate accuracy


@dataclass
class SurrogateTest:
    """Fixed held-out triplets: anchors ``(n, 2)`` rows of frames t and t + delta with their window
    ``(n, 2)``; each anchor's positive (its own block) and ``n_neg`` negative blocks ``neg_frames``
    ``(n, n_neg)`` at ``neg_windows`` ``(n, n_neg, 2)``."""

    anchors: np.ndarray
    windows: np.ndarray
    neg_frames: np.ndarray
    neg_windows: np.ndarray

    def triplets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flattened ``(anchor rows (m, 2), anchor windows, block rows (m,), block windows, labels)``,
        the positive of each anchor first, then its negatives."""
        n, k = self.neg_frames.shape
        anchors = np.repeat(self.anchors, k + 1, axis=0)
        windows = np.repeat(self.windows, k + 1, axis=0)
        blocks = np.column_stack([self.anchors[:, 0], self.neg_frames]).ravel()
        bwin = np.concatenate([self.windows[:, None], self.neg_windows], 1).reshape(-1, 2)
        labels = np.tile(np.r_[1, np.zeros(k, np.int64)], n)
        return anchors, windows, blocks, bwin, labels


def make_surrogate_test(
    seq: np.ndarray,
    n: int,
    frame_size: tuple[int, int],
    crop: int,
    delta: int = DELTA,
    n_neg: int = 2,
    seed: int = 0,
    centres: np.ndarray | None = None,
    activity: np.ndarray | None = None,
) -> SurrogateTest:
    """``n`` held-out anchors of the sequences ``seq`` ``(N,)`` with ``n_neg`` negative blocks each.

    Standard negatives: a random frame of another sequence at a random window (as in training).
    Location-matched negatives (given the person centres ``(N, 2)`` pixels and ``activity`` ``(N,)``): a
    random frame of another sequence *of the same activity*, at the window that puts its person where the
    anchor's person sits in the anchor's window (clipped to the frame).
    """
    groups = sequence_groups(seq)
    _check_contiguous(groups)
    rng = np.random.default_rng([seed, n])
    H, W = frame_size
    anchors, video = sample_frame_pairs(groups, n, delta, rng)
    windows = random_windows(n, H, W, crop, rng)
    usable = np.array([len(g) >= delta + 1 for g in groups])
    group_of = np.empty(len(seq), np.int64)
    for k, g in enumerate(groups):
        group_of[g] = k
    matched = centres is not None
    if matched and activity is None:
        raise ValueError("location-matched negatives need both centres and activity")
    neg_frames = np.empty((n, n_neg), np.int64)
    neg_windows = np.empty((n, n_neg, 2), np.int64)
    for i in range(n):
        cand = usable & (np.arange(len(groups)) != video[i])
        if matched:
            same = cand & np.array([activity[g[0]] == activity[anchors[i, 0]] for g in groups])
            cand = same if same.any() else cand
        if not cand.any():
            raise ValueError("negatives need >= 2 sequences with enough frames")
        for k, v in enumerate(rng.choice(np.flatnonzero(cand), n_neg, replace=cand.sum() < n_neg)):
            g = groups[v]
            t = g[int(rng.integers(len(g) - delta))]
            neg_frames[i, k] = t
            if matched:
                offset = centres[anchors[i, 0]] - windows[i]  # the anchor's person in its window
                w = np.round(centres[t] - offset).astype(np.int64)
                neg_windows[i, k] = np.clip(w, 0, [W - crop, H - crop])
            else:
                neg_windows[i, k] = random_windows(1, H, W, crop, rng)[0]
    return SurrogateTest(anchors, windows, neg_frames, neg_windows)


@torch.no_grad()
def triplet_probabilities(
    net: PoseFromActionNet,
    frames: np.ndarray,
    flows: np.ndarray,
    anchors: np.ndarray,
    windows: np.ndarray,
    blocks: np.ndarray,
    block_windows: np.ndarray,
    batch: int = 256,
) -> np.ndarray:
    """P(block belongs to the frames) ``(m,)`` for triplets: frame rows ``anchors`` ``(m, 2)`` at ``windows``
    ``(m, 2)``, flow blocks from rows ``blocks`` ``(m,)`` at ``block_windows``; net in eval mode."""
    device = next(net.parameters()).device
    c, delta = net.appearance.image_size, net.motion.in_channels // 2
    was_training = net.training
    net.eval()
    out = []
    try:
        for s in range(0, len(anchors), batch):
            sl = slice(s, s + batch)
            rows = np.unique(np.concatenate([anchors[sl].ravel(), (blocks[sl][:, None] + np.arange(delta)).ravel()]))
            images = images_to_tensor(frames[rows], device)
            flow_t = torch.as_tensor(np.asarray(flows[rows]), device=device)

            win, bwin = windows[sl], block_windows[sl]
            # rows -> positions in `rows` (consecutive rows stay consecutive, as the blocks need)
            a, b = np.searchsorted(rows, anchors[sl]), np.searchsorted(rows, blocks[sl])
            block = gather_blocks(flow_t, b, bwin, c, delta)
            logits = net(crop_batch(images, a[:, 0], win, c), crop_batch(images, a[:, 1], win, c), block)
            out.append(torch.softmax(logits, 1)[:, 1].float().cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def surrogate_probabilities(
    net: PoseFromActionNet, frames: np.ndarray, flows: np.ndarray, test: SurrogateTest
) -> np.ndarray:
    """P(belongs) ``(n, 1 + n_neg)`` of each held-out anchor's positive (column 0) and negatives.

    Triplet accuracy (the paper's number, chance 2/3 by always saying "no") is ``(p > 0.5) == label``;
    the positive ranked above all of its anchor's negatives (chance ``1 / (1 + n_neg)``) is
    ``p[:, 0] > p[:, 1:].max(1)``.
    """
    anchors, windows, blocks, bwin, _ = test.triplets()
    p = triplet_probabilities(net, frames, flows, anchors, windows, blocks, bwin)
    return p.reshape(len(test.anchors), -1)
