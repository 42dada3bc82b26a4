"""Skip-Pose Vectors (Shirakawa & Kozakaya, MVA 2019): a skip-thought model on 2D pose sequences.
Taught in ``notebooks/06_skip_pose_vectors.ipynb``.

A sequence of 2D poses is cut into consecutive chunks of ``T`` frames; the model encodes the current chunk
``a_c`` into ``h_c`` and decodes from it the past chunk ``a_p`` and the future chunk ``a_f`` (Eq. 1-5).
After training the encoder gives one feature per frame (a sliding window of ``T`` frames around it); two
sequences are compared by DTW on the cosine-similarity map of their features (:mod:`lib.evaluation.dtw`).

- :func:`keypoint_mask` -- which keypoints the model sees: detected (or visible) and inside the frame.
- :func:`normalize_sequence` -- the paper's preprocessing: the first pose's box -> ``[-1, 1]^2``, masks
  (or, as an ablation, the whole sequence's box).
- :func:`make_triplets`, :func:`sliding_windows` -- training triplets and per-frame windows.
- :func:`shared_triplets`, :func:`add_augmentation`, :class:`TripletData` -- one validation split and one
  triplet sample per (dataset, split, T, seed) for every compared model, augmented triplets on top, with a
  fingerprint to prove it.
- :class:`SkipPose` -- per-pose FC, bidirectional GRU encoder, past/future GRU decoders (shared FCs).
- :class:`SkipPoseAE` -- the paper's baseline: the same model with the RNNs replaced by FC layers.
- :func:`skip_loss` -- the masked loss of Eq. 5 (per triplet with ``reduction="none"``);
  :func:`triplet_losses` -- a model's per-triplet loss on held-out triplets (for the learn check);
  :func:`train_skip_pose` -- Adam, epoch chosen on validation.
- :func:`embed_sequences`, :func:`window_features`, :func:`pca_features` -- per-frame features of the
  model and of the raw / PCA baselines; :func:`recognise` -- DTW (either mode of
  :func:`lib.evaluation.dtw.dtw_scores`) + nearest neighbour: per-query hits, accuracy, mean per-class
  accuracy, macro AP, confusion matrix.

Why a GRU: the paper says "RNN" without naming the cell; it follows Skip-Thought Vectors (Kiros et al.
2015), whose encoder and decoders are GRUs, and Martinez et al. (2017), the pose seq2seq it builds on, also
uses GRUs. A GRU's state is one vector, so ``h_c = (h_f + h_p) / 2`` (Eq. 2) is the whole decoder state;
an LSTM would need a second (cell) state the paper never mentions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import confusion_matrix
from torch import nn

from lib.evaluation.dtw import dtw_scores
from lib.evaluation.metrics import one_nn_accuracy, per_class_average_precision
from lib.runtime import Checkpointer, check_finite


def keypoint_mask(
    poses: np.ndarray,
    frame_hw: tuple[int, int],
    detected: np.ndarray | None = None,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """``(T, J)`` bool: the keypoints a model may see, as the paper masks them (Sec. 3.1, 4.1).

    ``poses`` ``(T, J, 2)`` pixel ``x, y``; a keypoint is kept when its coordinates are finite and inside the
    frame of size ``frame_hw = (height, width)`` (``0 <= x < width``, ``0 <= y < height``), and, when
    given, ``detected`` ``(T, J)`` is True for it (a dataset's visibility flag, or a renderer's occlusion
    test) and its camera-frame ``depth`` ``(T, J)`` is positive (in front of the camera).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[2] != 2:
        raise ValueError(f"expected poses of shape (T, J, 2), got {poses.shape}")
    h, w = frame_hw
    if not (h > 0 and w > 0):
        raise ValueError(f"frame_hw must be a positive (height, width), got {frame_hw}")
    with np.errstate(invalid="ignore"):
        x, y = poses[..., 0], poses[..., 1]
        keep = np.isfinite(poses).all(axis=2) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    for name, extra in (("detected", detected), ("depth", depth)):
        if extra is None:
            continue
        extra = np.asarray(extra)
        if extra.shape != poses.shape[:2]:
            raise ValueError(f"{name} must have shape {poses.shape[:2]} like the poses, got {extra.shape}")
        keep &= extra.astype(bool) if name == "detected" else extra > 0
    return keep


