"""Loader for Olympic Sports (CliqueCNN labels, boxes): fixture files in the official format, and the real ones."""

from __future__ import annotations

import io
import tarfile

import h5py
import numpy as np
import pytest

from lib.data.olympic_sports import load_olympic_boxes, load_olympic_labels


def test_olympic_fixture(tmp_path):
    lab = tmp_path / "cliquecnn_labels"
    (lab / "labels_hdf5_19.02.16").mkdir(parents=True)
    (lab / "image_pathes").mkdir()
    (lab / "image_pathes" / "imagePaths_vault.txt").write_text("".join(f"./v/I{k:05d}.png\n" for k in range(6)))
    vlen = h5py.vlen_dtype(np.int32)
    with h5py.File(lab / "labels_hdf5_19.02.16" / "labels_vault.hdf5", "w") as h:
        h["anchors"] = np.array([0, 3], np.int32)
        for key, rows in (("pos_ids", [[1, 2], [4]]), ("neg_ids", [[5], [0, 1]])):
            d = h.create_dataset(key, (2,), dtype=vlen)
            d[0], d[1] = np.array(rows[0], np.int32), np.array(rows[1], np.int32)
            f = h.create_dataset(key.replace("ids", "flipvals"), (2,), dtype=vlen)
            f[0], f[1] = np.zeros(len(rows[0]), np.int32), np.ones(len(rows[1]), np.int32)
    buf = io.BytesIO(b"0 1 2 3 4\n1 1 2 3 5\n")
    with tarfile.open(lab / "bboxes.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("bboxes/vault/v.bb")
        info.size = len(buf.getvalue())
        tar.addfile(info, buf)
    (labels,) = load_olympic_labels(tmp_path)
    assert labels.category == "vault" and labels.anchors.tolist() == [0, 3]
    assert [p.tolist() for p in labels.pos_ids] == [[1, 2], [4]] and labels.neg_flipvals[1].tolist() == [1, 1]
    assert labels.frame_paths[labels.anchors[1]] == "./v/I00003.png"
    assert load_olympic_boxes(tmp_path)["vault/v"].shape == (2, 5)


@pytest.mark.real_data
def test_real_olympic_long_jump(real_dataset):
    (lab,) = load_olympic_labels(real_dataset("olympic_sports"), ["long_jump"])
    assert len(lab.anchors) == 58 and len(lab.frame_paths) == 7866
    assert all(lab.frame_paths[a].endswith(".png") for a in lab.anchors)
