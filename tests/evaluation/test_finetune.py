"""Fine-tuning for classification: crops, ten-crop testing, averaged video predictions, frozen backbones,
resumable training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lib.evaluation.finetune import (
    ClassifierConfig,
    RegressorConfig,
    init_classifier,
    init_regressor,
    make_optimizer,
    normalise_joints,
    predict_joints,
    ten_crops,
    train_classifier,
    train_regressor,
    video_predictions,
)
from lib.images import images_to_tensor
from lib.nets.alexnet import AlexNet
from lib.nets.vgg import vgg_m


def test_ten_crops_corners_centre_and_mirrors():
    img = np.arange(6 * 8, dtype=np.uint8).reshape(1, 6, 8, 1)
    c = ten_crops(img, 4)
    assert c.shape == (1, 10, 4, 4, 1)
    np.testing.assert_array_equal(c[0, 0], img[0, :4, :4])
    np.testing.assert_array_equal(c[0, 1], img[0, :4, 4:])
    np.testing.assert_array_equal(c[0, 2], img[0, 2:, :4])
    np.testing.assert_array_equal(c[0, 3], img[0, 2:, 4:])
    np.testing.assert_array_equal(c[0, 4], img[0, 1:5, 2:6])
    np.testing.assert_array_equal(c[0, 5:], c[0, :5, :, ::-1])
    with pytest.raises(ValueError, match="does not fit"):
        ten_crops(img, 7)


def test_video_predictions_average_250_samples():
    torch.manual_seed(0)
    model = init_classifier(vgg_m(image_size=32, width=4), 3, ClassifierConfig(crop=32, hidden=8), seed=0).eval()
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (30, 36, 36, 3), dtype=np.uint8)
    still = video[:1]
    p = video_predictions(model, [video, still], crop=32, n_frames=25, batch=64)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    t = np.round(np.linspace(0, 29, 25)).astype(int)
    samples = ten_crops(video[t], 32).reshape(-1, 32, 32, 3)
    assert len(samples) == 250
    with torch.no_grad():
        ref = torch.softmax(model(images_to_tensor(samples)), 1).mean(0).numpy()
        ref_still = torch.softmax(model(images_to_tensor(ten_crops(still, 32)[0])), 1).mean(0).numpy()
    np.testing.assert_allclose(p[0], ref, atol=1e-5)
    np.testing.assert_allclose(p[1], ref_still, atol=1e-5)
    mixed = [still, video[5:6], video, video[:7]]  # several videos share one forward pass
    together = video_predictions(model, mixed, crop=32, n_frames=25, batch=500)
    alone = np.concatenate([video_predictions(model, [v], crop=32, n_frames=25, batch=7) for v in mixed])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together[0], ref_still, atol=1e-5)


def test_classifier_training_resumes_and_a_frozen_backbone_stays_put(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 36, 36, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 20)
    backbone = vgg_m(image_size=32, width=4)
    cfg = ClassifierConfig(steps=2, low_lr_steps=1, batch=4, crop=32, hidden=8, checkpoint_every=1)
    ref, ref_hist = train_classifier(backbone, images, labels, 3, cfg, seed=1, checkpoint_dir=tmp_path / "a")
    train_classifier(backbone, images, labels, 3, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_3.pt").unlink()
    resumed, hist = train_classifier(backbone, images, labels, 3, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and hist["lr"] == [0.01, 0.01, 0.001]
    moved = [k for k, v in ref.backbone.state_dict().items() if not torch.equal(v, backbone.state_dict()[k])]
    assert moved  # the full network is fine-tuned
    frozen_cfg = ClassifierConfig(steps=3, low_lr_steps=0, batch=4, crop=32, hidden=8, freeze_backbone=True)
    frozen, _ = train_classifier(backbone, images, labels, 3, frozen_cfg, seed=1)
    for k, v in frozen.backbone.state_dict().items():  # weights and batch-norm statistics
        torch.testing.assert_close(v, backbone.state_dict()[k], rtol=0, atol=0, msg=k)
    assert not torch.equal(frozen.head[0].weight, init_classifier(backbone, 3, frozen_cfg, 1).head[0].weight)


def test_classifier_rejects_bad_inputs():
    backbone = vgg_m(image_size=32, width=4)
    images = np.zeros((4, 36, 36, 3), np.uint8)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        train_classifier(backbone, images, np.array([0, 1, 2, 3]), 3, ClassifierConfig(crop=32))
    with pytest.raises(ValueError, match="config.crop is 30"):
        train_classifier(backbone, images, np.zeros(4, int), 3, ClassifierConfig(crop=30))
    with pytest.raises(ValueError, match="uint8"):
        train_classifier(backbone, images.astype(float), np.zeros(4, int), 3, ClassifierConfig(crop=32))


def test_make_optimizer_kinds():
    p = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer("sgd", p, 0.1, 0.9, 1e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    adam = make_optimizer("adam", p, 1e-3, 0.9, 0.0)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="'sgd', 'adam'"):
        make_optimizer("rmsprop", p, 0.1, 0.9, 0.0)


def test_predict_joints_inverts_the_normalisation():
    cfg = RegressorConfig(hidden=4)
    model = init_regressor(AlexNet(image_size=32, width=0.05), 3, cfg, seed=0)
    joints = np.array([[[0.0, 32.0], [16.0, 8.0], [31.0, 1.0]]])
    torch.nn.init.zeros_(model.head[-1].weight)
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.as_tensor(normalise_joints(joints, 32)[0]))
    np.testing.assert_allclose(normalise_joints(joints, 32)[0, :2], [-0.5, 0.5])
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_joints(model, images, batch=2), np.repeat(joints, 5, 0), atol=1e-5)


def test_regressor_learns_a_linear_target():
    """Every joint at (g, S - g) x S / 255 for uniform grey images of level g: a linear function of the input."""
    torch.set_num_threads(1)
    g = np.linspace(0, 255, 24).astype(np.uint8)
    images = np.broadcast_to(g[:, None, None, None], (24, 32, 32, 3)).copy()
    x = g.astype(np.float64) / 255 * 32
    joints = np.repeat(np.stack([x, 32 - x], 1)[:, None], 2, 1)
    cfg = RegressorConfig(steps=150, low_lr_steps=0, batch=8, hidden=16, lr=3e-3, optimizer="adam", weight_decay=0)
    backbone = AlexNet(image_size=32, width=0.05)
    model, hist = train_regressor(backbone, images, joints, cfg, seed=0)
    err = np.abs(predict_joints(model, images) - joints).mean()
    before = np.abs(predict_joints(init_regressor(backbone, 2, cfg, 0), images) - joints).mean()
    assert err < 1.0 < before  # pixels, of targets spread over 0..32
    assert np.mean(hist["loss"][-10:]) < 0.1 * np.mean(hist["loss"][:10])


def test_regressor_training_resumes_bit_identically(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    joints = rng.uniform(0, 32, (12, 14, 2))
    backbone = AlexNet(image_size=32, width=0.05)
    cfg = RegressorConfig(steps=2, low_lr_steps=1, batch=4, hidden=8, checkpoint_every=1)
    ref, ref_hist = train_regressor(backbone, images, joints, cfg, seed=1, checkpoint_dir=tmp_path / "a")
    train_regressor(backbone, images, joints, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_3.pt").unlink()
    resumed, hist = train_regressor(backbone, images, joints, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and hist["lr"] == [0.01, 0.01, 0.001] and set(hist) == {"loss", "lr"}
    assert any(not torch.equal(v, backbone.state_dict()[k]) for k, v in ref.backbone.state_dict().items())
    frozen, _ = train_regressor(backbone, images, joints, dataclasses.replace(cfg, freeze_backbone=True), seed=1)
    for k, v in frozen.backbone.state_dict().items():
        torch.testing.assert_close(v, backbone.state_dict()[k], rtol=0, atol=0, msg=k)


def test_regressor_rejects_bad_inputs():
    backbone = AlexNet(image_size=32, width=0.05)
    images = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="takes 32 px inputs"):
        train_regressor(backbone, np.zeros((4, 36, 36, 3), np.uint8), np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="finite joints"):
        train_regressor(backbone, images, np.full((4, 2, 2), np.nan))
    with pytest.raises(ValueError, match="square uint8"):
        train_regressor(backbone, images.astype(float), np.zeros((4, 2, 2)))
