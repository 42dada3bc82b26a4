"""The baselines every paper's embedding is compared with: raw pixels, HOG, a random CNN, the pose oracle.

Each maps uint8 person crops ``(N, H, W, 3)`` (or, for the oracle, ground-truth joints) to float32 features
``(N, D)``, to be compared by cosine or Euclidean distance in the protocols of :mod:`lib.evaluation.protocols`.

- :func:`raw_pixel_features` -- the crop itself, downsampled, grey, zero-mean unit-norm per image.
- HOG (Dalal & Triggs 2005) -- :func:`lib.images.hog_features`, an image helper the methods use too.
- :func:`random_cnn_features` -- pool5 of the randomly initialised VGG-S-like CNN of :mod:`lib.nets.vgg`.
- :func:`pose_oracle_features` -- the normalised ground-truth pose (:func:`lib.evaluation.metrics.normalise_pose`):
  the upper bound of any posture embedding.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from lib.evaluation.metrics import normalise_pose
from lib.images import check_rgb_images
from lib.nets.vgg import embed_images, vgg_s


def raw_pixel_features(images: np.ndarray, size: int = 16) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> ``(N, size * size)``: grey, area-downsampled to ``size``, zero mean, unit norm."""
    images = check_rgb_images(images)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = np.empty((len(images), size * size), np.float32)
    for k, im in enumerate(images):
        g = cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
        v = g.astype(np.float32).ravel()
        v -= v.mean()
        out[k] = v / max(float(np.linalg.norm(v)), 1e-6)
    return out


def random_cnn_features(images: np.ndarray, seed: int = 0, layer: str = "pool5", batch_size: int = 256) -> np.ndarray:
    """uint8 ``(N, S, S, 3)`` square crops -> float32 features of a randomly initialised :func:`vgg_s`.

    ``layer``: ``"pool5"`` (the conv features, as the papers' zero-shot transfer) or ``"embedding"``.
    The weights depend only on ``seed`` (the global torch RNG state is restored afterwards).
    """
    images = check_rgb_images(images)
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"random_cnn_features needs square crops, got {images.shape[1]}x{images.shape[2]}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = vgg_s(image_size=images.shape[1])
    return embed_images(model, images, batch_size=batch_size, layer=layer)


def pose_oracle_features(joints: np.ndarray) -> np.ndarray:
    """Ground-truth joints ``(N, J, D)`` -> ``(N, J * D)`` normalised poses
    (:func:`lib.evaluation.metrics.normalise_pose`)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3:
        raise ValueError(f"expected joints (N, J, D), got shape {joints.shape}")
    return normalise_pose(joints).reshape(len(joints), -1).astype(np.float32)