NORMALISATIONS = ("first", "sequence")


def normalize_sequence(
    poses: np.ndarray, mask: np.ndarray | None = None, reference: str = "first", keep_masked: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift a pose sequence so that its first pose's keypoints span ``[-1, 1]`` in x and y.

    ``poses`` ``(T, J, 2)`` (pixels or any unit), ``mask`` ``(T, J)`` bool, True where the keypoint is
    detected and inside the frame (default: all True). The per-axis affine map is computed from the visible
    keypoints of the first pose (the first frame with at least two visible keypoints spanning a non-zero
    extent on both axes, when the very first pose does not) and applied to the whole sequence, so later
    changes of position and scale are kept. ``reference="sequence"`` (an ablation, not the paper's) takes
    the box of the visible keypoints of the whole sequence instead, so every coordinate lies in ``[-1, 1]``.
    Returns ``(normalised (T, J, 2) float32, mask (T, J) bool)`` with masked coordinates set to 0 (the mask
    multiplies the input, as in the paper), or, with ``keep_masked`` (for drawing), mapped like the others.
    """
    if reference not in NORMALISATIONS:
        raise ValueError(f"reference must be one of {list(NORMALISATIONS)}, got {reference!r}")
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[2] != 2 or poses.shape[0] < 1:
        raise ValueError(f"expected poses of shape (T, J, 2) with T >= 1, got {poses.shape}")
    mask = np.ones(poses.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != poses.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match poses {poses.shape[:2]}")
    mask = mask & np.isfinite(poses).all(axis=2)
    lo, span = np.zeros(2), np.full(2, 2.0)  # identity-like fallback if no frame is usable
    candidates = [poses[mask]] if reference == "sequence" else (poses[t][mask[t]] for t in range(len(poses)))
    for pts in candidates:
        if len(pts) >= 2 and (np.ptp(pts, axis=0) > 0).all():
            lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
            break
    out = (poses - lo) / span * 2.0 - 1.0
    if not keep_masked:
        out[~mask] = 0.0
    return out.astype(np.float32), mask


def make_triplets(poses: np.ndarray, mask: np.ndarray, chunk: int, stride: int = 1) -> tuple[np.ndarray, ...]:
    """Consecutive (past, current, future) chunks of ``chunk`` frames from one sequence.

    ``poses`` ``(T, J, 2)``, ``mask`` ``(T, J)``. Triplet ``k`` covers frames ``[s, s + 3 chunk)`` with
    ``s = k * stride``. Returns ``(x (N, 3, chunk, J, 2) float32, m (N, 3, chunk, J) bool)``, index 0 of axis
    1 the past, 1 the current, 2 the future chunk; ``N = 0`` when the sequence is shorter than ``3 chunk``.
    """
    if chunk < 1 or stride < 1:
        raise ValueError(f"chunk and stride must be >= 1, got chunk={chunk}, stride={stride}")
    starts = np.arange(0, len(poses) - 3 * chunk + 1, stride)
    idx = starts[:, None] + np.arange(3 * chunk)[None]
    j = poses.shape[1]
    x = np.asarray(poses, np.float32)[idx].reshape(len(starts), 3, chunk, j, 2)
    m = np.asarray(mask, bool)[idx].reshape(len(starts), 3, chunk, j)
    return x, m


def sliding_windows(poses: np.ndarray, mask: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """One window of ``chunk`` frames per frame ``t``: frames ``t - (chunk - 1) // 2 ...``, edges repeated.

    ``(T, J, 2), (T, J)`` -> ``(T, chunk, J, 2), (T, chunk, J)``, so a sequence of ``T`` frames gets ``T``
    per-frame features whatever ``chunk`` is.
    """
    n = len(poses)
    idx = np.arange(n)[:, None] - (chunk - 1) // 2 + np.arange(chunk)[None]
    idx = np.clip(idx, 0, n - 1)
    return np.asarray(poses, np.float32)[idx], np.asarray(mask, bool)[idx]


def _triplet_starts(lengths: Sequence[int], chunk: int) -> np.ndarray:
    """``(N, 2)`` int64 ``(sequence, first frame)`` of every triplet of ``3 chunk`` consecutive frames."""
    parts = [np.column_stack([np.full(max(0, n - 3 * chunk + 1), s), np.arange(max(0, n - 3 * chunk + 1))])
             for s, n in enumerate(lengths)]  # fmt: skip
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 2), np.int64)


def _gather_triplets(
    poses: Sequence[np.ndarray], masks: Sequence[np.ndarray], starts: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """The triplets at ``starts`` ``(N, 2)``, laid out as by :func:`make_triplets`:
    ``(N, 3, chunk, J, 2)`` float32 and ``(N, 3, chunk, J)`` bool."""
    j = poses[0].shape[1] if len(poses) else 0
    x = np.empty((len(starts), 3 * chunk, j, 2), np.float32)
    m = np.empty((len(starts), 3 * chunk, j), bool)
    for s in np.unique(starts[:, 0]) if len(starts) else []:
        rows = np.flatnonzero(starts[:, 0] == s)
        idx = starts[rows, 1][:, None] + np.arange(3 * chunk)[None]
        x[rows], m[rows] = np.asarray(poses[s], np.float32)[idx], np.asarray(masks[s], bool)[idx]
    return x.reshape(len(starts), 3, chunk, j, 2), m.reshape(len(starts), 3, chunk, j)


@dataclass(frozen=True)
class TripletData:
    """The training and validation triplets of one (dataset, split, ``T``, seed), shared by every model.

    ``train``, ``val``: ``(x (N, 3, T, J, 2) float32, m (N, 3, T, J) bool)``; the first ``n_real`` training
    triplets come from the dataset, any after them from 3D augmentation (:func:`add_augmentation`).
    ``held_out``: ``(S,)`` bool, the dictionary sequences whose triplets validate instead of train.
    """

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    held_out: np.ndarray
    n_real: int

    def fingerprint(self, real_only: bool = False) -> str:
        """SHA-256 (16 hex digits) of the triplets and the split: equal fingerprints, equal data.
        ``real_only`` leaves augmented triplets out, so models with and without them can be compared."""
        n = self.n_real if real_only else len(self.train[0])
        h = hashlib.sha256()
        for a in (self.train[0][:n], self.train[1][:n], *self.val, self.held_out):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def shared_triplets(
    poses: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    chunk: int,
    seed: int,
    val_share: float = 0.15,
    cap: int | None = None,
) -> TripletData:
    """One validation split and one training triplet sample of the sequences ``poses`` ``(T_s, J, 2)`` with
    ``masks`` ``(T_s, J)``, drawn from ``seed`` and ``chunk`` only, so every model compared on them sees the
    same data whatever it is (training seeds then vary only initialisation and batch order).

    A share ``val_share`` of the sequences (at least one, and at least one left to train) is held out and
    all its triplets validate; the others' triplets train, at most ``cap`` of them (a uniform sample, in
    sequence order; None: all).
    """
    if len(poses) != len(masks) or len(poses) < 2:
        raise ValueError(f"need >= 2 sequences with one mask each, got {len(poses)} poses and {len(masks)} masks")
    if not 0 < val_share < 1:
        raise ValueError(f"val_share must be in (0, 1), got {val_share}")
    rng = np.random.default_rng([seed, chunk])
    n_val = min(len(poses) - 1, max(1, round(val_share * len(poses))))
    held_out = np.zeros(len(poses), bool)
    held_out[rng.choice(len(poses), n_val, replace=False)] = True
    starts = _triplet_starts([len(p) for p in poses], chunk)
    is_val = held_out[starts[:, 0]]
    train_starts, val_starts = starts[~is_val], starts[is_val]
    if len(train_starts) == 0 or len(val_starts) == 0:
        raise ValueError(
            f"no {'training' if len(train_starts) == 0 else 'validation'} triplets of {3 * chunk} frames: "
            f"the sequences are too short for chunk={chunk}"
        )
    if cap is not None and len(train_starts) > cap:
        train_starts = train_starts[np.sort(rng.choice(len(train_starts), cap, replace=False))]
    train = _gather_triplets(poses, masks, train_starts, chunk)
    return TripletData(train, _gather_triplets(poses, masks, val_starts, chunk), held_out, len(train_starts))


def add_augmentation(
    data: TripletData,
    poses: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    ratio: float,
    seed: int,
) -> TripletData:
    """``data`` with ``ratio x n_real`` augmented triplets (from sequences ``poses``, ``masks``) appended
    after its real ones; validation unchanged.

    The augmented triplets are the first ones of a fixed random order of all triplets of the augmentation
    sequences (drawn from ``seed`` and the chunk length), so a smaller ratio takes a subset of a larger
    one's. When the sequences hold fewer triplets than asked, all of them are used.
    """
    if ratio < 0:
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    chunk = data.train[0].shape[2]
    starts = _triplet_starts([len(p) for p in poses], chunk)
    order = np.random.default_rng([seed, chunk, 1]).permutation(len(starts))
    picked = starts[order[: min(len(starts), round(ratio * data.n_real))]]
    aug = _gather_triplets(poses, masks, picked, chunk)
    train = tuple(np.concatenate([a[: data.n_real], b]) for a, b in zip(data.train, aug, strict=True))
    return TripletData(train, data.val, data.held_out, data.n_real)


# ---------------------------------------------------------------------------------------------------------
# models


class PoseEncoder(nn.Module):
    """``FC*`` on each masked pose, then a bidirectional GRU; ``h_c`` = mean of the two final states (Eq. 2)."""

    def __init__(self, fc_in: nn.Linear, hidden: int):
        super().__init__()
        self.fc_in = fc_in
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, J, 2)``, ``m`` ``(B, T, J)`` -> ``h_c`` ``(B, hidden)``."""
        z = self.fc_in((x * m.unsqueeze(-1).to(x.dtype)).flatten(2))
        _, h = self.rnn(z)  # h: (2, B, hidden), forward then backward direction
        return h.mean(dim=0)


class PoseDecoder(nn.Module):
    """A GRU started from ``h_c`` whose inputs are zero poses through ``FC*``; ``FC**`` gives the poses."""

    def __init__(self, fc_in: nn.Linear, fc_out: nn.Linear, hidden: int):
        super().__init__()
        self.fc_in = fc_in
        self.fc_out = fc_out
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, h: torch.Tensor, steps: int) -> torch.Tensor:
        """``h`` ``(B, hidden)`` -> poses ``(B, steps, J, 2)``."""
        zeros = h.new_zeros(h.shape[0], steps, self.fc_in.in_features)
        y, _ = self.rnn(self.fc_in(zeros), h.unsqueeze(0).contiguous())
        return self.fc_out(y).unflatten(-1, (-1, 2))


