import itertools

import numpy as np
import pytest
import torch

from lib.evaluation.metrics import squared_distances
from lib.methods.matching import (
    MatchingNotOptimalError,
    match_sequences,
    match_sequences_dp,
    match_sequences_ilp,
    match_subsequences,
    matching_energy,
    split_target,
    transition_costs,
)


def brute_force_min(D, *costs):
    n, m = D.shape
    all_pi = np.array(list(itertools.product(range(-1, m), repeat=n)), dtype=np.int64)
    return matching_energy(all_pi, D, *costs).min()


def test_energy_hand_computed():
    D = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [0.5, 0.5, 0.5, 0.5], [9.0, 1.0, 2.0, 3.0]])
    lam1, lam2, lam3, out = 10.0, 100.0, 1000.0, 0.25
    # j0->0 (1), j1->3 (8): skip 0->3 costs lam3*3; j2 outlier (0.25, no pairwise); j3->1 (1.0)
    assert matching_energy(np.array([0, 3, -1, 1]), D, lam1, lam2, lam3, out) == 1 + 8 + 3000 + 0.25 + 1.0
    # back in time 2->1 (lam1), repeat 1->1 (lam2), step 1->2 (free)
    assert matching_energy(np.array([2, 1, 1, 2]), D, lam1, lam2, lam3, out) == 3 + 6 + 0.5 + 2 + 10 + 100
    stack = matching_energy(np.array([[0, 1, 2, 3], [-1, -1, -1, -1]]), D, lam1, lam2, lam3, out)
    np.testing.assert_allclose(stack, [1 + 6 + 0.5 + 3, 1.0])


def test_transition_costs_outlier_row_and_column_are_free():
    P = transition_costs(3, 1.0, 2.0, 3.0)
    assert P.shape == (4, 4)
    assert (P[3] == 0).all() and (P[:, 3] == 0).all()
    np.testing.assert_array_equal(P[:3, :3], [[2, 0, 6], [1, 2, 0], [1, 1, 2]])


@pytest.mark.parametrize("seed", range(12))
def test_ilp_and_dp_reach_brute_force_minimum(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 7, size=2)
    if n == 6:
        m = min(m, 5)  # 6^6 = 47k matchings is enough for the largest case
    D = rng.random((n, m)) * 2
    costs = tuple(rng.random(3) * rng.choice([0.1, 1.0, 3.0])) + (float(rng.random() * 1.5),)
    best = brute_force_min(D, *costs)
    pi_dp = match_sequences_dp(D, *costs)
    pi_ilp = match_sequences_ilp(D, *costs)
    assert pi_dp.shape == pi_ilp.shape == (n,)
    assert matching_energy(pi_dp, D, *costs) == pytest.approx(best, abs=1e-9)
    assert matching_energy(pi_ilp, D, *costs) == pytest.approx(best, abs=1e-6)
    pi_t = match_sequences_dp(torch.from_numpy(D), *costs)
    assert isinstance(pi_t, torch.Tensor)
    np.testing.assert_array_equal(pi_t.numpy(), pi_dp)


def test_dp_on_6x6_instance_matches_brute_force():
    rng = np.random.default_rng(42)
    D = rng.random((6, 6))
    costs = (0.3, 0.2, 0.05, 0.6)
    assert matching_energy(match_sequences_dp(D, *costs), D, *costs) == pytest.approx(brute_force_min(D, *costs))


def test_dp_batched_equals_one_by_one():
    rng = np.random.default_rng(1)
    D = rng.random((4, 7, 9))
    costs = (0.5, 0.3, 0.1, 0.8)
    batched = match_sequences_dp(D, *costs)
    assert batched.shape == (4, 7)
    for b in range(4):
        np.testing.assert_array_equal(batched[b], match_sequences_dp(D[b], *costs))


def test_identical_sequences_match_the_diagonal():
    x = np.random.default_rng(0).normal(size=(12, 5))
    D = squared_distances(x, x)
    np.testing.assert_array_equal(match_sequences(D, 1.0, 1.0, 1.0, 10.0, matcher="dp"), np.arange(12))


