"""Tests of the synthetic world on tiny stand-in motion: ground truth, determinism, views, splits, cache; and
that the smoke world's splits share no motion recording."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch

from lib.skeleton import FLIP, INDEX, PARENTS, J
from lib.world import motion, synth
from lib.world.motion import motion_library, recording_of
from lib.world.synth import (
    ChunkDataset,
    FrameDataset,
    generate_world,
    make_world,
    split_counts,
    split_recordings,
    world_config,
)

# a standing rest pose (world mm, y up, facing +z, left = +x)
REST = np.array(
    [[0, 950, 0], [-130, 950, 0], [-130, 520, 0], [-130, 90, 0], [130, 950, 0], [130, 520, 0], [130, 90, 0],
     [0, 1180, 0], [0, 1430, 0], [0, 1540, 25], [0, 1660, 15], [165, 1405, 0], [165, 1125, 0],
     [165, 875, 0], [-165, 1405, 0], [-165, 1125, 0], [-165, 875, 0]], float,
)  # fmt: skip


@dataclasses.dataclass
class Clip:
    name: str
    activity: str
    joints: np.ndarray
    fps: float
    source: str


def swinging_arms(T: int, speed: float, walk: float) -> np.ndarray:
    """Arms swinging forward and back about the shoulders; the body moves ``walk`` mm per frame along z."""
    j = np.repeat(REST[None], T, 0)
    angle = 0.9 * np.sin(np.arange(T) * speed)
    for sign, (sh, el, wr) in ((1, (11, 12, 13)), (-1, (14, 15, 16))):
        a = sign * angle
        for child, parent, length in ((el, sh, 280.0), (wr, el, 250.0)):
            j[:, child] = j[:, parent] + length * np.stack([0 * a, -np.cos(a), np.sin(a)], -1)
    j[..., 2] += walk * np.arange(T)[:, None]
    return j.astype(np.float32)


def stand_in_clips() -> list[Clip]:
    """Three recordings per activity (one per split); ``swing_a`` also as its mirror image and ``walk_b`` as
    two windows, which must stay in their recording's split."""
    return [
        Clip("swing_a", "swing", swinging_arms(30, 0.3, 0.0), 25.0, "test"),
        Clip("swing_a_mirror", "swing", swinging_arms(30, 0.3, 0.0)[:, list(FLIP)], 25.0, "test"),
        Clip("swing_b", "swing", swinging_arms(30, 0.5, 0.0), 30.0, "test"),
        Clip("swing_c", "swing", swinging_arms(30, 0.7, 0.0), 30.0, "test"),
        Clip("walk_a", "walk", swinging_arms(30, 0.4, 50.0), 25.0, "test"),
        Clip("walk_b_w0", "walk", swinging_arms(30, 0.35, 40.0), 25.0, "test"),
        Clip("walk_b_w1", "walk", swinging_arms(30, 0.35, 40.0)[::-1], 25.0, "test"),
        Clip("walk_c", "walk", swinging_arms(30, 0.45, 60.0), 30.0, "test"),
    ]


def scale_bones(joints: np.ndarray, bone_scale: np.ndarray) -> np.ndarray:
    """Stand-in for ``lib.world.motion.retarget``: scale each bone, keep the pelvis where it is."""
    out = joints.copy()
    for c, p in enumerate(PARENTS):
        if p >= 0:
            out[:, c] = out[:, p] + bone_scale[c] * (joints[:, c] - joints[:, p])
    return out


def tiny_key(seed: int = 0, **overrides) -> dict:
    config = world_config("smoke", seq_len=12, sequences_per_activity=4, n_subjects=5, **overrides)
    return {"generator_version": synth.GENERATOR_VERSION, "seed": seed, **config}


@pytest.fixture(scope="module")
def world():
    return generate_world(stand_in_clips(), tiny_key(), 0, scale_bones)


def test_world_fields_have_the_contract_shapes(world):
    N, S, H = len(world.frames), world.n_sequences, world.image_size
    assert world.frames.shape == (N, H, H, 3) and world.frames.dtype == np.uint8
    assert world.joints2d.shape == (N, J, 2) and world.joints3d.shape == (N, J, 3)
    assert world.visible.shape == (N, J) and world.masks.shape == (N, H, H)
    assert world.K.shape == (S, 3, 3) and world.cam_R.shape == (N, 3, 3) and world.backgrounds.shape[0] == S
    assert world.activity_names == ("swing", "walk") and S == 8 and N == 8 * 12
    assert [len(world.sequence_frames(s)) for s in range(S)] == [12] * S
    np.testing.assert_array_equal(np.concatenate([world.sequence_frames(s) for s in range(S)]), np.arange(N))