class SkipPose(nn.Module):
    """The skip-pose model: encoder of the current chunk, decoders of the past and future chunks.

    ``FC*`` (``2J -> hidden``) and ``FC**`` (``hidden -> 2J``) are single modules referenced by the encoder
    and both decoders, so their parameters are shared. ``past=False`` drops the past decoder (ablation).
    """

    def __init__(self, n_joints: int, chunk: int, hidden: int = 64, past: bool = True):
        super().__init__()
        self.chunk, self.hidden = chunk, hidden
        self.fc_in = nn.Linear(2 * n_joints, hidden)  # FC*
        self.fc_out = nn.Linear(hidden, 2 * n_joints)  # FC**
        self.encoder = PoseEncoder(self.fc_in, hidden)
        self.future_decoder = PoseDecoder(self.fc_in, self.fc_out, hidden)
        self.past_decoder = PoseDecoder(self.fc_in, self.fc_out, hidden) if past else None

    def encode(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Features ``h_c`` ``(B, hidden)`` of chunks ``x`` ``(B, T, J, 2)`` with masks ``(B, T, J)``."""
        return self.encoder(x, m)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Current chunks -> (past prediction or None, future prediction), each ``(B, T, J, 2)``."""
        h = self.encode(x, m)
        past = self.past_decoder(h, x.shape[1]) if self.past_decoder is not None else None
        return past, self.future_decoder(h, x.shape[1])


class SkipPoseAE(nn.Module):
    """The paper's "AE" baseline: :class:`SkipPose` with each RNN replaced by a fully connected layer.

    The chunk's ``T`` masked poses are concatenated into one vector: ``FC*`` (``2JT -> hidden``), tanh, FC
    (``hidden -> hidden``), tanh gives ``h_c``; each decoder is FC (``hidden -> hidden``), tanh, then the shared
    ``FC**`` (``hidden -> 2JT``). Same sizes, same objective (past and future), no recurrence.
    """

    def __init__(self, n_joints: int, chunk: int, hidden: int = 64, past: bool = True):
        super().__init__()
        self.chunk, self.hidden = chunk, hidden
        self.fc_in = nn.Linear(2 * n_joints * chunk, hidden)
        self.fc_out = nn.Linear(hidden, 2 * n_joints * chunk)
        self.enc = nn.Linear(hidden, hidden)
        self.dec_future = nn.Linear(hidden, hidden)
        self.dec_past = nn.Linear(hidden, hidden) if past else None

    def encode(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(self.fc_in((x * m.unsqueeze(-1).to(x.dtype)).flatten(1)))
        return torch.tanh(self.enc(z))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = self.encode(x, m)

        def decode(layer: nn.Linear) -> torch.Tensor:
            return self.fc_out(torch.tanh(layer(h))).reshape(x.shape)

        return (decode(self.dec_past) if self.dec_past is not None else None), decode(self.dec_future)


def skip_loss(
    pred_past: torch.Tensor | None,
    pred_future: torch.Tensor,
    x: torch.Tensor,
    m: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 5, masked: ``(||ã_p - a_p||² + ||ã_f - a_f||²) / 4`` over visible keypoints, mean over the batch.

    ``x`` ``(B, 3, T, J, 2)`` and ``m`` ``(B, 3, T, J)`` are the (past, current, future) triplets; the
    predictions are ``(B, T, J, 2)``. Masked keypoints of the targets contribute nothing. With
    ``pred_past=None`` (no past decoding) only the future term is kept. ``reduction="none"`` returns the
    ``(B,)`` per-triplet losses.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    w = m.unsqueeze(-1).to(x.dtype)
    loss = (w[:, 2] * (pred_future - x[:, 2]) ** 2).flatten(1).sum(1)
    if pred_past is not None:
        loss = loss + (w[:, 0] * (pred_past - x[:, 0]) ** 2).flatten(1).sum(1)
    return loss.mean() / 4.0 if reduction == "mean" else loss / 4.0


# ---------------------------------------------------------------------------------------------------------
# training


@dataclass
class TrainHistory:
    """Per-epoch mean training and validation losses and the epoch (1-based) whose weights were kept."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_epoch: int = 0


def _batches(n: int, batch_size: int, gen: torch.Generator | None, device: torch.device) -> list[torch.Tensor]:
    """Index batches on ``device``: a permutation drawn on the CPU from ``gen`` (the same on every device),
    copied once, or ``0 .. n - 1`` in order when ``gen`` is None."""
    order = torch.randperm(n, generator=gen).to(device) if gen is not None else torch.arange(n, device=device)
    return list(order.split(batch_size))


def train_skip_pose(
    model: SkipPose | SkipPoseAE,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpointer: Checkpointer | None = None,
) -> TrainHistory:
    """Train with Adam on triplets ``train = (x (N, 3, T, J, 2), m (N, 3, T, J))``; keep the best epoch.

    After each epoch the loss on ``val`` triplets is measured; at the end the model holds the weights of
    the epoch with the lowest validation loss (the paper chooses the number of epochs on a validation set).
    A non-finite training loss stops training at the end of its epoch (:class:`lib.runtime.NonFiniteLossError`).
    With a ``checkpointer`` (``every`` counted in epochs) training resumes from its latest checkpoint.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    for name, (x, m) in (("train", train), ("val", val)):
        if len(x) == 0 or x.shape[:4] != m.shape or x.shape[1] != 3 or x.shape[2] != model.chunk:
            raise ValueError(
                f"{name} triplets must be non-empty (N, 3, {model.chunk}, J, 2) with masks (N, 3, "
                f"{model.chunk}, J); got {x.shape} and {m.shape}"
            )
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt, mt = torch.as_tensor(train[0], device=device), torch.as_tensor(train[1], device=device)
    xv, mv = torch.as_tensor(val[0], device=device), torch.as_tensor(val[1], device=device)
    hist, best, start = TrainHistory(), None, 0
    if checkpointer is not None and (ck := checkpointer.load_latest()) is not None:
        start, state = ck
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        best = state["best"]
        hist = TrainHistory(list(state["train"]), list(state["val"]), int(state["best_epoch"]))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(start):  # replay the shuffles of finished epochs so a resumed run matches an unbroken one
        torch.randperm(len(xt), generator=gen)
    for epoch in range(start, epochs):
        model.train()
        total = torch.zeros((), device=device)  # summed on the device: no host sync per step
        for b in _batches(len(xt), batch_size, gen, device):  # no host sync inside an epoch
            x, m = xt[b], mt[b]
            past, future = model(x[:, 1], m[:, 1])
            loss = skip_loss(past, future, x, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(b)
        check_finite(epoch + 1, skip_loss=total / len(xt))
        hist.train.append(float(total) / len(xt))
        hist.val.append(_eval_loss(model, xv, mv, batch_size * 8))
        if hist.best_epoch == 0 or hist.val[-1] < hist.val[hist.best_epoch - 1]:
            hist.best_epoch = epoch + 1
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if checkpointer is not None and checkpointer.due(epoch + 1):
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "best": best}
            state.update(train=hist.train, val=hist.val, best_epoch=hist.best_epoch)
            checkpointer.save(epoch + 1, state)
    model.load_state_dict(best)
    model.eval()
    return hist


@torch.no_grad()
def triplet_losses(
    model: SkipPose | SkipPoseAE, triplets: tuple[np.ndarray, np.ndarray], batch_size: int = 4096
) -> np.ndarray:
    """Per-triplet Eq. 5 loss ``(N,)`` of ``model`` on triplets ``(x (N, 3, T, J, 2), m (N, 3, T, J))``: the
    held-out metric of the learn check (:func:`lib.evaluation.uncertainty.learned`, lower is better)."""
    device = next(model.parameters()).device
    x = torch.as_tensor(triplets[0], device=device)
    m = torch.as_tensor(triplets[1], device=device)
    return _item_losses(model, x, m, batch_size).cpu().numpy().astype(np.float64)


@torch.no_grad()
def _item_losses(model: nn.Module, x: torch.Tensor, m: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    out = []
    for b in _batches(len(x), batch_size, None, x.device):
        past, future = model(x[b, 1], m[b, 1])
        out.append(skip_loss(past, future, x[b], m[b], reduction="none"))
    return torch.cat(out)


def _eval_loss(model: nn.Module, x: torch.Tensor, m: torch.Tensor, batch_size: int) -> float:
    return float(_item_losses(model, x, m, batch_size).mean())


# ---------------------------------------------------------------------------------------------------------
# per-frame features and recognition


@torch.no_grad()
def embed_sequences(
    model: SkipPose | SkipPoseAE,
    poses: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    batch_size: int = 8192,
) -> list[np.ndarray]:
    """Per-frame features ``(T_s, hidden)`` of each normalised sequence: ``h_c`` of its sliding windows."""
    model.eval()
    device = next(model.parameters()).device
    wins = [sliding_windows(p, m, model.chunk) for p, m in zip(poses, masks, strict=True)]
    x = torch.as_tensor(np.concatenate([w[0] for w in wins]))
    m = torch.as_tensor(np.concatenate([w[1] for w in wins]))
    feats = torch.cat(
        [model.encode(x[b].to(device), m[b].to(device)).cpu() for b in _batches(len(x), batch_size, None, x.device)]
    )
    return [f.numpy() for f in feats.split([len(p) for p in poses])]


def window_features(poses: Sequence[np.ndarray], masks: Sequence[np.ndarray], chunk: int) -> list[np.ndarray]:
    """The raw baseline: each frame's window of ``chunk`` masked normalised poses, flattened ``(T_s, 2 J chunk)``."""
    out = []
    for p, m in zip(poses, masks, strict=True):
        x, w = sliding_windows(p, m, chunk)
        out.append((x * w[..., None]).reshape(len(p), -1))
    return out


def pca_features(
    fit_on: Sequence[np.ndarray], apply_to: Sequence[Sequence[np.ndarray]], n_components: int = 64, seed: int = 0
) -> list[list[np.ndarray]]:
    """The PCA baseline: fit PCA (``min(n_components, dim)`` components) on the frames of ``fit_on`` and
    project every sequence of each list in ``apply_to``."""
    data = np.concatenate(list(fit_on))
    pca = PCA(n_components=min(n_components, data.shape[1], len(data)), random_state=seed).fit(data)
    return [[pca.transform(f).astype(np.float32) for f in group] for group in apply_to]


def recognise(
    query_feats: Sequence[np.ndarray],
    query_labels: np.ndarray,
    dict_feats: Sequence[np.ndarray],
    dict_labels: np.ndarray,
    mode: str = "similarity",
    length_normalise: bool = True,
) -> dict[str, np.ndarray | float]:
    """DTW + nearest neighbour: each query takes the label of the dictionary sequence with the best score.

    ``scores`` ``(n_q, n_d)`` are cosine-similarity DTW scores (:func:`lib.evaluation.dtw.dtw_scores`) in
    ``mode``: ``"similarity"``, the paper's summed similarity along the best path (Eq. 7), divided by
    ``Tq + Td`` when ``length_normalise`` (the sum grows with the sequences' lengths, so without it long
    dictionary sequences win whenever similarities are positive: harmless on JHMDB's 15-40 frame clips,
    ruinous on Penn Action's 18-663); or ``"cost"``, the mean similarity along the least-cost alignment,
    already comparable across lengths (``length_normalise`` does not apply). Returns ``scores``,
    ``predicted`` labels, ``correct`` ``(n_q,)`` bool per query, ``accuracy`` (1-NN,
    :func:`lib.evaluation.metrics.one_nn_accuracy`), ``per_class_accuracy`` (the mean over the query
    classes of their accuracy, read off the confusion matrix: ``sklearn.metrics.balanced_accuracy_score``),
    ``macro_ap`` (the mean of :func:`lib.evaluation.metrics.per_class_average_precision` over the query
    classes the dictionary has), ``classes``
    (sorted labels of queries and dictionary) and ``confusion`` (counts, rows true class, columns
    predicted, in that order).
    """
    query_labels, dict_labels = np.asarray(query_labels), np.asarray(dict_labels)
    if len(query_labels) != len(query_feats) or len(dict_labels) != len(dict_feats):
        raise ValueError(
            f"labels and features differ in count: {len(query_labels)} vs {len(query_feats)} queries, "
            f"{len(dict_labels)} vs {len(dict_feats)} dictionary sequences"
        )
    scores = dtw_scores(query_feats, dict_feats, cosine=True, mode=mode)
    if mode == "similarity" and length_normalise:
        scores = scores / np.add.outer([len(f) for f in query_feats], [len(f) for f in dict_feats])
    predicted = dict_labels[scores.argmax(axis=1)]
    classes = np.unique(np.concatenate([query_labels, dict_labels]))
    confusion = confusion_matrix(query_labels, predicted, labels=classes)
    asked = confusion.sum(axis=1) > 0  # classes with queries
    return {
        "scores": scores,
        "predicted": predicted,
        "correct": predicted == query_labels,
        "accuracy": one_nn_accuracy(scores, query_labels, dict_labels),
        "per_class_accuracy": float(np.mean(np.diag(confusion)[asked] / confusion.sum(axis=1)[asked])),
        "macro_ap": float(np.nanmean(list(per_class_average_precision(scores, query_labels, dict_labels).values()))),
        "classes": classes,
        "confusion": confusion,
    }
