"""Loader for Olympic Sports (CliqueCNN labels, boxes): fixture files in the official format, and the real ones."""

from __future__ import annotations

import io
import tarfile

import h5py
import numpy as np
import pytest

from lib.data.base import DatasetError, PostureLabels
from lib.data.olympic_sports import load_olympic_boxes, load_olympic_labels, olympic_crops
from lib.evaluation.protocols import evaluate_posture


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


def test_olympic_crops_from_fixture_frames(tmp_path):
    import cv2

    video = tmp_path / "frames" / "vault" / "v"
    video.mkdir(parents=True)
    for k in range(3):  # 40x60 frames: a white box whose row k moves right, on black
        im = np.zeros((40, 60, 3), np.uint8)
        im[10:30, 10 + 10 * k : 30 + 10 * k] = (255, 0, 0)  # RGB red
        cv2.imwrite(str(video / f"I{k:05d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    boxes = {"vault/v": np.array([[k + 1, 10 + 10 * k, 10, 30 + 10 * k, 30] for k in range(3)], float)}
    labels = PostureLabels("vault", np.array([0]), [np.array([1])], [np.array([2])], [np.zeros(1)], [np.ones(1)],
                           frame_paths=[f"./v/I{k:05d}.png" for k in range(4)])  # fmt: skip
    crops = olympic_crops(tmp_path, labels, boxes, 16, margin=1.0)
    assert crops.shape == (4, 16, 16, 3) and crops.dtype == np.uint8
    # the box fills each crop exactly: all red, in RGB order; id 3 is never read and stays black
    assert (crops[:3, 2:-2, 2:-2, 0] > 200).all() and (crops[:3, 2:-2, 2:-2, 1:] < 50).all()
    assert (crops[3] == 0).all()
    # the posture evaluation on them: identical crops, features offset by the id, so the positive (id 1) lies
    # at distance sqrt(D) from the anchor and the negative (id 2) at 2 sqrt(D), or farther when flipped
    feats = crops.reshape(4, -1).astype(float) + np.arange(4)[:, None]
    for flipped in (None, {"vault": feats[:, ::-1]}):
        assert evaluate_posture({"vault": feats}, [labels], flipped, similarity="euclidean")["mean_auc"] == 1.0
    swapped = PostureLabels("vault", np.array([0]), [np.array([2])], [np.array([1])], [np.zeros(1)], [np.zeros(1)],
                            frame_paths=labels.frame_paths)  # fmt: skip
    assert evaluate_posture({"vault": feats}, [swapped], similarity="euclidean")["mean_auc"] == 0.0
    with pytest.raises(DatasetError, match="no box for frame 2"):
        olympic_crops(tmp_path, labels, {"vault/v": boxes["vault/v"][:2]}, 16)
    (video / "I00001.png").unlink()
    with pytest.raises(DatasetError, match="I00001.png"):
        olympic_crops(tmp_path, labels, boxes, 16)


@pytest.mark.real_data
def test_real_olympic_long_jump(real_dataset):
    (lab,) = load_olympic_labels(real_dataset("olympic_sports"), ["long_jump"])
    assert len(lab.anchors) == 58 and len(lab.frame_paths) == 7866
    assert all(lab.frame_paths[a].endswith(".png") for a in lab.anchors)
