"""MPII Human Pose (Andriluka et al. 2014) from the official ``RELEASE`` struct (written against the
documented format; tested on fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from lib.data.base import PoseStills, dataset_error, dataset_folder, mat_items

MPII_JOINTS: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip


def load_mpii(root: str | Path | None = None, annotation: str = "mpii_human_pose_v1_u12_1.mat") -> PoseStills:
    """MPII Human Pose (Andriluka et al. 2014) from the official ``RELEASE`` struct: one row per annotated
    person (``annolist(i).annorect(r).annopoints.point`` with ``id`` 0-15, ``x``, ``y``, ``is_visible``).

    Joints ``(N, 16, 2)`` in MPII order (:data:`MPII_JOINTS`); ``visible`` marks annotated joints;
    ``extra``: ``head_size`` (0.6 x the head box diagonal, for PCKh), ``is_visible`` (the occlusion
    flag), ``image_index``. ``split`` from ``img_train`` ('train' / 'test'); images under ``images/``.
    """
    folder = dataset_folder("mpii", root)
    f = folder / annotation
    if not f.is_file():
        raise dataset_error("mpii", f, "file not found")
    try:
        rel = scipy.io.loadmat(f, struct_as_record=False, squeeze_me=True)["RELEASE"]
        annolist, img_train = mat_items(rel.annolist), np.atleast_1d(rel.img_train)
    except (KeyError, AttributeError, ValueError) as e:
        raise dataset_error("mpii", f, f"expected a struct RELEASE with annolist and img_train ({e})") from e
    paths, joints, vis, occ, head, img_idx, split = [], [], [], [], [], [], []
    for i, ann in enumerate(annolist):
        for rect in mat_items(getattr(ann, "annorect", [])):
            pts = getattr(rect, "annopoints", None)
            if pts is None or isinstance(pts, np.ndarray) or not hasattr(pts, "point"):
                continue  # a person without joint annotations
            j, v, o = np.zeros((16, 2), np.float32), np.zeros(16, bool), np.zeros(16, bool)
            for pt in mat_items(pts.point):
                k = int(pt.id)
                j[k], v[k] = (float(pt.x), float(pt.y)), True
                flag = np.asarray(getattr(pt, "is_visible", 1)).ravel()
                o[k] = float(flag[0]) != 0 if flag.size else True
            paths.append(folder / "images" / str(ann.image.name))
            joints.append(j)
            vis.append(v)
            occ.append(o)
            head.append(0.6 * float(np.hypot(rect.x2 - rect.x1, rect.y2 - rect.y1)))
            img_idx.append(i)
            split.append("train" if int(img_train[i]) == 1 else "test")
    if not joints:
        raise dataset_error("mpii", f, "no annotated person (annorect.annopoints.point) found")
    extra = {"head_size": np.array(head), "is_visible": np.array(occ), "image_index": np.array(img_idx)}
    return PoseStills(paths, np.array(joints), np.array(vis), "mpii16", np.array(split), MPII_JOINTS, extra)
