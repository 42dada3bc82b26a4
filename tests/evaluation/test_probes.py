"""Additions to the 3D pose probe for Honari et al.: uniform label sub-sampling and per-pose errors."""

import numpy as np
import pytest

from lib.evaluation.metrics import mpjpe, n_mpjpe, p_mpjpe
from lib.evaluation.probes import labelled_frames, per_pose_errors, train_pose_probe


def test_uniform_subsampling_takes_every_kth_frame():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(100, 4, 3)).astype(np.float32)
    feats = np.arange(100, dtype=np.float32)[:, None].repeat(2, 1)
    probe = train_pose_probe(feats, poses, fraction=0.1, epochs=1, width=4, subsample="uniform")
    # the standardisation is fitted on the labelled frames only: frames 0, 10, ..., 90
    np.testing.assert_allclose(probe.mean, np.arange(0, 100, 10).mean())
    two = train_pose_probe(feats, poses, fraction=0.001, epochs=1, width=4, subsample="uniform")
    np.testing.assert_allclose(two.mean, (0 + 50) / 2)  # K capped at N // 2: still two frames
    with pytest.raises(ValueError, match="subsample"):
        train_pose_probe(feats, poses, subsample="every")
    with pytest.raises(ValueError, match="at least 2"):
        train_pose_probe(feats[:1], poses[:1])


def test_per_pose_errors_average_to_the_metrics():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(6, 5, 3))
    pred = gt * 1.3 + rng.normal(scale=0.2, size=gt.shape)
    errs = per_pose_errors(pred, gt, ("mpjpe", "n_mpjpe", "p_mpjpe"))
    for name, fn in (("mpjpe", mpjpe), ("n_mpjpe", n_mpjpe), ("p_mpjpe", p_mpjpe)):
        assert errs[name].shape == (6,)
        assert errs[name].mean() == pytest.approx(fn(pred, gt))
    with pytest.raises(ValueError, match="unknown metrics"):
        per_pose_errors(pred, gt, ("pck",))


def test_labelled_frames():
    np.testing.assert_array_equal(labelled_frames(10, 0.25, "uniform"), [0, 4, 8])
    np.testing.assert_array_equal(labelled_frames(10, 0.01, "uniform"), [0, 5])  # K capped at n // 2
    r = labelled_frames(100, 0.1, "random", seed=3)
    assert len(r) == 10 and (np.diff(r) > 0).all()
    np.testing.assert_array_equal(r, labelled_frames(100, 0.1, "random", seed=3))
    with pytest.raises(ValueError, match="fraction"):
        labelled_frames(10, 1.5)
