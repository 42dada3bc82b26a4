"""Known answers for lib.world.mocap: forward kinematics, BVH parsing, exp-map skeletons, canonical frame."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.spatial.transform import Rotation

from lib.data.base import load_expmap
from lib.skeleton import INDEX
from lib.world.mocap import (
    CMU_EXPMAP,
    CMU_SAME_TRIAL,
    CMU_SUBSET_PATH,
    CMU_UNIT_MM,
    H36M_EXPMAP,
    Skeleton,
    bvh_joints,
    bvh_positions,
    canonicalize,
    expmap_joints,
    expmap_positions,
    forward_kinematics,
    load_bvh,
    load_cmu_subset,
    parse_bvh,
    resample,
    trajectory_up,
)

# bones that are one rigid segment in every source skeleton (thigh, shank, upper arm, forearm)
RIGID = [
    ("r_hip", "r_knee"), ("r_knee", "r_ankle"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
    ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
]  # fmt: skip


def rigid_lengths(joints: np.ndarray) -> np.ndarray:
    return np.stack([np.linalg.norm(joints[:, INDEX[a]] - joints[:, INDEX[b]], axis=-1) for a, b in RIGID], 1)


def test_forward_kinematics_of_a_two_bone_chain():
    skel = Skeleton(("a", "b", "c"), np.array([-1, 0, 1]), np.array([[0, 0, 0], [0, 1.0, 0], [0, 2.0, 0]]))
    rz90 = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    local = np.stack([np.stack([np.eye(3)] * 3), np.stack([rz90, rz90, np.eye(3)])])  # (2, 3, 3, 3)
    pos = forward_kinematics(skel, local, np.array([[0.0, 0, 0], [5.0, 0, 0]]))
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 1, 0], [0, 3, 0]], atol=1e-12)
    # root turned 90 deg about z: b at (-1, 0, 0); b turned another 90: c = b + Rz(180) (0, 2, 0)
    np.testing.assert_allclose(pos[1], [[5, 0, 0], [4, 0, 0], [4, -2, 0]], atol=1e-12)


TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Arm
  {
    OFFSET 1 0 0
CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0083333
0 10 0  0 0 0  0 0 0
1 10 0  90 0 90  0 0 0
"""


def test_parse_a_tiny_bvh():
    bvh = parse_bvh(TINY_BVH)
    assert bvh.skeleton.names == ("Hips", "Arm", "Arm_end")
    np.testing.assert_array_equal(bvh.skeleton.parents, [-1, 0, 1])
    np.testing.assert_array_equal(bvh.skeleton.offsets, [[0, 0, 0], [1, 0, 0], [0, -2, 0]])
    assert bvh.channels[1] == ("Zrotation", "Xrotation", "Yrotation") and bvh.channels[2] == ()
    assert bvh.motion.shape == (2, 9) and bvh.fps == pytest.approx(120.0, rel=1e-4)
    pos = bvh_positions(bvh)
    np.testing.assert_allclose(pos[0], [[0, 10, 0], [1, 10, 0], [1, 8, 0]], atol=1e-9)
    # root Z=90 then X=90 (intrinsic, Rz @ Rx): Arm offset (1,0,0) -> (0,1,0); end (0,-2,0) -> Rz Rx: (0,0,-2)
    np.testing.assert_allclose(pos[1], [[1, 10, 0], [1, 11, 0], [1, 11, -2]], atol=1e-9)


def test_malformed_bvh_names_the_file():
    with pytest.raises(ValueError, match="bad.bvh.*expected 2 frames x 9 channels"):
        parse_bvh(TINY_BVH.replace("1 10 0  90 0 90  0 0 0", "1 10 0"), source="bad.bvh")
    with pytest.raises(ValueError, match="HIERARCHY"):
        parse_bvh("MOTION\nFrames: 0\n", source="x.bvh")
    with pytest.raises(ValueError, match="y.bvh: truncated or invalid HIERARCHY"):
        parse_bvh(TINY_BVH.replace("OFFSET 1 0 0", "OFFSET 1 x 0"), source="y.bvh")
    with pytest.raises(ValueError, match="unknown channel"):
        parse_bvh(TINY_BVH.replace("Zrotation Xrotation Yrotation", "Zrotation Xrotation Wrotation"))


def test_expmap_zero_frame_gives_the_rest_offsets():
    for fmt in (H36M_EXPMAP, CMU_EXPMAP):
        pos = expmap_positions(np.zeros((1, fmt.n_cols)), fmt)[0]
        skel = fmt.skeleton
        for j in range(1, len(skel.names)):
            np.testing.assert_allclose(pos[j] - pos[skel.parents[j]], skel.offsets[j] * fmt.unit_mm, atol=1e-9)
    h36m = expmap_positions(np.zeros((1, 99)), H36M_EXPMAP)[0]
    np.testing.assert_allclose(h36m[H36M_EXPMAP.skeleton.index("RightFoot")], [-132.948591, -897.101059, 0])
    cmu = expmap_positions(np.zeros((1, 117)), CMU_EXPMAP)[0]
    knee = np.array([1.65674 + 2.59720, -1.80282 - 7.13576, 0.62477]) * CMU_UNIT_MM
    np.testing.assert_allclose(cmu[CMU_EXPMAP.skeleton.index("LeftKnee")], knee)


