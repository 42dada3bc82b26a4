"""Sümer et al. 2017: samplers, curriculum, repetition mining, the network and its training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lib.images import images_to_tensor
from lib.methods import spatiotemporal as st
from lib.training import sequence_groups


def groups_of(lengths):
    seq = np.repeat(np.arange(len(lengths)), lengths)
    return sequence_groups(seq), seq


# ------------------------------------------------------------------------------------------- temporal pairs


def test_temporal_pairs_offsets_sequences_and_ratio():
    groups, seq = groups_of([30, 12, 40, 5])
    pos_in_seq = np.concatenate([np.arange(len(g)) for g in groups])
    pairs, labels = st.sample_temporal_pairs(groups, 200, np.random.default_rng(0))
    assert pairs.shape == (800, 2) and labels.tolist() == [1, 0, 0, 0] * 200
    assert (seq[pairs[:, 0]] == seq[pairs[:, 1]]).all()
    assert (seq[pairs[:, 0]] != 3).all()  # 5 frames: shorter than tau_neg[0] + 1, never used
    d = pos_in_seq[pairs[:, 1]] - pos_in_seq[pairs[:, 0]]
    assert (d[labels == 1] == 4).all()
    assert ((np.abs(d[labels == 0]) >= 8) & (np.abs(d[labels == 0]) <= 16)).all()
    assert (d[labels == 0] < 0).any() and (d[labels == 0] > 0).any()
    # anchors restricted to a pool
    rows, _, _ = st.temporal_anchors(groups)
    pool = rows[:3]
    p2, _ = st.sample_temporal_pairs(groups, 20, np.random.default_rng(1), anchors=pool)
    assert set(p2[:, 0].tolist()) <= set(pool.tolist())


def test_temporal_anchors_by_brute_force():
    groups, _ = groups_of([20, 9, 13])
    rows, _, _ = st.temporal_anchors(groups, 4, (8, 16))
    expected = []
    for g in groups:
        for p in range(len(g)):
            negs = [p + o for o in [*range(-16, -7), *range(8, 17)] if 0 <= p + o < len(g)]
            if p + 4 < len(g) and negs:
                expected.append(g[p])
    assert rows.tolist() == expected


def test_temporal_errors_name_the_value():
    groups, _ = groups_of([30])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="tau_neg\\[0\\] = 4 must exceed tau_pos = 4"):
        st.sample_temporal_pairs(groups, 2, rng, tau_pos=4, tau_neg=(4, 16))
    with pytest.raises(ValueError, match="tau_pos"):
        st.sample_temporal_pairs(groups, 2, rng, tau_pos=0)
    with pytest.raises(ValueError, match="longest has 7 frames"):
        st.sample_temporal_pairs(groups_of([7, 5])[0], 2, rng)
    with pytest.raises(ValueError, match="not usable anchors"):
        st.sample_temporal_pairs(groups, 2, rng, anchors=np.array([29]))


def test_repetition_pairs_put_negatives_between():
    rep = np.array([[0, 20], [5, 9], [30, 45]])  # (5, 9) is too close for negatives 4 from both
    pairs, labels = st.sample_repetition_pairs(rep, 100, np.random.default_rng(0), margin=4)
    a, c = pairs[:, 0], pairs[:, 1]
    assert labels.tolist() == [1, 0, 0, 0] * 100 and set(a.tolist()) == {0, 30}
    pos = dict(map(tuple, rep))
    assert all(c[k] == pos[a[k]] for k in np.flatnonzero(labels == 1))
    for k in np.flatnonzero(labels == 0):
        assert a[k] + 4 <= c[k] <= pos[a[k]] - 4
    with pytest.raises(ValueError, match="no mined pair"):
        st.sample_repetition_pairs(np.array([[5, 9]]), 2, np.random.default_rng(0))


# ------------------------------------------------------------------------------------------ spatial crops


def test_jitter_boxes_zero_is_identity_and_noise_grows_with_jitter():
    rng = np.random.default_rng(0)
    boxes = np.tile([[40.0, 30.0, 60.0, 90.0]], (4000, 1))
    np.testing.assert_array_equal(st.jitter_boxes(boxes, 0.0, rng, (120, 100)), boxes)
    small = st.jitter_boxes(boxes, 0.05, np.random.default_rng(1), (120, 100))
    large = st.jitter_boxes(boxes, 0.3, np.random.default_rng(1), (120, 100))
    for j in (small, large):  # inside the image, at least 1 px
        assert (j[:, :2] >= 0).all() and (j[:, 2] <= 100).all() and (j[:, 3] <= 120).all()
        assert (j[:, 2:] - j[:, :2] >= 1 - 1e-9).all()
    assert st.iou(small, boxes).mean() > 0.8 > 0.6 > st.iou(large, boxes).mean()
    # unbiased in log-scale and centre: the median width ratio is 1 and the mean centre shift 0 (N = 4000)
    assert np.median((small[:, 2] - small[:, 0]) / 20) == pytest.approx(1, abs=0.01)
    assert ((small[:, 0] + small[:, 2]) / 2).mean() == pytest.approx(50, abs=0.05)
    np.testing.assert_array_equal(small, st.jitter_boxes(boxes, 0.05, np.random.default_rng(1), (120, 100)))
    with pytest.raises(ValueError, match="jitter"):
        st.jitter_boxes(boxes, -0.1, rng, (120, 100))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        st.jitter_boxes(boxes[:, :3], 0.1, rng, (120, 100))


def test_iou_hand_cases_and_broadcast():
    assert st.iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert st.iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0
    assert st.iou([1, 2, 5, 7], [1, 2, 5, 7]) == 1
    assert st.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0
    a = np.random.default_rng(0).uniform(0, 10, (5, 1, 4))
    a[..., 2:] += a[..., :2]
    b = a[:, 0][None]
    m = st.iou(a, b)
    assert m.shape == (5, 5) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T)


def test_placement_crops_fall_in_their_ranges():
    box = np.array([20.0, 10.0, 40.0, 55.0])
    for seed in range(3):
        win, lab = st.sample_placement_crops(box, 64, 10, np.random.default_rng(seed))
        assert lab.tolist() == [1] * 10 + [0] * 30 and win.shape == (40, 4)
        v = st.iou(win, box)
        assert ((v >= 0.65) & (v <= 0.95))[lab == 1].all() and ((v >= 0.25) & (v <= 0.55))[lab == 0].all()
        assert (win >= 0).all() and (win[:, [0, 2]] <= 64).all() and (win[:, [1, 3]] <= 64).all()
    crops = st.crop_windows(np.zeros((64, 64, 3), np.uint8), win, 32)
    assert crops.shape == (40, 32, 32, 3) and crops.dtype == np.uint8


def test_placement_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="overlap"):
        st.sample_placement_crops([10, 10, 30, 30], 64, 1, rng, pos_iou=(0.5, 0.9), neg_iou=(0.3, 0.6))
    with pytest.raises(ValueError, match="pos_iou"):
        st.sample_placement_crops([10, 10, 30, 30], 64, 1, rng, pos_iou=(0.7, 1.2))
    with pytest.raises(ValueError, match="zero area"):
        st.sample_placement_crops([10, 10, 10, 30], 64, 1, rng)
    with pytest.raises(ValueError, match="outside"):
        st.sample_placement_crops([70, 70, 80, 80], 64, 1, rng)
    # IoU >= 0.999 needs both sides within 0.1 % and no shift: never drawn in 3 x 256 tries; the sampler
    # must stop with an error naming the box and the range, never loop
    with pytest.raises(ValueError, match=r"IoU in \(0.999, 1.0\) around box \[10.0, 10.0, 30.0, 30.0\]"):
        st.sample_placement_crops([10, 10, 30, 30], 64, 5, rng, pos_iou=(0.999, 1.0), neg_iou=(0.0, 0.1), max_tries=3)


# ---------------------------------------------------------------------------------------------- curriculum


def test_fg_bg_ratio_hand_field():
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = 0.5
    flow[2:6, 3:8, 1] = 2.0
    flow[2:6, 3:8, 0] = 0.0
    assert st.fg_bg_ratio(flow, np.array([3, 2, 8, 6]), eps=0) == pytest.approx(4.0)
    assert st.fg_bg_ratio(flow, np.array([3, 2, 8, 6]), eps=0.5) == pytest.approx(2.5 / 1.0)
    many = st.fg_bg_ratio(np.stack([flow, flow]), np.array([[3, 2, 8, 6], [0, 0, 1, 1]]), eps=0)
    assert many.shape == (2,) and many[0] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no background"):
        st.fg_bg_ratio(flow, np.array([0, 0, 10, 10]))


def test_curriculum_schedule_and_pool():
    f = st.curriculum_fractions()
    assert f[0] == 0.05 and f[-1] == 1.0 and len(f) == 8
    assert (np.diff(f) > 0).all() and (np.diff(f) <= 0.25 + 1e-12).all()
    assert (f[1:4] / f[:3] == 2).all()  # exponential at first
    assert st.curriculum_every(40_000) == 2500 and st.curriculum_every(150) == 9
    order = np.arange(100, 200)
    sizes = [len(st.curriculum_pool(order, f, s, 10)) for s in (0, 9, 10, 35, 70, 1000)]
    assert sizes == [5, 5, 10, 40, 100, 100]
    assert st.curriculum_pool(order, f, 25, 10).tolist() == list(range(100, 120))
    ratio = np.zeros(10)
    ratio[[2, 5, 7, 9]] = [3.0, 1.0, 5.0, 2.0]
    assert st.curriculum_order(np.array([2, 5, 7, 9]), ratio, share=0.5).tolist() == [7, 2]
    for bad in ([0.1, 0.05, 1.0], [0.05, 0.5], [0.2, 0.4, 0.9], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]):
        with pytest.raises(ValueError, match="curriculum fractions"):
            st.curriculum_fractions(bad)


# ----------------------------------------------------------------------------------------- repetition mining


def test_self_similarity_and_nan():
    f = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    S = st.self_similarity(f)
    assert S == pytest.approx(
        np.array([[2, 2 - np.sqrt(2), 2], [2 - np.sqrt(2), 2, 2 - np.sqrt(2)], [2, 2 - np.sqrt(2), 2]])
    )
    with pytest.raises(ValueError, match="sequence 3"):
        st.self_similarity(np.array([[np.nan, 1.0]]), name="sequence 3")


def test_circulant_filter_keeps_stripes_and_suppresses_peaks():
    S = np.zeros((30, 30))
    i = np.arange(5, 25)
    S[i, i - 3] = 1.0  # a stripe parallel to the diagonal
    S[10, 25] = 1.0  # an isolated peak
    Sf = st.circulant_filter(S, 5)
    assert Sf[15, 12] == pytest.approx(1.0) and Sf[10, 25] == pytest.approx(0.2)
    ref = np.array(
        [
            [sum(S[a + k, b + k] for k in range(-2, 3) if 0 <= a + k < 30 and 0 <= b + k < 30) / 5 for b in range(30)]
            for a in range(30)
        ]
    )
    assert np.allclose(Sf[2:-2, 2:-2], ref[2:-2, 2:-2])  # brute force away from the borders
    with pytest.raises(ValueError, match="odd"):
        st.circulant_filter(S, 4)


def test_mining_periodic_features_finds_multiples_of_the_period():
    rng = np.random.default_rng(0)
    P, T = 12, 60
    phase = 2 * np.pi * np.arange(T) / P
    f = np.column_stack([np.cos(phase), np.sin(phase), np.cos(2 * phase)]) + 0.05 * rng.normal(size=(T, 3))
    pairs = st.mine_repetitions(st.circulant_filter(st.self_similarity(f)), min_sep=8, quantile=0.9)
    assert len(pairs) > 10 and (pairs[:, 0] < pairs[:, 1]).all()
    off = pairs[:, 1] - pairs[:, 0]
    assert (np.minimum(off % P, P - off % P) <= 1).all()  # multiples of the period, up to one frame
    # pairs from sequences map back to rows
    groups = [np.arange(T), np.arange(T, 2 * T)]
    rows = st.mine_sequences(np.concatenate([f, f]), groups, 8, 0.9)
    assert len(rows) == 2 * len(pairs) and ((rows < T).all(1) | (rows >= T).all(1)).all()
    with pytest.raises(ValueError, match="sequence 1"):
        st.mine_sequences(np.concatenate([f, np.full_like(f, np.nan)]), groups)


def test_mining_threshold_by_brute_force():
    S = np.random.default_rng(1).normal(size=(20, 20))
    S = (S + S.T) / 2
    got = {tuple(p) for p in st.mine_repetitions(S, min_sep=5, quantile=0.8).tolist()}
    band = [S[i, j] for i in range(20) for j in range(20) if abs(i - j) >= 5]
    thr = np.quantile(band, 0.8)
    want = set()
    for i in range(20):
        cand = [j for j in range(20) if abs(i - j) >= 5]
        j = max(cand, key=lambda j: S[i, j])
        if S[i, j] >= thr:
            want.add((min(i, j), max(i, j)))
    assert got == want


def test_repetition_groups_are_connected_components():
    groups = st.repetition_groups(np.array([[0, 10], [10, 20], [3, 15], [30, 40]]))
    assert [g.tolist() for g in groups] == [[0, 10, 20], [3, 15], [30, 40]]
    assert st.repetition_groups(np.zeros((0, 2))) == []


# ----------------------------------------------------------------------------------------- net and training


def tiny_data(n_seq=3, T=24, size=32):
    rng = np.random.default_rng(0)
    seq = np.repeat(np.arange(n_seq), T)
    frames = rng.integers(0, 255, (n_seq * T, 48, 48, 3), dtype=np.uint8)
    crops = rng.integers(0, 255, (n_seq * T, size, size, 3), dtype=np.uint8)
    boxes = np.tile([12.0, 8.0, 30.0, 40.0], (n_seq * T, 1))
    ratio = rng.uniform(0.5, 3, n_seq * T)
    return crops, frames, boxes, seq, ratio


def test_conv_weights_are_shared_and_the_optimiser_has_two_rates():
    cfg = st.SpatioTemporalConfig(image_size=32, width=0.0625, fc=(16, 8), batch=8)
    net = st.new_spatiotemporal_net(cfg, 0)
    x = torch.randn(4, 3, 32, 32)
    touched = {}
    for task, fn in (("T", lambda: net.temporal_logits(x, x.flip(0))), ("S", lambda: net.spatial_logits(x))):
        net.zero_grad(set_to_none=True)
        fn().sum().backward()
        touched[task] = {id(p) for p in net.backbone.parameters() if p.grad is not None}
    conv = {id(p) for p in net.backbone.parameters()}
    assert touched["T"] == touched["S"] == conv
    opt = st.make_optimizer(net, cfg)
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-4]
    assert {id(p) for p in opt.param_groups[0]["params"]} == conv
    n_all = sum(1 for _ in net.parameters())
    assert len(opt.param_groups[0]["params"]) + len(opt.param_groups[1]["params"]) == n_all


def test_training_learns_logs_and_resumes_bit_identically(tmp_path, one_thread):
    crops, frames, boxes, seq, ratio = tiny_data()
    cfg = st.SpatioTemporalConfig(steps=6, batch=8, image_size=32, width=0.0625, fc=(16, 8), checkpoint_every=3)
    net, hist = st.train_spatiotemporal(crops, frames, boxes, seq, ratio, cfg, seed=3)
    assert set(hist) == {"loss", "loss_T", "acc_T", "loss_S", "acc_S", "pool_size"} and len(hist["loss"]) == 6
    np.testing.assert_allclose(hist["loss"], np.array(hist["loss_T"]) + 0.1 * np.array(hist["loss_S"]), rtol=1e-5)
    assert hist["pool_size"] == sorted(hist["pool_size"])  # the curriculum only grows
    st.train_spatiotemporal(crops, frames, boxes, seq, ratio, cfg, seed=3, checkpoint_dir=tmp_path)
    (tmp_path / "step_6.pt").unlink()  # resume from step 3
    resumed, h2 = st.train_spatiotemporal(crops, frames, boxes, seq, ratio, cfg, seed=3, checkpoint_dir=tmp_path)
    assert h2["loss"] == hist["loss"]
    for a, b in zip(net.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    t_only, ht = st.train_spatiotemporal(crops, frames, boxes, seq, ratio, dataclasses.replace(cfg, tasks="T"), 0)
    assert "loss_S" not in ht and ht["loss"] == ht["loss_T"]
    reps = np.array([[0, 20], [24, 44]])
    _, hr = st.train_spatiotemporal(crops, frames, boxes, seq, ratio, cfg, 0, repetitions=reps)
    assert len(hr["loss"]) == 6
    nocur = dataclasses.replace(cfg, curriculum=False)
    _, hn = st.train_spatiotemporal(crops, frames, boxes, seq, ratio, nocur, 0)
    n_anchors = len(st.temporal_anchors(sequence_groups(seq))[0])
    assert set(hn["pool_size"]) == {float(np.ceil(cfg.curriculum_share * n_anchors))}
    assert hn["pool_size"][0] > hist["pool_size"][0]


def test_training_fits_a_tiny_temporal_task(one_thread):
    # crops whose brightness encodes the frame position: "is it 4 frames later" is learnable
    T, n_seq = 30, 4
    seq = np.repeat(np.arange(n_seq), T)
    level = (np.tile(np.arange(T), n_seq) * 8).astype(np.uint8)
    crops = np.broadcast_to(level[:, None, None, None], (T * n_seq, 32, 32, 3)).copy()
    frames = np.zeros((T * n_seq, 48, 48, 3), np.uint8)
    boxes = np.tile([12.0, 8.0, 30.0, 40.0], (T * n_seq, 1))
    cfg = st.SpatioTemporalConfig(tasks="T", steps=120, batch=16, image_size=32, width=0.0625, fc=(32, 16),
                                  lr_fc=3e-3, lr_conv=3e-3, curriculum=False)  # fmt: skip
    groups = sequence_groups(seq)
    pairs, labels = st.sample_temporal_pairs(groups, 100, np.random.default_rng(99))
    before = st.ranked_first(st.task_logits(st.new_spatiotemporal_net(cfg, 0), "T", (crops, pairs))).mean()
    net, hist = st.train_spatiotemporal(crops, frames, boxes, seq, np.ones(len(seq)), cfg, seed=0)
    after = st.ranked_first(st.task_logits(net, "T", (crops, pairs))).mean()
    assert np.mean(hist["loss"][-10:]) < np.mean(hist["loss"][:10]) and after > max(before, 0.8)


def test_training_and_config_errors():
    crops, frames, boxes, seq, ratio = tiny_data()
    cfg = st.SpatioTemporalConfig(steps=2, batch=8, image_size=32, width=0.0625, fc=(16, 8))
    with pytest.raises(ValueError, match="tasks"):
        st.SpatioTemporalConfig(tasks="TSX")
    with pytest.raises(ValueError, match="multiple"):
        st.SpatioTemporalConfig(batch=10)
    with pytest.raises(ValueError, match="curriculum fractions"):
        st.SpatioTemporalConfig(fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="32 px crops"):
        st.train_spatiotemporal(crops[:, :16, :16], frames, boxes, seq, ratio, cfg)
    shuffled = seq.copy()
    shuffled[[0, 30]] = shuffled[[30, 0]]
    with pytest.raises(ValueError, match="not consecutive"):
        st.train_spatiotemporal(crops, frames, boxes, shuffled, ratio, cfg)
    bad = ratio.copy()
    bad[:] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        st.train_spatiotemporal(crops, frames, boxes, seq, bad, cfg)


def test_task_logits_ranking_and_pool5_embedding(one_thread):
    cfg = st.SpatioTemporalConfig(image_size=32, width=0.0625, fc=(16, 8), batch=8)
    net = st.new_spatiotemporal_net(cfg, 0).eval()
    imgs = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    emb = st.embed_pool5(net, imgs, batch_size=2)
    with torch.no_grad():
        ref = net.backbone.pool5(images_to_tensor(imgs)).numpy()
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    assert emb.shape == (5, net.backbone.n_pool5)
    pairs = np.array([[0, 1], [2, 3], [3, 4]])
    with torch.no_grad():
        logit = net.temporal_logits(images_to_tensor(imgs[pairs[:, 0]]), images_to_tensor(imgs[pairs[:, 1]]))
    np.testing.assert_allclose(st.task_logits(net, "T", (imgs, pairs), batch_size=2), logit.numpy(), atol=1e-5)
    with torch.no_grad():
        ref_s = net.spatial_logits(images_to_tensor(imgs)).numpy()
    np.testing.assert_allclose(st.task_logits(net, "S", (imgs,)), ref_s, atol=1e-5)
    with pytest.raises(ValueError, match="task"):
        st.task_logits(net, "X", (imgs,))
    # ranking per block [pos, neg, neg, neg]; a tie is not a win
    scores = np.array([3.0, 1, 2, 0, 1, 1, 0, 0, 0, 5, 0, 0])
    assert st.ranked_first(scores).tolist() == [True, False, False]
    assert st.ranked_first(np.array([1.0, 0, 0, 2]), neg_per_pos=1).tolist() == [True, False]


def test_one_call_embeddings_equal_the_explicit_pipeline(one_thread):
    from types import SimpleNamespace

    from lib.images import square_crop

    rng = np.random.default_rng(0)
    n_seq, T, H = 3, 24, 48
    seq = np.repeat(np.arange(n_seq), T)
    frames = rng.integers(0, 255, (n_seq * T, H, H, 3), dtype=np.uint8)
    boxes = np.tile([12.0, 8.0, 30.0, 40.0], (n_seq * T, 1)) + rng.uniform(-2, 2, (n_seq * T, 1))

    def person_crops(size, idx):
        win = np.column_stack([(boxes[idx, :2] + boxes[idx, 2:]) / 2, np.full(len(idx), 36.0)])
        return np.stack([square_crop(frames[i], w, size) for i, w in zip(idx, win, strict=True)]), None

    world = SimpleNamespace(frames=frames, boxes=boxes, seq=seq, person_crops=person_crops)
    flows = SimpleNamespace(index=np.arange(n_seq * T), flows=rng.normal(size=(n_seq * T, H, H, 2)).astype(np.float16))
    cfg = st.SpatioTemporalConfig(steps=4, batch=8, image_size=32, width=0.0625, fc=(16, 8))
    images = person_crops(32, np.arange(5))[0]
    got_net, got_history = st.train_with_repetitions(world, cfg, mining_rounds=1, seed=2, flows=flows, quantile=0.5)
    got = st.embed_pool5(got_net, images)
    # the explicit pipeline: train, mine with its pool5, retrain with the mined pairs, embed
    data = st.training_data(world, flows, 32)
    assert np.isnan(data.ratio[T - 1]) and np.isfinite(data.ratio[: T - 1]).all()  # no flow after the last frame
    args = (data.crops, data.frames, data.boxes, data.seq, data.ratio, cfg, 2)
    net, _ = st.train_spatiotemporal(*args)
    reps = st.mine_sequences(st.embed_pool5(net, data.crops), sequence_groups(data.seq), quantile=0.5)
    assert len(reps)
    net2, history2 = st.train_spatiotemporal(*args, repetitions=reps)
    np.testing.assert_array_equal(got, st.embed_pool5(net2, images))
    assert got.shape == (5, net2.backbone.n_pool5)
    assert got_history["loss"] == history2["loss"]
    with pytest.raises(ValueError, match="mining_rounds"):
        st.train_with_repetitions(world, cfg, mining_rounds=-1, flows=flows)
