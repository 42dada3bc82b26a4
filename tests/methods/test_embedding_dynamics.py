import numpy as np
import pytest
import torch

from lib.methods.embedding_dynamics import (
    EmbeddingLSTM,
    InverterConfig,
    LSTMConfig,
    copy_last,
    interpolate_embeddings,
    invert,
    knn_distances,
    next_frame_windows,
    predict_next,
    synthesize,
    train_inverter,
    train_lstm,
)
from lib.nets.vgg import vgg_s


def test_next_frame_windows_known_answer():
    inputs, targets = next_frame_windows([np.arange(6), np.arange(10, 13)], l=4)
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3], [1, 2, 3, 4]])
    np.testing.assert_array_equal(targets, [4, 5])
    with pytest.raises(ValueError, match="longer than l"):
        next_frame_windows([np.arange(3)], l=4)


def test_copy_last_predicts_the_last_input_frame():
    emb = np.arange(12.0).reshape(6, 2)
    inputs = np.array([[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(copy_last(emb, inputs), [[4.0, 5.0], [10.0, 11.0]])
    with pytest.raises(ValueError, match="inputs"):
        copy_last(emb, np.arange(3))
    # a residual LSTM whose FC layer is zero is exactly the copy-last baseline
    model = EmbeddingLSTM(2, hidden=3, residual=True)
    with torch.no_grad():
        model.fc.weight.zero_(), model.fc.bias.zero_()
    np.testing.assert_allclose(predict_next(model, emb, inputs), copy_last(emb, inputs))


def test_knn_distances_known_answer_and_exclusion():
    bank = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    q = np.array([[0.0, 0.0]])
    np.testing.assert_allclose(knn_distances(q, bank, k=3), [[0.0, 1.0, 2.0]], atol=1e-7)
    excl = np.array([[True, False, False, False]])
    np.testing.assert_allclose(knn_distances(q, bank, k=3, exclude=excl), [[1.0, 2.0, 3.0]], atol=1e-7)


def test_lstm_learns_a_cycle_better_than_the_nearest_other_frames():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cycle = rng.normal(size=(6, 8))
    cycle /= np.linalg.norm(cycle, axis=1, keepdims=True)
    emb = np.concatenate([np.tile(np.roll(cycle, -s, axis=0), (4, 1)) for s in range(3)]).astype(np.float32)
    emb += 0.02 * rng.normal(size=emb.shape).astype(np.float32)
    groups = [np.arange(24 * s, 24 * (s + 1)) for s in range(3)]
    model, hist = train_lstm(emb, groups, LSTMConfig(steps=250, batch=32, hidden=16, lr=1e-2), seed=0)
    assert hist["loss"][-1] < 0.2 * hist["loss"][0]
    inputs, targets = next_frame_windows(groups, 4)
    err = np.linalg.norm(predict_next(model, emb, inputs) - emb[targets], axis=1)
    step = np.linalg.norm(emb[targets] - emb[targets - 1], axis=1)  # consecutive cycle states are far apart
    assert err.mean() < 0.15 * step.mean()
    syn = synthesize(model, emb[inputs[0]], steps=3)
    assert syn.shape == (3, 8)
    np.testing.assert_allclose(syn[0], predict_next(model, emb, inputs[:1])[0], atol=1e-5)


def test_interpolate_embeddings_ends_and_norm():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    z = interpolate_embeddings(a, b, 5)
    np.testing.assert_allclose(z[[0, -1]], [a, b], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(z[2], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)


def test_inverter_trains_and_inverts_to_images():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    enc = vgg_s(image_size=32, dim=8, width=4)
    crops = np.random.default_rng(0).integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    G, hist = train_inverter(enc, crops, InverterConfig(steps=3, batch=4, width=4), seed=0)
    assert set(hist) == {"pixel", "feature", "adv", "d_loss"} and len(hist["pixel"]) == 3
    img = invert(G, interpolate_embeddings(np.eye(8)[0], np.eye(8)[1], 4))
    assert img.shape == (4, 32, 32, 3) and img.dtype == np.uint8
