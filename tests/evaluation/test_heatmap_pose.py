"""The Pose ConvNet: heatmap targets, the balanced loss by hand, top-k centroids, shapes, resumable
training, and per-image scores against lib.evaluation.metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.evaluation.heatmap_pose import (
    PoseConvConfig,
    PoseConvNet,
    balanced_heatmap_loss,
    heatmap_centroids,
    heatmap_targets,
    plain_heatmap_loss,
    pose_scores,
    predict_joints,
    scaled_k,
    train_pose_convnet,
)
from lib.evaluation.metrics import pcp, pdj
from lib.nets.vgg import vgg_m, vgg_s


def test_heatmap_targets_neighbourhoods_and_validity():
    joints = np.array([[[9.0, 13.0], [0.5, 0.5], [5.0, 5.0], [40.0, 3.0], [-0.1, 4.0]]])
    visible = np.array([[True, True, False, True, True]])
    t, valid = heatmap_targets(joints, visible, size=32, stride=2)
    assert t.shape == (1, 5, 16, 16) and t.dtype == np.float32 and set(np.unique(t)) == {-1.0, 1.0}
    np.testing.assert_array_equal(valid, [[True, True, False, False, False]])
    assert (t[0, 0] > 0).sum() == 9  # interior joint: its pixel (row 6, col 4) and 8 neighbours
    np.testing.assert_array_equal(np.argwhere(t[0, 0] > 0).mean(0), [6, 4])
    assert (t[0, 1] > 0).sum() == 4  # the corner pixel keeps 4 of its 3x3 neighbourhood
    assert (t[0, 2:] > 0).sum() == 0  # invisible, right of the map, left of the map: no positives
    with pytest.raises(ValueError, match="visible"):
        heatmap_targets(joints, visible[:, :3], 32, 2)


def test_balanced_loss_by_hand():
    target = -torch.ones(1, 2, 2, 2)
    target[0, 0, 0, 0] = 1.0  # joint 0: one positive, three negatives
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 0, 0, 0] = 0.5  # (0.5 - 1)^2 = 0.25 on the positive
    pred[0, 0, 1, 1] = -1.0  # a perfect negative; the other two negatives err by 1 each
    valid = torch.tensor([[True, False]])
    # [0.25 / 1 + (1 + 1 + 0) / 3] / 2
    torch.testing.assert_close(balanced_heatmap_loss(pred, target, valid), torch.tensor((0.25 + 2 / 3) / 2))
    torch.testing.assert_close(plain_heatmap_loss(pred, target, valid), torch.tensor((0.25 + 2) / 4))
    # an all -1 prediction has zero plain loss on negatives but the balanced loss keeps the positive's weight
    flat = -torch.ones(1, 2, 2, 2)
    torch.testing.assert_close(balanced_heatmap_loss(flat, target, valid), torch.tensor(4 / 2))
    torch.testing.assert_close(plain_heatmap_loss(flat, target, valid), torch.tensor(4 / 4))
    none = torch.zeros(1, 2, dtype=torch.bool)
    assert balanced_heatmap_loss(pred.requires_grad_(), target, none).item() == 0  # nothing valid: no NaN


def test_centroid_of_exactly_k_raised_pixels():
    hm = torch.zeros(2, 1, 8, 8)
    pix = [(1, 2), (3, 6), (5, 5)]  # (row, col)
    for r, c in pix:
        hm[0, 0, r, c] = 1.0
    hm[1, 0, 7, 0] = 5.0
    xy = heatmap_centroids(hm, 3)
    np.testing.assert_allclose(xy[0, 0], [np.mean([c for _, c in pix]) + 0.5, np.mean([r for r, _ in pix]) + 0.5])
    np.testing.assert_allclose(heatmap_centroids(hm, 1)[1, 0], [0.5, 7.5])
    with pytest.raises(ValueError, match="1..64"):
        heatmap_centroids(hm, 65)
    assert (scaled_k(60), scaled_k(32), scaled_k(64), scaled_k(8)) == (20, 6, 23, 1)


@pytest.mark.parametrize("make", [vgg_m, vgg_s])
def test_pose_convnet_shapes_and_copied_features(make):
    torch.manual_seed(0)
    backbone = make(image_size=32, width=4)
    net = PoseConvNet(backbone, n_joints=14, heatmap_stride=2).eval()
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 14, 32, 32)
    assert net(torch.zeros(1, 3, 128, 128)).shape == (1, 14, 64, 64)
    for (k, v), w in zip(net.features.state_dict().items(), backbone.conv.state_dict().values(), strict=False):
        torch.testing.assert_close(v, w, msg=k)
    next(net.features.parameters()).data.add_(1.0)  # a copy: the backbone is untouched
    assert not torch.equal(next(net.features.parameters()), next(backbone.conv.parameters()))
    with pytest.raises(ValueError, match="even upsampling"):
        PoseConvNet(backbone, heatmap_stride=3)


def test_pose_convnet_training_resumes_bit_identically(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    joints = rng.uniform(2, 30, (6, 14, 2))
    visible = rng.random((6, 14)) > 0.2
    backbone = vgg_m(image_size=32, width=4)
    cfg = PoseConvConfig(steps=3, batch=3, checkpoint_every=1)
    ref, ref_hist = train_pose_convnet(backbone, images, joints, visible, cfg, seed=2, checkpoint_dir=tmp_path / "a")
    train_pose_convnet(backbone, images, joints, visible, cfg, seed=2, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_3.pt").unlink()
    resumed, hist = train_pose_convnet(backbone, images, joints, visible, cfg, seed=2, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and len(hist["loss"]) == 3
    pred = predict_joints(ref, images)
    assert pred.shape == (6, 14, 2) and (pred >= 0).all() and (pred <= 32).all()


def test_pose_scores_agree_with_the_metrics():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 60, (40, 14, 2))
    pred = gt + rng.normal(scale=6, size=gt.shape)
    s = pose_scores(pred, gt)
    ref = pcp(pred, gt)
    for part in ("upper_arms", "lower_arms", "total"):
        assert s[part].shape == (40,)
        np.testing.assert_allclose(s[part].mean(), ref[part])
    table = pdj(pred, gt, [0.1, 0.2, 0.3, 0.4])  # (4, 14); lsp14 elbows 7, 10 and wrists 6, 11
    for k, t in enumerate((0.1, 0.2, 0.3, 0.4)):
        np.testing.assert_allclose(s[f"elbow@{t}"].mean(), table[k, [7, 10]].mean())
        np.testing.assert_allclose(s[f"wrist@{t}"].mean(), table[k, [6, 11]].mean())
    perfect = pose_scores(gt, gt)
    assert all((v == 100).all() for v in perfect.values())
