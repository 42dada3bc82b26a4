"""Known answers for lib.methods.skip_pose: normalisation, chunking, masked loss, shared layers, training, 1-NN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.methods.skip_pose import (
    SkipPose,
    SkipPoseAE,
    embed_sequences,
    make_triplets,
    normalize_sequence,
    pca_features,
    recognise,
    skip_loss,
    sliding_windows,
    train_skip_pose,
    window_features,
)
from lib.runtime import Checkpointer


def test_normalize_maps_first_pose_box_to_unit_square():
    rng = np.random.default_rng(0)
    poses = rng.uniform(50, 300, size=(5, 13, 2))
    out, mask = normalize_sequence(poses)
    np.testing.assert_allclose(out[0].min(axis=0), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(out[0].max(axis=0), [1, 1], atol=1e-6)
    # the same affine map on later frames: a pose translated by (10, 0) px moves by 20 / x-extent
    poses[1] = poses[0] + [10.0, 0.0]
    out, _ = normalize_sequence(poses)
    np.testing.assert_allclose(out[1] - out[0], np.tile([20 / np.ptp(poses[0, :, 0]), 0], (13, 1)), atol=1e-5)
    assert mask.all()


def test_normalize_ignores_masked_keypoints_and_zeroes_them():
    poses = np.array([[[0.0, 0.0], [4.0, 2.0], [1000.0, -50.0]], [[2.0, 1.0], [4.0, 2.0], [7.0, 7.0]]])
    mask = np.array([[True, True, False], [True, False, True]])
    out, m = normalize_sequence(poses, mask)
    np.testing.assert_allclose(out[0, :2], [[-1, -1], [1, 1]])
    np.testing.assert_allclose(out[1, 0], [0, 0])  # (2, 1) is the centre of the first box
    assert (out[~m] == 0).all() and (m == mask).all()


def test_normalize_skips_degenerate_first_pose_and_rejects_bad_shapes():
    poses = np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [2.0, 4.0]]])
    out, _ = normalize_sequence(poses)
    np.testing.assert_allclose(out[1], [[-1, -1], [1, 1]])
    with pytest.raises(ValueError, match=r"\(T, J, 2\)"):
        normalize_sequence(np.zeros((4, 13)))
    with pytest.raises(ValueError, match="mask shape"):
        normalize_sequence(np.zeros((4, 13, 2)), np.ones((4, 12), bool))


def test_triplets_are_consecutive_chunks():
    poses = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 2, 2), np.float32)
    x, m = make_triplets(poses, np.ones((10, 2), bool), chunk=2, stride=2)
    assert x.shape == (3, 3, 2, 2, 2) and m.shape == (3, 3, 2, 2)
    np.testing.assert_array_equal(x[1, :, :, 0, 0], [[2, 3], [4, 5], [6, 7]])
    assert make_triplets(poses[:5], np.ones((5, 2), bool), chunk=2)[0].shape[0] == 0


def test_sliding_windows_one_per_frame_with_repeated_edges():
    poses = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 1, 2), np.float32)
    x, m = sliding_windows(poses, np.ones((5, 1), bool), chunk=4)
    assert x.shape == (5, 4, 1, 2) and m.shape == (5, 4, 1)
    np.testing.assert_array_equal(x[0, :, 0, 0], [0, 0, 1, 2])
    np.testing.assert_array_equal(x[4, :, 0, 0], [3, 4, 4, 4])


def _triplet_batch(seed: int, n: int = 6, chunk: int = 3, joints: int = 5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, chunk, joints, 2, generator=g)
    m = torch.rand(n, 3, chunk, joints, generator=g) > 0.3
    return x, m


@pytest.mark.parametrize("cls", [SkipPose, SkipPoseAE])
def test_masked_joints_change_neither_loss_nor_gradients(cls):
    torch.manual_seed(0)
    model = cls(n_joints=5, chunk=3, hidden=8)
    x, m = _triplet_batch(1)
    x2 = x.clone()
    x2[~m] += 100.0  # perturb every masked input and target coordinate

    def loss_and_grads(xx):
        model.zero_grad()
        past, future = model(xx[:, 1], m[:, 1])
        loss = skip_loss(past, future, xx, m)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in model.parameters()]

    l1, g1 = loss_and_grads(x)
    l2, g2 = loss_and_grads(x2)
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)
    # and a visible coordinate does change the loss
    x3 = x.clone()
    x3[m] += 1.0
    assert loss_and_grads(x3)[0] != pytest.approx(l1)


def test_loss_is_eq5_on_a_hand_computed_case():
    x = torch.zeros(1, 3, 1, 1, 2)
    x[0, 0, 0, 0] = torch.tensor([1.0, 2.0])  # past target
    x[0, 2, 0, 0] = torch.tensor([3.0, 0.0])  # future target
    m = torch.ones(1, 3, 1, 1, dtype=torch.bool)
    zero = torch.zeros(1, 1, 1, 2)
    assert float(skip_loss(zero, zero, x, m)) == pytest.approx((1 + 4 + 9) / 4)
    assert float(skip_loss(None, zero, x, m)) == pytest.approx(9 / 4)


def test_fc_layers_are_shared_by_encoder_and_both_decoders():
    model = SkipPose(n_joints=13, chunk=2, hidden=64)
    enc, dp, df = model.encoder, model.past_decoder, model.future_decoder
    assert enc.fc_in.weight is dp.fc_in.weight is df.fc_in.weight
    assert dp.fc_out.weight is df.fc_out.weight is model.fc_out.weight
    # counted once: fc_in + fc_out + bidirectional encoder GRU + two decoder GRUs
    gru = 3 * 64 * (64 + 64) + 2 * 3 * 64
    expected = (26 * 64 + 64) + (64 * 26 + 26) + 2 * gru + 2 * gru
    assert sum(p.numel() for p in model.parameters()) == expected
    # the past decoder's loss alone reaches the input FC through its zero inputs
    x, m = _triplet_batch(2, chunk=2, joints=13)
    past, _ = model(x[:, 1], m[:, 1])
    (past**2).sum().backward()
    assert model.fc_in.bias.grad.abs().sum() > 0
    assert SkipPose(13, 2, past=False).past_decoder is None


def test_encoder_output_sizes_and_embeddings_per_frame():
    model = SkipPose(n_joints=4, chunk=2, hidden=16)
    seqs = [np.random.default_rng(k).normal(size=(n, 4, 2)).astype(np.float32) for k, n in enumerate((7, 3))]
    masks = [np.ones(s.shape[:2], bool) for s in seqs]
    feats = embed_sequences(model, seqs, masks, batch_size=4)
    assert [f.shape for f in feats] == [(7, 16), (3, 16)]
    x, m = sliding_windows(seqs[0], masks[0], 2)
    torch.testing.assert_close(torch.as_tensor(feats[0]), model.encode(torch.as_tensor(x), torch.as_tensor(m)))
    assert [f.shape for f in window_features(seqs, masks, 2)] == [(7, 16), (3, 16)]


def _sine_triplets(n: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.arange(40)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 3, 1))
    seqs = np.sin(0.3 * t[None] + phase + np.array([0, 1.5])[None, None, None]).astype(np.float32)
    trips = [make_triplets(s, np.ones((40, 3), bool), chunk=2, stride=1) for s in seqs]
    return np.concatenate([a for a, _ in trips]), np.concatenate([b for _, b in trips])


def test_training_lowers_validation_loss_and_resumes_identically(tmp_path):
    train, val = _sine_triplets(6, 0), _sine_triplets(2, 1)

    def run(ckdir, epochs):
        torch.manual_seed(0)
        model = SkipPose(n_joints=3, chunk=2, hidden=16)
        ck = Checkpointer(ckdir, every=1, meta={"t": 2}) if ckdir else None
        return model, train_skip_pose(model, train, val, epochs=epochs, batch_size=16, lr=1e-2, seed=0, checkpointer=ck)

    model, hist = run(None, 6)
    assert len(hist.val) == 6 and hist.val[hist.best_epoch - 1] == min(hist.val)
    assert min(hist.val) < 0.5 * hist.val[0], hist.val
    run(tmp_path, 3)  # interrupted after 3 epochs, then resumed to 6
    resumed, hist2 = run(tmp_path, 6)
    np.testing.assert_allclose(hist2.val, hist.val, rtol=1e-5)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="triplets"):
        train_skip_pose(model, (train[0][:, :, :1], train[1][:, :, :1]), val, epochs=1)


def test_pca_features_keep_at_most_64_components():
    rng = np.random.default_rng(0)
    fit = [rng.normal(size=(50, 100)) for _ in range(3)]
    (out,) = pca_features(fit, [fit[:2]], n_components=64)
    assert [f.shape for f in out] == [(50, 64), (50, 64)]
    (small,) = pca_features([rng.normal(size=(30, 10))], [[rng.normal(size=(4, 10))]])
    assert small[0].shape == (4, 10)


def test_recognise_one_nn_on_a_hand_made_dictionary():
    # dictionary: class 0 points along +x, class 1 along +y, class 2 along -x; queries are noisy copies
    e = np.eye(2, dtype=np.float32)
    dict_feats = [np.tile(e[0], (4, 1)), np.tile(e[1], (5, 1)), np.tile(-e[0], (3, 1))]
    dict_labels = np.array([0, 1, 2])
    queries = [np.tile([1.0, 0.5], (3, 1)), np.tile([0.1, 1.0], (4, 1)), np.tile([-1.0, 0.3], (2, 1))]
    query_labels = np.array([0, 1, 1])  # the third query is really class 2: one mistake
    out = recognise(queries, query_labels, dict_feats, dict_labels, length_normalise=False)
    np.testing.assert_array_equal(out["predicted"], [0, 1, 2])
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["scores"].shape == (3, 3)
    # class 1 scores are sums of cosines over 5-step paths: 0.995 * 5 (query 1), 0.447 * 5 (query 0),
    # 0.287 * 5 (query 2): positives rank 1st and 3rd, AP (1 + 2/3) / 2; class 0: its only positive ranks first
    assert out["macro_ap"] == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)


def test_length_normalisation_removes_the_bias_towards_long_dictionary_sequences():
    # a query matches the short class-0 item exactly, but the long class-1 item sums more positive cosines
    query = [np.tile([1.0, 0.0], (4, 1))]
    dict_feats = [np.tile([1.0, 0.0], (4, 1)), np.tile([1.0, 1.0], (40, 1))]
    labels = np.array([0, 1])
    raw = recognise(query, np.array([0]), dict_feats, labels, length_normalise=False)
    norm = recognise(query, np.array([0]), dict_feats, labels)
    # all cosines are positive, so the best path is the longest one: Tq + Td - 1 cells
    np.testing.assert_allclose(raw["scores"], [[7.0, 43 / np.sqrt(2)]], rtol=1e-6)
    np.testing.assert_allclose(norm["scores"], [[7.0 / 8, 43 / np.sqrt(2) / 44]], rtol=1e-6)
    assert raw["accuracy"] == 0.0 and norm["accuracy"] == 1.0
