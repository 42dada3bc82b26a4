"""Loaders on fixture files written in each official format, and on the real files when present."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from lib.datasets import (
    FLIC_JOINTS,
    DatasetError,
    load_flic,
    load_h36m_3d,
    load_h36m_expmap,
    load_jhmdb,
    load_jhmdb_ddnet,
    load_jhmdb_split,
    load_lsp,
    load_lspet,
    load_mpii,
    load_olympic_boxes,
    load_olympic_labels,
    load_penn_action,
)


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


def test_lsp_and_lspet_layouts(tmp_path):
    j = np.random.default_rng(0).uniform(0, 100, (14, 3, 4))
    j[:, 2] = j[:, 2] > 50
    for name, arr, digits in (("lsp", j.transpose(1, 0, 2), 4), ("lspet", j, 5)):
        (tmp_path / name / "images").mkdir(parents=True)
        scipy.io.savemat(tmp_path / name / "joints.mat", {"joints": arr})
        for k in range(1, 5):
            (tmp_path / name / "images" / f"im{k:0{digits}d}.jpg").write_bytes(b"")
    lsp, lspet = load_lsp(tmp_path / "lsp"), load_lspet(tmp_path / "lspet")
    for st in (lsp, lspet):
        assert st.joints.shape == (4, 14, 2) and st.fmt == "lsp14"
        np.testing.assert_allclose(st.joints[2, 5], j[5, :2, 2])
        np.testing.assert_array_equal(st.visible, j[:, 2].T > 0)
    assert lsp.split.tolist() == ["train", "train", "test", "test"]
    with pytest.raises(DatasetError, match=r"\(3, 14, N\)"):
        load_lsp(tmp_path / "lspet")


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


def test_h36m_files(tmp_path):
    (tmp_path / "dataset" / "S1").mkdir(parents=True)
    np.savetxt(tmp_path / "dataset" / "S1" / "walking_1.txt", np.zeros((3, 99)), delimiter=",")
    assert load_h36m_expmap(tmp_path)[("S1", "walking_1")].shape == (3, 99)
    np.savez(tmp_path / "flat.npz", **{"S1/Walking": np.zeros((5, 32, 3))})
    assert load_h36m_3d(tmp_path / "flat.npz")[("S1", "Walking")].shape == (5, 32, 3)
    np.savez(tmp_path / "pickled.npz", positions_3d=np.array([{"S1": {}}], dtype=object))
    with pytest.raises(DatasetError, match="pickle"):
        load_h36m_3d(tmp_path / "pickled.npz")


def struct_array(rows: list[dict]) -> np.ndarray:
    """A 1 x n MATLAB struct array (numpy structured array of objects) for scipy.io.savemat."""
    keys = list(rows[0])
    arr = np.zeros((1, len(rows)), dtype=[(k, object) for k in keys])
    for i, r in enumerate(rows):
        for k in keys:
            arr[0, i][k] = r[k]
    return arr


def test_mpii_release_struct(tmp_path):
    points = struct_array([
        {"id": 9, "x": 10.0, "y": 5.0, "is_visible": 1},
        {"id": 0, "x": 12.0, "y": 90.0, "is_visible": 0},
    ])  # fmt: skip
    rect_with = struct_array([{"x1": 0.0, "y1": 0.0, "x2": 30.0, "y2": 40.0, "annopoints": {"point": points}}])
    rect_without = struct_array([{"x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0, "annopoints": np.zeros((0, 0))}])
    annolist = struct_array([
        {"image": {"name": "a.jpg"}, "annorect": rect_with},
        {"image": {"name": "b.jpg"}, "annorect": rect_without},
    ])  # fmt: skip
    release = {"annolist": annolist, "img_train": np.array([[1, 0]])}
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", {"RELEASE": release})
    st = load_mpii(tmp_path)
    assert st.joints.shape == (1, 16, 2) and st.joint_names[9] == "head_top"
    assert st.joints[0, 9].tolist() == [10.0, 5.0] and st.visible[0].sum() == 2
    assert st.extra["is_visible"][0, 0] == False and st.extra["head_size"][0] == pytest.approx(30.0)  # noqa: E712
    assert st.split.tolist() == ["train"] and st.image_paths[0].name == "a.jpg"
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", {"OTHER": 1})
    with pytest.raises(DatasetError, match="RELEASE.*human-pose.mpi-inf"):
        load_mpii(tmp_path)


def test_flic_examples(tmp_path):
    coords = np.full((2, 29), np.nan)
    coords[:, 0] = (50.0, 60.0)  # left shoulder
    coords[:, 9] = (70.0, 120.0)  # right hip
    ex = struct_array([
        {"coords": coords, "filepath": "m-001.jpg", "istrain": 1, "istest": 0, "torsobox": [1.0, 2.0, 3.0, 4.0]},
        {"coords": coords + 1, "filepath": "m-002.jpg", "istrain": 0, "istest": 1, "torsobox": [1.0, 2.0, 3.0, 4.0]},
    ])  # fmt: skip
    scipy.io.savemat(tmp_path / "examples.mat", {"examples": ex})
    st = load_flic(tmp_path)
    assert st.joints.shape == (2, 11, 2) and st.split.tolist() == ["train", "test"]
    assert st.visible[0].tolist() == [True] + [False] * 6 + [True] + [False] * 3
    assert st.joints[1, FLIC_JOINTS.index("r_hip")].tolist() == [71.0, 121.0]
    from lib.metrics import pdj

    assert pdj(st.joints[:1], st.joints[:1], [0.1], fmt=FLIC_JOINTS).shape == (1, 11)


# ---------------------------------------------------------------------------------------------------------
# real files under DATA_ROOT


def real(name: str) -> Path:
    root = Path(os.environ.get("DATA_ROOT", Path(__file__).resolve().parent.parent / "data")) / name
    if not root.is_dir():
        pytest.skip(f"real {name} not found under DATA_ROOT ({root})")
    return root


@pytest.mark.real_data
def test_real_penn_action():
    ds = load_penn_action(real("penn_action"))
    assert len(ds.poses) == 2326 and (ds.split == "train").sum() == 1258 and (ds.split == "test").sum() == 1068
    assert len(ds.class_names) == 15
    quirky = [ds.names.index(n) for n in ("1154", "1865")]
    assert all(len(ds.boxes[k]) == len(ds.poses[k]) for k in quirky)


@pytest.mark.real_data
def test_real_jhmdb_split1():
    names, classes, which = load_jhmdb_split(real("jhmdb"), 1)
    assert (which == "train").sum() == 660 and (which == "test").sum() == 268 and len(set(classes)) == 21
    ds = load_jhmdb(real("jhmdb"), 1, missing="skip")
    assert len(ds.poses) >= 1 and ds.poses[0].shape[1:] == (15, 2)


@pytest.mark.real_data
def test_real_lspet():
    st = load_lspet(real("lspet"))
    assert st.joints.shape == (400, 14, 2) and all(p.is_file() for p in st.image_paths[:3])


@pytest.mark.real_data
def test_real_olympic_long_jump():
    (lab,) = load_olympic_labels(real("olympic_sports"), ["long_jump"])
    assert len(lab.anchors) == 58 and len(lab.frame_paths) == 7866
    assert all(lab.frame_paths[a].endswith(".png") for a in lab.anchors)


def test_crop_stills_cuts_the_window_around_visible_joints(tmp_path):
    import cv2

    from lib.datasets import PoseStills, crop_stills

    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image[..., ::-1])  # stored BGR, read back RGB
    joints = np.zeros((1, 14, 2), np.float32)
    joints[0, 0], joints[0, 1] = (20, 20), (60, 60)  # visible extent 40 px -> window side 48, centre (40, 40)
    joints[0, 2:] = (500, 500)  # invisible joints far outside must not move the window
    visible = np.zeros((1, 14), bool)
    visible[0, :2] = True
    stills = PoseStills([tmp_path / "a.png"], joints, visible, "lsp14", np.array(["train"]))
    crops, in_crop = crop_stills(stills, size=48)  # scale 1: the crop is the window's pixels exactly
    np.testing.assert_array_equal(crops[0], image[16:64, 16:64])
    np.testing.assert_allclose(in_crop[0, :2], [[4, 4], [44, 44]])
    stills.image_paths = [tmp_path / "missing.png"]
    with pytest.raises(DatasetError, match="cannot read image"):
        crop_stills(stills, size=48)
