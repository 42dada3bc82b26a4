"""Known-answer tests of the pinhole camera, the capsule renderer and its ground truth (visibility, boxes)."""

from __future__ import annotations

import numpy as np
import pytest

from lib.skeleton import INDEX, J
from lib.world.people import CAPSULE_INDEX, make_identities
from lib.world.render import (
    intrinsics,
    joint_visibility,
    look_at,
    mask_boxes,
    orbit_eye,
    project,
    render_background,
    render_capsules,
    sample_scene,
    world_to_camera,
)


def test_projection_of_known_points_by_hand():
    # camera 2 m behind the origin at 1 m height, looking along +z: right = -x, down = -y
    R, t = look_at([0, 1000, -2000], [0, 1000, 0])
    np.testing.assert_allclose(R, [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(t, [0, 1000, 2000], atol=1e-9)
    K = intrinsics(200.0, 64, 64)
    cam = world_to_camera(np.array([[100.0, 1500.0, 0.0], [0.0, 1000.0, 2000.0]]), R, t)
    np.testing.assert_allclose(cam, [[-100, -500, 2000], [0, 0, 4000]], atol=1e-9)
    # u = f x / z + cx = 200 * (-100 / 2000) + 32 = 22;  v = 200 * (-500 / 2000) + 32 = -18
    np.testing.assert_allclose(project(cam, K), [[22, -18], [32, 32]], atol=1e-9)
    with pytest.raises(ValueError, match="behind the camera"):
        project(np.array([[0.0, 0.0, -1.0]]), K)


def test_orbit_eye_and_per_frame_cameras():
    np.testing.assert_allclose(orbit_eye([0, 0, 0], 0.0, 0.0, 5.0), [0, 0, 5], atol=1e-12)
    np.testing.assert_allclose(orbit_eye([1, 2, 3], np.pi / 2, 0.0, 5.0), [6, 2, 3], atol=1e-12)
    np.testing.assert_allclose(orbit_eye([0, 0, 0], 0.0, np.pi / 2, 5.0), [0, 5, 0], atol=1e-12)
    # per-frame extrinsics: each frame's points use that frame's camera
    cams = [look_at(orbit_eye([0, 900, 0], a, 0.2, 3000), [0, 900, 0]) for a in (0.0, 1.0)]
    R = np.stack([c[0] for c in cams])
    t = np.stack([c[1] for c in cams])
    pts = np.random.default_rng(0).normal(0, 500, (2, 5, 3))
    both = world_to_camera(pts, R, t)
    for k in range(2):
        np.testing.assert_allclose(both[k], pts[k] @ R[k].T + t[k])
    # the target is on the optical axis at the orbit distance
    np.testing.assert_allclose(world_to_camera(np.array([0, 900, 0]), *cams[1]), [0, 0, 3000], atol=1e-9)


def test_sphere_silhouette_and_depth():
    # a sphere of radius 100 mm at 2 m, f = 400 px: a disk of radius 20 px, nearest depth 1900 mm
    K = intrinsics(400.0, 96, 96)
    centre = np.array([[[0.0, 0.0, 2000.0]]])
    bg = np.zeros((1, 96, 96, 3), np.float32)
    colour = np.ones((1, 2, 3))
    image, depth = render_capsules(centre, centre, np.array([100.0]), colour, K, bg)
    mask = np.isfinite(depth[0])
    assert abs(mask.sum() - np.pi * 20**2) < 2 * np.pi * 20  # area within one perimeter of pi r^2
    np.testing.assert_allclose(depth[0, 47:49, 47:49], 1900.0, atol=1.0)
    assert depth[0][mask].max() <= 2000.0 + 1e-3
    # lit from the upper left: the upper-left part of the disk is brighter than the lower-right
    assert image[0, 40, 40].sum() > image[0, 56, 56].sum()
    assert np.all(image[0][~mask] == 0)


def test_nearer_capsule_wins_the_depth_test():
    K = intrinsics(300.0, 64, 64)
    start = np.array([[[-500.0, 0, 3000], [0, -500, 2000]]])
    end = np.array([[[500.0, 0, 3000], [0, 500, 2000]]])
    colour = np.array([[[1, 0, 0]] * 2, [[0, 0, 1]] * 2], float)  # far one red, near one blue
    image, depth = render_capsules(start, end, np.array([60.0, 60.0]), colour, K, np.zeros((1, 64, 64, 3)))
    assert image[0, 32, 32, 2] > 0 and image[0, 32, 32, 0] == 0  # the crossing shows the near capsule
    assert image[0, 32, 5, 0] > 0  # the far capsule shows where nothing covers it
    assert depth[0, 32, 32] < 2000


def _facing_pose(arm_z: float) -> np.ndarray:
    """Camera-frame (x right, y down) pose 3 m away facing the camera, left arm (image right) straight
    down and at depth ``arm_z`` behind (> 3000) or in front of (< 3000) the torso's centre line."""
    p = {
        "pelvis": (0, 0), "r_hip": (-120, 0), "r_knee": (-120, 420), "r_ankle": (-120, 830),
        "l_hip": (120, 0), "l_knee": (120, 420), "l_ankle": (120, 830), "spine": (0, -250),
        "neck": (0, -500), "head": (0, -600), "head_top": (0, -720),
        "l_shoulder": (170, -480), "r_shoulder": (-170, -480), "r_elbow": (-450, -350), "r_wrist": (-650, -250),
    }  # fmt: skip
    joints = np.zeros((1, J, 3))
    for name, (x, y) in p.items():
        joints[0, INDEX[name]] = (x, y, 3000)
    joints[0, INDEX["l_elbow"]] = (70, -250, arm_z)
    joints[0, INDEX["l_wrist"]] = (70, -20, arm_z)
    return joints


@pytest.mark.parametrize("arm_z, hidden", [(3350.0, True), (2650.0, False)])
def test_visibility_of_an_arm_behind_the_torso(arm_z, hidden):
    person = make_identities(1, seed=0)[0]
    K = intrinsics(200.0, 128, 128)  # the whole body is in the frame
    joints = _facing_pose(arm_z)
    start, end = person.capsules(joints)
    image, depth = render_capsules(start, end, person.radius, person.colors, K, np.zeros((1, 128, 128, 3)))
    uv = project(joints, K)
    visible = joint_visibility(joints, uv, depth, person.joint_tolerance)[0]
    for name in ("l_elbow", "l_wrist"):
        assert visible[INDEX[name]] == (not hidden), name
    for name in ("pelvis", "neck", "head_top", "r_elbow", "r_wrist", "r_ankle", "l_knee", "l_shoulder"):
        assert visible[INDEX[name]], name


def test_out_of_frame_joints_are_not_visible():
    person = make_identities(1, seed=0)[0]
    K = intrinsics(300.0, 64, 64)
    joints = _facing_pose(2650.0)
    joints[..., 0] += 520  # shift right: the right arm stays in, the left side leaves the image
    start, end = person.capsules(joints)
    _, depth = render_capsules(start, end, person.radius, person.colors, K, np.zeros((1, 64, 64, 3)))
    uv = project(joints, K)
    visible = joint_visibility(joints, uv, depth, person.joint_tolerance)[0]
    out = uv[0, :, 0] >= 64
    assert out.any() and not visible[out].any()
    assert visible[INDEX["r_wrist"]]


def test_head_sphere_sits_between_head_joints():
    person = make_identities(3, seed=1)[2]
    joints = _facing_pose(2650.0)
    start, end = person.capsules(joints)
    k = CAPSULE_INDEX["head"]
    np.testing.assert_allclose(start[0, k], end[0, k])
    np.testing.assert_allclose(start[0, k], [0, -660, 3000])


def test_mask_boxes_by_hand():
    masks = np.zeros((2, 10, 12), bool)
    masks[0, 2:5, 3:7] = True  # rows 2..4, cols 3..6
    masks[0, 8, 11] = True
    boxes = mask_boxes(masks, fallback=np.array([[0, 0, 0, 0], [1, 2, 3, 4]]))
    np.testing.assert_array_equal(boxes[0], [3, 2, 12, 9])
    np.testing.assert_array_equal(boxes[1], [1, 2, 3, 4])  # empty mask: the fallback


def test_static_background_is_identical_per_camera_and_moves_with_the_camera():
    scene = sample_scene(np.random.default_rng(3), clutter=4)
    K = intrinsics(80.0, 64, 64)
    R, t = look_at(orbit_eye([0, 900, 0], 0.3, 0.3, 4000), [0, 900, 0])
    a = render_background(scene, K, R, t, 64, 64)
    np.testing.assert_array_equal(a, render_background(scene, K, R, t, 64, 64))
    R2, t2 = look_at(orbit_eye([300, 900, 0], 0.3, 0.3, 4000), [300, 900, 0])
    b = render_background(scene, K, R2, t2, 64, 64)
    assert np.abs(a - b)[40:].mean() > 0.01  # the ground below the horizon shifts
    assert a.shape == (64, 64, 3) and a.min() >= 0 and a.max() <= 1
