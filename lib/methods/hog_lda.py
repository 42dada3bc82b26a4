"""HOG-LDA (Hariharan, Malik & Ramanan, ECCV 2012): HOG whitened by the statistics of generic image windows,
the initial posture similarity of Milbich et al. 2017. Taught in ``notebooks/05_posture_reconciliation.ipynb``.

Hariharan et al. model the HOG of *any* window of natural images ("background") by one Gaussian whose
mean and covariance they estimate once, from many images: a mean cell feature ``mu0`` and a *stationary*
covariance ``Sigma(dy, dx) = E[(x_p - mu0)(x_{p+d} - mu0)^T]`` that depends on the offset ``d`` between
two cells only, averaged over every position of every image. The covariance of a window of ``h x w``
cells is then assembled from it (block Toeplitz): every image contributes all its cell pairs, so a few
hundred images give statistics that tens of thousands of sampled windows could not (a full ``1764 x 1764``
covariance estimated from a few hundred windows is mostly noise). Our "cells" are skimage's normalised
HOG blocks (:func:`lib.images.hog_maps`, 36 values each), so a window descriptor is the flattened grid
of its blocks, exactly :func:`lib.images.hog_features`.

- :func:`stationary_statistics` -- ``mu0`` and ``Sigma(dy, dx)`` from HOG maps of any sizes.
- :func:`window_covariance` -- the ``(h w C, h w C)`` covariance of a window, from ``Sigma``.
- :func:`lda_whitening` -- ``(Sigma_w + ridge I)^(-1/2)`` (negative eigenvalues clipped, ridge relative to the
  mean variance).
- :class:`HogLDA` -- ``z = normalise(W (hog - mean))``: squared distances compare LDA-whitened HOG.
- :func:`background_statistics`, :func:`stationary_hog_lda` -- Hariharan et al.: frames at several sizes ->
  stationary statistics -> the HOG-LDA of a window.
- :func:`random_windows`, :func:`fit_full_covariance_hog_lda` -- the naive estimate, a full covariance
  of randomly sampled windows, kept to show why the stationary one is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lib.images import check_rgb_images, hog_features, hog_maps


def stationary_statistics(
    maps: Sequence[np.ndarray], radius: tuple[int, int], batch: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cell feature ``(C,)`` and stationary covariance ``(2 ry + 1, 2 rx + 1, C, C)`` of feature maps.

    ``maps``: arrays ``(N, H, W, C)`` (sizes may differ between arrays, ``C`` may not). ``Sigma[ry + dy,
    rx + dx] = mean over all cell pairs (p, p + d) inside one map of (x_p - mu)(x_{p+d} - mu)^T`` for
    ``|dy| <= ry``, ``|dx| <= rx``, with ``mu`` the mean over all cells; ``Sigma(-d) = Sigma(d)^T``.
    The sums over pairs are cross-correlations of the channels, computed for all offsets at once with FFTs
    of the maps zero-padded by the radius (so no pair wraps around), ``batch`` maps at a time.
    """
    ry, rx = (int(r) for r in radius)
    if ry < 0 or rx < 0:
        raise ValueError(f"radius must be two integers >= 0, got {radius}")
    maps = [np.asarray(m, np.float64) for m in maps]
    if not maps or any(m.ndim != 4 or m.size == 0 for m in maps):
        raise ValueError(f"maps must be non-empty (N, H, W, C) arrays, got shapes {[m.shape for m in maps]}")
    C = maps[0].shape[3]
    if any(m.shape[3] != C for m in maps):
        raise ValueError(f"every map needs the same C, got {[m.shape[3] for m in maps]}")
    if any(m.shape[1] <= ry or m.shape[2] <= rx for m in maps):
        raise ValueError(f"radius {radius} exceeds the maps {[m.shape[1:3] for m in maps]}: offsets without pairs")
    if not all(np.isfinite(m).all() for m in maps):
        raise ValueError("maps contain NaN or inf")
    mean = sum(m.sum((0, 1, 2)) for m in maps) / sum(m[..., 0].size for m in maps)
    dy, dx = np.arange(-ry, ry + 1), np.arange(-rx, rx + 1)
    sums = np.zeros((2 * ry + 1, 2 * rx + 1, C, C))
    pairs = np.zeros((2 * ry + 1, 2 * rx + 1))
    for m in maps:
        N, H, W, _ = m.shape
        shape = (H + ry, W + rx)
        cross = 0j
        for i in range(0, N, batch):
            X = np.fft.rfft2((m[i : i + batch] - mean).transpose(0, 3, 1, 2), s=shape).transpose(2, 3, 0, 1)
            re, im = np.ascontiguousarray(X.real), np.ascontiguousarray(X.imag)  # (fy, fx, n, C)
            reT, imT = re.transpose(0, 1, 3, 2), im.transpose(0, 1, 3, 2)
            # sum_n conj(X_a) X_b per frequency, in real arithmetic (numpy's stacked complex matmul is slow)
            cross = cross + (reT @ re + imT @ im) + 1j * (reT @ im - imT @ re)
        corr = np.fft.irfft2(cross.transpose(2, 3, 0, 1), s=shape)  # (C, C, H + ry, W + rx), lag d at d mod size
        sums += corr[:, :, dy[:, None] % shape[0], dx[None, :] % shape[1]].transpose(2, 3, 0, 1)
        pairs += N * (H - np.abs(dy))[:, None] * (W - np.abs(dx))[None, :]
    return mean, sums / pairs[..., None, None]


