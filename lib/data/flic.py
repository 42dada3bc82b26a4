"""FLIC (Sapp & Taskar 2013) from ``examples.mat`` (written against the documented format; tested on
fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from lib.data.base import PoseStills, dataset_error, dataset_folder, mat_items

# FLIC's 29 coords; the 11 annotated ones (the others are NaN) in this order
FLIC_COORDS = (0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16)
FLIC_JOINTS: tuple[str, ...] = (
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "l_hip", "r_hip", "l_eye", "r_eye",
    "nose",
)  # fmt: skip


def load_flic(root: str | Path | None = None) -> PoseStills:
    """FLIC (Sapp & Taskar 2013) from ``examples.mat``: struct array ``examples`` with ``coords`` ``(2, 29)``
    (NaN where not annotated), ``filepath``, ``istrain``/``istest``, ``torsobox``; images under ``images/``.

    Joints ``(N, 11, 2)``: the 11 annotated points (:data:`FLIC_JOINTS`); ``extra['torsobox']`` ``(N, 4)``.
    PDJ: ``lib.evaluation.metrics.pdj(pred, gt, thresholds, fmt=FLIC_JOINTS)``.
    """
    folder = dataset_folder("flic", root)
    f = folder / "examples.mat"
    if not f.is_file():
        raise dataset_error("flic", f, "file not found")
    try:
        ex = mat_items(scipy.io.loadmat(f, struct_as_record=False, squeeze_me=True)["examples"])
        coords = np.stack([np.asarray(e.coords, np.float64).reshape(2, 29) for e in ex])
        paths = [folder / "images" / str(e.filepath) for e in ex]
        split = np.array(["train" if int(e.istrain) else "test" if int(e.istest) else "none" for e in ex])
        torso = np.stack([np.asarray(e.torsobox, np.float64).reshape(4) for e in ex])
    except (KeyError, AttributeError, ValueError) as e:
        raise dataset_error(
            "flic", f, f"expected a struct array 'examples' with coords (2, 29), filepath, istrain ({e})"
        ) from e
    joints = coords.transpose(0, 2, 1)[:, list(FLIC_COORDS)]
    visible = np.isfinite(joints).all(-1)
    return PoseStills(paths, np.nan_to_num(joints).astype(np.float32), visible, "flic11", split, FLIC_JOINTS,
                      {"torsobox": torso})  # fmt: skip
