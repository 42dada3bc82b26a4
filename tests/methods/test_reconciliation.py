import numpy as np
import pytest
import torch

from lib.methods.reconciliation import (
    ReconciliationConfig,
    fit_hog_lda,
    match_pair,
    nearest_sequences,
    negative_percentile,
    percentile_negatives,
    random_windows,
    sequence_descriptors,
    train_reconciliation,
    triplet_loss,
    triplets_from_matching,
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


def test_hog_lda_whitening_is_inverse_sqrt_of_background_covariance():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 48, 48, 3), dtype=np.uint8)
    windows = random_windows(frames, 32, 60, rng)
    assert windows.shape == (60, 32, 32, 3) and windows.dtype == np.uint8
    lda = fit_hog_lda(windows, ridge=0.1)
    W = lda.whitening
    np.testing.assert_allclose(W, W.T, atol=1e-10)
    from lib.images import hog_features

    h = hog_features(windows).astype(np.float64)
    cov = np.cov(h, rowvar=False)
    cov += 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov))
    np.testing.assert_allclose(W @ cov @ W, np.eye(len(cov)), atol=1e-6)
    z = lda.transform(windows[:5])
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)


def _toy_data(rng):
    crops = rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    seq = np.repeat([0, 1, 2], 10)
    init = rng.normal(size=(30, 6)).astype(np.float32)
    return crops, seq, init


def test_resume_reproduces_uninterrupted_training(tmp_path):
    torch.set_num_threads(1)
    crops, seq, init = _toy_data(np.random.default_rng(0))
    cfg = ReconciliationConfig(
        epochs=2, steps_per_epoch=2, triplets_per_step=6, chunk=5, neighbours=2, image_size=32, dim=8, width=4,
        checkpoint_every=1,
    )  # fmt: skip
    ref, ref_hist = train_reconciliation(crops, seq, init, cfg, seed=3, checkpoint_dir=tmp_path / "a")
    train_reconciliation(crops, seq, init, cfg, seed=3, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_4.pt").unlink()  # "interrupted" after step 3, inside epoch 1
    resumed, hist = train_reconciliation(crops, seq, init, cfg, seed=3, checkpoint_dir=tmp_path / "b")
    for (k, v), v2 in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0, msg=k)
    assert hist == ref_hist and len(hist["loss"]) == 4
    assert ref_hist["p"] == [100, 100, 90, 90]


def test_config_rejects_unknown_matcher():
    with pytest.raises(ValueError, match="unknown matcher"):
        ReconciliationConfig(matcher="cplex")


def test_match_pair_maps_a_sequence_onto_itself_frame_by_frame():
    # D has a zero diagonal, consecutive frames cost nothing, so the identity (energy 0) is the unique optimum
    E = np.random.default_rng(3).normal(size=(12, 8))
    for matcher in ("dp", "ilp"):
        pis = match_pair(E, E, ReconciliationConfig(chunk=40, matcher=matcher))
        assert pis.shape == (1, 12)
        np.testing.assert_array_equal(pis[0], np.arange(12))