def window_covariance(sigma: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """The covariance ``(h w C, h w C)`` of a window of ``h x w`` cells (row-major, each cell's ``C`` values
    together, as :func:`lib.images.hog_features` flattens), block ``(a, b)`` = ``Sigma(cell_b - cell_a)``."""
    h, w = (int(v) for v in window)
    ry, rx = (sigma.shape[0] - 1) // 2, (sigma.shape[1] - 1) // 2
    if sigma.ndim != 4 or sigma.shape[2] != sigma.shape[3] or sigma.shape[0] % 2 == 0 or sigma.shape[1] % 2 == 0:
        raise ValueError(f"sigma must be (2 ry + 1, 2 rx + 1, C, C), got {sigma.shape}")
    if not (1 <= h <= ry + 1 and 1 <= w <= rx + 1):
        raise ValueError(f"a {h} x {w} window needs offsets up to ({h - 1}, {w - 1}); sigma has radius ({ry}, {rx})")
    C = sigma.shape[2]
    iy, ix = np.divmod(np.arange(h * w), w)
    blocks = sigma[ry + iy[None, :] - iy[:, None], rx + ix[None, :] - ix[:, None]]  # (hw, hw, C, C)
    return blocks.transpose(0, 2, 1, 3).reshape(h * w * C, h * w * C)


def lda_whitening(cov: np.ndarray, ridge: float) -> np.ndarray:
    """Symmetric inverse square root of a ``(F, F)`` covariance, regularised: ``(cov+ + ridge m I)^(-1/2)``.

    ``cov+`` is ``cov`` with negative eigenvalues set to 0 (a covariance assembled from stationary statistics,
    or estimated from few samples, need not be positive semi-definite), ``m`` the mean of ``diag(cov)``.
    """
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    cov = np.asarray(cov, np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.isfinite(cov).all():
        raise ValueError(f"cov must be a finite square matrix, got shape {cov.shape}")
    scale = np.trace(cov) / len(cov)
    if not scale > 0:
        raise ValueError(f"cov has no variance (mean diagonal {scale}); expected a covariance of varying features")
    # torch's eigh (LAPACK through MKL) is several times faster than numpy's bundled one at 1764 x 1764
    evals, evecs = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy((cov + cov.T) / 2)))
    evals = np.maximum(evals, 0.0) + ridge * scale
    return (evecs / np.sqrt(evals)) @ evecs.T


