"""LSP (Johnson & Everingham 2010) and LSP Extended (2011): ``joints.mat`` and ``images/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.data.base import PoseStills, dataset_error, dataset_folder, load_mat


def _load_lsp_like(name: str, root: str | Path | None, layout: str, digits: int) -> PoseStills:
    folder = dataset_folder(name, root)
    f = folder / "joints.mat"
    j = np.asarray(load_mat(name, f, ("joints",))["joints"], np.float64)
    if layout == "3jn":  # LSP: (3, 14, N)
        if j.ndim != 3 or j.shape[:2] != (3, 14):
            raise dataset_error(name, f, f"joints must be (3, 14, N) (x, y, visibility), got {j.shape}")
        j = j.transpose(2, 1, 0)
    else:  # LSPET: (14, 3, N)
        if j.ndim != 3 or j.shape[:2] != (14, 3):
            raise dataset_error(name, f, f"joints must be (14, 3, N) (x, y, visibility), got {j.shape}")
        j = j.transpose(2, 0, 1)
    n = len(j)
    paths = [folder / "images" / f"im{k + 1:0{digits}d}.jpg" for k in range(n)]
    for p in (paths[0], paths[-1]):
        if not p.is_file():
            raise dataset_error(
                name, p, f"image not found (expected images/im{1:0{digits}d}.jpg ... for {n} joint sets)"
            )
    return PoseStills(paths, j[..., :2].astype(np.float32), j[..., 2] > 0, "lsp14", np.full(n, "train"))


def load_lsp(root: str | Path | None = None) -> PoseStills:
    """LSP (Johnson & Everingham 2010): ``joints.mat`` ``(3, 14, 2000)`` + ``images/im0001.jpg``...;
    the first 1000 images are the training set, the last 1000 the test set. Format ``lsp14``; the third
    row is read as visibility (non-zero = visible), as the dataset's README documents."""
    st = _load_lsp_like("lsp", root, "3jn", 4)
    st.split = np.where(np.arange(len(st.joints)) < len(st.joints) // 2, "train", "test")
    return st


def load_lspet(root: str | Path | None = None) -> PoseStills:
    """LSP Extended (Johnson & Everingham 2011): ``joints.mat`` ``(14, 3, N)`` + ``images/im00001.jpg``...
    (all training images). Format ``lsp14``."""
    return _load_lsp_like("lspet", root, "j3n", 5)