def test_expmap_rotations_act_on_row_vectors():
    # the files' convention (Martinez et al.): child = offset_row @ expmap(r); a 90 deg root turn about z
    # takes the right hip offset (-132.9, 0, 0) to (0, 132.9, 0)
    values = np.zeros((1, CMU_EXPMAP.n_cols))
    values[0, 3:6] = [0, 0, np.pi / 2]
    pos = expmap_positions(values, CMU_EXPMAP)[0]
    hip = CMU_EXPMAP.skeleton.offsets[CMU_EXPMAP.skeleton.index("RightHip")] * CMU_UNIT_MM
    np.testing.assert_allclose(pos[CMU_EXPMAP.skeleton.index("RightHip")], hip @ Rotation.from_rotvec(
        [0, 0, np.pi / 2]).as_matrix(), atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="117 columns"):
        expmap_positions(np.zeros((2, 99)), CMU_EXPMAP)


def _standing_clip() -> tuple[np.ndarray, np.ndarray]:
    """A canonical-order stick figure facing +z (left +x) with its ankles 80 mm up; feet = ankles - 80 mm."""
    from lib.world.motion import procedural_motion

    joints = procedural_motion("wave", np.random.default_rng(0), fps=25.0, duration_s=1.0).astype(np.float64)
    feet = joints[:, [INDEX["l_ankle"], INDEX["r_ankle"]]] - [0, 80.0, 0]
    return joints, feet


def test_canonicalize_undoes_a_known_pose_of_the_world():
    joints, feet = _standing_clip()
    rot = Rotation.from_euler("xy", [90, 40], degrees=True).as_matrix()  # z up instead of y, turned 40 deg
    move = np.array([500.0, -300.0, 2000.0])
    out = canonicalize(joints @ rot.T + move, feet @ rot.T + move, up=rot @ [0, 1.0, 0])
    np.testing.assert_allclose(out, joints, atol=1e-3)
    assert out.dtype == np.float32


def test_resample_is_exact_on_linear_motion():
    t = np.arange(121) / 120.0
    x = np.stack([3 * t + 1, -t], 1)[:, None, :]  # (121, 1, 2)
    out = resample(x, 120.0, 30.0)
    t_out = np.arange(31) / 30.0
    np.testing.assert_allclose(out[:, 0], np.stack([3 * t_out + 1, -t_out], 1), atol=1e-12)
    assert resample(x, 120.0, 25.0).shape == (26, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0.0, 30.0)