@dataclass
class HogLDA:
    """LDA-whitened HOG: ``z = normalise(W (hog(x) - mean))``, ``mean`` ``(F,)``, ``whitening`` ``(F, F)``.

    Both come from generic image windows (the background statistics of Hariharan et al. 2012), so the same
    whitening serves every exemplar; ``z_i . z_j`` ranks like the exemplar-LDA score of ``i`` for ``j``.
    """

    mean: np.ndarray
    whitening: np.ndarray

    def apply(self, hog: np.ndarray) -> np.ndarray:
        """``(N, F)`` HOG descriptors -> ``(N, F)`` float32 unit-norm whitened descriptors."""
        hog = np.asarray(hog, np.float64)
        if hog.ndim != 2 or hog.shape[1] != len(self.mean):
            raise ValueError(f"expected (N, {len(self.mean)}) HOG descriptors, got shape {hog.shape}")
        z = (hog - self.mean) @ self.whitening
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``(N, s, s, 3)`` crops -> ``(N, F)`` float32 unit-norm whitened HOG descriptors."""
        return self.apply(hog_features(images))


def background_statistics(
    images: np.ndarray, sizes: Sequence[int], window: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Hariharan et al.'s background statistics: :func:`stationary_statistics` of the HOG maps of uint8
    ``(N, H, W, 3)`` ``images``, each resized to every side in ``sizes`` (px; several scales), up to the
    offsets a ``window`` of ``h x w`` blocks needs -> mean block ``(C,)``, ``Sigma`` ``(2h - 1, 2w - 1, C, C)``."""
    images = check_rgb_images(images)
    h, w = window
    maps = []
    for size in sizes:
        resized = np.stack([cv2.resize(im, (int(size), int(size)), interpolation=cv2.INTER_AREA) for im in images])
        maps.append(hog_maps(resized))
    if any(m.shape[1] < h or m.shape[2] < w for m in maps):
        raise ValueError(f"every size in {list(sizes)} must give at least {h} x {w} HOG blocks")
    return stationary_statistics(maps, (h - 1, w - 1))


def stationary_hog_lda(mean: np.ndarray, sigma: np.ndarray, window: tuple[int, int], ridge: float = 0.01) -> HogLDA:
    """HOG-LDA of a ``window`` of ``h x w`` blocks from background statistics (:func:`background_statistics`):
    the mean block tiled over the window, the whitening of the assembled window covariance (relative
    ``ridge``, :func:`lda_whitening`)."""
    h, w = window
    return HogLDA(mean=np.tile(mean, h * w), whitening=lda_whitening(window_covariance(sigma, window), ridge))


def random_windows(images: np.ndarray, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random square windows (side between a third of and the whole image) from uint8 ``(N, H, W, C)``
    ``images``, resized to ``size`` px -> uint8 ``(n, size, size, C)``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 (N, H, W, C) array, got {images.shape} {images.dtype}")
    N, H, W = images.shape[:3]
    lo = max(8, min(H, W) // 3)
    out = np.empty((n, size, size, images.shape[3]), np.uint8)
    for k in range(n):
        side = int(rng.integers(lo, min(H, W) + 1))
        y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        win = images[int(rng.integers(N)), y : y + side, x : x + side]
        out[k] = cv2.resize(win, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
    return out


def fit_full_covariance_hog_lda(windows: np.ndarray, ridge: float = 0.01) -> HogLDA:
    """The naive estimate: mean and full sample covariance of the HOG of uint8 ``(N, s, s, 3)`` windows,
    regularised by the relative ``ridge`` (needed when there are fewer windows than HOG dimensions)."""
    h = hog_features(windows).astype(np.float64)
    if len(h) < 2:
        raise ValueError(f"need at least 2 background windows, got {len(h)}")
    return HogLDA(mean=h.mean(0), whitening=lda_whitening(np.cov(h, rowvar=False), ridge))
