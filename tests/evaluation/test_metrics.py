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
    per_joint, total = pckh(pred, gt, np.array([10.0, 10.0]), mask=vis)
    assert per_joint.tolist() == [100.0, 50.0, 100.0] and total == pytest.approx(80.0)
    assert pckh(pred, gt, np.array([10.0, 10.0]), 0.5, vis)[1] == total  # mask is still the 5th argument


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
    assert res["mean_auc"] == 1.0 and res["auc_of_mean_roc"] == pytest.approx(1.0, abs=1e-12)
    rev = posture_retrieval_auc(-sim, anchors, pos, neg)
    assert rev["mean_auc"] == 0.0 and rev["auc_of_mean_roc"] == pytest.approx(0.0, abs=1e-12)
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


# ---------------------------------------------------------------------------------------------------------
# independent references, written from the papers' definitions with explicit loops

LSP = FORMATS["lsp14"]
REF_STICKS = (  # (part, end a, end b); an end that is a pair of joints is their midpoint
    ("head", ("neck",), ("head_top",)),
    ("torso", ("l_hip", "r_hip"), ("l_shoulder", "r_shoulder")),
    ("upper_arms", ("l_shoulder",), ("l_elbow",)),
    ("upper_arms", ("r_shoulder",), ("r_elbow",)),
    ("lower_arms", ("l_elbow",), ("l_wrist",)),
    ("lower_arms", ("r_elbow",), ("r_wrist",)),
    ("upper_legs", ("l_hip",), ("l_knee",)),
    ("upper_legs", ("r_hip",), ("r_knee",)),
    ("lower_legs", ("l_knee",), ("l_ankle",)),
    ("lower_legs", ("r_knee",), ("r_ankle",)),
)


def reference_pcp(pred, gt, scored, thresh=0.5, strict=True):
    """``(ok, used)`` ``(N, 10)``: a stick is judged by its ground-truth length, on ends ``<=`` the threshold."""
    n = len(gt)
    ok, used = np.zeros((n, 10), bool), np.zeros((n, 10), bool)
    for i in range(n):
        for s, (_, a, b) in enumerate(REF_STICKS):
            if not all(scored[i, LSP.index(j)] for j in a + b):
                continue
            used[i, s] = True
            ga, gb = (np.mean([gt[i, LSP.index(j)] for j in e], 0) for e in (a, b))
            pa, pb = (np.mean([pred[i, LSP.index(j)] for j in e], 0) for e in (a, b))
            limit = thresh * np.hypot(*(ga - gb))
            ea, eb = np.hypot(*(pa - ga)), np.hypot(*(pb - gb))
            ok[i, s] = (ea <= limit and eb <= limit) if strict else (ea + eb) / 2 <= limit
    return ok, used


def reference_pdj(pred, gt, scored, t):
    """PDJ % per joint at threshold ``t``: over the poses with the joint and both torso joints scored."""
    ls, rh = LSP.index("l_shoulder"), LSP.index("r_hip")
    hits, counts = np.zeros(gt.shape[1]), np.zeros(gt.shape[1])
    for i in range(len(gt)):
        if not (scored[i, ls] and scored[i, rh]):
            continue
        torso = np.hypot(*(gt[i, ls] - gt[i, rh]))
        for j in range(gt.shape[1]):
            if scored[i, j]:
                counts[j] += 1
                hits[j] += np.hypot(*(pred[i, j] - gt[i, j])) <= t * torso
    with np.errstate(invalid="ignore"):
        return 100 * hits / counts


