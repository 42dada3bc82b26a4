"""Loader for the shared dataset helpers: fixture files written in the official format."""

from __future__ import annotations

import numpy as np
import pytest

from lib.data.base import DatasetError


def test_crop_stills_cuts_the_window_around_visible_joints(tmp_path):
    import cv2

    from lib.data.base import PoseStills, crop_stills

    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image[..., ::-1])  # stored BGR, read back RGB
    joints = np.zeros((1, 14, 2), np.float32)
    joints[0, 0], joints[0, 1] = (20, 20), (60, 60)  # visible extent 40 px -> window side 48, centre (40, 40)
    joints[0, 2:] = (500, 500)  # invisible joints far outside must not move the window
    visible = np.zeros((1, 14), bool)
    visible[0, :2] = True
    stills = PoseStills([tmp_path / "a.png"], joints, visible, "lsp14", np.array(["train"]))
    crops, in_crop = crop_stills(stills, size=48)  # scale 1: the crop is the window's pixels exactly
    np.testing.assert_array_equal(crops[0], image[16:64, 16:64])
    np.testing.assert_allclose(in_crop[0, :2], [[4, 4], [44, 44]])
    stills.image_paths = [tmp_path / "missing.png"]
    with pytest.raises(DatasetError, match="cannot read image"):
        crop_stills(stills, size=48)
