"""Loader for LSP and LSPET: fixture files written in the official format, and the real files when present."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from lib.data.base import DatasetError
from lib.data.lsp import load_lsp, load_lspet


def test_lsp_and_lspet_layouts(tmp_path):
    j = np.random.default_rng(0).uniform(0, 100, (14, 3, 4))
    j[:, 2] = j[:, 2] > 50
    for name, arr, digits in (("lsp", j.transpose(1, 0, 2), 4), ("lspet", j, 5)):
        (tmp_path / name / "images").mkdir(parents=True)
        scipy.io.savemat(tmp_path / name / "joints.mat", {"joints": arr})
        for k in range(1, 5):
            (tmp_path / name / "images" / f"im{k:0{digits}d}.jpg").write_bytes(b"")
    lsp, lspet = load_lsp(tmp_path / "lsp"), load_lspet(tmp_path / "lspet")
    for st in (lsp, lspet):
        assert st.joints.shape == (4, 14, 2) and st.fmt == "lsp14"
        np.testing.assert_allclose(st.joints[2, 5], j[5, :2, 2])
        np.testing.assert_array_equal(st.visible, j[:, 2].T > 0)
    assert lsp.split.tolist() == ["train", "train", "test", "test"]
    with pytest.raises(DatasetError, match=r"\(3, 14, N\)"):
        load_lsp(tmp_path / "lspet")


@pytest.mark.real_data
def test_real_lspet(real_dataset):
    st = load_lspet(real_dataset("lspet"))
    assert st.joints.shape == (400, 14, 2) and all(p.is_file() for p in st.image_paths[:3])