def test_ground_truth_is_consistent_with_the_camera(world):
    # joints3d = R X_world + t, and joints2d is its pinhole projection with the sequence's K
    cam = np.einsum("nij,nkj->nki", world.cam_R, world.joints_world) + world.cam_t[:, None]
    np.testing.assert_allclose(world.joints3d, cam, atol=0.5)
    K = world.K[world.seq]
    uv = world.joints3d[..., :2] / world.joints3d[..., 2:]
    uv = uv * np.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + np.stack([K[:, 0, 2], K[:, 1, 2]], -1)[:, None]
    np.testing.assert_allclose(world.joints2d, uv, atol=1e-3)


def test_every_visible_joint_is_inside_its_box_and_on_the_mask(world):
    vis = world.visible
    assert vis.mean() > 0.5
    x, y = world.joints2d[..., 0], world.joints2d[..., 1]
    b = world.boxes[:, None]
    inside = (x >= b[..., 0]) & (x < b[..., 2]) & (y >= b[..., 1]) & (y < b[..., 3])
    assert inside[vis].all()
    n, j = np.nonzero(vis)
    assert world.masks[n, np.floor(y[n, j]).astype(int), np.floor(x[n, j]).astype(int)].all()
    # boxes enclose the masks exactly
    for i in range(0, len(world.frames), 17):
        rows, cols = np.nonzero(world.masks[i])
        np.testing.assert_array_equal(world.boxes[i], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])


def test_same_seed_is_byte_identical_and_another_seed_differs(world):
    again = generate_world(stand_in_clips(), tiny_key(), 0, scale_bones)
    for name, value in world.arrays().items():
        assert np.array_equal(value, again.arrays()[name]), name
    other = generate_world(stand_in_clips(), tiny_key(seed=1), 1, scale_bones)
    assert not np.array_equal(world.frames, other.frames)
    assert not np.array_equal(world.joints2d, other.joints2d)


def test_background_median_over_a_static_sequence_recovers_the_background():
    w = generate_world(stand_in_clips(), tiny_key(moving_camera_share=0.0), 0, scale_bones)
    assert not w.camera_moving.any()
    for s in range(w.n_sequences):
        idx = w.sequence_frames(s)
        never = ~w.masks[idx].any(0)
        median = np.median(w.frames[idx], axis=0)
        assert never.mean() > 0.5
        np.testing.assert_array_equal(median[never], w.backgrounds[s][never])
        # and every frame shows the clean background wherever the person is not
        for i in idx[::5]:
            np.testing.assert_array_equal(w.frames[i][~w.masks[i]], w.backgrounds[s][~w.masks[i]])


def test_moving_cameras_move_the_background():
    w = generate_world(stand_in_clips(), tiny_key(moving_camera_share=1.0), 0, scale_bones)
    assert w.camera_moving.all()
    idx = w.sequence_frames(int(np.flatnonzero(w.seq_activity == w.activity_names.index("walk"))[0]))
    assert not np.allclose(w.cam_t[idx[0]], w.cam_t[idx[-1]])
    background = ~w.masks[idx[0]] & ~w.masks[idx[-1]]
    assert np.abs(w.frames[idx[0]].astype(int) - w.frames[idx[-1]])[background].mean() > 1


def test_splits_are_by_subject_and_cover_every_frame(world):
    parts = {sp: world.split_indices(sp) for sp in synth.SPLITS}
    assert sum(len(p) for p in parts.values()) == len(world.frames)
    subjects = {sp: set(world.subject[p].tolist()) for sp, p in parts.items()}
    assert all(subjects.values())
    assert not (subjects["train"] & subjects["test"]) and not (subjects["val"] & subjects["test"])
    assert set(world.split_of_subject.values()) == set(synth.SPLITS)
    with pytest.raises(ValueError, match="unknown split"):
        world.split_indices("dev")


def test_split_counts_give_each_split_its_share_and_at_least_one():
    assert split_counts(5, (0.6, 0.2, 0.2), "subjects") == (3, 1, 1)
    assert split_counts(3, (0.6, 0.2, 0.2), "subjects") == (1, 1, 1)
    assert split_counts(10, (0.6, 0.2, 0.2), "subjects") == (6, 2, 2)
    assert split_counts(64, (3, 1, 1), "subjects") == (38, 13, 13)  # fractions are normalised
    with pytest.raises(ValueError, match="2 recordings of x cannot be split"):
        split_counts(2, (0.6, 0.2, 0.2), "recordings of x")


