"""Known-answer tests of the evaluation metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from sklearn.metrics import average_precision_score

from lib.evaluation.metrics import (
    mpjpe,
    n_mpjpe,
    one_nn_accuracy,
    p_mpjpe,
    pckh,
    pcp,
    pcp_stick_endpoints,
    pcp_sticks,
    pdj,
    per_class_average_precision,
    pose_distance,
    pose_retrieval_metrics,
    posture_retrieval_auc,
    squared_distances,
)
from lib.skeleton import FORMATS


def lsp_person() -> np.ndarray:
    """A standing person in lsp14 order, pixels (y down)."""
    xy = {
        "r_ankle": (40, 200), "r_knee": (40, 160), "r_hip": (40, 120), "l_hip": (60, 120),
        "l_knee": (60, 160), "l_ankle": (60, 200), "r_wrist": (20, 120), "r_elbow": (25, 90),
        "r_shoulder": (35, 60), "l_shoulder": (65, 60), "l_elbow": (75, 90), "l_wrist": (80, 120),
        "neck": (50, 55), "head_top": (50, 25),
    }  # fmt: skip
    return np.array([xy[n] for n in FORMATS["lsp14"]], float)[None]


def test_pcp_one_wrong_stick():
    gt = lsp_person()
    pred = gt.copy()
    # move the left wrist 20 px: left lower arm (length ~30.4 px) fails, the left upper arm does not move
    pred[0, FORMATS["lsp14"].index("l_wrist")] += (20.0, 0.0)
    ok = pcp_sticks(pred, gt)
    assert ok.sum() == 9 and not ok[0, 4]  # stick 4 = left lower arm
    res = pcp(pred, gt)
    assert res["lower_arms"] == 50.0 and res["total"] == 90.0
    assert all(res[p] == 100.0 for p in ("head", "torso", "upper_arms", "upper_legs", "lower_legs"))
    # 20 px < 0.5 x 30.4 is false, but loose PCP averages the two ends: (0 + 20) / 2 = 10 <= 15.2
    assert pcp(pred, gt, strict=False)["total"] == 100.0
    ends = pcp_stick_endpoints(gt)
    assert ends.shape == (1, 10, 2, 2)
    assert ends[0, 1].tolist() == [[50.0, 120.0], [50.0, 60.0]]  # torso: mid-hips to mid-shoulders
    assert ends[0, 4].tolist() == [[75.0, 90.0], [80.0, 120.0]]  # left lower arm: elbow to wrist


def test_pcp_canonical_order_agrees():
    gt = np.random.default_rng(0).normal(size=(5, 17, 2)) * 30
    pred = gt + np.random.default_rng(1).normal(size=gt.shape) * 8
    from lib.skeleton import to_format

    assert pcp(pred, gt, fmt="canonical") == pcp(to_format(pred, "lsp14"), to_format(gt, "lsp14"))
    with pytest.raises(ValueError, match="fmt"):
        pcp(pred, gt, fmt="penn13")


def test_pdj_hand_checked():
    gt = lsp_person()
    names = FORMATS["lsp14"]
    # torso diameter = |l_shoulder (65, 60) - r_hip (40, 120)| = 65 px
    pred = gt.copy()
    pred[0, names.index("neck")] += (10.0, 0.0)  # 10/65 = 0.154
    pred[0, names.index("head_top")] += (0.0, 20.0)  # 20/65 = 0.308
    out = pdj(pred, gt, thresholds=[0.1, 0.2, 0.4])
    assert out.shape == (3, 14)
    assert out[:, names.index("neck")].tolist() == [0.0, 100.0, 100.0]
    assert out[:, names.index("head_top")].tolist() == [0.0, 0.0, 100.0]
    assert out[0].mean() == pytest.approx(100 * 12 / 14)


def test_pckh():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = (4.0, 0.0)  # head size 10: 4 <= 5 correct
    pred[1, 1] = (6.0, 0.0)  # 6 > 5 wrong
    vis = np.array([[True, True, True], [True, True, False]])
    per_joint, total = pckh(pred, gt, np.array([10.0, 10.0]), visible=vis)
    assert per_joint.tolist() == [100.0, 50.0, 100.0] and total == pytest.approx(80.0)


def random_poses(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 17, 3)) * 200


def test_p_mpjpe_zero_for_similarity_transform():
    gt = random_poses()
    rot = Rotation.random(len(gt), random_state=1)
    moved = np.stack([1.7 * rot[i].apply(gt[i]) + (100.0, -50.0, 3000.0) for i in range(len(gt))])
    assert p_mpjpe(moved, gt) == pytest.approx(0.0, abs=1e-6)
    assert mpjpe(moved, gt) > 100


def test_p_mpjpe_does_not_reflect():
    gt = random_poses(3, seed=2)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection is not a rotation
    assert p_mpjpe(mirrored, gt) > 1.0


def test_p_mpjpe_equals_mpjpe_after_manual_alignment():
    gt = random_poses(4, seed=3)
    pred = gt + np.random.default_rng(4).normal(size=gt.shape) * 30
    aligned = []
    for p, g in zip(pred, gt, strict=True):  # Umeyama by hand, with the determinant fix
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(gc.T @ pc)
        d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        r = u @ d @ vt
        scale = np.trace(np.diag(s) @ d) / (pc**2).sum()
        aligned.append(scale * pc @ r.T + g.mean(0))
    assert p_mpjpe(pred, gt) == pytest.approx(mpjpe(np.array(aligned), gt), rel=1e-6)


def test_mpjpe_and_n_mpjpe():
    gt = random_poses(5, seed=5)
    assert mpjpe(gt + (3.0, 4.0, 0.0), gt) == pytest.approx(5.0)
    assert n_mpjpe(2.5 * gt, gt) == pytest.approx(0.0, abs=1e-9)
    pred = gt + np.random.default_rng(6).normal(size=gt.shape) * 50
    assert n_mpjpe(pred, gt) <= mpjpe(pred, gt)
    with pytest.raises(ValueError, match="pred and gt"):
        mpjpe(gt[:, :3], gt)


def test_posture_auc_perfect_and_reversed():
    rng = np.random.default_rng(0)
    n = 40
    sim = rng.normal(size=(n, n))
    anchors = [0, 1, 2]
    pos = [[3, 4, 5], [6, 7], [8, 9, 10, 11]]
    neg = [[20, 21], [22, 23, 24], [25]]
    for a, p, q in zip(anchors, pos, neg, strict=True):
        sim[a, p] = 5.0 + rng.random(len(p))
        sim[a, q] = -5.0 - rng.random(len(q))
    res = posture_retrieval_auc(sim, anchors, pos, neg)
    assert res["mean_auc"] == 1.0 and res["auc_of_mean_roc"] == pytest.approx(1.0)
    rev = posture_retrieval_auc(-sim, anchors, pos, neg)
    assert rev["mean_auc"] == 0.0 and rev["auc_of_mean_roc"] == pytest.approx(0.0, abs=0.011)
    with pytest.raises(ValueError, match="positive"):
        posture_retrieval_auc(sim, [0], [[]], [[1]])


def test_posture_auc_half_right():
    sim = np.zeros((6, 6))
    sim[0, [1, 2, 3, 4]] = [4, 1, 3, 2]  # pos 1, 2; neg 3, 4 -> pairs ranked right: (1>3, 1>4) = 2 of 4
    res = posture_retrieval_auc(sim, [0], [[1, 2]], [[3, 4]])
    assert res["mean_auc"] == 0.5


def test_pose_retrieval_metrics_oracle_and_reversed():
    rng = np.random.default_rng(0)
    q, db = rng.normal(size=(10, 14, 2)), rng.normal(size=(60, 14, 2))
    d = pose_distance(q, db)
    assert d.shape == (10, 60) and np.allclose(pose_distance(q, q).diagonal(), 0)
    best = pose_retrieval_metrics(-d, q, db, ks=(1, 5))
    assert best["hit_rate_nn"].tolist() == [100.0, 100.0] and best["hit_rate_relative"].tolist() == [100.0] * 2
    assert best["mean_pose_distance"][0] == pytest.approx(d.min(1).mean())
    worst = pose_retrieval_metrics(d, q, db, ks=(1,), n_pose_neighbours=50)
    assert worst["hit_rate_nn"][0] == 0.0 and worst["mean_pose_distance"][0] == pytest.approx(d.max(1).mean())


def test_one_nn_accuracy_and_ap_against_sklearn():
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.1], [0.2, 0.7, 0.6], [0.1, 0.2, 0.3]])
    ql, dl = np.array([0, 1, 2, 2]), np.array([0, 1, 2])
    assert one_nn_accuracy(scores, ql, dl) == 0.75
    aps = per_class_average_precision(scores, ql, dl)
    assert set(aps) == {0, 1, 2}
    assert aps[2] == pytest.approx(average_precision_score([0, 0, 1, 1], [0.2, 0.1, 0.6, 0.3]))
    assert aps[0] == 1.0


def test_squared_distances_numpy_and_torch():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    ref = ((x[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(x, y), ref, atol=1e-10)
    np.testing.assert_allclose(squared_distances(torch.from_numpy(x), torch.from_numpy(y)).numpy(), ref, atol=1e-10)
