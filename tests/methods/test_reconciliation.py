import numpy as np
import pytest
import torch

from lib.evaluation.metrics import pose_distance
from lib.methods.reconciliation import (
    ReconciliationConfig,
    choose_pair,
    correspondence_errors,
    linear_decay,
    match_pair,
    nearest_sequences,
    negative_percentile,
    new_network,
    new_optimizer,
    percentile_negatives,
    sequence_descriptors,
    train_reconciliation,
    triplet_correct,
    triplet_loss,
    triplet_step,
    triplets_from_matching,
    uses_network,
)
from lib.training import sequence_groups


def test_percentile_sampler_never_returns_a_frame_above_the_percentile():
    rng = np.random.default_rng(0)
    for p in (100, 90, 50, 10, 0):
        sim = rng.normal(size=(200, 30))
        pos = rng.integers(0, 30, size=200)
        neg = percentile_negatives(sim, pos, p, rng)
        thr = np.percentile(sim, p, axis=1)
        ok = neg >= 0
        assert ok.mean() > (0.9 if p >= 10 else 0.0)
        assert (sim[np.arange(200)[ok], neg[ok]] <= thr[ok]).all()
        assert (neg[ok] != pos[ok]).all()
    # p = 0 leaves only the least similar frame, unless it is the positive itself
    sim = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5]])
    np.testing.assert_array_equal(percentile_negatives(sim, np.array([0, 1]), 0, rng), [1, -1])
    with pytest.raises(ValueError, match="percentile"):
        percentile_negatives(sim, np.array([0, 1]), 120, rng)


def test_percentile_schedule():
    assert [negative_percentile(e) for e in range(11)] == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 10]


def test_linear_decay_known_answers():
    assert linear_decay(0, 10, 2.0) == 2.0
    assert linear_decay(5, 10, 2.0) == 1.0
    assert linear_decay(9, 10, 2.0) == pytest.approx(0.2)
    for bad in (-1, 10):
        with pytest.raises(ValueError, match="step must be in"):
            linear_decay(bad, 10, 2.0)


def test_triplet_loss_hand_computed():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # d_pos = 1, 0
    n = torch.tensor([[0.0, 2.0], [1.0, 0.5]])  # d_neg = 4, 0.25
    # [1 - 4 + 0.5]_+ = 0, [0 - 0.25 + 0.5]_+ = 0.25 -> mean 0.125
    assert triplet_loss(a, p, n, margin=0.5).item() == pytest.approx(0.125)
    assert triplet_loss(a, p, n, margin=3.5).item() == pytest.approx((0.5 + 3.25) / 2)


def test_triplets_come_from_the_matching():
    rng = np.random.default_rng(1)
    matchings = np.array([[2, -1, 3, 0], [5, 6, -1, 4]])  # two chunks of a 7-frame S'
    sim = -np.abs(np.arange(7)[:, None] - np.arange(7)[None, :]).astype(float)
    trip = triplets_from_matching(matchings, sim, p=50, n_triplets=100, rng=rng)
    assert trip.shape[1] == 3 and len(trip) > 90
    assert (matchings[:, trip[:, 0]] == trip[:, 1]).any(0).all()
    assert (trip[:, 2] != trip[:, 1]).all()
    assert triplets_from_matching(np.full((1, 3), -1), sim, 50, 10, rng).shape == (0, 3)


def test_sequence_groups_descriptors_and_neighbours():
    groups = sequence_groups(np.array([3, 3, 1, 1, 1, 7]))
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3, 4], [5]]
    emb = np.array([[1, 0], [1, 0.2], [0, 1], [0.1, 1], [0, 1], [1, 0.5]], float)
    desc = sequence_descriptors(emb, groups)
    np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1)
    np.testing.assert_array_equal(nearest_sequences(desc, 1)[:, 0], [2, 2, 0])
    with pytest.raises(ValueError, match="k must be"):
        nearest_sequences(desc, 3)


def test_choose_pair_draws_s_prime_among_the_neighbours_of_s():
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    rng = np.random.default_rng(0)
    pairs = [choose_pair(neighbours, rng) for _ in range(200)]
    assert {s for s, _ in pairs} == {0, 1, 2, 3}
    assert all(s2 in neighbours[s] for s, s2 in pairs)


