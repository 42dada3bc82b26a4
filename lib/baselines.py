"""The baselines every paper's embedding is compared with: raw pixels, HOG, a random CNN, the pose oracle.

Each maps uint8 person crops ``(N, H, W, 3)`` (or, for the oracle, ground-truth joints) to float32 features
``(N, D)``, to be compared by cosine or Euclidean distance in the protocols of :mod:`lib.protocols`.

- :func:`raw_pixel_features` -- the crop itself, downsampled, grey, zero-mean unit-norm per image.
- :func:`hog_features` -- Histograms of Oriented Gradients (Dalal & Triggs 2005) by ``skimage.feature.hog``.
- :func:`random_cnn_features` -- pool5 of the randomly initialised VGG-S-like CNN of :mod:`lib.backbones`.
- :func:`pose_oracle_features` -- the normalised ground-truth pose (:func:`lib.metrics.normalise_pose`):
  the upper bound of any posture embedding.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage.feature import hog

from lib.backbones import embed_images, vgg_s
from lib.metrics import normalise_pose


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} array of shape {images.shape}")
    return images


def raw_pixel_features(images: np.ndarray, size: int = 16) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> ``(N, size * size)``: grey, area-downsampled to ``size``, zero mean, unit norm."""
    images = _check_images(images)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = np.empty((len(images), size * size), np.float32)
    for k, im in enumerate(images):
        g = cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
        v = g.astype(np.float32).ravel()
        v -= v.mean()
        out[k] = v / max(float(np.linalg.norm(v)), 1e-6)
    return out


def hog_features(
    images: np.ndarray, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2
) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, D)`` HOG descriptors (``skimage.feature.hog``, L2-Hys blocks).

    For a 64 x 64 crop with the defaults: 7 x 7 blocks of 2 x 2 cells of 9 orientations, D = 1764.
    """
    images = _check_images(images)
    feats = [
        hog(
            im,
            orientations=orientations,
            pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(cells_per_block, cells_per_block),
            channel_axis=-1,
            feature_vector=True,
        )
        for im in images
    ]
    if not feats:
        return np.zeros((0, 0), np.float32)
    return np.stack(feats).astype(np.float32)


def random_cnn_features(images: np.ndarray, seed: int = 0, layer: str = "pool5", batch_size: int = 256) -> np.ndarray:
    """uint8 ``(N, S, S, 3)`` square crops -> float32 features of a randomly initialised :func:`vgg_s`.

    ``layer``: ``"pool5"`` (the conv features, as the papers' zero-shot transfer) or ``"embedding"``.
    The weights depend only on ``seed`` (the global torch RNG state is restored afterwards).
    """
    images = _check_images(images)
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"random_cnn_features needs square crops, got {images.shape[1]}x{images.shape[2]}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = vgg_s(image_size=images.shape[1])
    return embed_images(model, images, batch_size=batch_size, layer=layer)


def pose_oracle_features(joints: np.ndarray) -> np.ndarray:
    """Ground-truth joints ``(N, J, D)`` -> ``(N, J * D)`` normalised poses (:func:`lib.metrics.normalise_pose`)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3:
        raise ValueError(f"expected joints (N, J, D), got shape {joints.shape}")
    return normalise_pose(joints).reshape(len(joints), -1).astype(np.float32)
