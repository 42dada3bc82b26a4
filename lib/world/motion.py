"""The motion library of the synthetic world: real CMU / Human3.6M clips plus procedural activities.

- :class:`MotionClip` -- one clip of canonical 17-joint 3D motion (mm, y up, ground at y = 0, facing +z).
- :func:`procedural_motion` -- joint-angle programs posed on a rest skeleton by forward kinematics, so bone
  lengths are constant; per clip the rng draws speed, amplitude, phase and handedness. ``diving`` is a
  ballistic flight: the pelvis height is exactly ``y0 + v0 t - g t^2 / 2`` with g = 9810 mm/s^2.
- :func:`retarget` -- the same motion on a body with other bone lengths, feet kept on the ground.
- :func:`motion_library` -- real clips (the committed CMU subset, plus Human3.6M walking when a data root
  holds it) and procedural clips, resampled to 25-30 fps.
- :func:`recording_of` -- the recording a library clip was cut from (what a held-out split must not share).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lib.data.base import load_expmap
from lib.runtime import find_data_root, resolve_profile
from lib.skeleton import FLIP, INDEX, JOINTS, PARENTS
from lib.world.mocap import (
    CMU_SAME_TRIAL,
    CMU_SUBSET_PATH,
    H36M_EXPMAP,
    Skeleton,
    canonicalize,
    expmap_joints,
    forward_kinematics,
    load_cmu_subset,
    resample,
    trajectory_up,
)

G_MM_S2 = 9810.0
ANKLE_HEIGHT_MM = 80.0
PROCEDURAL_ACTIVITIES = ("diving", "jumping_jacks", "squat", "clean_and_jerk", "wave", "throw")
SOURCES = ("cmu_bvh", "cmu_expmap", "h36m_expmap", "procedural")
MOTION_VERSION = 5  # bump when the clips motion_library returns change (the world cache keys on it)

# rest pose of the procedural body (mm, parent frame = world at rest): standing, arms down, facing +z, left +x
REST_SKELETON = Skeleton(
    names=JOINTS,
    parents=np.array(PARENTS),
    offsets=np.array(
        [[0, 0, 0], [-130, 0, 0], [0, -440, 0], [0, -430, 0], [130, 0, 0], [0, -440, 0], [0, -430, 0],
         [0, 230, 0], [0, 250, 0], [0, 110, 25], [0, 120, -10], [165, -25, 0], [0, -280, 0], [0, -250, 0],
         [-165, -25, 0], [0, -280, 0], [0, -250, 0]],
        dtype=np.float64,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class MotionClip:
    """A clip of 3D motion. ``joints`` (T, 17, 3) float32 mm in canonical order, world frame y up, ground at
    y = 0, facing +z at the start; ``source`` one of :data:`SOURCES`."""

    name: str
    activity: str
    joints: np.ndarray
    fps: float
    source: str

    def __post_init__(self) -> None:
        if self.joints.ndim != 3 or self.joints.shape[1:] != (len(JOINTS), 3):
            raise ValueError(f"clip {self.name}: joints must have shape (T, 17, 3), got {self.joints.shape}")
        if self.source not in SOURCES or not self.fps > 0:
            raise ValueError(
                f"clip {self.name}: source must be one of {SOURCES} and fps > 0, got {self.source!r}, {self.fps}"
            )

    @property
    def n_frames(self) -> int:
        return self.joints.shape[0]


# ------------------------------------------------------------------------------------ procedural


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about one axis by ``angle`` (T,) radians."""
    return Rotation.from_euler(axis, np.asarray(angle, dtype=np.float64)[:, None]).as_matrix()


def _compose(*mats: np.ndarray) -> np.ndarray:
    out = mats[0]
    for m in mats[1:]:
        out = out @ m
    return out


