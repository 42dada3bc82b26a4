"""Known answers and invariants for lib.world.motion: procedural activities, retargeting, the motion library."""

from __future__ import annotations

import numpy as np
import pytest

from lib.skeleton import BONES, INDEX, PARENTS
from lib.world.mocap import CMU_SAME_TRIAL, load_cmu_subset
from lib.world.motion import (
    ANKLE_HEIGHT_MM,
    G_MM_S2,
    PROCEDURAL_ACTIVITIES,
    REST_BONE_LENGTHS,
    MotionClip,
    bone_lengths,
    mirror,
    motion_library,
    procedural_motion,
    recording_of,
    retarget,
    rigidify,
)

ANKLES = [INDEX["l_ankle"], INDEX["r_ankle"]]


def lengths(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)


def test_diving_root_falls_with_gravity():
    for seed in range(5):
        fps = 25.0 + seed
        joints = procedural_motion("diving", np.random.default_rng(seed), fps=fps)
        t = np.arange(len(joints)) / fps
        a2, _, _ = np.polyfit(t, joints[:, INDEX["pelvis"], 1].astype(np.float64), 2)
        assert -2 * a2 == pytest.approx(G_MM_S2, rel=0.02)
        assert len(joints) >= 15 and joints[..., 1].min() >= -1.0  # a whole flight, ending at the entry


def test_procedural_clips_have_constant_bones_and_stand_on_the_ground():
    for activity in PROCEDURAL_ACTIVITIES:
        joints = procedural_motion(activity, np.random.default_rng(1), fps=30.0)
        assert joints.dtype == np.float32 and joints.ndim == 3 and joints.shape[1:] == (17, 3)
        assert np.isfinite(joints).all()
        bone = lengths(joints.astype(np.float64))
        assert np.abs(bone - bone[0]).max() < 0.05, activity
        assert joints[0, INDEX["l_hip"], 0] > joints[0, INDEX["r_hip"], 0]  # facing +z: left at +x
        np.testing.assert_allclose(joints[0, 0, [0, 2]], 0.0, atol=1e-3)
        if activity in (
            "squat",
            "clean_and_jerk",
            "wave",
            "throw",
        ):  # both feet planted: the lower ankle rests at ankle height
            np.testing.assert_allclose(joints[:, ANKLES, 1].min(1), ANKLE_HEIGHT_MM, atol=1e-3)
            assert np.ptp(joints[:, ANKLES][..., [0, 2]], axis=0).max() < 1.0  # no foot sliding
        if activity == "jumping_jacks":
            assert joints[:, ANKLES, 1].min() == pytest.approx(ANKLE_HEIGHT_MM, abs=1e-3)
            assert joints[:, ANKLES, 1].min(1).max() > ANKLE_HEIGHT_MM + 10.0  # it hops


def test_jumping_jacks_repeat_and_squats_hold_still():
    jj = procedural_motion("jumping_jacks", np.random.default_rng(2), fps=30.0, duration_s=6.0)
    wrist = jj[:, INDEX["l_wrist"], 1] - jj[:, INDEX["pelvis"], 1]
    above = wrist > wrist.min() + 0.5 * np.ptp(wrist)
    assert np.count_nonzero(np.diff(above.astype(int)) == 1) >= 3  # at least three arm raises
    for activity in ("squat", "clean_and_jerk"):
        sq = procedural_motion(activity, np.random.default_rng(2), fps=30.0)
        speed = np.abs(np.diff(sq, axis=0)).max(axis=(1, 2)) * 30.0  # fastest joint coordinate, mm/s (sway: ~40)
        assert np.mean(speed < 60.0) > 0.3  # long near-static phases (standing, holding the bar)
        assert np.ptp(sq[:, INDEX["pelvis"], 1]) > 200.0  # and deep squats


def test_procedural_motion_is_deterministic_and_varied():
    for activity in PROCEDURAL_ACTIVITIES:
        a = procedural_motion(activity, np.random.default_rng(7), fps=25.0)
        b = procedural_motion(activity, np.random.default_rng(7), fps=25.0)
        c = procedural_motion(activity, np.random.default_rng(8), fps=25.0)
        np.testing.assert_array_equal(a, b)
        assert a.shape != c.shape or not np.allclose(a, c)
    assert procedural_motion("wave", np.random.default_rng(0), fps=25.0, duration_s=2.0).shape[0] == 51
    with pytest.raises(ValueError, match="unknown procedural activity 'ballet'"):
        procedural_motion("ballet", np.random.default_rng(0), fps=25.0)