def test_large_outlier_cost_vs_zero_outlier_cost():
    D = np.random.default_rng(0).random((5, 5)) + 1.0
    assert (match_sequences_dp(D, 1, 1, 1, outlier_cost=0.0) == -1).all()
    assert (match_sequences_dp(D, 1, 1, 1, outlier_cost=100.0) >= 0).all()


def test_subsequences_cover_target_and_are_optimal_per_chunk():
    rng = np.random.default_rng(3)
    D = rng.random((6, 11))
    costs = (0.4, 0.3, 0.1, 0.5)
    bounds = split_target(11, chunk=4)
    np.testing.assert_array_equal(bounds, [0, 4, 7, 11])
    pis = match_subsequences(D, *costs, chunk=4, matcher="dp")
    assert pis.shape == (3, 6)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        local = np.where(pis[i] < 0, -1, pis[i] - a)
        assert ((pis[i] == -1) | ((pis[i] >= a) & (pis[i] < b))).all()
        assert matching_energy(local, D[:, a:b], *costs) == pytest.approx(brute_force_min(D[:, a:b], *costs))
    np.testing.assert_array_equal(match_subsequences(D, *costs, chunk=4, matcher="ilp"), pis)
    # the batched DP runs in torch for a tensor (on its device) and in numpy otherwise: same matchings
    np.testing.assert_array_equal(match_subsequences(torch.from_numpy(D), *costs, chunk=4), pis)


@pytest.mark.parametrize("solver", [match_sequences_dp, match_sequences_ilp])
def test_bad_input_errors(solver):
    good = (0.1, 0.1, 0.1, 0.5)
    with pytest.raises(ValueError, match="n >= 1"):
        solver(np.zeros((0, 3)), *good)
    with pytest.raises(ValueError, match="m >= 1"):
        solver(np.zeros((3, 0)), *good)
    with pytest.raises(ValueError, match="NaN"):
        solver(np.array([[0.1, np.nan]]), *good)
    with pytest.raises(ValueError, match=">= 0"):
        solver(np.array([[0.1, -1.0]]), *good)
    with pytest.raises(ValueError, match="lam2"):
        solver(np.ones((2, 2)), 0.1, -0.1, 0.1, 0.5)
    with pytest.raises(ValueError, match="outlier_cost"):
        solver(np.ones((2, 2)), 0.1, 0.1, 0.1, -1.0)
    with pytest.raises(ValueError, match="shape"):
        solver(np.ones(3), *good)


def test_energy_rejects_out_of_range_matching():
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        matching_energy(np.array([0, 3]), np.ones((2, 3)), 0, 0, 0, 1)
    with pytest.raises(ValueError, match="unknown matcher"):
        match_sequences(np.ones((2, 2)), 0, 0, 0, 1, matcher="cplex")


def test_ilp_time_out_raises_instead_of_returning():
    D = np.random.default_rng(0).random((30, 30))
    with pytest.raises(MatchingNotOptimalError, match="time_limit"):
        match_sequences_ilp(D, 0.3, 0.3, 0.05, 0.8, time_limit=1e-3)


def test_dp_many_tiny_instances_numpy_and_torch():
    rng = np.random.default_rng(7)
    for _ in range(80):
        n, m = rng.integers(1, 5, size=2)
        D = rng.random((n, m)) * rng.choice([0.1, 1.0, 5.0])
        costs = tuple(rng.random(3) * rng.choice([0.0, 0.5, 4.0])) + (float(rng.random() * 2),)
        best = brute_force_min(D, *costs)
        assert matching_energy(match_sequences_dp(D, *costs), D, *costs) == pytest.approx(best, abs=1e-9)
        pi_t = match_sequences_dp(torch.from_numpy(D), *costs).numpy()
        assert matching_energy(pi_t, D, *costs) == pytest.approx(best, abs=1e-9)
