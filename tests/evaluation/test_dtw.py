"""DTW in both modes: references against brute force over all monotone paths; the compiled all-pairs scores
against the references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.evaluation.dtw import dtw_cost, dtw_scores, dtw_similarity


def all_paths(tq: int, td: int):
    """Every monotone path from (0, 0) to (tq - 1, td - 1) with steps (1, 0), (0, 1), (1, 1)."""
    if (tq, td) == (1, 1):
        yield [(0, 0)]
        return
    for di, dj in ((1, 0), (0, 1), (1, 1)):
        if tq - di >= 1 and td - dj >= 1:
            for p in all_paths(tq - di, td - dj):
                yield p + [(tq - 1, td - 1)]


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 3), (4, 5), (5, 3)])
def test_reference_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        sim = rng.normal(size=shape)
        best = max(sum(sim[i, j] for i, j in p) for p in all_paths(*shape))
        score, path = dtw_similarity(sim)
        assert score == pytest.approx(best)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
        steps = np.diff(path, axis=0)
        assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}
        assert sim[path[:, 0], path[:, 1]].sum() == pytest.approx(score)


def _valid_path(path: np.ndarray, shape: tuple[int, int]) -> bool:
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    ends = tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
    return ends and steps <= {(1, 0), (0, 1), (1, 1)}


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 3), (4, 5), (5, 3)])
def test_cost_reference_matches_brute_force(shape):
    rng = np.random.default_rng(10 + sum(shape))
    for _ in range(5):
        sim = rng.uniform(-1, 1, size=shape)
        paths = list(all_paths(*shape))
        costs = [sum(1 - sim[i, j] for i, j in p) for p in paths]
        best = paths[int(np.argmin(costs))]  # unique with probability 1 on random maps
        score, path = dtw_cost(sim)
        assert path.tolist() == [list(c) for c in best] and _valid_path(path, shape)
        assert score == pytest.approx(1 - min(costs) / len(best))
        assert score == pytest.approx(sim[path[:, 0], path[:, 1]].mean())  # the mean similarity on the path


def test_identical_sequences_align_on_the_diagonal_only_in_the_cost_mode():
    # positive features: every cosine is positive, as with trained skip-pose features
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(30, 8))
    sim = cosine_map(x, x)
    score, path = dtw_cost(sim)
    assert path.tolist() == [[t, t] for t in range(30)]
    assert score == pytest.approx(1.0)
    # Eq. 7 collects every cell it can: a staircase of 2 * 30 - 1 cells, not one diagonal step
    score_sum, stairs = dtw_similarity(sim)
    steps = np.diff(stairs, axis=0)
    assert len(stairs) == 59 and not (steps == 1).all(axis=1).any()
    assert score_sum > 30.0


def test_reference_follows_the_bright_diagonal():
    sim = -np.ones((4, 4))
    np.fill_diagonal(sim, 1.0)
    score, path = dtw_similarity(sim)
    assert score == 4.0
    assert path.tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_reference_rejects_bad_maps():
    with pytest.raises(ValueError, match="non-empty"):
        dtw_similarity(np.zeros((0, 3)))
    sim = np.zeros((2, 3))
    sim[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"sim\[0, 1\] \(query frame 0, dictionary frame 1\) is nan"):
        dtw_similarity(sim)


def cosine_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of the rows; a zero row has similarity 0 with every row."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
    return a @ b.T


@pytest.mark.parametrize("seed", [1, 16])
@pytest.mark.parametrize(("mode", "reference"), [("similarity", dtw_similarity), ("cost", dtw_cost)])
def test_batched_equals_reference(seed, mode, reference):
    rng = np.random.default_rng(seed)
    queries = [rng.normal(size=(rng.integers(1, 15), 6)) for _ in range(7)]
    dictionary = [rng.normal(size=(rng.integers(1, 15), 6)) for _ in range(9)]
    got = dtw_scores(queries, dictionary, mode=mode)
    want = np.array([[reference(cosine_map(q, d))[0] for d in dictionary] for q in queries])
    np.testing.assert_allclose(got, want, atol=1e-5)
    dot = dtw_scores([torch.as_tensor(q) for q in queries], dictionary, cosine=False, mode=mode)
    want_dot = np.array([[reference(q @ d.T)[0] for d in dictionary] for q in queries])
    np.testing.assert_allclose(dot, want_dot, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("mode", "reference"), [("similarity", dtw_similarity), ("cost", dtw_cost)])
def test_batched_equals_reference_on_identical_and_tied_maps(mode, reference):
    """Identical pairs, a zero frame (similarity 0 with every frame), and integer dot products, whose sums
    tie often: the cost mode's path length, and so its score, follows the reference's tie order."""
    rng = np.random.default_rng(7)
    queries = [rng.normal(size=(rng.integers(10, 13), 6)) for _ in range(5)] + [np.zeros((4, 6))]
    got = dtw_scores(queries, queries, mode=mode)
    want = np.array([[reference(cosine_map(q, r))[0] for r in queries] for q in queries])
    np.testing.assert_allclose(got, want, atol=1e-5)
    ints = [rng.integers(-1, 2, size=(rng.integers(2, 9), 3)).astype(float) for _ in range(12)]
    got = dtw_scores(ints, ints, cosine=False, mode=mode)
    want = np.array([[reference(q @ r.T)[0] for r in ints] for q in ints])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_batched_cost_mode_scores_identical_sequences_one():
    rng = np.random.default_rng(3)
    seqs = [rng.uniform(0.1, 1.0, size=(n, 5)) for n in (3, 17, 40)]
    got = dtw_scores(seqs, seqs, mode="cost")
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-5)
    assert (got.argmax(axis=1) == np.arange(3)).all()


def test_batched_rejects_bad_input():
    with pytest.raises(ValueError, match="feature"):
        dtw_scores([np.zeros((3, 4))], [np.zeros((3, 5))])
    with pytest.raises(ValueError, match="non-empty"):
        dtw_scores([np.zeros((0, 4))], [np.zeros((3, 4))])
    with pytest.raises(ValueError, match="mode"):
        dtw_scores([np.ones((3, 4))], [np.ones((3, 4))], mode="max")


def test_batched_rejects_non_finite_features_naming_the_sequence_and_frame():
    rng = np.random.default_rng(0)
    queries = [rng.normal(size=(4, 3)) for _ in range(3)]
    dictionary = [rng.normal(size=(5, 3)) for _ in range(2)]
    queries[1][2, 0] = np.nan
    with pytest.raises(ValueError, match=r"query_feats\[1\]\[2, 0\] \(frame 2, feature 0\) is nan"):
        dtw_scores(queries, dictionary)
    queries[1][2, 0] = 0.0
    dictionary[1][4, 2] = np.inf
    with pytest.raises(ValueError, match=r"dict_feats\[1\]\[4, 2\] \(frame 4, feature 2\) is inf"):
        dtw_scores([torch.as_tensor(q) for q in queries], dictionary)


def test_batched_rejects_a_float32_overflow():
    big = [np.full((3, 2), 1e20)]  # finite in float32, but the dot products (1e40) are not
    with pytest.raises(
        ValueError, match=r"DTW scores\[0, 0\] \(query 0, dictionary sequence 0\) is inf; .* \(float32 overflow"
    ):
        dtw_scores(big, big, cosine=False)
    # cosine: every similarity is 1 and the longest path of a 3 x 3 map has 5 cells
    assert dtw_scores(big, big)[0, 0] == pytest.approx(5.0)
