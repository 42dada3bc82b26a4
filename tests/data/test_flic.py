"""Loader for FLIC: fixture files written in the official format."""

from __future__ import annotations

import numpy as np
import scipy.io

from lib.data.flic import FLIC_JOINTS, load_flic


def test_flic_examples(tmp_path, struct_array):
    coords = np.full((2, 29), np.nan)
    coords[:, 0] = (50.0, 60.0)  # left shoulder
    coords[:, 9] = (70.0, 120.0)  # right hip
    ex = struct_array([
        {"coords": coords, "filepath": "m-001.jpg", "istrain": 1, "istest": 0, "torsobox": [1.0, 2.0, 3.0, 4.0]},
        {"coords": coords + 1, "filepath": "m-002.jpg", "istrain": 0, "istest": 1, "torsobox": [1.0, 2.0, 3.0, 4.0]},
    ])  # fmt: skip
    scipy.io.savemat(tmp_path / "examples.mat", {"examples": ex})
    st = load_flic(tmp_path)
    assert st.joints.shape == (2, 11, 2) and st.split.tolist() == ["train", "test"]
    assert st.visible[0].tolist() == [True] + [False] * 6 + [True] + [False] * 3
    assert st.joints[1, FLIC_JOINTS.index("r_hip")].tolist() == [71.0, 121.0]
    from lib.evaluation.metrics import pdj

    assert pdj(st.joints[:1], st.joints[:1], [0.1], fmt=FLIC_JOINTS).shape == (1, 11)