def _stick(angle: float) -> np.ndarray:
    """A 3-joint 2D pose: a fixed segment and a second one at ``angle`` (radians)."""
    return np.array([[0.0, 0.0], [1.0, 0.0], [1.0 + np.cos(angle), np.sin(angle)]])


def test_triplet_correct_hand_made_poses():
    joints = np.stack([_stick(a) for a in (0.0, 0.1, 1.5, 0.2, 3.0)])  # frame k bent by the given angle
    triplets = np.array([[0, 1, 2], [0, 2, 1], [2, 4, 3], [3, 1, 4], [0, 1, 1]])
    # 0 vs 1 (0.1 apart) closer than 0 vs 2 (1.5 apart): yes; swapped: no; 2 (1.5) is closer to 3 (0.2,
    # 1.3 apart) than to 4 (3.0, 1.5 apart): no; 3 (0.2) is closer to 1 (0.1) than to 4: yes; a tie: no
    np.testing.assert_array_equal(triplet_correct(triplets, joints), [True, False, False, True, False])
    d = pose_distance(joints, joints)
    assert d[2, 3] < d[2, 4]  # the closest call above, by the metric itself
    t = np.random.default_rng(0).integers(0, 5, size=(40, 3))  # any triplets: exactly the metric's verdict
    np.testing.assert_array_equal(triplet_correct(t, joints), d[t[:, 0], t[:, 1]] < d[t[:, 0], t[:, 2]])
    assert triplet_correct(np.zeros((0, 3), int), joints).shape == (0,)
    with pytest.raises(ValueError, match="triplets"):
        triplet_correct(np.zeros((2, 2), int), joints)


def test_correspondence_errors_hand_made_case():
    # 3 frames of S, 4 of S' in 2 chunks of 2 ([0, 2), [2, 4)); pose distances chosen by hand
    P = np.array([[1.0, 9.0, 5.0, 7.0], [9.0, 2.0, 6.0, 3.0], [8.0, 8.0, 4.0, 8.0]])
    D = np.array([[0.1, 0.9, 0.5, 0.2], [0.8, 0.6, 0.3, 0.9], [0.7, 0.4, 0.9, 0.8]])
    # nearest neighbours per chunk: chunk 0 -> [0, 1, 1] (dist .1 .6 .4), chunk 1 -> [3, 2, 3] (.2 .3 .8)
    matchings = np.array([[0, -1, 1], [3, 2, -1]])  # kept pairs: (0,c0)->0, (2,c0)->1, (0,c1)->3, (1,c1)->2
    out = correspondence_errors(D, matchings, P, chunk=2)
    assert out["matching"] == pytest.approx((1 + 8 + 7 + 6) / 4)
    assert out["nn_same_frames"] == pytest.approx((1 + 8 + 7 + 6) / 4)  # NN = matching on these pairs
    # NN with the same rejection rate: the 4 smallest NN distances .1 (0,c0) .2 (0,c1) .3 (1,c1) .4 (2,c0)
    assert out["nn_same_rate"] == pytest.approx((1 + 7 + 6 + 8) / 4)
    assert out["random"] == pytest.approx(P.mean()) and out["kept"] == pytest.approx(4 / 6)
    matchings = np.array([[1, 0, 1], [3, 2, -1]])  # now frame 0 of chunk 0 goes to 1, frame 1 to 0
    out = correspondence_errors(D, matchings, P, chunk=2)
    assert out["matching"] == pytest.approx((9 + 9 + 8 + 7 + 6) / 5)
    assert out["nn_same_frames"] == pytest.approx((1 + 2 + 8 + 7 + 6) / 5)
    none = correspondence_errors(D, np.full((2, 3), -1), P, chunk=2)
    assert np.isnan(none["matching"]) and none["kept"] == 0
    with pytest.raises(ValueError, match="matchings"):
        correspondence_errors(D, matchings[:1], P, chunk=2)


def test_triplet_step_lowers_the_loss_on_a_fixed_batch():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    cfg = ReconciliationConfig(image_size=32, dim=8, width=4, lr=1e-2, augment=0.0)
    net = new_network(cfg, seed=0)
    net.fc6[3].p = 0.0  # no dropout: the same batch gives the same loss
    opt = new_optimizer(net, cfg)
    triplets = np.array([[0, 1, 2], [3, 4, 5]])
    losses = [triplet_step(net, opt, crops, triplets, 0.5, torch.Generator().manual_seed(0), 0.0) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="triplets"):
        triplet_step(net, opt, crops, np.zeros((0, 3), int), 0.5, torch.Generator())