class _Pose:
    """Per-frame local rotations of the 17 canonical joints, built up by named movements (radians).

    Conventions (subject facing +z, left +x): ``flex`` swings a limb's child forward (knee or hand to +z),
    ``knee``/``elbow`` bend the hinge, ``abduct`` lifts a limb sideways away from the body, ``lean`` tips the
    trunk (or, at the pelvis, the whole body) forward, ``turn`` rotates about the vertical.
    """

    def __init__(self, T: int):
        self.T = T
        self.local = np.broadcast_to(np.eye(3), (T, len(JOINTS), 3, 3)).copy()

    def _apply(self, joint: str, mat: np.ndarray) -> None:
        j = INDEX[joint]
        self.local[:, j] = self.local[:, j] @ mat

    def flex(self, joint: str, a) -> None:
        self._apply(joint, _rot("x", -np.broadcast_to(a, (self.T,))))

    def knee(self, joint: str, a) -> None:
        self._apply(joint, _rot("x", np.broadcast_to(a, (self.T,))))

    def elbow(self, joint: str, a) -> None:
        self._apply(joint, _rot("x", -np.broadcast_to(a, (self.T,))))

    def abduct(self, joint: str, a) -> None:
        sign = 1.0 if joint.startswith("l_") else -1.0
        self._apply(joint, _rot("z", sign * np.broadcast_to(a, (self.T,))))

    def lean(self, joint: str, a) -> None:
        self._apply(joint, _rot("x", np.broadcast_to(a, (self.T,))))

    def turn(self, joint: str, a) -> None:
        """Rotate about the joint frame's vertical axis: the trunk's twist, or for a hanging arm its
        internal/external rotation about the bone."""
        self._apply(joint, _rot("y", np.broadcast_to(a, (self.T,))))

    def positions(self, root: np.ndarray | None = None) -> np.ndarray:
        root = np.zeros((self.T, 3)) if root is None else root
        return forward_kinematics(REST_SKELETON, self.local, root)


def _standing(pos: np.ndarray) -> np.ndarray:
    """Plant a standing body: shift each frame so the lower ankle is at ankle height and the ankles' mean
    ground position stays where it was in the first frame (no foot sliding for symmetric stances)."""
    ankles = pos[:, [INDEX["l_ankle"], INDEX["r_ankle"]]]
    shift = np.zeros((pos.shape[0], 1, 3))
    shift[:, 0, 1] = ANKLE_HEIGHT_MM - ankles[..., 1].min(1)
    mid = ankles[..., [0, 2]].mean(1)
    shift[:, 0, [0, 2]] = mid[:1] - mid
    return pos + shift


