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


def ddnet_fixture(root: Path, train_lengths=(2, 3), n_train_frames=None) -> Path:
    for part, lengths in (("train", list(train_lengths)), ("test", [4])):
        n = sum(lengths) if part == "test" or n_train_frames is None else n_train_frames
        np.savez(
            root / f"GT_{part}_1.npz",
            poses=np.zeros((n, 15, 2), np.float32),
            lengths=np.array(lengths),
            labels=np.array(["run", "walk"][: len(lengths)]),
        )
    return root


def test_jhmdb_ddnet_fixture(tmp_path):
    ds = load_jhmdb_ddnet(ddnet_fixture(tmp_path), 1)
    assert [len(p) for p in ds.poses] == [2, 3, 4] and ds.split.tolist() == ["train", "train", "test"]
    assert [ds.class_names[k] for k in ds.labels] == ["run", "walk", "run"]


def test_jhmdb_split_file_not_utf8(tmp_path):
    root = jhmdb_fixture(tmp_path)
    (root / "splits" / "wave_test_split1.txt").write_bytes("c.avi 1\n".encode("utf-16"))
    with pytest.raises(DatasetError, match=r"wave_test_split1\.txt: not UTF-8 text"):
        load_jhmdb_split(root, 1)


def test_jhmdb_clip_on_both_sides_of_a_split(tmp_path):
    root = jhmdb_fixture(tmp_path)
    (root / "splits" / "wave_test_split1.txt").write_text("c.avi 1\nb.avi 1\n")  # b is a clap test clip
    with pytest.raises(
        DatasetError,
        match=r"wave_test_split1\.txt: line 2: clip 'b' \(train\) is already listed in \S*clap_test_split1\.txt "
        r"line 2 \(test\)",
    ):
        load_jhmdb_split(root, 1)


@pytest.mark.parametrize(
    ("lengths", "n_frames", "message"),
    [
        ((2, 0), 2, r"lengths must be \(N,\) positive integers with N >= 1, got int\d+ \(2,\), smallest 0"),
        ((6, -1), 5, r"lengths must be .* positive integers .* smallest -1"),
        ((2.0, 3.0), 5, r"lengths must be .* got float64"),
        ((), 0, r"lengths must be .* N >= 1, got float64 \(0,\), smallest none"),
        ((2, 3), 6, r"lengths sum to 5, but poses has 6 frames"),
    ],
)
def test_jhmdb_ddnet_bad_lengths(tmp_path, lengths, n_frames, message):
    ddnet_fixture(tmp_path, lengths, n_frames)
    with pytest.raises(DatasetError, match=r"GT_train_1\.npz: " + message):
        load_jhmdb_ddnet(tmp_path, 1)


def test_jhmdb_ddnet_corrupt_or_incomplete_npz(tmp_path):
    f = ddnet_fixture(tmp_path) / "GT_test_1.npz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(DatasetError, match=r"GT_test_1\.npz: not a readable npz file .*File is not a zip file"):
        load_jhmdb_ddnet(tmp_path, 1)
    np.savez(f, poses=np.zeros((4, 15, 2)), lengths=np.array([4]))
    with pytest.raises(DatasetError, match=r"GT_test_1\.npz: missing arrays \['labels'\]"):
        load_jhmdb_ddnet(tmp_path, 1)
    np.savez(f, poses=np.zeros((4, 15, 2)), lengths=np.array([4]), labels=np.array([None], dtype=object))
    with pytest.raises(DatasetError, match=r"GT_test_1\.npz: not a readable npz file .* without pickle"):
        load_jhmdb_ddnet(tmp_path, 1)
    f.unlink()
    with pytest.raises(DatasetError, match=r"GT_test_1\.npz: file not found"):
        load_jhmdb_ddnet(tmp_path, 1)


@pytest.mark.real_data
def test_real_jhmdb_split1(real_dataset):
    names, classes, which = load_jhmdb_split(real_dataset("jhmdb"), 1)
    assert (which == "train").sum() == 660 and (which == "test").sum() == 268 and len(set(classes)) == 21
    ds = load_jhmdb(real_dataset("jhmdb"), 1, missing="skip")
    assert len(ds.poses) >= 1 and ds.poses[0].shape[1:] == (15, 2)


@pytest.mark.real_data
def test_real_jhmdb_ddnet_splits(real_dataset):
    for split, n_train, n_test in ((1, 433, 176), (2, 433, 176), (3, 434, 175)):
        ds = load_jhmdb_ddnet(real_dataset("jhmdb_ddnet"), split)
        assert (ds.split == "train").sum() == n_train and (ds.split == "test").sum() == n_test
        assert len(ds.class_names) == 14 and min(len(p) for p in ds.poses) >= 1