def _toy_data(rng):
    crops = rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    seq = np.repeat([0, 1, 2], 10)
    init = rng.normal(size=(30, 6)).astype(np.float32)
    return crops, seq, init


@pytest.mark.parametrize("match_with", ["start", "network"])
def test_resume_reproduces_uninterrupted_training(tmp_path, match_with):
    torch.set_num_threads(1)
    crops, seq, init = _toy_data(np.random.default_rng(0))
    cfg = ReconciliationConfig(
        epochs=2, steps_per_epoch=2, triplets_per_step=6, pairs_per_step=2, chunk=5, neighbours=2, image_size=32,
        dim=8, width=4, checkpoint_every=1, match_with=match_with,
    )  # fmt: skip
    joints = np.stack([_stick(a) for a in np.linspace(0, 3, 30)])
    activity = np.repeat([0, 0, 1], 10)
    kw = {"seed": 3, "joints": joints, "activity": activity}
    ref, ref_hist = train_reconciliation(crops, seq, init, cfg, checkpoint_dir=tmp_path / "a", **kw)
    train_reconciliation(crops, seq, init, cfg, checkpoint_dir=tmp_path / "b", **kw)
    (tmp_path / "b" / "step_4.pt").unlink()  # "interrupted" after step 3, inside epoch 1
    resumed, hist = train_reconciliation(crops, seq, init, cfg, checkpoint_dir=tmp_path / "b", **kw)
    for (k, v), v2 in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0, msg=k)
    assert hist == ref_hist and len(hist["loss"]) == 4
    assert ref_hist["p"] == [100, 100, 90, 90]
    assert all(0 <= c <= t for c, t in zip(ref_hist["correct"], ref_hist["triplets"], strict=True))
    assert set(ref_hist["same_activity"]) <= {0.0, 0.5, 1.0}


def test_config_rejects_unknown_matcher():
    with pytest.raises(ValueError, match="unknown matcher"):
        ReconciliationConfig(matcher="cplex")
    with pytest.raises(ValueError, match="unknown match_with"):
        ReconciliationConfig(match_with="cnn")


def test_uses_network_known_answers():
    assert [uses_network(e, "network") for e in range(3)] == [False, True, True]
    assert [uses_network(e, "start") for e in range(3)] == [False, False, False]
    with pytest.raises(ValueError, match="match_with"):
        uses_network(1, "hog")


def test_match_with_start_draws_the_same_triplets_whatever_the_network():
    # with match_with="start" the triplets of every epoch come from the start similarity: a network that
    # does not move (lr 0) and one that does give the same matchings and triplets; with "network" they differ
    torch.set_num_threads(1)
    crops, seq, init = _toy_data(np.random.default_rng(1))
    joints = np.stack([_stick(a) for a in np.linspace(0, 3, 30)])
    keys = ("matched", "triplets", "correct")
    runs = {}
    for match_with in ("start", "network"):
        for lr in (0.0, 0.05):
            cfg = ReconciliationConfig(
                epochs=2, steps_per_epoch=3, triplets_per_step=8, pairs_per_step=2, chunk=5, neighbours=2,
                image_size=32, dim=8, width=4, lr=lr, augment=0.0, match_with=match_with,
            )  # fmt: skip
            _, hist = train_reconciliation(crops, seq, init, cfg, seed=2, joints=joints)
            runs[match_with, lr] = [hist[k] for k in keys]
    assert runs["start", 0.0] == runs["start", 0.05]
    assert runs["network", 0.0] != runs["network", 0.05]
    # epoch 0 matches with the start similarity either way
    assert [h[:3] for h in runs["network", 0.05]] == [h[:3] for h in runs["start", 0.05]]


def test_match_pair_maps_a_sequence_onto_itself_frame_by_frame():
    # D has a zero diagonal, consecutive frames cost nothing, so the identity (energy 0) is the unique optimum
    E = np.random.default_rng(3).normal(size=(12, 8))
    for matcher in ("dp", "ilp"):
        pis = match_pair(E, E, ReconciliationConfig(chunk=40, matcher=matcher))
        assert pis.shape == (1, 12)
        np.testing.assert_array_equal(pis[0], np.arange(12))
