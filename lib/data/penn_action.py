"""Penn Action (Zhang et al. 2013) in its official layout: ``labels/NNNN.mat``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.data.base import PoseSequences, dataset_error, dataset_folder, load_mat


def load_penn_action(root: str | Path | None = None) -> PoseSequences:
    """Penn Action (Zhang et al. 2013): ``labels/NNNN.mat`` -> 2326 clips, 13 joints (``penn13``), 15 classes.

    Each file holds x, y ``(T, 13)``, visibility ``(T, 13)``, bbox ``(T, 4)``, action, train (1 / -1).
    Quirk: 1154.mat and 1865.mat have one bbox row fewer than frames; the last box is repeated.
    """
    folder = dataset_folder("penn_action", root) / "labels"
    files = sorted(folder.glob("*.mat"))
    if not files:
        raise dataset_error("penn_action", folder, "no labels/*.mat files")
    poses, vis, boxes, actions, split = [], [], [], [], []
    for f in files:
        m = load_mat("penn_action", f, ("x", "y", "visibility", "bbox", "action", "train"))
        x, y = np.asarray(m["x"], np.float32), np.asarray(m["y"], np.float32)
        if x.ndim != 2 or x.shape[1] != 13 or y.shape != x.shape or m["visibility"].shape != x.shape:
            raise dataset_error("penn_action", f, f"x, y, visibility must be (T, 13), got {x.shape}, {y.shape}")
        box = np.asarray(m["bbox"], np.float32).reshape(-1, 4)
        if len(box) == len(x) - 1:  # the documented quirk of two clips
            box = np.concatenate([box, box[-1:]])
        if len(box) != len(x):
            raise dataset_error("penn_action", f, f"bbox has {len(box)} rows for {len(x)} frames")
        poses.append(np.stack([x, y], -1))
        vis.append(np.asarray(m["visibility"]) > 0)
        boxes.append(box)
        action, train = np.asarray(m["action"]).ravel(), np.asarray(m["train"]).ravel()
        if action.size != 1 or action.dtype.kind != "U" or not str(action[0]).strip():
            raise dataset_error("penn_action", f, f"action must be one non-empty class name, got {action!r}")
        if train.size != 1 or train[0] not in (1, -1):
            raise dataset_error("penn_action", f, f"train must be one value, 1 (train) or -1 (test), got {train!r}")
        actions.append(str(action[0]))
        split.append("train" if train[0] == 1 else "test")
    class_names = tuple(sorted(set(actions)))
    labels = np.array([class_names.index(a) for a in actions])
    return PoseSequences(poses, vis, labels, class_names, np.array(split), [f.stem for f in files], "penn13", boxes)