def test_trajectory_up_finds_the_plane_normal():
    a = np.linspace(0, 2 * np.pi, 50)
    circle = np.stack([np.cos(a), np.zeros_like(a), np.sin(a)], 1) * 1000.0
    tilt = Rotation.from_euler("x", 25, degrees=True).as_matrix()
    normal = trajectory_up(circle @ tilt.T, body_up=np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(normal, tilt @ [0, 1.0, 0], atol=1e-9)
    np.testing.assert_allclose(trajectory_up(circle @ tilt.T, np.array([0.0, -1.0, 0.0])), -normal, atol=1e-9)


# ------------------------------------------------------------------------------------ real data


def _check_walks_forward(joints: np.ndarray, fps: float) -> None:
    """Canonical real walking: ground at 0, left hip at +x, moving the way the hips face, feet alternating."""
    ankles = joints[:, [INDEX["l_ankle"], INDEX["r_ankle"]]]
    assert 0.0 <= ankles[..., 1].min() < 150.0
    assert joints[0, INDEX["l_hip"], 0] > joints[0, INDEX["r_hip"], 0]
    left = joints[:, INDEX["l_hip"]] - joints[:, INDEX["r_hip"]]
    facing = np.stack([-left[:, 2], np.zeros(len(left)), left[:, 0]], 1)  # left x up
    k = int(fps / 2)
    step = joints[k:, 0] - joints[:-k, 0]  # pelvis displacement over half a second
    step[:, 1] = 0
    moving = np.linalg.norm(step, axis=1) > 150.0
    assert moving.mean() > 0.5
    cos = (facing[:-k] * step).sum(1) / np.linalg.norm(facing[:-k], axis=1) / np.linalg.norm(step, axis=1)
    assert cos[moving].mean() > 0.8
    ahead = np.sign(((ankles[:, 0] - ankles[:, 1]) * facing).sum(1))
    assert np.count_nonzero(np.diff(ahead[ahead != 0])) >= 2  # the leading foot changes at least twice


@pytest.mark.real_data
def test_all_cmu_bvh_trials_load_with_constant_human_bones(real_data_root):
    files = sorted((real_data_root / "cmu_mocap" / "bvh").glob("*.bvh"))
    assert len(files) == 62
    for path in files:
        bvh = load_bvh(path)
        assert bvh.motion.shape[1] == 96 and bvh.fps == pytest.approx(120.0, rel=1e-3)
        joints, feet = bvh_joints(bvh)
        lengths = rigid_lengths(joints)
        assert lengths.std(0).max() < 1e-6, path.name
        femur = lengths[:, 0].mean()
        assert 380.0 < femur < 480.0, (path.name, femur)
        canon = canonicalize(joints, feet)
        stature = canon[:, INDEX["head_top"], 1].max()
        assert 1450.0 < stature < 1900.0, (path.name, stature)
        _check_walks_forward(canon, bvh.fps)


@pytest.mark.real_data
def test_cmu_and_h36m_expmap_files_give_plausible_motion(real_data_root):
    files = sorted((real_data_root / "cmu_mocap" / "expmap").glob("*/*/*.txt"))
    assert {p.parent.name for p in files} == {"walking", "running", "jumping", "soccer", "basketball"}
    for path in files[::5]:
        joints, feet = expmap_joints(load_expmap(path, CMU_EXPMAP.n_cols, "cmu_mocap")[1:], CMU_EXPMAP)
        assert rigid_lengths(joints).std(0).max() < 1e-6
        canon = canonicalize(joints, feet)
        assert 850.0 < np.median(canon[:, 0, 1]) < 1100.0  # pelvis height of an adult
        if path.parent.name in ("walking", "running"):
            _check_walks_forward(canon, CMU_EXPMAP.fps)
    h36m = real_data_root / "h36m_expmap" / "dataset" / "S5" / "walking_1.txt"
    if h36m.is_file():
        joints, feet = expmap_joints(load_expmap(h36m, H36M_EXPMAP.n_cols)[:500], H36M_EXPMAP)
        up = trajectory_up(joints[:, 0], (joints[:, INDEX["neck"]] - joints[:, 0]).mean(0))
        canon = canonicalize(joints, feet, up)
        assert rigid_lengths(canon).std(0).max() < 1e-2  # float32
        assert np.ptp(canon[:, 0, 1]) < 150.0  # level walking once the vertical is found
        _check_walks_forward(canon, H36M_EXPMAP.fps)


def test_committed_cmu_subset_loads():
    assert CMU_SUBSET_PATH.stat().st_size < 5_000_000
    clips = load_cmu_subset()
    assert len(clips) == 92
    assert {c[1] for c in clips} == {"walking", "running", "jumping", "soccer", "basketball"}
    assert {c[2] for c in clips} == {"cmu_bvh", "cmu_expmap"}
    for name, _, _, joints, fps in clips:
        assert joints.dtype == np.float32 and joints.shape[1:] == (17, 3) and fps == 30.0
        assert abs(joints[0, 0, 0]) < 1e-3 and abs(joints[0, 0, 2]) < 1e-3, name
        assert rigid_lengths(joints).std(0).max() < 10.0, name


def hinge_angles(joints: np.ndarray) -> np.ndarray:
    """(T, 4) knee and elbow angles, degrees: hinges, so the same motion gives the same angles in any skeleton."""
    out = []
    for a, b, c in (("r_hip", "r_knee", "r_ankle"), ("l_hip", "l_knee", "l_ankle"),
                    ("r_shoulder", "r_elbow", "r_wrist"), ("l_shoulder", "l_elbow", "l_wrist")):  # fmt: skip
        u = joints[:, INDEX[a]].astype(np.float64) - joints[:, INDEX[b]]
        v = joints[:, INDEX[c]].astype(np.float64) - joints[:, INDEX[b]]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, -1)


def test_cmu_same_trial_lists_exactly_the_clips_that_replay_another():
    # brute force: the first second of every clip against every 1 s window of every other clip; the same
    # trial in two conversions agrees to < 0.01 deg, distinct trials (even one subject's walks) differ by > 1 deg
    clips = load_cmu_subset()
    angles = [hinge_angles(c[3]) for c in clips]
    n = 30
    same = set()
    for i, a in enumerate(angles):
        for k, b in enumerate(angles):
            if k != i and len(b) >= n:
                gap = np.abs(sliding_window_view(b, n, axis=0) - a[:n].T[None]).mean(axis=(1, 2)).min()
                assert not 0.01 < gap < 0.5, (clips[i][0], clips[k][0], gap)  # a clear margin either way
                if gap < 0.01:
                    same.add(frozenset((clips[i][0], clips[k][0])))
    assert same == {frozenset(pair) for pair in CMU_SAME_TRIAL.items()}


@pytest.mark.real_data
def test_committed_subset_matches_a_fresh_conversion(real_data_root):
    bvh = load_bvh(real_data_root / "cmu_mocap" / "bvh" / "35_01.bvh")
    fresh = resample(canonicalize(*bvh_joints(bvh)), bvh.fps, 30.0)
    committed = {c[0]: c[3] for c in load_cmu_subset()}["cmu_bvh_35_01"]
    np.testing.assert_allclose(committed, fresh, atol=1e-2)
