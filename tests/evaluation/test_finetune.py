"""Fine-tuning for classification: crops, ten-crop testing, averaged video predictions, frozen backbones,
resumable training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.evaluation.finetune import (
    ClassifierConfig,
    init_classifier,
    make_optimizer,
    ten_crops,
    train_classifier,
    video_predictions,
)
from lib.images import images_to_tensor
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
