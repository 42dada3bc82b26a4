"""Human3.6M (Ionescu et al. 2014): exp-map motion files and the pickle-free 3D-joint npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.data.base import dataset_error, dataset_folder, load_expmap


def load_h36m_expmap(root: str | Path | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Human3.6M exp-map motion files ``dataset/S<k>/<action>_<n>.txt`` (Martinez et al. 2017 release, 50 Hz)
    -> ``{(subject, "<action>_<n>"): (T, 99)}`` raw rows. Joints: ``lib.world.mocap.expmap_joints(rows,
    H36M_EXPMAP)``."""
    folder = dataset_folder("h36m_expmap", root) / "dataset"
    files = sorted(folder.glob("S*/*.txt"))
    if not files:
        raise dataset_error("h36m_expmap", folder, "no S<k>/<action>_<n>.txt files")
    return {(f.parent.name, f.stem): load_expmap(f, 99) for f in files}


def load_h36m_3d(path: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Human3.6M 3D joints in the flat, pickle-free variant of VideoPose3D's ``data_3d_h36m.npz``.

    VideoPose3D's own file stores a nested dict as a pickled object array (``positions_3d``), which this
    course never unpickles. Supported instead: an npz whose keys are ``<subject>/<action>`` and whose values
    are ``(T, 32, 3)`` float arrays in metres (world frame, 32 Human3.6M joints), e.g. written with
    ``np.savez(path, **{f"{s}/{a}": arr ...})``. Returns ``{(subject, action): array}``.
    """
    path = Path(path)
    if not path.is_file():
        raise dataset_error("h36m", path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {tuple(k.split("/", 1)): z[k] for k in z.files}
    except ValueError as e:
        raise dataset_error("h36m", path, "it needs pickle (VideoPose3D's nested-dict layout); convert it to "
                    "'<subject>/<action>' -> (T, 32, 3) arrays") from e  # fmt: skip
    for key, arr in data.items():
        if len(key) != 2 or arr.ndim != 3 or arr.shape[1:] != (32, 3):
            raise dataset_error("h36m", path, f"entry {'/'.join(key)}: expected '<subject>/<action>' -> (T, 32, 3)")
    return data
