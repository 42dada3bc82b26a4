"""Image helpers: crops with the pixel-centre convention, tensors, affine augmentation, HOG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.feature import hog

from lib.images import (
    crop_batch,
    crop_coordinates,
    hog_features,
    hog_maps,
    images_to_tensor,
    random_affine,
    square_crop,
)


def test_square_crop_at_scale_one_is_the_pixels_of_the_window():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    crop = square_crop(image, np.array([25.0, 20.0, 16.0]), 16)  # window x 17..33, y 12..28
    np.testing.assert_array_equal(crop, image[12:28, 17:33])
    pts = np.array([[[17.0, 12.0], [33.0, 28.0], [25.5, 20.5]]])
    np.testing.assert_allclose(crop_coordinates(pts, np.array([[25.0, 20.0, 16.0]]), 16)[0],
                               [[0, 0], [16, 16], [8.5, 8.5]])  # fmt: skip
    # twice the size: coordinates scale by 2 about the window's corner
    np.testing.assert_allclose(
        crop_coordinates(pts, np.array([[25.0, 20.0, 16.0]]), 32)[0], [[0, 0], [32, 32], [17, 17]]
    )


def test_images_to_tensor_range_and_layout():
    img = np.zeros((2, 4, 5, 3), np.uint8)
    img[0, 1, 2, 0] = 255
    t = images_to_tensor(img)
    assert t.shape == (2, 3, 4, 5)
    assert t[0, 0, 1, 2] == 1.0 and t.min() == -1.0
    with pytest.raises(ValueError, match="uint8"):
        images_to_tensor(img.astype(np.float32))


def test_crop_batch_takes_each_row_at_its_window():
    images = torch.arange(2 * 3 * 16 * 20, dtype=torch.float32).view(2, 3, 16, 20)
    crops = crop_batch(images, [1, 0], np.array([[2, 5], [4, 1]]), 8)
    assert crops.shape == (2, 3, 8, 8)
    torch.testing.assert_close(crops[0], images[1, :, 5:13, 2:10])
    torch.testing.assert_close(crops[1], images[0, :, 1:9, 4:12])
    corner = crop_batch(images, [0], np.array([[12, 8]]), 8)  # the last window that fits
    torch.testing.assert_close(corner[0], images[0, :, 8:16, 12:20])
    with pytest.raises(ValueError, match="leaves the 16x20 image"):
        crop_batch(images, [0, 1], np.array([[0, 0], [13, 0]]), 8)
    with pytest.raises(ValueError, match="sample 0"):
        crop_batch(images, [0], np.array([[-1, 0]]), 8)


def test_random_affine_identity_when_ranges_are_zero():
    x = torch.randn(3, 3, 16, 16)
    y = random_affine(x, torch.Generator().manual_seed(0), shift=0, scale=0, degrees=0)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_hog_matches_skimage_and_size():
    im = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    f = hog_features(im)
    assert f.shape == (2, 7 * 7 * 2 * 2 * 9) and f.dtype == np.float32
    np.testing.assert_allclose(f[1], hog(im[1], pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1))
    with pytest.raises(ValueError, match="uint8"):
        hog_features(im.astype(np.float32))


def test_hog_maps_are_the_block_grid_of_the_descriptor():
    im = np.random.default_rng(1).integers(0, 256, (2, 48, 80, 3), dtype=np.uint8)
    maps = hog_maps(im)
    assert maps.shape == (2, 5, 9, 36) and maps.dtype == np.float32  # (48/8 - 1) x (80/8 - 1) blocks
    ref = hog(im[0], pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1, feature_vector=False)
    np.testing.assert_allclose(maps[0, 2, 7], ref[2, 7].ravel())
    np.testing.assert_array_equal(hog_features(im), maps.reshape(2, -1))
