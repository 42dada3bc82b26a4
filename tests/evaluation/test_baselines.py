"""Baseline features: shapes, determinism and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from lib.evaluation.baselines import pose_oracle_features, random_cnn_features, raw_pixel_features


def images(n: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_raw_pixels_ignore_brightness_and_contrast():
    im = images(1, 32)
    brighter = np.clip(im.astype(int) // 2 + 60, 0, 255).astype(np.uint8)  # affine intensity change
    a, b = raw_pixel_features(im, size=8), raw_pixel_features(brighter, size=8)
    assert a.shape == (1, 64) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float((a @ b.T)[0, 0]) > 0.99


def test_random_cnn_is_seeded():
    im = images(3, 32)
    a, b, c = random_cnn_features(im, seed=1), random_cnn_features(im, seed=1), random_cnn_features(im, seed=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape[0] == 3 and not np.allclose(a, c)


def test_pose_oracle_is_translation_and_scale_invariant():
    j = np.random.default_rng(0).normal(size=(2, 17, 2))
    np.testing.assert_allclose(pose_oracle_features(j), pose_oracle_features(3 * j + 7), atol=1e-5)
    assert pose_oracle_features(j).shape == (2, 34)