def test_retarget_scales_bones_and_keeps_directions_and_ground():
    joints = procedural_motion("throw", np.random.default_rng(3), fps=25.0).astype(np.float64)
    scale = np.random.default_rng(4).uniform(0.8, 1.25, size=17)
    out = retarget(joints, scale)
    for p, c in BONES:
        src, dst = joints[:, c] - joints[:, p], out[:, c] - out[:, p]
        np.testing.assert_allclose(dst, scale[c] * src, atol=1e-6)  # same direction, length x scale[c]
    assert out[:, ANKLES, 1].min() == pytest.approx(joints[:, ANKLES, 1].min(), abs=1e-6)
    np.testing.assert_allclose(retarget(joints, np.ones(17)), joints, atol=1e-9)
    # a walking-like drift of the pelvis scales with the legs
    moving = joints + np.linspace(0, 1000.0, len(joints))[:, None, None] * [0, 0, 1]
    leg = scale[[INDEX[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]].mean()
    moved = retarget(moving, scale)
    drift = moving[-1, 0, 2] - moving[0, 0, 2]
    assert moved[-1, 0, 2] - moved[0, 0, 2] == pytest.approx(leg * drift)
    with pytest.raises(ValueError, match="17 positive"):
        retarget(joints, np.ones(16))


def test_retarget_keeps_gravity_of_a_dive():
    joints = procedural_motion("diving", np.random.default_rng(0), fps=30.0).astype(np.float64)
    out = retarget(joints, np.full(17, 1.2))
    t = np.arange(len(out)) / 30.0
    assert -2 * np.polyfit(t, out[:, 0, 1], 2)[0] == pytest.approx(G_MM_S2, rel=0.02)


def test_rigidify_restores_median_bone_lengths_and_directions():
    joints = procedural_motion("wave", np.random.default_rng(5), fps=25.0).astype(np.float64)
    noisy = joints + np.random.default_rng(6).normal(0, 3.0, joints.shape)
    fixed = rigidify(noisy)
    bone = lengths(fixed)
    np.testing.assert_allclose(bone, np.broadcast_to(bone_lengths(noisy)[1:], bone.shape), atol=1e-6)
    d_in = noisy[:, 1:] - noisy[:, list(PARENTS[1:])]
    d_out = fixed[:, 1:] - fixed[:, list(PARENTS[1:])]
    cos = (d_in * d_out).sum(-1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
    assert cos.min() > 1 - 1e-9
    target = REST_BONE_LENGTHS * 1.1
    np.testing.assert_allclose(bone_lengths(rigidify(noisy, target)), target, atol=1e-6)


def test_mirror_swaps_sides():
    joints = procedural_motion("wave", np.random.default_rng(0), fps=25.0)
    m = mirror(joints)
    np.testing.assert_allclose(m[:, INDEX["l_wrist"]], joints[:, INDEX["r_wrist"]] * [-1, 1, 1])
    np.testing.assert_array_equal(mirror(m), joints)


def test_motion_library_smoke_from_the_committed_data(tmp_path):
    clips = motion_library("smoke", seed=0, data_root=tmp_path)  # no H36M here: committed CMU + procedural
    assert all(isinstance(c, MotionClip) for c in clips)
    activities = {c.activity for c in clips}
    assert len(activities) >= 8 and {"walking", "running", "jumping", "soccer", "basketball"} <= activities
    assert set(PROCEDURAL_ACTIVITIES) <= activities
    assert {c.source for c in clips} == {"cmu_bvh", "cmu_expmap", "procedural"}
    assert 20 <= len(clips) <= 80 and 1000 <= sum(c.n_frames for c in clips) <= 10_000
    for c in clips:
        assert c.joints.dtype == np.float32 and c.joints.shape[1:] == (17, 3) and 25.0 <= c.fps <= 30.0
        bone = lengths(c.joints.astype(np.float64))
        assert np.abs(bone - REST_BONE_LENGTHS[1:]).max() < 0.05, c.name  # every clip on the standard body
        if c.activity != "diving":
            assert c.joints[:, ANKLES, 1].min() == pytest.approx(ANKLE_HEIGHT_MM, abs=1e-2), c.name
    again = motion_library("smoke", seed=0, data_root=tmp_path)
    assert [c.name for c in again] == [c.name for c in clips]
    assert all(np.array_equal(a.joints, b.joints) for a, b in zip(again, clips, strict=True))
    other = motion_library("smoke", seed=1, data_root=tmp_path)
    assert [c.name for c in other] != [c.name for c in clips]
    fixed = motion_library("smoke", seed=0, data_root=tmp_path, fps=25.0)
    assert {c.fps for c in fixed} == {25.0}
    with pytest.raises(ValueError, match="fps must be"):
        motion_library("smoke", fps=0.0, data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        motion_library("smoke", data_root=tmp_path / "missing", h36m=True)
    with pytest.raises(FileNotFoundError, match="no Human3.6M walking files"):
        motion_library("smoke", data_root=tmp_path, h36m=True)
    with pytest.raises(ValueError, match="source must be one of"):
        MotionClip("x", "walking", np.zeros((3, 17, 3), np.float32), 25.0, "youtube")


def test_recording_of_strips_windows_and_mirrors_and_joins_the_same_cmu_trial():
    assert recording_of("cmu_bvh_02_01") == "cmu_bvh_02_01"
    assert recording_of("cmu_bvh_02_01_w1_mirror") == "cmu_bvh_02_01"
    assert recording_of("cmu_bvh_16_15_w0") == "cmu_bvh_16_15"
    assert recording_of("cmu_expmap_train_walking_1_mirror") == "cmu_bvh_02_01"  # the same trial, other conversion
    assert recording_of("cmu_expmap_test_walking_1_w2") == "cmu_bvh_35_01"
    assert recording_of("cmu_expmap_train_walking_2") == "cmu_expmap_train_walking_2"  # not in the BVH subset
    assert recording_of("cmu_expmap_test_soccer_1_mirror") == "cmu_expmap_test_soccer_1"
    assert recording_of("h36m_S5_walking_2_w3") == "h36m_S5_walking_2"
    assert recording_of("squat_s0_004") == "squat_s0_004"
    for name in ("cmu_bvh_02_01", "cmu_expmap_train_walking_4", "squat_s3_000"):
        assert recording_of(recording_of(name)) == recording_of(name)


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_every_library_clip_names_its_recording(profile):
    subset = {recording_of(c[0]) for c in load_cmu_subset()}
    assert len(subset) == 92 - len(CMU_SAME_TRIAL)
    clips = motion_library(profile, seed=3)
    for c in clips:
        rec = recording_of(c.name)
        if c.source == "procedural":
            assert rec == c.name and c.name.startswith(f"{c.activity}_s3_"), c.name
        else:
            assert rec in subset, c.name
    if profile == "full":  # every recording in every window, each as is and mirrored
        names = {c.name for c in clips}
        assert {recording_of(n) for n in names if "_s3_" not in n} == subset
        assert all(n.removesuffix("_mirror") in names for n in names)
        assert all(f"{n}_mirror" in names for n in names if not n.endswith("_mirror") and "_s3_" not in n)


def test_a_procedural_name_is_one_motion_whatever_the_profile_or_frame_rate():
    smoke = {c.name: c for c in motion_library("smoke", seed=2) if c.source == "procedural"}
    full = {c.name: c for c in motion_library("full", seed=2) if c.source == "procedural"}
    assert len(smoke) == 5 * len(PROCEDURAL_ACTIVITIES) and len(full) == 40 * len(PROCEDURAL_ACTIVITIES)
    for name, clip in smoke.items():
        assert clip.fps == full[name].fps and np.array_equal(clip.joints, full[name].joints), name
    # at another frame rate the same draw is sampled more densely: every other frame of 2x fps is the clip
    for name in ("squat_s2_001", "wave_s2_004", "throw_s2_000"):
        clip, rng_args = smoke[name], [2, PROCEDURAL_ACTIVITIES.index(name.split("_s2_")[0]), int(name[-3:])]
        rng = np.random.default_rng(rng_args)
        fps = float(rng.uniform(25.0, 30.0))
        dense = procedural_motion(clip.activity, rng, 2 * fps)[::2]
        n = min(len(dense), clip.n_frames)
        assert n >= clip.n_frames - 1
        np.testing.assert_allclose(dense[:n], clip.joints[:n], atol=1e-3)
    other = {c.name for c in motion_library("smoke", seed=3) if c.source == "procedural"}
    assert not other & set(smoke)  # another seed draws other motion, under other names


@pytest.mark.real_data
def test_motion_library_adds_h36m_walking(real_data_root):
    clips = motion_library("smoke", seed=0, data_root=real_data_root, h36m=True)
    h36m = [c for c in clips if c.source == "h36m_expmap"]
    assert h36m and all(c.activity == "walking" for c in h36m)
    default = motion_library("smoke", seed=0, data_root=real_data_root)  # opt-in: same library for everyone
    assert not [c for c in default if c.source == "h36m_expmap"]
