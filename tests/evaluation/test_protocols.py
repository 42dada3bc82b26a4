"""Protocols: the synthetic posture benchmark, zero-shot joint transfer, the 3D probe."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lib.data.base import PostureLabels
from lib.evaluation.baselines import pose_oracle_features
from lib.evaluation.metrics import mpjpe, pose_distance
from lib.evaluation.probes import PROBES, evaluate_pose_probe, pose_probe, root_relative, train_pose_probe
from lib.evaluation.protocols import (
    evaluate_posture,
    make_posture_benchmark,
    nearest_neighbours,
    zero_shot_pcp,
    zero_shot_upper_bound,
)


def tiny_world(seed: int = 0):
    """A stand-in with the World fields the benchmark reads: 2 classes x 3 subjects x 2 sequences x 12 frames."""
    rng = np.random.default_rng(seed)
    seq, subj, act = [], [], []
    s = 0
    for a in range(2):
        for p in range(3):
            for _ in range(2):
                seq += [s] * 12
                subj += [p] * 12
                act += [a] * 12
                s += 1
    n = len(seq)
    split = np.where(np.array(subj) == 0, "train", "test")
    return SimpleNamespace(
        joints2d=rng.normal(size=(n, 17, 2)).astype(np.float32),
        seq=np.array(seq),
        subject=np.array(subj),
        activity=np.array(act),
        activity_names=("walk", "jump"),
        split_indices=lambda name: np.flatnonzero(split == name),
    )


def test_benchmark_follows_the_clique_schema_and_ground_truth():
    w = tiny_world()
    bench = make_posture_benchmark(w, splits=("test",), anchors_per_class=5, n_pos=4, n_neg=3)
    assert [b.category for b in bench] == ["walk", "jump"]
    test = set(w.split_indices("test").tolist())
    for b in bench:
        assert len(b.anchors) == 5 and all(len(p) == 4 for p in b.pos_ids) and all(len(q) == 3 for q in b.neg_ids)
        for a, pos, neg in zip(b.anchors, b.pos_ids, b.neg_ids, strict=True):
            assert set(pos.tolist()) | set(neg.tolist()) | {int(a)} <= test
            assert (w.subject[pos] != w.subject[a]).all() and (w.seq[pos] != w.seq[a]).all()
            assert (w.activity[pos] == w.activity[a]).all() and (w.activity[neg] == w.activity[a]).all()
            d = pose_distance(w.joints2d[[a]], w.joints2d)[0]
            same = np.flatnonzero((w.activity == w.activity[a]) & np.isin(np.arange(len(d)), list(test)))
            other = same[(w.subject[same] != w.subject[a]) & (w.seq[same] != w.seq[a])]
            assert d[pos].max() <= np.sort(d[other])[3] + 1e-9  # the 4 nearest of the others
            assert d[neg].min() > np.median(d[same])


def test_evaluate_posture_oracle_perfect_and_reversed():
    w = tiny_world(1)
    bench = make_posture_benchmark(w, splits=("test",), anchors_per_class=8, n_pos=3, n_neg=3)
    res = evaluate_posture(pose_oracle_features(w.joints2d), bench)
    assert set(res["per_class"]) == {"walk", "jump"} and res["mean_auc"] > 0.9
    lab = PostureLabels("x", np.array([0]), [np.array([1, 2])], [np.array([3])], [np.zeros(2)], [np.zeros(1)])
    f = np.array([[1.0, 0], [1.0, 0.1], [0.9, 0.2], [-1.0, 0]])
    assert evaluate_posture(f, [lab])["mean_auc"] == 1.0
    assert evaluate_posture({"x": -f}, [lab])["mean_auc"] == 1.0  # cosine is sign-symmetric here
    reversed_f = np.array([[1.0, 0], [-1.0, 0.1], [-0.9, 0.2], [1.0, 0.05]])  # negative nearest
    assert evaluate_posture(reversed_f, [lab])["mean_auc"] == 0.0
    with pytest.raises(ValueError, match="feature rows"):
        evaluate_posture(f[:2], [lab])
    # flipvals: positive 2 is compared flipped; its flipped feature points away, so it drops below the negative
    flip = PostureLabels("x", np.array([0]), [np.array([1, 2])], [np.array([3])], [np.array([0, 1])], [np.zeros(1)])
    g = np.array([[1.0, 0], [1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
    flipped = g.copy()
    flipped[2] = (-1.0, 0.0)
    assert evaluate_posture(g, [flip])["mean_auc"] == 1.0  # without flipped features, flips are ignored
    assert evaluate_posture(g, [flip], flipped_features=flipped)["mean_auc"] == 0.5


def test_posture_labels_validate_lengths():
    with pytest.raises(ValueError, match="entries"):
        PostureLabels("x", np.array([0, 1]), [np.array([1])], [np.array([2])], [np.zeros(1)], [np.zeros(1)])


def test_zero_shot_transfer_and_upper_bound():
    rng = np.random.default_rng(0)
    db_joints = rng.uniform(0, 64, size=(30, 14, 2))
    q_joints = db_joints[[3, 7, 11]] + 0.1
    db_feats = rng.normal(size=(30, 8))
    assert nearest_neighbours(db_feats[[3, 7, 11]] * 2, db_feats).tolist() == [3, 7, 11]
    assert zero_shot_pcp(db_feats[[3, 7, 11]], q_joints, db_feats, db_joints)["total"] == 100.0
    assert zero_shot_upper_bound(q_joints, db_joints)["total"] == 100.0
    wrong = zero_shot_pcp(db_feats[[0, 1, 2]], q_joints, db_feats, db_joints)["total"]
    assert wrong < 50.0


def test_probe_learns_a_linear_map_and_validates(one_thread):
    rng = np.random.default_rng(0)
    poses = root_relative(rng.normal(size=(300, 5, 3)) * 100)
    feats = poses.reshape(300, -1) @ rng.normal(size=(15, 20)) / 100  # an invertible view of the pose
    zero = mpjpe(np.zeros_like(poses[200:]), poses[200:])
    for kind in PROBES:
        probe = train_pose_probe(feats[:200], poses[:200], kind, fraction=1.0, epochs=100, width=128, lr=3e-3)
        res = evaluate_pose_probe(probe, feats[200:], poses[200:])
        assert res["mpjpe"] < 0.6 * zero, kind
        assert res["p_mpjpe"] <= res["mpjpe"] + 1e-6 and res["n_mpjpe"] <= res["mpjpe"] + 1e-6
    assert pose_probe("mlp", 10, 5)[0].out_features == 2048 and pose_probe("resmlp", 10, 5)[0].out_features == 1024
    with pytest.raises(ValueError, match="unknown probe"):
        pose_probe("linear", 10, 5)
    with pytest.raises(ValueError, match="fraction"):
        train_pose_probe(feats, poses, fraction=0.0)


def test_euclidean_and_cosine_agree_on_unit_features_and_differ_by_hand():
    w = tiny_world(2)
    bench = make_posture_benchmark(w, splits=("test",), anchors_per_class=6, n_pos=3, n_neg=3)
    f = np.random.default_rng(0).normal(size=(len(w.seq), 5))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cos, euc = evaluate_posture(f, bench), evaluate_posture(f, bench, similarity="euclidean")
    np.testing.assert_allclose(cos["per_anchor"], euc["per_anchor"])
    assert cos["mean_auc"] == pytest.approx(euc["mean_auc"])
    # by hand: the positive points the anchor's way but is long (cosine 1, distance 9); the negative is a
    # short vector at 90 degrees (cosine 0, distance sqrt(2)): cosine ranks the positive first, Euclidean last
    lab = PostureLabels("x", np.array([0]), [np.array([1])], [np.array([2])], [np.zeros(1)], [np.zeros(1)])
    g = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 1.0]])
    assert evaluate_posture(g, [lab])["mean_auc"] == 1.0
    assert evaluate_posture(g, [lab], similarity="euclidean")["mean_auc"] == 0.0
    assert nearest_neighbours(g[:1], g[1:]).tolist() == [0]
    assert nearest_neighbours(g[:1], g[1:], similarity="euclidean").tolist() == [1]
    with pytest.raises(ValueError, match="similarity"):
        evaluate_posture(g, [lab], similarity="manhattan")


def test_zero_shot_pcp_follows_the_similarity():
    db_joints = np.stack([np.full((14, 2), 10.0), np.full((14, 2), 40.0)])
    db_joints[:, :, 0] += np.arange(14)  # distinct sticks
    q = np.array([[1.0, 0.0]])
    db = np.array([[10.0, 0.0], [0.0, 1.0]])  # cosine picks 0, Euclidean picks 1
    assert zero_shot_pcp(q, db_joints[[0]], db, db_joints)["total"] == 100.0
    assert zero_shot_pcp(q, db_joints[[0]], db, db_joints, similarity="euclidean")["total"] == 0.0


def test_other_sequence_negatives():
    w = tiny_world(3)
    any_ = make_posture_benchmark(w, splits=("test",), anchors_per_class=8, n_pos=3, n_neg=4)
    other = make_posture_benchmark(
        w, splits=("test",), anchors_per_class=8, n_pos=3, n_neg=4, negatives="other_sequences"
    )
    assert any(
        (w.seq[neg] == w.seq[a]).any() for b in any_ for a, neg in zip(b.anchors, b.neg_ids, strict=True)
    )  # the default draws some negatives from the anchor's own sequence
    for b in other:
        for a, neg in zip(b.anchors, b.neg_ids, strict=True):
            assert (w.seq[neg] != w.seq[a]).all() and len(neg) == 4
            d = pose_distance(w.joints2d[[a]], w.joints2d)[0]
            same = w.split_indices("test")[w.activity[w.split_indices("test")] == w.activity[a]]
            assert d[neg].min() > np.median(d[same])
    with pytest.raises(ValueError, match="negatives"):
        make_posture_benchmark(w, splits=("test",), negatives="same_subject")
