"""Known answers for lib.methods.skip_pose: masks, normalisation, chunking, shared triplets, masked loss,
shared layers, training, 1-NN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from lib.methods.skip_pose import (
    SkipPose,
    SkipPoseAE,
    add_augmentation,
    embed_sequences,
    keypoint_mask,
    make_triplets,
    normalize_sequence,
    pca_features,
    recognise,
    shared_triplets,
    skip_loss,
    sliding_windows,
    train_skip_pose,
    triplet_losses,
    window_features,
)
from lib.runtime import Checkpointer, NonFiniteLossError


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
    kept, _ = normalize_sequence(poses, mask, keep_masked=True)  # for drawing: the same map, nothing zeroed
    np.testing.assert_allclose(kept[0, 2], [(1000 - 0) / 4 * 2 - 1, (-50 - 0) / 2 * 2 - 1])
    np.testing.assert_allclose(kept[m], out[m])


def test_normalize_skips_degenerate_first_pose_and_rejects_bad_shapes():
    poses = np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [2.0, 4.0]]])
    out, _ = normalize_sequence(poses)
    np.testing.assert_allclose(out[1], [[-1, -1], [1, 1]])
    with pytest.raises(ValueError, match=r"\(T, J, 2\)"):
        normalize_sequence(np.zeros((4, 13)))
    with pytest.raises(ValueError, match="mask shape"):
        normalize_sequence(np.zeros((4, 13, 2)), np.ones((4, 12), bool))


def test_keypoint_mask_keeps_detected_keypoints_inside_the_frame():
    # frame 4 px high, 6 px wide: x in [0, 6), y in [0, 4)
    poses = np.array([[[0.0, 0.0], [5.9, 3.9], [6.0, 1.0], [-0.1, 1.0], [1.0, 4.0], [np.nan, 1.0]]])
    np.testing.assert_array_equal(keypoint_mask(poses, (4, 6)), [[True, True, False, False, False, False]])
    detected = np.array([[False, True, True, True, True, True]])
    np.testing.assert_array_equal(keypoint_mask(poses, (4, 6), detected=detected)[0, :2], [False, True])
    depth = np.array([[1.0, -1.0, 1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(keypoint_mask(poses, (4, 6), depth=depth)[0, :2], [True, False])
    with pytest.raises(ValueError, match="detected must have shape"):
        keypoint_mask(poses, (4, 6), detected=np.ones((1, 5), bool))
    with pytest.raises(ValueError, match="frame_hw"):
        keypoint_mask(poses, (0, 6))


def test_sequence_box_normalisation_bounds_every_visible_keypoint():
    rng = np.random.default_rng(1)
    poses = rng.uniform(0, 100, size=(6, 4, 2))
    poses[3] += 300.0  # the person moves far from the first pose's box
    mask = rng.random((6, 4)) > 0.2
    mask[0] = True
    first, _ = normalize_sequence(poses, mask)
    whole, m = normalize_sequence(poses, mask, reference="sequence")
    assert np.abs(first[mask]).max() > 3  # the paper's first-pose box leaves the later frame far outside
    np.testing.assert_allclose(whole[m].min(axis=0), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(whole[m].max(axis=0), [1, 1], atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        normalize_sequence(poses, mask, reference="box")


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


def _sequences(n: int, seed: int, joints: int = 3):
    rng = np.random.default_rng(seed)
    poses = [rng.normal(size=(int(t), joints, 2)).astype(np.float32) for t in rng.integers(8, 20, n)]
    return poses, [rng.random(p.shape[:2]) > 0.2 for p in poses]


def test_shared_triplets_split_by_sequence_and_match_make_triplets():
    poses, masks = _sequences(10, 0)
    data = shared_triplets(poses, masks, chunk=2, seed=0, val_share=0.3)
    assert data.held_out.sum() == 3 and data.n_real == len(data.train[0])
    # brute force: every triplet of the held-out sequences validates, every other one trains
    parts = [make_triplets(p, m, chunk=2) for p, m in zip(poses, masks, strict=True)]
    for arrays, side in ((data.val, True), (data.train, False)):
        for k in (0, 1):
            want = np.concatenate([part[k] for part, h in zip(parts, data.held_out, strict=True) if h == side])
            np.testing.assert_array_equal(arrays[k], want)
    capped = shared_triplets(poses, masks, chunk=2, seed=0, val_share=0.3, cap=20)
    assert len(capped.train[0]) == 20 and (capped.held_out == data.held_out).all()
    with pytest.raises(ValueError, match="too short"):
        shared_triplets(poses, masks, chunk=7, seed=0)


def test_compared_models_see_identical_data_with_augmentation_on_top():
    poses, masks = _sequences(10, 1)
    aug_poses, aug_masks = _sequences(30, 2)
    # each compared model asks for its data: the same (dataset, split, T, seed) gives the same hash
    fingerprints = {kind: shared_triplets(poses, masks, chunk=2, seed=5).fingerprint() for kind in ("ae", "skip")}
    assert len(set(fingerprints.values())) == 1
    assert shared_triplets(poses, masks, chunk=2, seed=6).fingerprint() != fingerprints["skip"]
    base = shared_triplets(poses, masks, chunk=2, seed=5)
    half = add_augmentation(base, aug_poses, aug_masks, ratio=0.5, seed=5)
    full = add_augmentation(base, aug_poses, aug_masks, ratio=1.0, seed=5)
    # the real triplets and the validation split are untouched; augmentation is nested across ratios
    assert half.fingerprint(real_only=True) == full.fingerprint(real_only=True) == base.fingerprint()
    assert half.fingerprint() != base.fingerprint()
    assert len(full.train[0]) == 2 * base.n_real and len(half.train[0]) == base.n_real + round(0.5 * base.n_real)
    np.testing.assert_array_equal(half.train[0], full.train[0][: len(half.train[0])])
    assert add_augmentation(base, aug_poses, aug_masks, ratio=0.0, seed=5).fingerprint() == base.fingerprint()
    # never more augmented triplets than the augmentation sequences hold (3 chunks of 2 frames each)
    n_pool = sum(len(p) - 5 for p in aug_poses)
    assert len(add_augmentation(base, aug_poses, aug_masks, ratio=100.0, seed=5).train[0]) == base.n_real + n_pool


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


@pytest.mark.parametrize("past", [True, False])
def test_per_triplet_losses_average_to_the_batch_loss(past):
    x, m = _triplet_batch(7)
    torch.manual_seed(0)
    model = SkipPose(n_joints=5, chunk=3, hidden=8, past=past)
    items = triplet_losses(model, (x.numpy(), m.numpy()), batch_size=4)
    with torch.no_grad():
        pred_past, pred_future = model(x[:, 1], m[:, 1])
        batch = float(skip_loss(pred_past, pred_future, x, m))
        one = float(skip_loss(None if pred_past is None else pred_past[2:3], pred_future[2:3], x[2:3], m[2:3]))
    assert items.shape == (6,) and items.mean() == pytest.approx(batch, rel=1e-5)
    assert items[2] == pytest.approx(one, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        skip_loss(None, pred_future, x, m, reduction="sum")


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
    broken = train[0].copy()
    broken[3, 2, 0, 0, 0] = np.nan  # a visible future keypoint: the loss is NaN
    with pytest.raises(NonFiniteLossError, match="step 1"):
        train_skip_pose(SkipPose(n_joints=3, chunk=2, hidden=4), (broken, train[1]), val, epochs=2, batch_size=16)


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
    np.testing.assert_array_equal(out["correct"], [True, True, False])
    np.testing.assert_array_equal(out["classes"], [0, 1, 2])
    np.testing.assert_array_equal(out["confusion"], confusion_matrix(query_labels, [0, 1, 2], labels=[0, 1, 2]))
    # class 0: 1 of 1 right, class 1: 1 of 2 right (class 2 has no query)
    assert out["per_class_accuracy"] == pytest.approx((1 + 0.5) / 2)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):  # class 2 has no query
        assert out["per_class_accuracy"] == pytest.approx(balanced_accuracy_score(query_labels, out["predicted"]))
    # the cost mode: the mean cosine along the least-cost path (here every cell of a map is equal)
    cost = recognise(queries, query_labels, dict_feats, dict_labels, mode="cost")
    np.testing.assert_array_equal(cost["predicted"], [0, 1, 2])
    assert cost["scores"][0, 0] == pytest.approx(1 / np.sqrt(1.25), rel=1e-5)


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
