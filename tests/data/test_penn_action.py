"""Loader for Penn Action: fixture files written in the official format, and the real files when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from lib.data.base import DatasetError
from lib.data.penn_action import load_penn_action


def penn_fixture(root: Path, n_frames=(5, 4), short_bbox=False) -> Path:
    (root / "labels").mkdir(parents=True)
    for k, t in enumerate(n_frames, 1):
        x = np.arange(t * 13, dtype=float).reshape(t, 13)
        scipy.io.savemat(
            root / "labels" / f"{k:04d}.mat",
            {
                "x": x, "y": x + 1, "visibility": np.ones((t, 13)), "action": ["bowl", "jump"][k % 2],
                "pose": "front", "train": 1 if k == 1 else -1, "bbox": np.zeros((t - (short_bbox and k == 2), 4)),
                "dimensions": [[480, 640, t]], "nframes": t,
            },
        )  # fmt: skip
    return root


def test_penn_action_fixture_and_bbox_quirk(tmp_path):
    ds = load_penn_action(penn_fixture(tmp_path, short_bbox=True))
    assert [p.shape for p in ds.poses] == [(5, 13, 2), (4, 13, 2)] and ds.fmt == "penn13"
    assert ds.poses[0][1, 2].tolist() == [15.0, 16.0]  # frame 1, joint 2: x = 1 * 13 + 2, y = x + 1
    assert ds.split.tolist() == ["train", "test"] and ds.class_names == ("bowl", "jump")
    assert ds.boxes[1].shape == (4, 4)  # one row short: the last box repeated
    assert len(ds.subset("test").poses) == 1


def test_penn_action_malformed(tmp_path):
    root = penn_fixture(tmp_path)
    scipy.io.savemat(root / "labels" / "0002.mat", {"x": np.zeros((3, 13))})
    with pytest.raises(DatasetError, match=r"0002\.mat.*missing variables.*PennAction"):
        load_penn_action(root)
    with pytest.raises(DatasetError, match="not found"):
        load_penn_action(tmp_path / "nowhere")


@pytest.mark.real_data
def test_real_penn_action(real_dataset):
    ds = load_penn_action(real_dataset("penn_action"))
    assert len(ds.poses) == 2326 and (ds.split == "train").sum() == 1258 and (ds.split == "test").sum() == 1068
    assert len(ds.class_names) == 15
    quirky = [ds.names.index(n) for n in ("1154", "1865")]
    assert all(len(ds.boxes[k]) == len(ds.poses[k]) for k in quirky)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("train", np.zeros((0, 0)), r"0002\.mat: train must be one value, 1 \(train\) or -1 \(test\)"),
        ("train", 0, r"0002\.mat: train must be one value, 1 \(train\) or -1 \(test\), got array\(\[0\]"),
        ("action", "", r"0002\.mat: action must be one non-empty class name"),
    ],
)
def test_penn_action_empty_or_invalid_split_and_action(tmp_path, field, value, message):
    root = penn_fixture(tmp_path)
    f = root / "labels" / "0002.mat"
    m = {k: v for k, v in scipy.io.loadmat(f).items() if not k.startswith("__")}
    scipy.io.savemat(f, {**m, field: value})
    with pytest.raises(DatasetError, match=message):
        load_penn_action(root)
