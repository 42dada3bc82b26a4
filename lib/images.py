"""Image helpers used by the world, the dataset loaders and the methods alike.

- :func:`square_crop`, :func:`crop_coordinates` -- person-centred square crops and their joint coordinates.
- :func:`check_rgb_images`, :func:`images_to_tensor` -- uint8 image arrays in, network tensors out.
- :func:`crop_batch` -- square windows of a batch of image tensors (the pretext samplers' and fine-tuning crops).
- :func:`random_affine` -- the random translation/scale/rotation augmentation of a batch.
- :func:`hog_maps`, :func:`hog_features` -- Histograms of Oriented Gradients (Dalal & Triggs 2005) by
  ``skimage.feature.hog``: the grid of normalised blocks, and the window descriptor (the grid flattened).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from skimage.feature import hog
from torch.nn import functional as F


def square_crop(image: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """The square ``window`` ``(cx, cy, side)`` (pixels) of ``image`` ``(H, W, 3)`` resized to ``(size, size, 3)``.

    Pixel centres sit at ``+0.5`` (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``); outside the image the
    border pixels are repeated.
    """
    cx, cy, side = (float(v) for v in window)
    s, x0, y0 = size / side, cx - side / 2, cy - side / 2
    # continuous coords: u' = (u - x0) * s; cv2 indexes pixel centres at integers
    M = np.array([[s, 0, (0.5 - x0) * s - 0.5], [0, s, (0.5 - y0) * s - 0.5]])
    return cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def crop_coordinates(points: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """Image points ``(n, J, 2)`` -> the pixel coordinates of :func:`square_crop` ``(n, J, 2)`` float32."""
    windows = np.asarray(windows, np.float64)
    scale = size / windows[:, 2]
    origin = windows[:, :2] - windows[:, 2:3] / 2
    return ((points - origin[:, None]) * scale[:, None, None]).astype(np.float32)


def check_rgb_images(images: np.ndarray) -> np.ndarray:
    """``images`` as a uint8 ``(N, H, W, 3)`` array, or a ValueError saying what it is instead."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} array of shape {images.shape}")
    return images


def images_to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` (or ``(N, H, W)``) images -> float32 ``(N, C, H, W)`` scaled to [-1, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, C), got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def crop_batch(
    images: torch.Tensor, rows: Sequence[int], windows: np.ndarray | torch.Tensor, crop: int
) -> torch.Tensor:
    """Crops ``(B, C, crop, crop)`` of ``images`` ``(N, C, H, W)``: image ``rows[b]`` at the window whose
    top-left pixel is ``windows[b]`` = ``(x0, y0)`` (a ValueError when a window leaves the image)."""
    rows, windows = np.asarray(rows).tolist(), np.asarray(windows).reshape(-1, 2)
    H, W = images.shape[-2:]
    outside = (windows < 0).any(1) | (windows[:, 0] + crop > W) | (windows[:, 1] + crop > H)
    if outside.any():
        b = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"crop_batch: the {crop} px window at (x0, y0) = {tuple(windows[b].tolist())} (sample {b}) "
            f"leaves the {H}x{W} image; need 0 <= x0 <= {W - crop} and 0 <= y0 <= {H - crop}"
        )
    return torch.stack(
        [images[r, :, y0 : y0 + crop, x0 : x0 + crop] for r, (x0, y0) in zip(rows, windows.tolist(), strict=True)]
    )


def random_affine(
    x: torch.Tensor, generator: torch.Generator, shift: float = 0.08, scale: float = 0.1, degrees: float = 10.0
) -> torch.Tensor:
    """Random translation (share of the size), scaling and rotation of a ``(B, C, S, S)`` batch
    (border pixels repeated), as the paper's training augmentation."""
    B = x.shape[0]

    def uniform(r: float) -> torch.Tensor:
        return (torch.rand(B, generator=generator) * 2 - 1) * r

    angle, s = uniform(np.deg2rad(degrees)), 1 + uniform(scale)
    t = torch.stack([uniform(2 * shift), uniform(2 * shift)], 1)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def hog_maps(
    images: np.ndarray, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2
) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, By, Bx, C)``: the grid of L2-Hys-normalised HOG blocks
    (``skimage.feature.hog``), each block's ``C = cells_per_block**2 * orientations`` values in skimage's
    order. ``By = H // pixels_per_cell - cells_per_block + 1`` (likewise ``Bx``); 64 px: 7 x 7 x 36.
    """
    images = check_rgb_images(images)
    maps = [
        hog(
            im,
            orientations=orientations,
            pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(cells_per_block, cells_per_block),
            channel_axis=-1,
            feature_vector=False,
        )
        for im in images
    ]
    if not maps:
        return np.zeros((0, 0, 0, cells_per_block**2 * orientations), np.float32)
    out = np.stack(maps).astype(np.float32)
    return out.reshape(*out.shape[:3], -1)


def hog_features(
    images: np.ndarray, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2
) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, D)`` HOG descriptors: :func:`hog_maps` flattened, exactly
    ``skimage.feature.hog(..., feature_vector=True)``.

    For a 64 x 64 crop with the defaults: 7 x 7 blocks of 2 x 2 cells of 9 orientations, D = 1764.
    """
    maps = hog_maps(images, orientations, pixels_per_cell, cells_per_block)
    return maps.reshape(len(maps), -1) if len(maps) else np.zeros((0, 0), np.float32)