def _smooth_step(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _sway(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    """A small smooth random signal (radians) to keep procedural bodies from being perfectly still."""
    f = rng.uniform(0.15, 0.5, size=2)
    ph = rng.uniform(0, 2 * np.pi, size=2)
    return amp * (0.6 * np.sin(2 * np.pi * f[0] * t + ph[0]) + 0.4 * np.sin(2 * np.pi * f[1] * t + ph[1]))


def _idle_arms(p: _Pose, rng: np.random.Generator, t: np.ndarray, skip: str = "") -> None:
    for side in ("l", "r"):
        if side == skip:
            continue
        p.abduct(f"{side}_shoulder", 0.12 + _sway(rng, t, 0.04))
        p.flex(f"{side}_shoulder", _sway(rng, t, 0.06))
        p.elbow(f"{side}_elbow", 0.2 + _sway(rng, t, 0.08))


def _diving(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    board = rng.uniform(1000.0, 3000.0)  # board height, mm
    v0 = rng.uniform(3000.0, 4500.0)  # take-off vertical speed, mm/s
    y0 = board + 1000.0  # pelvis at take-off
    y_end = 300.0  # pelvis height when the clip ends (entry)
    flight = (v0 + np.sqrt(v0**2 + 2 * G_MM_S2 * (y0 - y_end))) / G_MM_S2
    duration = flight if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    u = t / flight  # flight fraction
    somersaults = rng.choice([0.5, 1.5, 2.5]) + rng.uniform(-0.05, 0.05)  # ends head down
    tuck = np.sin(np.pi * np.clip((u - 0.1) / 0.7, 0, 1)) ** 1.5  # 0 -> 1 -> 0
    # angular momentum is conserved: the tuck (smaller inertia) spins faster
    spin = np.cumsum(1.0 + 2.0 * tuck)
    pitch = 2 * np.pi * somersaults * (spin - spin[0]) / (spin[-1] - spin[0])
    pike = rng.random() < 0.5
    twist = rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 1.0) * np.pi * _smooth_step(u)
    p = _Pose(len(t))
    p.lean("pelvis", pitch)
    p.turn("pelvis", twist)
    hip = (1.9 if pike else 2.0) * tuck
    knee = (0.1 if pike else 2.1) * tuck
    for side in ("l", "r"):
        p.flex(f"{side}_hip", hip)
        p.knee(f"{side}_knee", knee)
        # arms: up at take-off, hugging the knees in the tuck, overhead again for the entry
        p.flex(f"{side}_shoulder", np.pi * (1 - tuck) * (0.6 + 0.4 * u) + 0.9 * tuck)
        p.elbow(f"{side}_elbow", 1.6 * tuck * (0.3 if pike else 1.0))
    p.lean("spine", 0.5 * tuck)
    pos = p.positions()
    root_y = y0 + v0 * t - 0.5 * G_MM_S2 * t**2
    root_z = rng.uniform(600.0, 1200.0) * t  # forward drift away from the board, mm/s
    pos[..., 1] += (root_y - pos[:, INDEX["pelvis"], 1])[:, None]
    pos[..., 2] += (root_z - pos[:, INDEX["pelvis"], 2])[:, None]
    pos[..., 0] -= pos[:, INDEX["pelvis"], 0][:, None]
    if duration_s is None:  # end at the entry: the frame before the lowest joint goes under y = 0
        below = np.nonzero(pos[..., 1].min(1) < 0)[0]
        pos = pos[: max(int(below[0]), 4)] if below.size else pos
    return pos


def _jumping_jacks(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    duration = rng.uniform(3.0, 6.0) if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    freq = rng.uniform(0.8, 1.5)
    phase = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    open_ = 0.5 - 0.5 * np.cos(phase)  # 0 closed -> 1 open
    arm = rng.uniform(2.4, 2.9)
    leg = rng.uniform(0.2, 0.35)
    p = _Pose(len(t))
    for side in ("l", "r"):
        p.abduct(f"{side}_shoulder", 0.1 + arm * open_)
        p.elbow(f"{side}_elbow", 0.15 + 0.25 * np.sin(phase) ** 2)
        p.abduct(f"{side}_hip", leg * open_)
        p.knee(f"{side}_knee", 0.25 * (1 - np.abs(np.cos(phase))))
        p.flex(f"{side}_hip", 0.12 * (1 - np.abs(np.cos(phase))))
    p.lean("spine", _sway(rng, t, 0.05))
    pos = _standing(p.positions())
    # a hop at every switch: ballistic between take-off and landing
    hop_t = 0.5 / freq * rng.uniform(0.4, 0.6)
    tau = np.mod(phase / (2 * np.pi * freq), 0.5 / freq)  # time since the last switch
    air = tau < hop_t
    hop = np.where(air, 0.5 * G_MM_S2 * tau * (hop_t - tau), 0.0)
    pos[..., 1] += hop[:, None]
    return pos


def _squat(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    reps = int(rng.integers(1, 3))
    stand, down, hold = rng.uniform(0.8, 1.6), rng.uniform(0.7, 1.2), rng.uniform(0.5, 1.5)
    cycle = 2 * down + hold + stand
    duration = stand + reps * cycle if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    tc = np.mod(t - stand, cycle)
    depth = np.where(
        t < stand,
        0.0,
        np.where(
            tc < down,
            _smooth_step(tc / down),
            np.where(tc < down + hold, 1.0, _smooth_step(1 - (tc - down - hold) / down)),
        ),
    )
    depth = depth * rng.uniform(0.7, 1.0)
    lean = rng.uniform(0.45, 0.75) * depth
    thigh = 1.5 * depth  # thigh forward from vertical
    shank = -0.5 * depth  # knees ahead of the ankles
    p = _Pose(len(t))
    p.lean("pelvis", lean)
    for side in ("l", "r"):
        p.flex(f"{side}_hip", thigh + lean)
        p.knee(f"{side}_knee", thigh - shank)
        # arms forward for balance
        p.flex(f"{side}_shoulder", 1.4 * depth + _sway(rng, t, 0.04))
        p.abduct(f"{side}_shoulder", 0.1)
        p.elbow(f"{side}_elbow", 0.15)
    p.lean("spine", -0.2 * depth + _sway(rng, t, 0.03))
    return _standing(p.positions())


def _wave(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    duration = rng.uniform(2.5, 5.0) if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    side = "l" if rng.random() < 0.5 else "r"
    up_t, down_t = rng.uniform(0.2, 0.6), duration - rng.uniform(0.2, 0.6)
    raised = _smooth_step((t - up_t) / 0.5) * _smooth_step((down_t - t) / 0.5)
    freq = rng.uniform(1.5, 3.0)
    swing = rng.uniform(0.25, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    p = _Pose(len(t))
    _idle_arms(p, rng, t, skip=side)
    p.abduct(f"{side}_shoulder", raised * rng.uniform(1.9, 2.6) + 0.1)
    p.turn(f"{side}_shoulder", raised * (0.3 * (1 if side == "l" else -1)))
    elbow = f"{side}_elbow"
    p.abduct(elbow, raised * swing)
    p.elbow(elbow, 0.2 + raised * rng.uniform(0.4, 1.2))
    p.lean("spine", _sway(rng, t, 0.04))
    p.turn("spine", _sway(rng, t, 0.08))
    return _standing(p.positions())


def _throw(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    duration = rng.uniform(2.0, 3.5) if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    side = "r" if rng.random() < 0.8 else "l"
    sign = 1.0 if side == "r" else -1.0  # the trunk turns away from the throwing arm in the wind-up
    start = rng.uniform(0.3, 0.8)
    wind, fast = rng.uniform(0.5, 0.9), rng.uniform(0.12, 0.2)
    u_wind = _smooth_step((t - start) / wind)
    u_fast = _smooth_step((t - start - wind) / fast)
    u_back = _smooth_step((t - start - wind - fast - 0.3) / 0.8)
    cocked = u_wind * (1 - u_fast)
    follow = u_fast * (1 - u_back)
    p = _Pose(len(t))
    _idle_arms(p, rng, t, skip=side)
    arm = f"{side}_shoulder"
    p.abduct(arm, 1.5 * (cocked + follow) + 0.1)
    p.flex(arm, 1.0 * follow - 0.4 * cocked)
    p.turn(arm, sign * (-1.2 * cocked + 0.4 * follow))
    p.elbow(f"{side}_elbow", 0.2 + 1.5 * cocked + 0.3 * follow)
    p.turn("spine", sign * (0.6 * cocked - 0.7 * follow))
    p.lean("spine", -0.15 * cocked + 0.45 * follow)
    for s in ("l", "r"):
        p.knee(f"{s}_knee", 0.2 * follow)
        p.flex(f"{s}_hip", 0.2 * follow)
    return _standing(p.positions())


def _keyframes(t: np.ndarray, times: list[float], values: list[float]) -> np.ndarray:
    """Smooth-step interpolation through keyframes (times increasing), held constant outside them."""
    times_a, values_a = np.asarray(times), np.asarray(values, dtype=np.float64)
    k = np.clip(np.searchsorted(times_a, t, side="right") - 1, 0, len(times_a) - 2)
    u = _smooth_step((t - times_a[k]) / np.maximum(times_a[k + 1] - times_a[k], 1e-9))
    return values_a[k] + (values_a[k + 1] - values_a[k]) * u


def _clean_and_jerk(rng: np.random.Generator, fps: float, duration_s: float | None) -> np.ndarray:
    # phases: set-up (static), pull, catch in a front squat, stand, rack hold (static), dip, drive to
    # overhead, overhead hold (static), lower the bar
    gaps = [rng.uniform(1.0, 2.0), 0.35, 0.25, 0.3, rng.uniform(0.5, 1.2), rng.uniform(1.0, 1.6),
            rng.uniform(1.0, 2.0), 0.3, 0.2, rng.uniform(1.0, 2.5), 1.0, 0.5]  # fmt: skip
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    total = float(times[-1])
    duration = total if duration_s is None else duration_s
    t = np.arange(int(round(duration * fps)) + 1) / fps
    catch = rng.uniform(0.7, 1.0)
    #            set  set  pull ext  catch hold  up   rack dip  drive over over lower end
    depth = [0.0, 0.0, 0.3, 0.0, catch, catch, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0]
    shoulder = [0.05, 0.05, 0.1, 0.3, 1.4, 1.4, 1.3, 1.3, 1.3, 2.9, 2.9, 2.9, 0.05]
    elbow = [0.1, 0.1, 0.1, 0.4, 2.4, 2.4, 2.4, 2.4, 2.4, 0.1, 0.1, 0.1, 0.1]
    d = _keyframes(t, list(times), depth)
    lean = 0.45 * d
    thigh, shank = 1.5 * d, -0.5 * d
    p = _Pose(len(t))
    p.lean("pelvis", lean)
    sh, el = _keyframes(t, list(times), shoulder), _keyframes(t, list(times), elbow)
    for side in ("l", "r"):
        p.flex(f"{side}_hip", thigh + lean)
        p.knee(f"{side}_knee", thigh - shank)
        p.flex(f"{side}_shoulder", sh - lean)
        p.abduct(f"{side}_shoulder", 0.15)
        p.elbow(f"{side}_elbow", el)
    p.lean("spine", -0.15 * d)
    return _standing(p.positions())


_PROGRAMS: dict[str, Callable[[np.random.Generator, float, float | None], np.ndarray]] = {
    "diving": _diving,
    "jumping_jacks": _jumping_jacks,
    "squat": _squat,
    "wave": _wave,
    "throw": _throw,
    "clean_and_jerk": _clean_and_jerk,
}


def procedural_motion(
    activity: str, rng: np.random.Generator, fps: float, duration_s: float | None = None
) -> np.ndarray:
    """Joints (T, 17, 3) float32 mm of one procedural clip at ``fps`` (y up, ground y = 0, facing +z).

    ``activity`` in :data:`PROCEDURAL_ACTIVITIES`; ``rng`` draws the clip's speed, amplitude, phase and
    handedness; ``duration_s`` defaults to a natural length for the activity (diving: the whole flight).
    """
    if activity not in _PROGRAMS:
        raise ValueError(f"unknown procedural activity {activity!r}; expected one of {PROCEDURAL_ACTIVITIES}")
    if not fps > 0 or (duration_s is not None and not duration_s > 0):
        raise ValueError(f"fps and duration_s must be positive, got fps={fps}, duration_s={duration_s}")
    pos = _PROGRAMS[activity](rng, float(fps), duration_s)
    pos[..., [0, 2]] -= pos[0, INDEX["pelvis"], [0, 2]]
    return pos.astype(np.float32)


# ------------------------------------------------------------------------------------ retarget


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Median length over time of the bone to each child joint: (T, 17, 3) -> (17,) mm (entry 0 is 0)."""
    d = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    return np.concatenate([[0.0], np.median(np.linalg.norm(d, axis=-1), axis=0)])


def _rebuild(joints: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Scale the bone to child c by ``factor[:, c]`` (T, 17), keeping bone directions, strides fitted to the
    legs and the lowest ankle of the clip at its height (see :func:`retarget`)."""
    src = joints.astype(np.float64)
    out = np.empty_like(src)
    pelvis = src[:, 0]
    leg = factor[:, [INDEX[n] for n in ("r_knee", "r_ankle", "l_knee", "l_ankle")]].mean()
    out[:, 0] = pelvis
    out[:, 0, [0, 2]] = pelvis[:1, [0, 2]] + leg * (pelvis[:, [0, 2]] - pelvis[:1, [0, 2]])
    for c in range(1, len(JOINTS)):
        p = PARENTS[c]
        out[:, c] = out[:, p] + factor[:, c, None] * (src[:, c] - src[:, p])
    ankles = [INDEX["l_ankle"], INDEX["r_ankle"]]
    out[..., 1] += src[:, ankles, 1].min() - out[:, ankles, 1].min()
    return out.astype(joints.dtype)


def retarget(joints: np.ndarray, bone_scale: np.ndarray) -> np.ndarray:
    """The same motion on a body whose bone to each child joint c is ``bone_scale[c]`` times as long.

    ``joints`` (T, 17, 3) mm canonical, ``bone_scale`` (17,) (entry 0, the pelvis, is unused). Bone
    directions are kept; the pelvis's horizontal displacement scales with the mean leg factor (so strides
    fit the legs); its height is shifted by one constant so the lowest ankle over the clip stays at its
    original height (feet on the ground; vertical accelerations such as gravity are unchanged).
    To give a clip a body with bone lengths L (17,), use ``bone_scale = L / bone_lengths(joints)``.
    """
    joints = np.asarray(joints)
    bone_scale = np.asarray(bone_scale, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINTS), 3):
        raise ValueError(f"expected joints of shape (T, 17, 3), got {joints.shape}")
    if bone_scale.shape != (len(JOINTS),) or not np.all(bone_scale[1:] > 0):
        raise ValueError(f"bone_scale must be 17 positive factors, got {bone_scale}")
    return _rebuild(joints, np.broadcast_to(bone_scale, (joints.shape[0], len(JOINTS))))


def rigidify(joints: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Give the bone to each child joint c the length ``lengths[c]`` (17,) mm in every frame, keeping its
    direction (as :func:`retarget` does with strides and the ground). Default: each bone's median length,
    which removes the few-mm changes that marker noise and linear resampling leave in real motion."""
    target = bone_lengths(joints) if lengths is None else np.asarray(lengths, dtype=np.float64)
    if target.shape != (len(JOINTS),):
        raise ValueError(f"lengths must have shape (17,), got {target.shape}")
    d = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)
    factor = np.ones((joints.shape[0], len(JOINTS)))
    factor[:, 1:] = target[1:] / np.maximum(d, 1e-6)
    return _rebuild(joints, factor)


REST_BONE_LENGTHS = np.linalg.norm(REST_SKELETON.offsets, axis=1)


# ------------------------------------------------------------------------------------ library


def mirror(joints: np.ndarray) -> np.ndarray:
    """Left-right mirror image of canonical joints (T, 17, 3): x negated, left and right swapped."""
    out = joints[:, list(FLIP)].copy()
    out[..., 0] *= -1
    return out


def _windows(joints: np.ndarray, fps: float, max_s: float, rng: np.random.Generator, all_: bool) -> list:
    """One random window of at most ``max_s`` seconds, or (``all_``) consecutive windows covering the clip
    (a remainder shorter than 2 s is dropped unless it is the whole clip)."""
    n = int(round(max_s * fps))
    if joints.shape[0] <= n:
        return [joints]
    if not all_:
        s = int(rng.integers(0, joints.shape[0] - n + 1))
        return [joints[s : s + n]]
    starts = range(0, joints.shape[0], n)
    return [joints[s : s + n] for s in starts if min(n, joints.shape[0] - s) >= 2 * fps]


def _restart(joints: np.ndarray) -> np.ndarray:
    """Re-canonicalise the start of a window cut from a canonical clip (heights unchanged)."""
    return canonicalize(joints, None)


def h36m_walking_clips(data_root: str | Path) -> list[tuple[str, np.ndarray, float]]:
    """Human3.6M walking (S1, S5, S11) from ``<data_root>/h36m_expmap/dataset``: (name, joints, fps=50)."""
    root = Path(data_root) / "h36m_expmap" / "dataset"
    if not any(root.glob("S*/walking_*.txt")):
        raise FileNotFoundError(
            f"no Human3.6M walking files {root}/S*/walking_*.txt; expected the exp-map motion files of Martinez "
            "et al. 2017 (Human3.6M: http://vision.imar.ro/human3.6m/)"
        )
    out = []
    for path in sorted(root.glob("S*/walking_*.txt")):
        joints, feet = expmap_joints(load_expmap(path, H36M_EXPMAP.n_cols), H36M_EXPMAP)
        up = trajectory_up(joints[:, INDEX["pelvis"]], (joints[:, INDEX["neck"]] - joints[:, 0]).mean(0))
        out.append((f"h36m_{path.parent.name}_{path.stem}", canonicalize(joints, feet, up), H36M_EXPMAP.fps))
    return out


def recording_of(clip_name: str) -> str:
    """The recording a :func:`motion_library` clip was cut from, e.g. ``cmu_bvh_02_01_w1_mirror`` ->
    ``cmu_bvh_02_01``: the name without its window (``_w<k>``) and mirror (``_mirror``) suffixes, and a CMU
    exp-map clip that replays a BVH trial of the subset named after that trial (:data:`CMU_SAME_TRIAL`).
    A procedural clip (``<activity>_s<seed>_<k>``, its own random draw) is its own recording. A recording id
    maps to itself."""
    base = re.sub(r"(_w\d+)?(_mirror)?$", "", clip_name)
    return CMU_SAME_TRIAL.get(base, base)


def motion_library(
    profile: str = "smoke",
    seed: int = 0,
    data_root: str | Path | None = None,
    fps: float | None = None,
    subset_path: str | Path = CMU_SUBSET_PATH,
    h36m: bool = False,
) -> list[MotionClip]:
    """Real and procedural clips for the synthetic world, deterministic in ``seed``.

    Real: the committed CMU subset (BVH walking; exp-map walking, running, jumping, soccer, basketball),
    plus, with ``h36m=True``, Human3.6M walking from ``<data_root>/h36m_expmap`` (``data_root`` default:
    :func:`lib.runtime.find_data_root`; an error if it is not there). It is opt-in so that the library, and the
    world made from it, is the same for every user whatever datasets they keep. Smoke: five
    recordings per (source, activity), one random 3 s window each, mirrored with probability 1/2; full: every
    recording cut into consecutive 10 s windows (``<name>_w<k>``), each taken as is and mirrored
    (``_mirror``). Every window is put on the
    standard body (:data:`REST_BONE_LENGTHS`, 1.66 m, the procedural clips' body) so that body shape says
    nothing about the source or activity (identities come from :func:`retarget`), its lowest ankle at that
    body's ankle height (:data:`ANKLE_HEIGHT_MM`). Procedural: every activity of
    :data:`PROCEDURAL_ACTIVITIES` (smoke 5 clips each, full 40), clip k of an activity named
    ``<activity>_s<seed>_<k>`` and drawn from its own generator seeded by (seed, activity, k), so one name is
    one motion whatever the profile or ``fps``. Smoke: a few dozen clips, a few thousand frames; full:
    hundreds. Every clip is resampled to ``fps`` or, when None, to a rate drawn per clip in [25, 30].
    :func:`recording_of` maps a clip's name back to its recording.
    """
    prof = resolve_profile(profile)
    if fps is not None and not 1 <= fps <= 240:
        raise ValueError(f"fps must be in [1, 240] or None, got {fps}")
    rng = np.random.default_rng(seed)
    max_s = prof.pick(smoke=3.0, full=10.0)
    per_real = prof.pick(smoke=5, full=None)  # recordings per (source, activity); None = all
    n_proc = prof.pick(smoke=5, full=40)
    real = load_cmu_subset(subset_path)
    if h36m:
        real += [(n, "walking", "h36m_expmap", j, f) for n, j, f in h36m_walking_clips(find_data_root(data_root))]
    groups: dict[tuple[str, str], list] = {}
    for item in real:
        groups.setdefault((item[2], item[1]), []).append(item)
    clips: list[MotionClip] = []
    for key in sorted(groups):
        items = groups[key]
        chosen = items if per_real is None else [items[i] for i in rng.permutation(len(items))[:per_real]]
        for name, activity, source, joints, f_in in chosen:
            windows = _windows(joints, f_in, max_s, rng, all_=per_real is None)
            for w, seg in enumerate(windows):
                f_out = float(fps) if fps is not None else float(rng.uniform(25.0, 30.0))
                seg_name = name if len(windows) == 1 else f"{name}_w{w}"
                # smoke: mirrored with probability 1/2; full: both the window and its mirror image
                flips = (False, True) if per_real is None else (bool(rng.random() < 0.5),)
                for flip in flips:
                    seg_f = _restart(mirror(seg) if flip else seg)
                    body = rigidify(resample(seg_f, f_in, f_out), REST_BONE_LENGTHS)
                    body[..., 1] += ANKLE_HEIGHT_MM - body[:, [INDEX["l_ankle"], INDEX["r_ankle"]], 1].min()
                    label = f"{seg_name}_mirror" if flip else seg_name
                    clips.append(MotionClip(label, activity, body, f_out, source))
    for a, activity in enumerate(PROCEDURAL_ACTIVITIES):
        for k in range(n_proc):
            clip_rng = np.random.default_rng([seed, a, k])
            drawn_fps = float(clip_rng.uniform(25.0, 30.0))  # drawn even when unused: the motion stays the same
            f_out = float(fps) if fps is not None else drawn_fps
            joints = procedural_motion(activity, clip_rng, f_out)
            clips.append(MotionClip(f"{activity}_s{seed}_{k:03d}", activity, joints, f_out, "procedural"))
    return clips