def assert_no_shared_motion(world):
    """No clip and no recording is used by two splits, and each sequence's clip belongs to its split."""
    clips = {sp: world.clips_of_split(sp) for sp in synth.SPLITS}
    recordings = {sp: world.recordings_of_split(sp) for sp in synth.SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not clips[a] & clips[b], (a, b)
        assert not recordings[a] & recordings[b], (a, b)
    for s in range(world.n_sequences):
        split = world.split_of_subject[int(world.seq_subject[s])]
        assert world.seq_clip[s] in clips[split] and recording_of(str(world.seq_clip[s])) in recordings[split]


def test_splits_hold_out_motion_recordings_as_well_as_subjects(world):
    assert_no_shared_motion(world)
    # three recordings per activity and a sequence of each activity in every split: one recording per split
    for sp in synth.SPLITS:
        assert len(world.recordings_of_split(sp)) == 2
    # a mirror image and the windows of one recording count as that recording
    assert recording_of("swing_a_mirror") == "swing_a" and recording_of("walk_b_w1") == "walk_b"


def test_split_recordings_keeps_a_recording_together_and_is_deterministic():
    clips = [c for c in stand_in_clips() if c.activity == "walk"]
    parts = split_recordings(clips, (0.6, 0.2, 0.2), np.random.default_rng(3), "walk")
    again = split_recordings(clips, (0.6, 0.2, 0.2), np.random.default_rng(3), "walk")
    assert {sp: [c.name for c in v] for sp, v in parts.items()} == {sp: [c.name for c in v] for sp, v in again.items()}
    assert sorted(c.name for v in parts.values() for c in v) == sorted(c.name for c in clips)
    recs = {sp: {recording_of(c.name) for c in v} for sp, v in parts.items()}
    assert all(len(r) == 1 for r in recs.values()) and set.union(*recs.values()) == {"walk_a", "walk_b", "walk_c"}
    windows = [sp for sp, v in parts.items() if any(c.name.startswith("walk_b") for c in v)]
    assert len(windows) == 1 and len(parts[windows[0]]) == 2


def test_an_activity_with_too_few_recordings_is_a_clear_error():
    # walk_b's two windows are one recording: walk has two recordings, one short of a train/val/test split
    clips = [c for c in stand_in_clips() if c.name != "walk_c"]
    with pytest.raises(ValueError, match=r"2 recordings of activity 'walk'.*\['walk_a', 'walk_b'\]"):
        generate_world(clips, tiny_key(), 0, scale_bones)
    # leaving the activity out is the way round it
    w = generate_world(clips, tiny_key(activities=("swing",)), 0, scale_bones)
    assert w.activity_names == ("swing",)


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_every_activity_of_the_motion_library_has_recordings_for_every_split(profile):
    config = world_config(profile)
    clips = motion_library(profile, 0)
    rng = np.random.default_rng(0)
    for activity in sorted({c.activity for c in clips}):
        mine = [c for c in clips if c.activity == activity]
        parts = split_recordings(mine, tuple(config["split_fractions"]), rng, activity)
        recs = {sp: {recording_of(c.name) for c in v} for sp, v in parts.items()}
        assert all(recs.values()), activity
        assert not (recs["train"] & recs["val"] or recs["train"] & recs["test"] or recs["val"] & recs["test"])


def test_the_smoke_world_shares_no_motion_between_train_and_held_out_splits():
    world = make_world("smoke", 0)  # the world the notebooks use (from data/cache when it is there)
    assert_no_shared_motion(world)
    held = np.concatenate([world.split_sequences("val"), world.split_sequences("test")])
    train_clips = world.clips_of_split("train")
    assert len(held) > 0 and not any(world.seq_clip[s] in train_clips for s in held)
    for a in range(len(world.activity_names)):  # every activity is still in every split
        for sp in synth.SPLITS:
            assert np.any(world.seq_activity[world.split_sequences(sp)] == a), (world.activity_names[a], sp)


def test_person_crops_map_pixels_with_the_pixel_centre_convention(world):
    w = dataclasses.replace(world)  # same arrays; the frames are replaced by a horizontal ramp
    H = w.image_size
    ramp = np.broadcast_to((np.arange(H) * 2)[None, :, None], (H, H, 3)).astype(np.uint8)
    w.frames = np.broadcast_to(ramp, world.frames.shape)
    idx = np.arange(0, len(w.frames), 11)
    crops, joints = w.person_crops(32, idx)
    assert crops.shape == (len(idx), 32, 32, 3) and joints.shape == (len(idx), J, 2)
    win = w.crop_boxes(idx)
    x0 = win[:, 0] - win[:, 2] / 2
    u = x0[:, None] + (np.arange(32) + 0.5)[None] * win[:, 2:3] / 32  # frame x of each crop column centre
    expected = 2 * (u - 0.5)  # the ramp's value there (pixel centres hold 2 * column index)
    inner = (u > 1) & (u < H - 1)
    got = crops[:, 16, :, 0].astype(float)
    assert np.abs(got - expected)[inner].max() <= 1.5
    # joints follow the same map
    np.testing.assert_allclose(joints[..., 0], (w.joints2d[idx, :, 0] - x0[:, None]) * 32 / win[:, 2:3], atol=1e-4)


def test_pose_sequences_and_lsp_stills(world):
    seqs = world.pose_sequences(dim=3, fmt="lsp14")
    assert len(seqs) == world.n_sequences and seqs[0].shape == (12, 14, 3)
    np.testing.assert_allclose(seqs[1][:, -1], world.joints3d[world.sequence_frames(1), INDEX["head_top"]])
    stills = world.lsp_stills("test", size=48, stride=4)
    test_subjects = {s for s, sp in world.split_of_subject.items() if sp == "test"}
    assert set(stills.subject.tolist()) <= test_subjects and len(stills.index) > 0
    assert stills.images.shape[1:] == (48, 48, 3) and stills.joints.shape[1:] == (14, 2)
    assert np.all(world.frame_index[stills.index] % 4 == 0)


def test_torch_datasets(world):
    frames = FrameDataset(world, split="train", crop_size=32, fmt="penn13")
    item = frames[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["joints2d"].shape == (13, 2) and item["visible"].dtype == torch.bool
    assert world.split_of_subject[item["subject"]] == "train"
    whole = FrameDataset(world, split="test", crop_size=None)
    i = whole[2]["index"]
    np.testing.assert_allclose(whole[2]["image"].permute(1, 2, 0).numpy() * 255, world.frames[i], atol=1e-3)
    np.testing.assert_array_equal(whole[2]["joints2d"].numpy(), world.joints2d[i])
    batch = next(iter(torch.utils.data.DataLoader(frames, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["subject"].shape == (4,)
    chunks = ChunkDataset(world, length=5, stride=2, crop_size=24)
    assert len(chunks) == world.n_sequences * 4  # starts 0, 2, 4, 6 in each 12-frame sequence
    c = chunks[5]
    assert c["poses"].shape == (5, J, 2) and c["images"].shape == (5, 3, 24, 24) and c["start"] == 2
    i0 = world.sequence_frames(c["seq"])[2]
    np.testing.assert_allclose(c["poses"][0].numpy(), world.joints2d[i0])


def test_class_statistics(world):
    rows = world.class_statistics()
    assert [r["activity"] for r in rows] == ["swing", "walk"]
    assert [r["sequences"] for r in rows] == [4, 4] and sum(r["frames"] for r in rows) == len(world.frames)


def test_unknown_override_and_bad_values_are_clear_errors():
    with pytest.raises(TypeError, match="valid names are .*image_size"):
        world_config("smoke", img_size=64)
    with pytest.raises(ValueError, match="64..256"):
        world_config("smoke", image_size=32)
    with pytest.raises(ValueError, match="unknown activities"):
        generate_world(stand_in_clips(), tiny_key(activities=("flying",)), 0, scale_bones)


@pytest.fixture
def cached(monkeypatch, tmp_path):
    """make_world on the stand-in clips with the cache in a temporary folder; counts generations."""
    calls = []

    def library(profile="smoke", seed=0, data_root=None, fps=None, h36m=False):
        calls.append(seed)
        return stand_in_clips()

    monkeypatch.setattr(synth, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(motion, "motion_library", library)
    monkeypatch.setattr(motion, "retarget", scale_bones)
    small = {"seq_len": 8, "sequences_per_activity": 3, "n_subjects": 4}
    return calls, tmp_path, small


def test_cache_is_reused_and_invalidated_by_a_config_change(cached, monkeypatch):
    calls, folder, small = cached
    a = make_world("smoke", 0, **small)
    b = make_world("smoke", 0, **small)
    assert len(calls) == 1 and len(list(folder.glob("*.npz"))) == 1
    assert np.array_equal(a.frames, b.frames) and a.config == b.config
    make_world("smoke", 0, **{**small, "clutter": 0})
    assert len(calls) == 2 and len(list(folder.glob("*.npz"))) == 2
    make_world("smoke", 1, **small)
    assert len(calls) == 3
    monkeypatch.setattr(synth, "world_fingerprint", lambda: "other code")  # the generator or motion changed
    make_world("smoke", 0, **small)
    assert len(calls) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_key", "stale_version", "wrong_shape"])
def test_a_corrupt_or_stale_cache_file_regenerates_with_a_warning(cached, damage):
    calls, folder, small = cached
    good = make_world("smoke", 0, **small)
    (path,) = folder.glob("*.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    else:
        if damage == "missing_key":
            del arrays["visible"]
        elif damage == "stale_version":
            config = json.loads(str(arrays["config_json"]))
            arrays["config_json"] = np.array(json.dumps({**config, "generator_version": -1}))
        else:
            arrays["boxes"] = arrays["boxes"][:-1]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    with pytest.warns(UserWarning, match="regenerating the synthetic world"):
        again = make_world("smoke", 0, **small)
    assert len(calls) == 2 and np.array_equal(again.frames, good.frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_world("smoke", 0, **small)  # the rewritten file is good again
    assert len(calls) == 2
