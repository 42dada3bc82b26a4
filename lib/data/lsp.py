"""LSP (Johnson & Everingham 2010) and LSP Extended (2011): ``joints.mat`` and ``images/``.

The third row of ``joints.mat`` is a 0/1 flag whose sense differs between the two releases (both READMEs
only say "visibility"): LSPET stores 1 for a visible joint, the original LSP stores 1 for an *occluded*
one. The loaders read each release in its own sense and return ``visible`` True for visible joints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.data.base import PoseStills, dataset_error, dataset_folder, load_mat


def _load_lsp_like(name: str, root: str | Path | None, layout: str, digits: int, visible_flag: int) -> PoseStills:
    """``joints.mat`` in ``layout`` ``"3jn"`` (LSP) or ``"j3n"`` (LSPET) with images ``im<k>.jpg`` of
    ``digits`` digits; a joint is visible where its flag equals ``visible_flag``."""
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
    flags = j[..., 2]
    if not np.isin(flags, (0, 1)).all():
        odd = np.unique(flags[~np.isin(flags, (0, 1))])
        raise dataset_error(name, f, f"visibility flags must be 0 or 1, found {odd[:5].tolist()}")
    n = len(j)
    paths = [folder / "images" / f"im{k + 1:0{digits}d}.jpg" for k in range(n)]
    for p in (paths[0], paths[-1]):
        if not p.is_file():
            raise dataset_error(
                name, p, f"image not found (expected images/im{1:0{digits}d}.jpg ... for {n} joint sets)"
            )
    return PoseStills(paths, j[..., :2].astype(np.float32), flags == visible_flag, "lsp14", np.full(n, "train"))


def load_lsp(root: str | Path | None = None) -> PoseStills:
    """LSP (Johnson & Everingham 2010): ``joints.mat`` ``(3, 14, 2000)`` + ``images/im0001.jpg``...;
    the first 1000 images are the training set, the last 1000 the test set. Format ``lsp14``. The third
    row flags occlusion (1 = occluded), so ``visible`` is ``flag == 0``."""
    st = _load_lsp_like("lsp", root, "3jn", 4, visible_flag=0)
    st.split = np.where(np.arange(len(st.joints)) < len(st.joints) // 2, "train", "test")
    return st


def load_lspet(root: str | Path | None = None) -> PoseStills:
    """LSP Extended (Johnson & Everingham 2011): ``joints.mat`` ``(14, 3, N)`` + ``images/im00001.jpg``...
    (all training images). Format ``lsp14``; the third row is 1 for a visible joint."""
    return _load_lsp_like("lspet", root, "j3n", 5, visible_flag=1)
