import numpy as np
import pytest
import torch

from lib.methods.shuffle_learn import (
    OrderClassifier,
    ShuffleLearnConfig,
    new_order_classifier,
    order_correct,
    sample_order_tuples,
    train_order_classifier,
    train_shuffle_learn,
)
from lib.nets.vgg import vgg_m, vgg_s
from lib.training import sequence_groups


def test_order_tuples_are_ordered_exactly_when_labelled_positive():
    groups = sequence_groups(np.repeat([0, 1, 2], [30, 9, 12]))
    rng = np.random.default_rng(0)
    tuples, labels = sample_order_tuples(groups, 400, rng, min_gap=2, max_gap=6)
    assert tuples.shape == (400, 3) and labels.mean() == 0.5
    seq_of = np.repeat([0, 1, 2], [30, 9, 12])
    assert (seq_of[tuples] == seq_of[tuples[:, :1]]).all()  # one sequence per tuple
    d = np.diff(tuples, axis=1)
    monotone = ((d > 0).all(1)) | ((d < 0).all(1))
    np.testing.assert_array_equal(monotone, labels == 1)
    assert (np.abs(d[labels == 1]) >= 2).all() and (np.abs(d[labels == 1]) <= 6).all()


def test_order_tuples_reject_short_sequences():
    with pytest.raises(ValueError, match="9 frames"):
        sample_order_tuples(sequence_groups(np.zeros(8, int)), 4, np.random.default_rng(0))


def test_shuffle_learn_resume_reproduces_training(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
    seq = np.repeat([0, 1], 12)
    cfg = ShuffleLearnConfig(steps=3, batch=4, image_size=32, dim=8, width=4, checkpoint_every=1)
    ref, ref_hist = train_order_classifier(crops, seq, cfg, seed=1, checkpoint_dir=tmp_path / "a")
    train_order_classifier(crops, seq, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_3.pt").unlink()
    resumed, hist = train_order_classifier(crops, seq, cfg, seed=1, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and len(hist["loss"]) == 3
    assert ref.backbone(torch.zeros(1, 3, 32, 32)).shape == (1, 8)
    # train_shuffle_learn: the same training (here resumed from the finished checkpoint), its backbone only
    backbone, hist_b = train_shuffle_learn(crops, seq, cfg, seed=1, checkpoint_dir=tmp_path / "a")
    for v, v2 in zip(ref.backbone.state_dict().values(), backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist_b == ref_hist


@pytest.mark.parametrize(("variant", "stride"), [("vgg_s", 8), ("vgg_m", 16)])
def test_config_variant_picks_the_backbone(variant, stride):
    cfg = ShuffleLearnConfig(image_size=32, dim=8, width=4, variant=variant)
    model = new_order_classifier(cfg, seed=3)
    assert (model.backbone.variant, model.backbone.conv_stride) == (variant, stride)
    torch.manual_seed(3)  # the same seed gives the same start as building the backbone by hand
    ref = vgg_s(image_size=32, dim=8, width=4) if variant == "vgg_s" else vgg_m(image_size=32, dim=8, width=4)
    for v, v2 in zip(ref.state_dict().values(), model.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown variant"):
        new_order_classifier(ShuffleLearnConfig(image_size=32, dim=8, width=4, variant="vgg_x"))


def test_order_correct_compares_the_classifier_with_the_labels():
    torch.manual_seed(0)
    model = OrderClassifier(vgg_s(image_size=32, dim=4, width=4))
    with torch.no_grad():  # a head that always says "in order" (class 1)
        for p in model.head.parameters():
            p.zero_()
        model.head[2].bias.copy_(torch.tensor([0.0, 1.0]))
    crops = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    tuples = np.array([[0, 1, 2], [2, 1, 0], [1, 0, 2], [3, 4, 5], [5, 3, 4]])
    labels = np.array([1, 1, 0, 1, 0])
    np.testing.assert_array_equal(order_correct(model, crops, tuples, labels), [True, True, False, True, False])
    with pytest.raises(ValueError, match="tuples"):
        order_correct(model, crops, tuples[:, :2], labels)
