"""The benchmark harness of notebook 08: registry, protocols per item, paired ranks, recorded features, claims."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lib import benchmark as B
from lib.data.base import PostureLabels
from lib.evaluation.metrics import pose_distance, pose_retrieval_metrics
from lib.evaluation.protocols import evaluate_posture, zero_shot_pcp
from lib.evaluation.uncertainty import Estimate, LearnCheck
from lib.runtime import resolve_profile


@pytest.fixture(scope="module")
def setting():
    """The smoke world with the cheapest sizes (one probe epoch, few anchors)."""
    return B.make_setting(resolve_profile("smoke"), 0, anchors=4, probe_epochs=1, probe_width=16, lspet_images=20)


def test_a_registered_fake_method_appears_in_every_protocol(setting):
    registry: dict[str, B.Method] = {}
    frame = B.register(
        B.Method(
            "fake frame", B.FRAME, lambda s: B.Fitted(np.random.default_rng(0)),
            lambda rng, x: x.joints.reshape(len(x), -1) + rng.normal(0, 5, (len(x), 28)),
        ),
        registry,
    )  # fmt: skip
    poses_flat = lambda _, pm: [p.reshape(len(p), -1) for p in pm[0]]  # noqa: E731
    B.register(B.Method("fake sequence", B.SEQUENCE, lambda s: B.Fitted(None), poses_flat), registry)
    with pytest.raises(ValueError, match="already registered"):
        B.register(frame, registry)
    fitted, missing = B.fit_methods(list(registry.values()), setting)
    assert missing == {}
    scores = [B.evaluate(m, fitted[m.name], setting) for m in registry.values()]
    frame_cols = {c.name for c in B.COLUMNS} - ({"LSPET pose distance@1"} if setting.lspet is None else set())
    assert set(scores[0].items) == frame_cols
    assert set(scores[1].items) == {"DTW 1-NN (similarity)", "DTW 1-NN (cost)"}
    board = B.leaderboard(scores)
    for col in B.COLUMNS:  # every column names both methods: an estimate with a rank, or why it is absent
        entry = board[col.name]
        for m in registry:
            assert (m in entry["estimates"] and m in entry["ranks"]) or entry["absent"][m]
    assert scores[0].images_per_s > 0
    assert len(scores[0].items["posture AUC"]) >= len(scores[0].items["posture AUC (other-sequence negatives)"])
    assert len(scores[0].items["probe N-MPJPE 1%"]) == len(setting.held_sequences)


def test_posture_items_match_evaluate_posture_per_class(setting):
    f = B.raw_pixel_features(setting.frames.images)
    for lab in setting.bench[:3]:
        items = B.posture_items(lambda ids: f[ids], [lab])
        assert items.mean() == pytest.approx(evaluate_posture(f, [lab])["mean_auc"])


def test_other_sequence_negatives_are_filtered_on_a_hand_made_case():
    # anchor 0 (sequence 0); positive 1; negative 2 from the anchor's own sequence, negative 3 from another.
    f = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.01], [0.0, 1.0]])
    lab = PostureLabels("c", np.array([0]), [np.array([1])], [np.array([2, 3])], [np.zeros(1, int)], [np.zeros(2, int)])
    seq = np.array([0, 1, 0, 2])
    assert B.posture_items(lambda ids: f[ids], [lab]) == pytest.approx([0.5])  # neg 2 beats the positive, neg 3 not
    assert B.posture_items(lambda ids: f[ids], [lab], seq) == pytest.approx([1.0])
    only_own = PostureLabels(
        "c", np.array([0]), [np.array([1])], [np.array([2])], [np.zeros(1, int)], [np.zeros(1, int)]
    )
    assert len(B.posture_items(lambda ids: f[ids], [lab, only_own], seq)) == 1  # an anchor without negatives drops


def test_retrieval_items_average_to_the_protocols_numbers():
    rng = np.random.default_rng(1)
    qj, dbj = rng.normal(size=(12, 14, 2)) * 10 + 30, rng.normal(size=(60, 14, 2)) * 10 + 30
    fq, fdb = qj.reshape(12, -1) + rng.normal(size=(12, 28)), dbj.reshape(60, -1)
    items = B.retrieval_items(fq, fdb, qj, dbj)
    ref = pose_retrieval_metrics(B._unit(fq) @ B._unit(fdb).T, qj, dbj, ks=B.KS)
    for j, k in enumerate(B.KS):
        assert items[f"Kwak hit@{k}"].mean() == pytest.approx(ref["hit_rate_nn"][j])
        assert items[f"Kwak pose distance@{k}"].mean() == pytest.approx(ref["mean_pose_distance"][j])
    assert items["zero-shot PCP"].mean() == pytest.approx(zero_shot_pcp(fq, qj, fdb, dbj)["total"])


def test_lspet_items_are_the_pose_distance_to_the_nearest_other_image():
    j = np.random.default_rng(2).normal(size=(5, 14, 2))
    f = np.eye(5) + np.array(
        [[0, 0.9, 0, 0, 0], [0.9, 0, 0, 0, 0], [0, 0, 0, 0.5, 0], [0, 0, 0.5, 0, 0], [0.3, 0, 0, 0, 0]]
    )
    nn = [1, 0, 3, 2, 0]  # by hand: the largest off-diagonal cosine of each row
    expected = [pose_distance(j[i : i + 1], j[k : k + 1])[0, 0] for i, k in enumerate(nn)]
    assert B.lspet_items(f, j) == pytest.approx(expected)


def test_paired_ranks_on_a_hand_made_case():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    items = {"best": base + 1.0, "b": base, "c": base + rng.normal(0, 0.01, 200)}  # b and c: a tie
    assert B.paired_ranks(items) == {"best": 1, "b": 2, "c": 2}
    assert B.paired_ranks(items, higher_is_better=False) == {"best": 3, "b": 1, "c": 1}
    tied = {"x": base, "y": base + rng.normal(0, 1e-3, 200)}  # two methods no one beats share rank 1
    assert set(B.paired_ranks(tied).values()) == {1}


def test_recorded_mode_names_missing_features(tmp_path, setting):
    registry: dict[str, B.Method] = {}
    absent = B.Method("absent", B.FRAME, lambda s: None, lambda *a: None, trained=True,
                      recorded=B.Recorded("99_nothing", (("f", "ids"),)))  # fmt: skip
    unrecorded = B.Method("never recorded", B.FRAME, lambda s: None, lambda *a: None, trained=True)
    partial = B.Method("partial", B.FRAME, lambda s: None, lambda *a: None, trained=True,
                       recorded=B.Recorded("98_partial", (("f", "ids"),)))  # fmt: skip
    baseline = B.Method("baseline", B.FRAME, lambda s: B.Fitted(None), lambda _, x: B.raw_pixel_features(x.images))
    for m in (absent, unrecorded, partial, baseline):
        B.register(m, registry)
    (tmp_path / "98_partial").mkdir()
    q = setting.queries
    np.savez(tmp_path / "98_partial" / "features.npz", f=np.ones((len(q), 3), np.float16), ids=q)
    fitted, missing = B.fit_methods(list(registry.values()), setting, "recorded", tmp_path)
    assert set(missing) == {"absent", "never recorded"}
    assert "99_nothing/features.npz is missing" in missing["absent"] and "absent" in missing["absent"]
    assert "no notebook records" in missing["never recorded"]
    assert set(fitted) == {"partial", "baseline"}
    recorded = fitted["partial"].state(q)
    assert recorded.shape == (len(q), 3) and recorded.dtype == np.float32
    scores = B.evaluate(partial, fitted["partial"], setting)
    assert "posture AUC" in scores.absent and "partial" in scores.absent["posture AUC"]
    assert "lacks" in scores.absent["probe N-MPJPE 1%"]
    with pytest.raises(ValueError, match="source must be"):
        B.fit_methods([baseline], setting, "cached")


def test_recorded_features_from_another_world_are_refused(tmp_path):
    world = SimpleNamespace(frames=np.zeros((10, 1)), subject=np.arange(10) % 3)
    m = B.Method("m", B.FRAME, lambda s: None, lambda *a: None, trained=True,
                 recorded=B.Recorded("nb", (("f", "ids"),), (("subject", "subject"),)))  # fmt: skip
    (tmp_path / "nb").mkdir()
    ids = np.array([1, 4])
    np.savez(tmp_path / "nb" / "features.npz", f=np.ones((2, 2)), ids=ids, subject=world.subject[ids])
    assert B.load_recorded_features(m, world, tmp_path).ids.tolist() == [1, 4]
    np.savez(tmp_path / "nb" / "features.npz", f=np.ones((2, 2)), ids=ids, subject=world.subject[ids] + 1)
    with pytest.raises(ValueError, match="another world"):
        B.load_recorded_features(m, world, tmp_path)
    np.savez(tmp_path / "nb" / "features.npz", f=np.ones((2, 2)), ids=np.array([1, 40]), subject=np.zeros(2))
    with pytest.raises(ValueError, match="this world has 10 frames"):
        B.load_recorded_features(m, world, tmp_path)


def test_claims_follow_the_paired_difference_and_the_learn_checks():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    col = "posture AUC"
    scores = [B.Scores("a", B.FRAME, {col: base + 1}), B.Scores("b", B.FRAME, {col: base}),
              B.Scores("c", B.FRAME, {}, {col: "c: not recorded"})]  # fmt: skip
    claims = [B.Claim("a > b", "1 vs 0", "a", "b", col), B.Claim("b > a", "0 vs 1", "b", "a", col),
              B.Claim("a > c", "", "a", "c", col), B.Claim("a > z", "", "a", "z", col)]  # fmt: skip
    failed = LearnCheck("b", 1.0, 2.0, False, Estimate(0.0, -1.0, 1.0, 5), "m")
    rows = B.check_claims(claims, scores, {"a": B.Fitted(None), "b": B.Fitted(None)})
    assert [r["verdict"] for r in rows] == ["holds", "fails", "not reproducible here", "not reproducible here"]
    assert rows[0]["ours"].value == pytest.approx(1.0)
    assert rows[2]["reason"] == "c: not recorded" and "z is not in this run" in rows[3]["reason"]
    rows = B.check_claims(claims[:1], scores, {"a": B.Fitted(None), "b": B.Fitted(None, check=failed)})
    assert rows[0]["verdict"] == "inconclusive" and "b did not learn" in rows[0]["reason"]
    lower = [B.Scores("a", B.FRAME, {"probe N-MPJPE 1%": base}), B.Scores("b", B.FRAME, {"probe N-MPJPE 1%": base + 1})]
    rows = B.check_claims([B.Claim("a < b", "", "a", "b", "probe N-MPJPE 1%")], lower, {})
    assert rows[0]["verdict"] == "holds"  # lower is better: the sign follows the column


def test_bad_sizes_and_kinds_are_rejected():
    with pytest.raises(ValueError, match="unknown size"):
        B.make_setting(resolve_profile("smoke"), 0, crops=32)
    with pytest.raises(ValueError, match="kind must be one of"):
        B.Method("x", "video", lambda s: None, lambda *a: None)


def test_the_registry_holds_every_available_method():
    kinds = {m.name: m.kind for m in B.REGISTRY.values()}
    assert sum(k == B.FRAME for k in kinds.values()) == 12 and sum(k == B.SEQUENCE for k in kinds.values()) == 4
    for c in B.CLAIMS:  # a claim names registered methods and a column
        assert c.column in B.COLUMN
        assert c.ours in kinds
        assert c.theirs in kinds
