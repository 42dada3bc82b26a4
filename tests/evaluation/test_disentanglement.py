import numpy as np
import pytest

from lib.evaluation.disentanglement import cluster_accuracy, kmeans_identity_accuracy


def test_cluster_accuracy_by_hand_and_invariant_to_relabelling():
    labels = np.array([0, 0, 0, 1, 1, 2])
    clusters = np.array([5, 5, 7, 7, 7, 9])
    # best one-to-one map: 5 -> 0 (2 right), 7 -> 1 (2 right), 9 -> 2 (1 right) = 5 / 6
    assert cluster_accuracy(labels, clusters) == pytest.approx(5 / 6)
    renamed = np.vectorize({5: 1, 7: 0, 9: 2}.get)(clusters)
    assert cluster_accuracy(labels, renamed) == pytest.approx(5 / 6)
    assert cluster_accuracy(labels, np.zeros(6)) == pytest.approx(3 / 6)  # one cluster: the largest label
    np.testing.assert_array_equal(cluster_accuracy(labels, clusters, per_item=True), [1, 1, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        cluster_accuracy(labels, clusters[:3])


def test_kmeans_recovers_separated_identities():
    rng = np.random.default_rng(0)
    subjects = np.repeat([4, 9], [30, 10])
    codes = np.where(subjects[:, None] == 4, 5.0, -5.0) + rng.normal(size=(40, 3))
    res = kmeans_identity_accuracy(codes, subjects, seed=0)
    assert res["accuracy"] == 1.0 and res["chance"] == pytest.approx(0.75) and res["k"] == 2
    assert res["correct"].all() and res["clusters"].shape == (40,)
    noise = kmeans_identity_accuracy(rng.normal(size=(40, 3)), subjects, seed=0)
    assert noise["accuracy"] < 1.0
    with pytest.raises(ValueError, match="k=50"):
        kmeans_identity_accuracy(codes, subjects, k=50)
