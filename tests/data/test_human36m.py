"""Loader for Human3.6M files: fixture files written in the official format."""

from __future__ import annotations

import numpy as np
import pytest

from lib.data.base import DatasetError
from lib.data.human36m import load_h36m_3d, load_h36m_expmap


def test_h36m_files(tmp_path):
    (tmp_path / "dataset" / "S1").mkdir(parents=True)
    np.savetxt(tmp_path / "dataset" / "S1" / "walking_1.txt", np.zeros((3, 99)), delimiter=",")
    assert load_h36m_expmap(tmp_path)[("S1", "walking_1")].shape == (3, 99)
    np.savez(tmp_path / "flat.npz", **{"S1/Walking": np.zeros((5, 32, 3))})
    assert load_h36m_3d(tmp_path / "flat.npz")[("S1", "Walking")].shape == (5, 32, 3)
    np.savez(tmp_path / "pickled.npz", positions_3d=np.array([{"S1": {}}], dtype=object))
    with pytest.raises(DatasetError, match="pickle"):
        load_h36m_3d(tmp_path / "pickled.npz")
