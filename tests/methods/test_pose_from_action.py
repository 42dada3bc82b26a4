"""Pose from Action: the sampler, the negatives, the crops and augmentation, the efficient batch, the
held-out triplets and resumable training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.flow import flip_flow_block, flow_block, reverse_flow_block
from lib.methods.pose_from_action import (
    PoseFromActionConfig,
    assign_negatives,
    augment_triplets,
    batch_logits,
    gather_blocks,
    init_pose_from_action,
    make_surrogate_test,
    pretext_sequences,
    random_windows,
    sample_frame_pairs,
    surrogate_probabilities,
    train_pose_from_action,
)
from lib.training import sequence_groups


def test_frame_pairs_are_delta_apart_in_one_long_enough_sequence():
    seq = np.repeat([0, 1, 2], [20, 12, 14])  # sequence 1 is too short for delta 12
    groups = sequence_groups(seq)
    pairs, video = sample_frame_pairs(groups, 300, 12, np.random.default_rng(0))
    assert pairs.shape == (300, 2) and set(video.tolist()) == {0, 2}
    np.testing.assert_array_equal(pairs[:, 1] - pairs[:, 0], 12)
    np.testing.assert_array_equal(seq[pairs[:, 0]], seq[pairs[:, 1]])
    np.testing.assert_array_equal(seq[pairs[:, 0]], video)
    assert pairs[video == 2, 0].min() == 32 and pairs[video == 2, 0].max() == 33  # t in 0..1 of 14 frames
    with pytest.raises(ValueError, match="delta 15 needs a sequence of >= 16 frames; the longest has 14"):
        sample_frame_pairs(sequence_groups(np.repeat([0, 1], [14, 3])), 4, 15, np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive int"):
        sample_frame_pairs(groups, 4, 0, np.random.default_rng(0))


def test_windows_fit_the_frame():
    w = random_windows(500, 64, 80, 56, np.random.default_rng(0))
    assert w[:, 0].min() == 0 and w[:, 0].max() == 24 and w[:, 1].min() == 0 and w[:, 1].max() == 8
    with pytest.raises(ValueError, match="70 px window does not fit in a 64x80 frame"):
        random_windows(1, 64, 80, 70, np.random.default_rng(0))


def test_negatives_come_from_other_videos_two_per_positive():
    video = np.array([0, 0, 1, 2, 2, 2, 3, 0])
    neg = assign_negatives(video, 2, np.random.default_rng(0))
    assert neg.shape == (8, 2)
    assert (video[neg] != video[:, None]).all()
    assert (neg[:, 0] != neg[:, 1]).all()  # distinct when the batch allows
    two = assign_negatives(np.array([5, 5, 5, 9]), 2, np.random.default_rng(0))  # sample 3 has 3 candidates
    assert (two[:3] == 3).all() and (np.array([5, 5, 5, 9])[two[3]] == 5).all()
    with pytest.raises(ValueError, match=">= 2 videos"):
        assign_negatives(np.array([4, 4, 4]), 2, np.random.default_rng(0))


def test_gather_blocks_is_the_flow_block_at_the_window():
    rng = np.random.default_rng(0)
    flows = rng.normal(size=(30, 16, 20, 2)).astype(np.float16)
    got = gather_blocks(torch.from_numpy(flows), np.array([3, 10]), np.array([[2, 5], [0, 0]]), 8, 12)
    assert got.shape == (2, 24, 8, 8) and got.dtype == torch.float32
    ref = flow_block(flows[:-1].astype(np.float32), 3)[:, 5:13, 2:10]
    np.testing.assert_array_equal(got[0].numpy(), ref)
    np.testing.assert_array_equal(got[1].numpy(), flow_block(flows[:-1].astype(np.float32), 10)[:, :8, :8])


def test_augmentation_flips_and_reverses_whole_triplets():
    g = torch.Generator().manual_seed(0)
    f0, f1 = torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 3, 6, 6, generator=g)
    block = torch.randn(4, 24, 6, 6, generator=g)
    flip = torch.tensor([False, True, False, True])
    rev = torch.tensor([False, False, True, True])
    before = block.clone()
    a0, a1, ab = augment_triplets(f0, f1, block, flip, rev)
    torch.testing.assert_close(a0[0], f0[0])
    torch.testing.assert_close(ab[0], block[0])
    torch.testing.assert_close(a0[1], f0[1].flip(-1))
    torch.testing.assert_close(a1[1], f1[1].flip(-1))
    torch.testing.assert_close(ab[1], flip_flow_block(block[1]))
    torch.testing.assert_close(a0[2], f1[2])  # reversed: frame t + delta first
    torch.testing.assert_close(a1[2], f0[2])
    torch.testing.assert_close(ab[2], reverse_flow_block(block[2]))
    torch.testing.assert_close(a0[3], f1[3].flip(-1))
    torch.testing.assert_close(ab[3], reverse_flow_block(flip_flow_block(block[3])))
    torch.testing.assert_close(block, before, rtol=0, atol=0)  # inputs untouched


def test_efficient_batch_scores_every_combination_like_the_plain_forward():
    torch.manual_seed(0)
    cfg = PoseFromActionConfig(crop=32, width=4, delta=3)
    net = init_pose_from_action(cfg, seed=0).eval()
    f0, f1, block = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(3, 6, 32, 32)
    neg = np.array([[1, 2], [2, 0], [0, 1]])
    with torch.no_grad():
        logits, labels = batch_logits(net, f0, f1, block, neg)
        assert logits.shape == (9, 2)
        np.testing.assert_array_equal(labels.numpy(), [1, 1, 1, 0, 0, 0, 0, 0, 0])
        pos = net(f0, f1, block)
        torch.testing.assert_close(logits[:3], pos, atol=1e-5, rtol=0)
        i = torch.tensor([0, 0, 1, 1, 2, 2])
        torch.testing.assert_close(logits[3:], net(f0[i], f1[i], block[neg.ravel()]), atol=1e-5, rtol=0)


def test_surrogate_test_negatives_standard_and_location_matched():
    seq = np.repeat(np.arange(6), 20)
    activity = np.repeat([0, 0, 0, 1, 1, 1], 20)
    centres = np.zeros((120, 2))
    centres[:, 0] = 10 + (seq * 7) % 25 + np.tile(np.arange(20), 6) * 0.5
    centres[:, 1] = 30
    test = make_surrogate_test(seq, 40, (64, 64), 48, delta=12, seed=1)
    assert (seq[test.neg_frames] != seq[test.anchors[:, :1]]).all()
    np.testing.assert_array_equal(test.anchors[:, 1] - test.anchors[:, 0], 12)
    m = make_surrogate_test(seq, 40, (64, 64), 48, delta=12, seed=1, centres=centres, activity=activity)
    assert (seq[m.neg_frames] != seq[m.anchors[:, :1]]).all()
    assert (activity[m.neg_frames] == activity[m.anchors[:, :1]]).all()
    offset = centres[m.anchors[:, 0]][:, None] - m.windows[:, None]  # the anchor's person in its window
    neg_offset = centres[m.neg_frames] - m.neg_windows
    inside = (m.neg_windows > 0).all(-1) & (m.neg_windows < 16).all(-1)  # not clipped at the frame border
    assert inside.sum() >= 10
    assert np.abs(neg_offset - offset)[inside].max() <= 0.5
    anchors, windows, blocks, bwin, labels = m.triplets()
    assert len(labels) == 120 and labels.sum() == 40 and (blocks[labels == 1] == m.anchors[:, 0]).all()


def test_training_resumes_bit_identically_and_checks_inputs(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3 * 16, 40, 40, 3), dtype=np.uint8)
    flows = rng.normal(size=(48, 40, 40, 2)).astype(np.float16)
    seq = np.repeat([0, 1, 2], 16)
    cfg = PoseFromActionConfig(steps=2, low_lr_steps=1, batch=4, crop=32, width=4, delta=4, checkpoint_every=1)
    ref, ref_hist = train_pose_from_action(frames, flows, seq, cfg, seed=3, checkpoint_dir=tmp_path / "a")
    train_pose_from_action(frames, flows, seq, cfg, seed=3, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_3.pt").unlink()
    resumed, hist = train_pose_from_action(frames, flows, seq, cfg, seed=3, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and hist["lr"] == [0.01, 0.01, 0.001]
    assert set(hist) == {"loss", "acc", "pos_acc", "neg_acc", "lr"}
    test = make_surrogate_test(seq, 5, (40, 40), 32, delta=4)
    p = surrogate_probabilities(ref, frames, flows, test)
    assert p.shape == (5, 3) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="flows must be"):
        train_pose_from_action(frames, flows[..., :1], seq, cfg)
    with pytest.raises(ValueError, match="not contiguous"):
        train_pose_from_action(frames, flows, np.tile([0, 1, 2], 16), cfg)
    with pytest.raises(ValueError, match="does not fit"):
        train_pose_from_action(frames[:, :30, :30], flows[:, :30, :30], seq, cfg)


class Seqs:
    split_sequences = staticmethod(lambda split: np.arange(10))
    seq_activity = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3])


def test_pretext_sequences_per_activity():
    np.testing.assert_array_equal(pretext_sequences(Seqs, "train"), np.arange(10))
    few = pretext_sequences(Seqs, "train", per_activity=2, seed=0)
    assert np.bincount(Seqs.seq_activity[few]).tolist() == [2, 2, 1, 2]
    np.testing.assert_array_equal(few, pretext_sequences(Seqs, "train", per_activity=2, seed=0))


def test_network_variants_share_the_head_and_differ_in_conv2_stride():
    for variant, stride in (("vgg_m", 16), ("vgg_s", 8)):
        net = init_pose_from_action(PoseFromActionConfig(crop=32, width=4, delta=3, variant=variant), seed=0)
        assert net.appearance.conv_stride == net.motion.conv_stride == stride
        assert net.motion.in_channels == 6 and net.appearance.in_channels == 3
        assert net.head[0].in_features == 3 * net.appearance.n_fc6
