"""Loader for LSP and LSPET: fixture files written in the official format, and the real files when present."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from lib.data.base import DatasetError
from lib.data.lsp import load_lsp, load_lspet


def write_lsp_like(folder, joints, digits):
    (folder / "images").mkdir(parents=True)
    scipy.io.savemat(folder / "joints.mat", {"joints": joints})
    for k in range(1, joints.shape[-1] + 1):
        (folder / "images" / f"im{k:0{digits}d}.jpg").write_bytes(b"")


def test_lsp_and_lspet_layouts(tmp_path):
    j = np.random.default_rng(0).uniform(0, 100, (14, 3, 4))
    j[:, 2] = 1
    write_lsp_like(tmp_path / "lsp", j.transpose(1, 0, 2), 4)
    write_lsp_like(tmp_path / "lspet", j, 5)
    lsp, lspet = load_lsp(tmp_path / "lsp"), load_lspet(tmp_path / "lspet")
    for st in (lsp, lspet):
        assert st.joints.shape == (4, 14, 2) and st.fmt == "lsp14"
        np.testing.assert_allclose(st.joints[2, 5], j[5, :2, 2])
    assert lsp.split.tolist() == ["train", "train", "test", "test"]
    with pytest.raises(DatasetError, match=r"\(3, 14, N\)"):
        load_lsp(tmp_path / "lspet")


def test_visibility_flag_sense_of_each_release(tmp_path):
    # Two images; occluded joints by hand: image 1 its right ankle (0) and right wrist (6), image 2 its head top (13).
    occluded = np.zeros((14, 2), bool)
    occluded[[0, 6], 0] = True
    occluded[13, 1] = True
    xy = np.arange(14 * 2 * 2, dtype=float).reshape(14, 2, 2) + 10
    lsp = np.concatenate([xy, occluded[:, None].astype(float)], 1)  # LSP: 1 = occluded
    lspet = np.concatenate([xy, (~occluded)[:, None].astype(float)], 1)  # LSPET: 1 = visible
    write_lsp_like(tmp_path / "lsp", lsp.transpose(1, 0, 2), 4)
    write_lsp_like(tmp_path / "lspet", lspet, 5)
    for st in (load_lsp(tmp_path / "lsp"), load_lspet(tmp_path / "lspet")):
        assert st.visible.dtype == bool and st.visible.sum() == 28 - 3
        assert np.flatnonzero(~st.visible[0]).tolist() == [0, 6] and np.flatnonzero(~st.visible[1]).tolist() == [13]


def test_visibility_flag_other_than_0_or_1_is_an_error(tmp_path):
    j = np.ones((14, 3, 2))
    j[3, 2, 1] = 2
    write_lsp_like(tmp_path / "lspet", j, 5)
    with pytest.raises(DatasetError, match=r"lspet/joints\.mat: visibility flags must be 0 or 1, found \[2\.0\]"):
        load_lspet(tmp_path / "lspet")


@pytest.mark.real_data
def test_real_lspet_flags_mark_visible_joints(real_dataset):
    st = load_lspet(real_dataset("lspet"))
    assert st.joints.shape == (400, 14, 2) and all(p.is_file() for p in st.image_paths[:3])
    inside = np.empty(st.visible.shape, bool)
    for k, path in enumerate(st.image_paths):
        h, w = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape
        x, y = st.joints[k].T
        inside[k] = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    # Read as "1 = visible": 4866 of 5600 joints (86.9 %) are visible; all but one of them lie in the image
    # and all but one of the 734 others lie outside it (at 0 or negative coordinates), so the sense is right.
    assert st.visible.sum() == 4866
    assert (st.visible & ~inside).sum() == 1 and (~st.visible & inside).sum() == 1
