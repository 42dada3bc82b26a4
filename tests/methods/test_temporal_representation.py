import dataclasses

import numpy as np
import pytest
import torch

from lib.methods import temporal_representation as tr
from lib.training import sequence_groups
from lib.world.synth import make_world


def test_dsl_weights_at_hand_computed_points():
    d = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 30.0])
    w_sim, w_dis = tr.dsl_weights(d, 20)
    np.testing.assert_allclose(w_sim, [1, 0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(w_dis, [0, 0, 0, 0.5, 1, 1])
    eps = 1e-6  # continuous at d_max / 2, where both weights are 0
    s_lo, d_lo = tr.dsl_weights(np.array([10 - eps]), 20)
    s_hi, d_hi = tr.dsl_weights(np.array([10 + eps]), 20)
    assert abs(s_lo[0]) < 1e-6 and abs(d_hi[0]) < 1e-6 and s_hi[0] == 0 and d_lo[0] == 0
    ws, wd = tr.dsl_weights(torch.tensor([3.0, -3.0]), 20)  # torch works too; |d|
    torch.testing.assert_close(ws, torch.tensor([0.7, 0.7]))


def test_distance_similarity_loss_by_hand():
    a = torch.tensor([[1.0, 0.0]] * 4)
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    d = torch.tensor([5.0, 5.0, 15.0, 40.0])
    loss = tr.distance_similarity_loss(a, b, d, 20)
    s = 2**-0.5  # cosine of 45 degrees
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.5 * 1.0, 0.5 * s, 1.0 * s]))
    z = torch.stack([a[:1], b[:1], b[1:2], b[2:3]], 1)  # ref, near (same), intermediate (orthogonal), far (45)
    t = torch.tensor([[10, 12, 15, 35]])
    torch.testing.assert_close(tr.dsl_all(z, t, 20), torch.tensor([0.8 * 0 + 0.5 * 1 + 1.0 * s]))


def test_css_loss_is_infonce():
    z = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    zn = z / z.norm(dim=2, keepdim=True)
    logits = (zn[:, :1] * zn[:, 1:]).sum(2) / 0.1
    ref = -(logits[:, 0] - torch.logsumexp(logits, 1))
    torch.testing.assert_close(tr.css_loss(z, 0.1), ref)
    with pytest.raises(ValueError, match="negative"):
        tr.css_loss(z[:, :2])


def test_sample_frame_quads_constraints_and_short_videos():
    seq = np.repeat([0, 1, 2], [25, 8, 40])
    groups = sequence_groups(seq)
    q = tr.sample_frame_quads(groups, 300, np.random.default_rng(0), pos_max=3, d_max=20)
    pos = np.concatenate([np.arange(n) for n in (25, 8, 40)])
    assert (seq[q] == seq[q[:, :1]]).all() and not (seq[q] == 1).any()  # video 1 (8 frames) is skipped
    d = np.abs(pos[q] - pos[q[:, :1]])
    assert ((d[:, 1] >= 1) & (d[:, 1] <= 3)).all()
    assert ((d[:, 2] > 3) & (d[:, 2] < 20)).all()
    assert (d[:, 3] >= 20).all()
    far = tr.sample_frame_quads(groups, 100, np.random.default_rng(1), 3, 20, third="far")
    assert (np.abs(pos[far[:, 2]] - pos[far[:, 0]]) >= 20).all()
    assert tr.usable_groups(groups, 20) == [0, 2]
    with pytest.raises(ValueError, match="d_max=50.*longest: 40"):
        tr.sample_frame_quads(groups, 1, np.random.default_rng(0), 3, 50)
    with pytest.raises(ValueError, match="pos_max < d_max / 2"):
        tr.sample_frame_quads(groups, 1, np.random.default_rng(0), 10, 20)


def test_ti_derangement_stays_within_a_video_without_fixed_points():
    video = np.repeat([3, 1, 7], [4, 2, 5])
    for seed in range(20):
        p = tr.ti_derangement(video, np.random.default_rng(seed))
        assert sorted(p) == list(range(len(video)))
        assert (video[p] == video).all() and (p != np.arange(len(video))).all()
    with pytest.raises(ValueError, match="video 9"):
        tr.ti_derangement(np.array([1, 1, 9]), np.random.default_rng(0))


