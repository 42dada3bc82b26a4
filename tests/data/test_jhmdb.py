"""Loader for JHMDB and the DD-Net files: fixture files in the official format, and the real files when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from lib.data.base import DatasetError
from lib.data.jhmdb import load_jhmdb, load_jhmdb_ddnet, load_jhmdb_split


def jhmdb_fixture(root: Path) -> Path:
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "clap_test_split1.txt").write_text("a.avi 1\nb.avi 2\n")
    (root / "splits" / "wave_test_split1.txt").write_text("c.avi 1\n")
    for cls, clip, t in (("clap", "a", 3), ("clap", "b", 4), ("wave", "c", 2)):
        (root / "joint_positions" / cls / clip).mkdir(parents=True)
        pos = np.arange(2 * 15 * t, dtype=float).reshape(2, 15, t)
        scipy.io.savemat(root / "joint_positions" / cls / clip / "joint_positions.mat", {"pos_img": pos})
    return root


def test_jhmdb_fixture(tmp_path):
    root = jhmdb_fixture(tmp_path)
    names, classes, which = load_jhmdb_split(root, 1)
    assert (
        names == ["a", "b", "c"]
        and classes == ["clap", "clap", "wave"]
        and which.tolist() == ["train", "test", "train"]
    )
    ds = load_jhmdb(root, 1)
    assert [p.shape for p in ds.poses] == [(3, 15, 2), (4, 15, 2), (2, 15, 2)]
    assert ds.poses[0][2, 1].tolist() == [1 * 3 + 2, 45 + 1 * 3 + 2]  # pos_img[:, joint 1, frame 2]
    assert ds.labels.tolist() == [0, 0, 1]
    os.remove(root / "joint_positions" / "clap" / "b" / "joint_positions.mat")
    with pytest.raises(DatasetError, match="joint_positions.mat: file not found.*jhmdb"):
        load_jhmdb(root, 1)
    assert load_jhmdb(root, 1, missing="skip").names == ["a", "c"]
    (root / "splits" / "wave_test_split1.txt").write_text("c.avi 3\n")
    with pytest.raises(DatasetError, match="line 1"):
        load_jhmdb_split(root, 1)


def test_jhmdb_ddnet_fixture(tmp_path):
    for part, lengths in (("train", [2, 3]), ("test", [4])):
        np.savez(
            tmp_path / f"GT_{part}_1.npz",
            poses=np.zeros((sum(lengths), 15, 2), np.float32),
            lengths=np.array(lengths),
            labels=np.array(["run", "walk"][: len(lengths)]),
        )
    ds = load_jhmdb_ddnet(tmp_path, 1)
    assert [len(p) for p in ds.poses] == [2, 3, 4] and ds.split.tolist() == ["train", "train", "test"]
    assert [ds.class_names[k] for k in ds.labels] == ["run", "walk", "run"]


@pytest.mark.real_data
def test_real_jhmdb_split1(real_dataset):
    names, classes, which = load_jhmdb_split(real_dataset("jhmdb"), 1)
    assert (which == "train").sum() == 660 and (which == "test").sum() == 268 and len(set(classes)) == 21
    ds = load_jhmdb(real_dataset("jhmdb"), 1, missing="skip")
    assert len(ds.poses) >= 1 and ds.poses[0].shape[1:] == (15, 2)