def random_2d(n=60, seed=0, noise=8.0, nan_share=0.05):
    """Random lsp14 poses, predictions near the thresholds, a mask and some NaN ground-truth joints."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(n, 14, 2)) * 30
    pred = gt + rng.normal(size=gt.shape) * noise
    mask = rng.random((n, 14)) > 0.1
    gt[rng.random((n, 14)) < nan_share] = np.nan
    return pred, gt, mask


@pytest.mark.parametrize("strict", [True, False])
def test_pcp_matches_reference_on_random_poses(strict):
    pred, gt, mask = random_2d(seed=1 + strict)
    ok, used = reference_pcp(pred, gt, mask & np.isfinite(gt).all(-1), strict=strict)
    assert 0 < ok.sum() < used.sum() < ok.size  # some right, some wrong, some not scored
    np.testing.assert_array_equal(pcp_sticks(pred, gt, strict=strict, mask=mask), ok)
    res = pcp(pred, gt, strict=strict, mask=mask)
    parts = np.array([p for p, _, _ in REF_STICKS])
    for part in set(parts):
        sel = parts == part
        assert res[part] == pytest.approx(100 * ok[:, sel].sum() / used[:, sel].sum())
    assert res["total"] == pytest.approx(100 * ok.sum() / used.sum())


def test_pcp_judges_a_limb_by_its_ground_truth_length():
    gt = lsp_person()
    wrist, elbow = gt[0, LSP.index("l_wrist")], gt[0, LSP.index("l_elbow")]
    length = np.hypot(*(wrist - elbow))  # 30.4 px: correct within 15.2 px
    along = (wrist - elbow) / length
    longer, shorter = gt.copy(), gt.copy()
    longer[0, LSP.index("l_wrist")] += 16.0 * along  # 16 px off: wrong, though 16 <= 0.5 x 46.4 (predicted length)
    shorter[0, LSP.index("l_wrist")] -= 14.0 * along  # 14 px off: right, though 14 > 0.5 x 16.4 (predicted length)
    assert not pcp_sticks(longer, gt)[0, 4]
    assert pcp_sticks(shorter, gt)[0, 4]


def test_pcp_mask_and_nan_ground_truth_leave_the_denominator():
    gt = lsp_person().repeat(2, 0)
    pred = gt.copy()
    pred[:, LSP.index("l_wrist")] += (50.0, 0.0)  # the left lower arm is wrong in both poses
    gt[0, LSP.index("l_wrist")] = np.nan  # pose 0: that stick cannot be judged
    mask = np.ones((2, 14), bool)
    mask[1, LSP.index("l_wrist")] = False  # pose 1: nor here
    res = pcp(pred, gt, mask=mask)
    assert res["total"] == 100.0 and res["lower_arms"] == 100.0  # 18 of 18 scored sticks right
    pred[:, LSP.index("l_wrist")] = np.nan  # a prediction where nothing is scored is never read
    assert pcp(pred, gt, mask=mask)["total"] == 100.0
    mask[:, [LSP.index("l_elbow"), LSP.index("r_elbow")]] = False  # no arm left at all: NaN, reported as such
    res = pcp(pred, gt, mask=mask)
    assert np.isnan(res["lower_arms"]) and np.isnan(res["upper_arms"]) and res["total"] == 100.0
    with pytest.raises(ValueError, match="no stick to score"):
        pcp(pred, gt, mask=np.zeros((2, 14), bool))


def test_pcp_mask_follows_fmt():
    from lib.skeleton import format_indices

    rng = np.random.default_rng(2)
    gt = rng.normal(size=(20, 17, 2)) * 30
    pred = gt + rng.normal(size=gt.shape) * 8
    mask = rng.random((20, 17)) > 0.3  # in canonical order
    lsp = format_indices("lsp14")
    want = pcp(pred[:, lsp], gt[:, lsp], mask=mask[:, lsp])
    assert pcp(pred, gt, fmt="canonical", mask=mask) == want


def test_pdj_matches_reference_on_random_poses():
    pred, gt, mask = random_2d(seed=3, noise=10.0)
    got = pdj(pred, gt, [0.1, 0.2, 0.4], mask=mask)
    scored = mask & np.isfinite(gt).all(-1)
    want = np.stack([reference_pdj(pred, gt, scored, t) for t in (0.1, 0.2, 0.4)])
    np.testing.assert_allclose(got, want)
    assert 0 < got[0].mean() < got[2].mean() < 100


def test_pdj_nan_ground_truth_and_torso():
    gt = lsp_person().repeat(3, 0)
    pred = gt + (0.0, 50.0)  # every joint wrong
    pred[:2, LSP.index("neck")] = gt[:2, LSP.index("neck")]  # the neck right in poses 0, 1
    gt[1, LSP.index("head_top")] = np.nan  # pose 1: head top not scored
    gt[2, LSP.index("r_hip")] = np.nan  # pose 2: no torso diameter, the pose is left out
    out = pdj(pred, gt, [0.2])[0]
    assert out[LSP.index("neck")] == 100.0  # 2 of 2 poses, pose 2 left out
    assert out[LSP.index("head_top")] == 0.0  # 0 of 1
    assert out[LSP.index("r_hip")] == 0.0  # 0 of 2: poses 0 and 1
    gt[:2, LSP.index("head_top")] = np.nan
    assert np.isnan(pdj(pred, gt, [0.2])[0, LSP.index("head_top")])  # never scored: NaN
    flat = lsp_person()
    flat[0, LSP.index("r_hip")] = flat[0, LSP.index("l_shoulder")]
    with pytest.raises(ValueError, match="gt pose 0 has a torso diameter of 0"):
        pdj(flat, flat, [0.1])
    gt[:, LSP.index("l_shoulder")] = np.nan
    with pytest.raises(ValueError, match="PDJ has no joint to score"):
        pdj(pred, gt, [0.2])


def test_pckh_matches_reference_on_random_poses():
    pred, gt, mask = random_2d(seed=4)
    head = np.random.default_rng(5).uniform(10, 40, len(gt))
    per_joint, total = pckh(pred, gt, head, 0.5, mask)
    scored = mask & np.isfinite(gt).all(-1)
    ok = np.array([[np.hypot(*(pred[i, j] - gt[i, j])) <= 0.5 * head[i] for j in range(14)] for i in range(len(gt))])
    np.testing.assert_allclose(per_joint, [100 * ok[scored[:, j], j].mean() for j in range(14)])
    assert total == pytest.approx(100 * ok[scored].mean())


def test_pckh_nan_ground_truth_is_left_out_not_wrong():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    gt[1, 2] = np.nan  # an unannotated joint, as some loaders store it
    per_joint, total = pckh(pred, gt, np.array([10.0, 10.0]))
    assert per_joint.tolist() == [100.0, 100.0, 100.0] and total == 100.0
    gt[0, 2] = np.nan
    per_joint, total = pckh(pred, gt, np.array([10.0, 10.0]))
    assert np.isnan(per_joint[2]) and total == 100.0
    with pytest.raises(ValueError, match="no joint to score"):
        pckh(pred, gt, np.array([10.0, 10.0]), mask=np.zeros((2, 3), bool))


def test_boundary_counts_as_correct_in_pdj_pcp_and_pckh():
    gt = lsp_person()  # torso diameter 65 px, head stick (neck - head top) 30 px
    names = LSP
    on_the_line = gt.copy()
    on_the_line[0, names.index("r_knee")] += (9.75, 13.0)  # exactly 16.25 = 0.25 x 65 px off
    assert pdj(on_the_line, gt, [0.25])[0, names.index("r_knee")] == 100.0
    beyond = gt.copy()
    beyond[0, names.index("r_knee")] += (9.76, 13.0)
    assert pdj(beyond, gt, [0.25])[0, names.index("r_knee")] == 0.0
    head = gt.copy()
    head[0, names.index("head_top")] += (9.0, 12.0)  # exactly 15 = 0.5 x 30 px off
    assert pcp_sticks(head, gt)[0, 0]
    head[0, names.index("head_top")] += (0.01, 0.0)
    assert not pcp_sticks(head, gt)[0, 0]
    zero = np.zeros((1, 2, 2))
    per_joint, _ = pckh(np.array([[[3.0, 4.0], [3.0, 4.01]]]), zero, np.array([10.0]))  # 5 = 0.5 x 10 px
    assert per_joint.tolist() == [100.0, 0.0]


def test_2d_metrics_reject_bad_input():
    gt = lsp_person().repeat(2, 0)
    pred = gt.copy()
    pred[1, 5, 0] = np.nan
    want = r"pred\[1, 5, 0\] \(pose 1, joint 5, coordinate 0\) is nan; .*a scored joint needs a prediction"
    with pytest.raises(ValueError, match=want):
        pcp(pred, gt)
    with pytest.raises(ValueError, match=want):
        pdj(pred, gt, [0.1])
    with pytest.raises(ValueError, match=want):
        pckh(pred, gt, np.array([10.0, 10.0]))
    canonical = np.zeros((2, 17, 2))
    nan_wrist = canonical.copy()
    nan_wrist[0, FORMATS["canonical"].index("l_wrist")] = np.nan
    with pytest.raises(ValueError, match=r"pred\[0, 11, 0\] .*joints in lsp14 order"):
        pcp(nan_wrist, canonical, fmt="canonical")
    with pytest.raises(ValueError, match=r"mask must be \(N, J\) = \(2, 14\)"):
        pdj(gt, gt, [0.1], mask=np.ones((2, 13), bool))
    with pytest.raises(ValueError, match=r"mask must be \(N, J\) = \(2, 14\)"):
        pcp(gt, gt, mask=np.ones(14, bool))
    with pytest.raises(ValueError, match=r"head_sizes\[1\] is 0.0; expected a positive size"):
        pckh(gt, gt, np.array([10.0, 0.0]))
    with pytest.raises(ValueError, match=r"head_sizes\[0\] \(pose 0\) is nan"):
        pckh(gt, gt, np.array([np.nan, 10.0]))


def test_n_mpjpe_uses_the_least_squares_scale():
    gt = np.array([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    pred = np.array([[[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]]])
    # s = <pred, gt> / <pred, pred> = 2 / 4: the scaled joints (0.5, 0.5, 0) lie sqrt(0.5) from the truth
    # (the norm ratio |gt| / |pred| = 0.707 would give 0.765)
    assert n_mpjpe(pred, gt) == pytest.approx(np.sqrt(0.5))


def test_n_mpjpe_matches_a_numerical_minimiser():
    from scipy.optimize import minimize_scalar

    gt = random_poses(5, seed=7)
    pred = 0.6 * gt + np.random.default_rng(8).normal(size=gt.shape) * 80
    scaled = [
        minimize_scalar(lambda s, p=p, g=g: ((s * p - g) ** 2).sum(), bounds=(0, 10), method="bounded").x * p
        for p, g in zip(pred, gt, strict=True)
    ]
    assert n_mpjpe(pred, gt) == pytest.approx(mpjpe(np.array(scaled), gt), rel=1e-5)


def test_3d_metrics_reject_non_finite_input_and_too_few_joints():
    gt = random_poses(3, seed=9)
    pred = gt.copy()
    pred[1, 2, 0] = np.nan
    for metric in (mpjpe, n_mpjpe, p_mpjpe):
        with pytest.raises(ValueError, match=r"pred\[1, 2, 0\] \(pose 1, joint 2, coordinate 0\) is nan"):
            metric(pred, gt)
    bad_gt = gt.copy()
    bad_gt[0, 4, 2] = np.inf
    with pytest.raises(ValueError, match=r"gt\[0, 4, 2\] \(pose 0, joint 4, coordinate 2\) is inf"):
        p_mpjpe(gt, bad_gt)
    with pytest.raises(ValueError, match="at least 2 joints"):
        n_mpjpe(gt[:, :1], gt[:, :1])
    with pytest.raises(ValueError, match="at least 3 joints"):
        p_mpjpe(gt[:, :1], gt[:, :1])
    with pytest.raises(ValueError, match="at least 3 joints"):
        p_mpjpe(gt[:, :2], gt[:, :2])


# ---------------------------------------------------------------------------------------------------------
# posture retrieval AUC under ties


def random_posture_protocol(n_negs, seed=0, levels=3):
    """Similarities with many ties (``levels`` distinct values) and anchors with the given negative counts."""
    rng = np.random.default_rng(seed)
    n = 60
    sim = rng.integers(0, levels, size=(n, n)).astype(float)
    anchors, pos, neg = [], [], []
    for k, n_neg in enumerate(n_negs):
        ids = rng.permutation(np.arange(len(n_negs), n))
        anchors.append(k)
        pos.append(ids[: rng.integers(1, 8)])
        neg.append(ids[-n_neg:])
    return sim, anchors, pos, neg


def pairwise_auc(pos_scores, neg_scores):
    """P(positive > negative) + P(tie) / 2, over all pairs."""
    return np.mean([(p > q) + 0.5 * (p == q) for p in pos_scores for q in neg_scores])


def reference_roc_at(pos_scores, neg_scores, f):
    """TPR of the ROC (ties as one diagonal segment) at FPR ``f``; the top of a vertical step on ``f``."""
    pts = [(0.0, 0.0)]
    for t in sorted(set(pos_scores) | set(neg_scores), reverse=True):
        pts.append((np.mean(np.asarray(neg_scores) >= t), np.mean(np.asarray(pos_scores) >= t)))
    on = [y for x, y in pts if x == f]
    if on:
        return max(on)
    (x0, y0), (x1, y1) = max(p for p in pts if p[0] < f), min(p for p in pts if p[0] > f)
    return y0 + (y1 - y0) * (f - x0) / (x1 - x0)


def test_posture_auc_all_ties_is_one_half():
    res = posture_retrieval_auc(np.ones((8, 8)), [0, 1], [[2, 3], [4]], [[4, 5, 6], [2, 3, 5, 6, 7]])
    assert res["mean_auc"] == 0.5
    assert res["auc_of_mean_roc"] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(res["mean_tpr"], res["fpr"])  # the diagonal


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posture_auc_of_mean_roc_is_exact_when_negatives_divide_the_grid(seed):
    # every ROC step lies on a grid point k / 100, so the grid loses nothing: the area of the mean ROC is the
    # mean of the areas, the per-anchor AUC of roc_auc_score (checked against pair counting)
    sim, anchors, pos, neg = random_posture_protocol([2, 4, 5, 10, 20, 25, 4, 5], seed=seed)
    res = posture_retrieval_auc(sim, anchors, pos, neg)
    want = [pairwise_auc(sim[a, p], sim[a, q]) for a, p, q in zip(anchors, pos, neg, strict=True)]
    np.testing.assert_allclose(res["per_anchor"], want)
    assert res["auc_of_mean_roc"] == pytest.approx(np.mean(want), abs=1e-12)


def test_posture_auc_of_mean_roc_is_exact_for_vertical_steps_on_the_grid():
    # one positive ranked below k of n negatives: a ROC with one vertical step at FPR k / n, a grid point
    cases = [(n, k) for n in (10, 20, 25, 50) for k in range(1, n)]
    sim = np.zeros((len(cases), len(cases) + 51))
    ids = len(cases) + np.arange(51)  # id ids[0] is the positive, ids[1:n + 1] the negatives
    pos, neg = [], []
    for a, (n, k) in enumerate(cases):
        sim[a, ids[1 : n + 1]] = np.arange(n, 0, -1)  # negatives n, n - 1, ..., 1
        sim[a, ids[0]] = n - k + 0.5  # below the k best negatives
        pos.append(ids[:1])
        neg.append(ids[1 : n + 1])
    res = posture_retrieval_auc(sim, np.arange(len(cases)), pos, neg)
    np.testing.assert_allclose(res["per_anchor"], [1 - k / n for n, k in cases])
    assert res["auc_of_mean_roc"] == pytest.approx(res["mean_auc"], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_posture_mean_roc_matches_reference_and_bound(seed):
    sim, anchors, pos, neg = random_posture_protocol([3, 7, 9, 11, 6, 13], seed=seed, levels=4)
    res = posture_retrieval_auc(sim, anchors, pos, neg)
    want = np.mean(
        [
            [reference_roc_at(sim[a, p].tolist(), sim[a, q].tolist(), f) for f in res["fpr"]]
            for a, p, q in zip(anchors, pos, neg, strict=True)
        ],
        axis=0,
    )
    np.testing.assert_allclose(res["fpr"], np.arange(101) / 100)
    np.testing.assert_allclose(res["mean_tpr"], want, atol=1e-12)
    assert abs(res["auc_of_mean_roc"] - res["mean_auc"]) <= 0.005 + 1e-12  # a monotone curve on a 0.01 grid


def test_posture_auc_rejects_non_finite_similarities():
    sim = np.random.default_rng(0).normal(size=(6, 6))
    sim[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"sim\[0, 3\] \(anchor 0, frame 3\) is nan"):
        posture_retrieval_auc(sim, [0], [[1, 2]], [[3, 4]])
    posture_retrieval_auc(sim, [0], [[1, 2]], [[4, 5]])  # a NaN the anchor never reads is no concern


# ---------------------------------------------------------------------------------------------------------
# recognition


def reference_average_precision(relevant, score):
    """Mean over the relevant items of the precision at their rank (no ties in ``score``)."""
    order = np.argsort(-score)
    rel = np.asarray(relevant)[order]
    return np.mean([rel[: k + 1].mean() for k in np.flatnonzero(rel)])


def test_one_nn_and_ap_match_references_on_random_scores():
    rng = np.random.default_rng(0)
    ql, dl = rng.integers(0, 4, 40), rng.integers(0, 4, 25)
    scores = rng.normal(size=(40, 25)) + 0.8 * (ql[:, None] == dl[None])
    want_acc = np.mean([dl[max(range(25), key=lambda j, i=i: scores[i, j])] == ql[i] for i in range(40)])
    assert one_nn_accuracy(scores, ql, dl) == pytest.approx(want_acc)
    aps = per_class_average_precision(scores, ql, dl)
    assert list(aps) == [0, 1, 2, 3]
    for c in range(4):
        best = np.array([max(scores[i, j] for j in range(25) if dl[j] == c) for i in range(40)])
        assert aps[c] == pytest.approx(reference_average_precision(ql == c, best))


def test_ap_reports_a_query_class_the_dictionary_lacks():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]])
    aps = per_class_average_precision(scores, np.array(["walk", "run", "jump"]), np.array(["walk", "run"]))
    assert list(aps) == ["jump", "run", "walk"] and np.isnan(aps["jump"])
    assert aps["walk"] == 1.0 and aps["run"] == 1.0
    assert np.nanmean(list(aps.values())) == 1.0 and np.isnan(np.mean(list(aps.values())))


def test_recognition_rejects_non_finite_scores():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, np.nan]])
    ql, dl = np.array([0, 1, 1]), np.array([0, 1])
    for metric in (one_nn_accuracy, per_class_average_precision):
        with pytest.raises(ValueError, match=r"scores\[2, 1\] \(query 2, dictionary item 1\) is nan"):
            metric(scores, ql, dl)