def test_colour_jitter():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(tr.colour_jitter(x, g, 0, 0, 0, 0), x, rtol=0, atol=0)
    y = tr.colour_jitter(x, torch.Generator().manual_seed(1), 0.4, 0.4, 0.4, 0.1)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)
    # brightness alone multiplies each image by one factor (before clamping)
    b = tr.colour_jitter(x * 0.5, torch.Generator().manual_seed(2), 0.3, 0, 0, 0)
    ratio = b / (x * 0.5)
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-5)
    # a full hue turn (h = 0.5 -> 180 degrees) of a grey image changes nothing
    grey = torch.full((2, 3, 4, 4), 0.4)
    torch.testing.assert_close(tr.colour_jitter(grey, g, 0, 0, 0, 0.5), grey, atol=1e-5, rtol=0)


SMALL = dict(crop_size=16, detector_size=16, width=2, feature_width=2, tv_dim=6, ti_dim=3, batch=2, pos_max=1,
             d_max=4, steps=4, lr=1e-3)  # fmt: skip


def small_videos(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    bgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    boxes = np.tile([[8.0, 8.0, 24.0, 24.0]], (24, 1))
    windows = np.tile([[0.6, 0.6, 0.0, 0.1]], (24, 1)).astype(np.float32)
    return tr.VideoFrames(frames, np.repeat([0, 1, 2], 8), bgs, boxes, windows)


def test_decoder_shapes_start_and_unreachable_crop_sizes():
    dec = tr.Decoder(6, 3, 24, width=2)
    rgb, mask = dec(torch.randn(5, 6), torch.randn(5, 3))
    assert rgb.shape == (5, 3, 24, 24) and mask.shape == (5, 1, 24, 24)
    torch.testing.assert_close(mask, torch.full_like(mask, 0.5))  # a flat start: grey crop, mask 0.5
    torch.testing.assert_close(rgb, torch.full_like(rgb, 0.5))
    with pytest.raises(ValueError, match="valid: 8, 16, 24"):
        tr.Decoder(6, 3, 20, width=2)
    with pytest.raises(ValueError, match="crop_size 20"):
        tr.variant("Ours", **{**SMALL, "crop_size": 20})


def test_configs_and_variants_are_validated():
    with pytest.raises(ValueError, match="unknown variant"):
        tr.variant("Ours-2")
    with pytest.raises(ValueError, match="crop must be one of"):
        tr.TemporalRepConfig(crop="box")
    with pytest.raises(ValueError, match="nothing to learn"):
        tr.TemporalRepConfig(decode=False, split=False, contrastive=None)
    with pytest.raises(ValueError, match="pretrain_steps"):
        tr.TemporalRepConfig(gravity=True, pretrain_steps=0)
    ours = tr.variant("Ours", **SMALL)
    assert ours.split and ours.decode and ours.contrastive == "dsl" and ours.crop == "stn"
    assert tr.variant("Ours", crop="gt").crop == "gt"  # overrides change one factor
    assert tr.variant("DSL").crop == "frame" and not tr.variant("DSL").decode
    assert ours.objective_term == "reconst" and tr.variant("CSS").objective_term == "css"


def test_video_frames_validation():
    v = small_videos()
    with pytest.raises(ValueError, match="uint8"):
        tr.VideoFrames(v.frames.astype(np.float32), v.seq, v.backgrounds)
    with pytest.raises(ValueError, match="backgrounds must be uint8"):
        tr.VideoFrames(v.frames, v.seq, v.backgrounds[:, :16])
    with pytest.raises(ValueError, match="seq must be"):
        tr.VideoFrames(v.frames, v.seq + 5, v.backgrounds)


def test_video_frames_from_the_world_refuse_moving_cameras():
    w = make_world("smoke", 0)
    moving = int(np.flatnonzero(w.camera_moving)[0])
    static = np.flatnonzero(~w.camera_moving)[:2]
    with pytest.raises(ValueError, match=f"sequences \\['{moving} "):
        tr.video_frames(w, [int(static[0]), moving])
    v = tr.video_frames(w, static, background="exact")
    assert len(v.frames) == sum(len(w.sequence_frames(s)) for s in static)
    np.testing.assert_array_equal(v.backgrounds[1], w.backgrounds[static[1]])
    assert v.boxes.shape == (len(v.frames), 4) and v.windows.shape == (len(v.frames), 4)


@pytest.mark.parametrize(
    "name, extra",
    [("Ours", {}), ("Ours", {"gravity": True, "pretrain_steps": 2, "spacing": 1, "box_prior": False}),
     ("CSS", {}), ("AE-STN-Dec", {"crop": "gt"})],
)  # fmt: skip
def test_training_resumes_bit_identically(tmp_path, name, extra):
    torch.set_num_threads(1)
    data = small_videos()
    config = tr.variant(name, **{**SMALL, **extra})
    ref, ref_hist = tr.train_temporal_rep(data, config, seed=3, checkpoint_dir=tmp_path / "a")
    tr.train_temporal_rep(data, config, seed=3, checkpoint_dir=tmp_path / "b")
    (tmp_path / "b" / "step_4.pt").unlink()
    resumed, hist = tr.train_temporal_rep(data, config, seed=3, checkpoint_dir=tmp_path / "b")
    for v, v2 in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    assert hist == ref_hist and len(hist["loss"]) == 4
    if config.gravity:
        assert hist["stage"] == [1.0, 1.0, 0.0, 0.0] and hist["track"][0] > 0 and hist["dsl"][:2] == [0.0, 0.0]
    assert ("iou" in hist) == (config.crop == "stn")


def test_encode_heldout_objective_and_reconstruct():
    torch.manual_seed(0)
    data = small_videos()
    config = tr.variant("Ours", **SMALL)
    model = tr.build_model(config, 0)
    codes = tr.encode(model, data.frames, batch_size=5)
    assert codes["tv"].shape == (24, 6) and codes["ti"].shape == (24, 3) and codes["box"].shape == (24, 4)
    assert model.training  # the mode is restored
    quads = tr.sample_frame_quads(data.groups, 5, np.random.default_rng(0), 1, 4)
    a = tr.heldout_objective(model, data, quads, seed=1)
    assert a.shape == (5,) and np.isfinite(a).all() and (a > 0).all()
    np.testing.assert_array_equal(a, tr.heldout_objective(model, data, quads, seed=1))  # same draws
    with torch.no_grad():  # the output conv starts at zero (a flat crop): give it weights to see TI's effect
        model.decoder.out.weight.normal_(0, 0.5)
    white = np.full((3, 32, 32, 3), 255, np.uint8)
    r = tr.reconstruct(model, data.frames[:3], data.backgrounds[:3], ti_frames=white)
    assert r["image"].shape == (3, 32, 32, 3) and r["crop"].shape == (3, 16, 16, 3) and r["mask"].shape == (3, 16, 16)
    same = tr.reconstruct(model, data.frames[:3], data.backgrounds[:3])
    assert not np.array_equal(r["decoded"], same["decoded"])  # TI of other frames changes the decoding
    frame_model = tr.build_model(tr.variant("DSL", **SMALL), 0)
    assert np.isnan(tr.encode(frame_model, data.frames[:2])["box"]).all()
    with pytest.raises(ValueError, match="decoder"):
        tr.reconstruct(frame_model, data.frames[:2], data.backgrounds[:2])
    gt = tr.build_model(dataclasses.replace(config, crop="gt"), 0)
    with pytest.raises(ValueError, match="ground-truth boxes"):
        tr.encode(gt, data.frames[:2])
    assert tr.encode(gt, data.frames[:2], data.windows[:2])["box"][0, 0] == pytest.approx(0.6)


def test_a_nan_loss_stops_training_naming_the_step():
    data = small_videos()
    data.backgrounds[:] = 0
    config = tr.variant("Ours", **{**SMALL, "lr": 1e30})
    with pytest.raises(FloatingPointError, match="non-finite loss at step"):
        tr.train_temporal_rep(data, dataclasses.replace(config, steps=30), seed=0)
