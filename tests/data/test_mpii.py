"""Loader for MPII: fixture files written in the official format."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from lib.data.base import DatasetError
from lib.data.mpii import load_mpii


def test_mpii_release_struct(tmp_path, struct_array):
    points = struct_array([
        {"id": 9, "x": 10.0, "y": 5.0, "is_visible": 1},
        {"id": 0, "x": 12.0, "y": 90.0, "is_visible": 0},
    ])  # fmt: skip
    rect_with = struct_array([{"x1": 0.0, "y1": 0.0, "x2": 30.0, "y2": 40.0, "annopoints": {"point": points}}])
    rect_without = struct_array([{"x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0, "annopoints": np.zeros((0, 0))}])
    annolist = struct_array([
        {"image": {"name": "a.jpg"}, "annorect": rect_with},
        {"image": {"name": "b.jpg"}, "annorect": rect_without},
    ])  # fmt: skip
    release = {"annolist": annolist, "img_train": np.array([[1, 0]])}
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", {"RELEASE": release})
    st = load_mpii(tmp_path)
    assert st.joints.shape == (1, 16, 2) and st.joint_names[9] == "head_top"
    assert st.joints[0, 9].tolist() == [10.0, 5.0] and st.visible[0].sum() == 2
    assert st.extra["is_visible"][0, 0] == False and st.extra["head_size"][0] == pytest.approx(30.0)  # noqa: E712
    assert st.split.tolist() == ["train"] and st.image_paths[0].name == "a.jpg"
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", {"OTHER": 1})
    with pytest.raises(DatasetError, match="RELEASE.*human-pose.mpi-inf"):
        load_mpii(tmp_path)
