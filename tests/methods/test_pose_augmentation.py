"""Known answers for lib.methods.pose_augmentation: random cameras around a target, joint-order mapping, and
augmentation clips that leave out the synthetic world's held-out recordings.

The camera model itself (look_at, projection) is tested in test_render.py."""

from __future__ import annotations

import numpy as np
import pytest

from lib.methods import pose_augmentation
from lib.methods.pose_augmentation import augmentation_clips, held_out_recordings, project_clips, random_cameras
from lib.skeleton import INDEX, J
from lib.world.motion import MotionClip, motion_library, recording_of
from lib.world.render import intrinsics, project, world_to_camera
from lib.world.synth import make_world


def test_random_cameras_look_at_the_target_from_the_requested_distance():
    rng = np.random.default_rng(0)
    target = np.array([100.0, 900.0, -300.0])
    rots, ts = random_cameras(50, target, rng, distance_mm=(2000.0, 3000.0), elevation_deg=(0.0, 30.0))
    for rot, t in zip(rots, ts, strict=True):
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        eye = -rot.T @ t
        assert 2000.0 <= np.linalg.norm(eye - target) <= 3000.0
        assert 0.0 <= eye[1] - target[1]  # elevation >= 0: the camera is not below the target
        np.testing.assert_allclose(project(world_to_camera(target, rot, t), intrinsics(500.0, 0, 0)), [0, 0], atol=1e-6)


def test_project_clips_maps_joints_to_the_dataset_order():
    rng = np.random.default_rng(1)
    clip = rng.normal(scale=300.0, size=(6, J, 3)) + [0.0, 1000.0, 0.0]
    clip[:, :, 0] += np.linspace(0, 8000, 6)[:, None]  # walks 8 m: the camera must stay clear of it
    penn = project_clips([clip], "penn13", views_per_clip=3, rng=np.random.default_rng(7))
    jhmdb = project_clips([clip], "jhmdb15", views_per_clip=3, rng=np.random.default_rng(7))
    assert len(penn) == 3 and penn[0].shape == (6, 13, 2) and jhmdb[0].shape == (6, 15, 2)
    # the same seed gives the same cameras: Penn's "head" (index 0) is JHMDB's index 2, Penn's r_shoulder
    # (index 2) is JHMDB's index 3, and both equal the projection of the canonical joint
    np.testing.assert_allclose(penn[1][:, 0], jhmdb[1][:, 2])
    np.testing.assert_allclose(penn[1][:, 2], jhmdb[1][:, 3])
    target = clip[:, INDEX["pelvis"]].mean(axis=0)
    radius = np.linalg.norm(clip - target, axis=-1).max()
    rots, ts = random_cameras(3, target, np.random.default_rng(7), distance_mm=(3000 + radius, 8000 + radius))
    expected = project(world_to_camera(clip[:, INDEX["l_ankle"]], rots[2], ts[2]), intrinsics(1000.0, 0, 0))
    np.testing.assert_allclose(penn[2][:, 11], expected, rtol=1e-5)  # penn13 index 11 = l_ankle
    with pytest.raises(ValueError, match="canonical joints"):
        project_clips([clip[:, :13]], "penn13", 1, rng)


def test_augmentation_clips_exclude_whole_recordings_by_clip_or_recording_name(monkeypatch):
    names = ["cmu_bvh_02_01", "cmu_expmap_train_walking_1_mirror", "cmu_bvh_07_03_w0", "cmu_bvh_07_03_w1_mirror",
             "cmu_expmap_test_soccer_1", "squat_s0_000", "squat_s1_000"]  # fmt: skip
    library = [MotionClip(n, "x", np.zeros((3, J, 3), np.float32), 30.0, "cmu_bvh") for n in names]
    monkeypatch.setattr(pose_augmentation, "motion_library", lambda *args, **kwargs: library)
    # the exp-map name stands for BVH trial 02_01 (both its clips go), a window for all of 07_03's windows
    kept = augmentation_clips("smoke", 0, exclude=["cmu_expmap_train_walking_1", "cmu_bvh_07_03_w1", "squat_s0_000"])
    assert [c.name for c in kept] == ["cmu_expmap_test_soccer_1", "squat_s1_000"]
    assert [c.name for c in augmentation_clips("smoke", 0, exclude=())] == names
    with pytest.raises(TypeError, match="collection of clip or recording names"):
        augmentation_clips("smoke", 0, exclude="cmu_bvh_02_01")


def test_augmentation_with_the_world_exclusion_list_sees_no_held_out_recording():
    world = make_world("smoke", 0)  # the world the notebooks use (from data/cache when it is there)
    held_seqs = np.concatenate([world.split_sequences("val"), world.split_sequences("test")])
    expected = sorted({recording_of(str(world.seq_clip[s])) for s in held_seqs})
    exclude = held_out_recordings(world)
    assert exclude == expected and not set(exclude) & world.recordings_of_split("train")
    # notebook 06's library (seed + 1) does replay some of them: without the list augmentation would see them
    library = motion_library("smoke", 1, fps=30.0)
    assert {recording_of(c.name) for c in library} & set(exclude)
    kept = augmentation_clips("smoke", 1, exclude=exclude, fps=30.0)
    assert not {recording_of(c.name) for c in kept} & set(exclude)
    assert [c.name for c in kept] == [c.name for c in library if recording_of(c.name) not in exclude]
