"""Real human motion: BVH files and exponential-map skeletons -> canonical 17 joints in millimetres.

- :class:`Skeleton` and :func:`forward_kinematics` -- a kinematic tree posed by per-joint local rotations.
- :func:`parse_bvh` / :func:`load_bvh` -- Biovision hierarchy + motion (CMU's BVH conversion: 31 joints,
  120 fps, root XYZ position + ZYX Euler angles in degrees); :func:`bvh_joints` -- canonical joints.
- :data:`H36M_EXPMAP` / :data:`CMU_EXPMAP` and :func:`expmap_joints` -- the motion-prediction exp-map files
  (99 columns, Martinez et al. 2017; 117 columns, Li et al. 2018) -> canonical joints.
- :func:`canonicalize` -- y up, lowest foot point on the ground (y = 0), start at the origin facing +z.
- :func:`resample` -- linear resampling in time (120 / 50 Hz -> 25-30 fps).
- :func:`build_cmu_subset` / :func:`load_cmu_subset` -- the processed CMU file committed in ``data/mocap``.

Units and axes. CMU skeletons (BVH and exp-map) are in the ASF length unit: the CMU ASF files declare
``length 0.45``, i.e. 1 unit = 1/0.45 inch = 56.44 mm (:data:`CMU_UNIT_MM`); with it the 62 BVH trials
have femurs of 383-429 mm and tibias of 404-447 mm, as adults do. Human3.6M exp-map offsets are already in mm. All three
skeletons are y-up in their rest frame with the subject's left on +x and toes on +z (right-handed: forward =
left x up). Every clip returned here is canonical: (T, 17, 3) float32 mm, world y up, ground at y = 0, the
pelvis at the horizontal origin in the first frame, facing +z at the start.

Joint mapping. CMU: ``spine`` is the top of ``upperback`` (BVH ``Chest2``), ``neck`` the base of the upper
neck (BVH ``Neck``), ``head`` the base of the head (BVH ``Head``). The CMU head bone (head joint to its end
site, ~90 mm) stops well below the crown, so ``head_top`` is placed along that bone at
:data:`CMU_HEAD_TOP_FACTOR` times its length (neck base to crown ~270 mm; Human3.6M's is 236 mm). CMU's
torso is short, so rest statures come out at 1.47-1.59 m for the six BVH subjects; :mod:`lib.world.motion` puts
every clip on one standard 1.66 m body. Human3.6M's 32 joints map to its standard 17 (its ``Head`` is the crown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lib.data.base import load_expmap
from lib.runtime import REPO_ROOT, atomic_path
from lib.skeleton import INDEX, JOINTS

CMU_UNIT_MM = 25.4 / 0.45
CMU_HEAD_TOP_FACTOR = 2.0
CMU_ACTIVITIES = ("walking", "running", "jumping", "soccer", "basketball")
CMU_SUBSET_PATH = REPO_ROOT / "data" / "mocap" / "cmu_subset.npz"
# exp-map clips of the subset that replay a BVH trial of the subset frame for frame (the same CMU recording in
# both conversions; found by comparing every pair of clips, checked by tests/world/test_mocap.py)
CMU_SAME_TRIAL = {
    "cmu_expmap_train_walking_1": "cmu_bvh_02_01",
    "cmu_expmap_train_walking_4": "cmu_bvh_07_01",
    "cmu_expmap_train_walking_5": "cmu_bvh_07_02",
    "cmu_expmap_test_walking_1": "cmu_bvh_35_01",
}
DOWNLOAD_HINT = (
    "CMU BVH: http://mocap.cs.cmu.edu (cgspeed BVH conversion); exp-map files: github.com/limaosen0/DMGNN "
    "data/cmu and data/h3.6m (Li et al. 2018 / Martinez et al. 2017 motion-prediction data)"
)


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: ``parents[j] < j`` (-1 for the root) and ``offsets[j]`` (J, 3), the rest-pose
    position of joint j in its parent's frame (for the root: added to the root translation)."""

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        parents = np.asarray(self.parents)
        if parents.shape != (len(self.names),) or self.offsets.shape != (len(self.names), 3):
            raise ValueError(
                f"skeleton with {len(self.names)} names needs parents ({len(self.names)},) and offsets "
                f"({len(self.names)}, 3), got {parents.shape} and {self.offsets.shape}"
            )
        if parents[0] != -1 or np.any(parents[1:] >= np.arange(1, len(parents))) or np.any(parents[1:] < 0):
            raise ValueError("skeleton parents must list the root first (-1) and every parent before its child")

    def index(self, name: str) -> int:
        return self.names.index(name)


def forward_kinematics(skeleton: Skeleton, local_rot: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """World joint positions of a posed skeleton.

    ``local_rot`` (T, J, 3, 3): rotation of each joint's frame relative to its parent's (column vectors;
    the root's is its world rotation); ``root_pos`` (T, 3) world translation of the root.
    Returns (T, J, 3): ``p_j = p_parent + G_parent @ offset_j`` with ``G_j = G_parent @ local_rot_j``.
    """
    T, J = local_rot.shape[:2]
    if local_rot.shape != (T, len(skeleton.names), 3, 3) or root_pos.shape != (T, 3):
        raise ValueError(
            f"expected local_rot (T, {len(skeleton.names)}, 3, 3) and root_pos (T, 3), "
            f"got {local_rot.shape} and {root_pos.shape}"
        )
    glob = np.empty_like(local_rot, dtype=np.float64)
    pos = np.empty((T, J, 3), dtype=np.float64)
    glob[:, 0] = local_rot[:, 0]
    pos[:, 0] = root_pos + skeleton.offsets[0]
    for j in range(1, J):
        p = skeleton.parents[j]
        glob[:, j] = glob[:, p] @ local_rot[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ skeleton.offsets[j]
    return pos


# ----------------------------------------------------------------------------------------------- BVH


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH file. End sites are joints named ``<parent>_end`` with no channels.

    ``channels[j]``: channel names of joint j in file order; ``motion`` (T, C) raw channel values;
    ``frame_time`` seconds per frame."""

    skeleton: Skeleton
    channels: tuple[tuple[str, ...], ...]
    motion: np.ndarray
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


class BvhError(ValueError):
    """A BVH file that does not follow the format; the message names the file and what was wrong."""


_CHANNELS = {"Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"}


def parse_bvh(text: str, source: str = "<string>") -> Bvh:
    """Parse BVH text (HIERARCHY then MOTION). ``source`` names the file in error messages."""

    def fail(msg: str) -> BvhError:
        return BvhError(f"malformed BVH {source}: {msg} (download: {DOWNLOAD_HINT})")

    head, sep, motion_txt = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise fail("expected a HIERARCHY section followed by a MOTION section")
    tokens = head.split("HIERARCHY", 1)[1].split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    i = 0
    pending: int | None = None
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT") or tok == "End":
                if tok == "End":
                    name = f"{names[stack[-1]]}_end"
                    i += 2
                else:
                    if tok == "ROOT" and names:
                        raise fail("only one ROOT is supported")
                    name = tokens[i + 1]
                    i += 2
                names.append(name)
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append(())
                pending = len(names) - 1
            elif tok == "{":
                if pending is None:
                    raise fail("'{' without a joint")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                chans = tuple(tokens[i + 2 : i + 2 + n])
                if not set(chans) <= _CHANNELS:
                    raise fail(f"unknown channel in {chans} of joint {names[stack[-1]]}")
                channels[stack[-1]] = chans
                i += 2 + n
            else:
                raise fail(f"unexpected token {tok!r} in HIERARCHY")
    except BvhError:
        raise
    except (IndexError, ValueError) as e:  # a missing token or a number that does not parse
        raise fail(f"truncated or invalid HIERARCHY ({e})") from e
    if stack or not names:
        raise fail("unbalanced braces or no joints in HIERARCHY")
    m_frames = re.search(r"Frames:\s*(\d+)", motion_txt)
    m_time = re.search(r"Frame Time:\s*([0-9.eE+-]+)", motion_txt)
    if not m_frames or not m_time:
        raise fail("MOTION needs 'Frames:' and 'Frame Time:' lines")
    body = motion_txt[m_time.end() :]
    n_frames, n_ch = int(m_frames.group(1)), sum(len(c) for c in channels)
    values = np.array(body.split(), dtype=np.float64)
    if values.size != n_frames * n_ch:
        raise fail(f"MOTION holds {values.size} numbers, expected {n_frames} frames x {n_ch} channels")
    skel = Skeleton(tuple(names), np.array(parents), np.array(offsets, dtype=np.float64))
    return Bvh(skel, tuple(channels), values.reshape(n_frames, n_ch), float(m_time.group(1)))


def load_bvh(path: str | Path) -> Bvh:
    """Read and parse a BVH file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file {path} not found (download: {DOWNLOAD_HINT})")
    return parse_bvh(path.read_text(), source=str(path))


def bvh_positions(bvh: Bvh) -> np.ndarray:
    """World positions (T, J, 3) of every BVH joint (end sites included), in the file's units.

    Rotation channels compose in file order as intrinsic rotations (``Z Y X`` -> Rz @ Ry @ Rx);
    position channels replace the joint's offset component.
    """
    skel, T = bvh.skeleton, bvh.motion.shape[0]
    local = np.broadcast_to(np.eye(3), (T, len(skel.names), 3, 3)).copy()
    root_pos = np.zeros((T, 3))
    col = 0
    for j, chans in enumerate(bvh.channels):
        rot_axes = "".join(c[0] for c in chans if c.endswith("rotation"))
        rot_cols = [col + k for k, c in enumerate(chans) if c.endswith("rotation")]
        for k, c in enumerate(chans):
            if c.endswith("position"):
                axis = "XYZ".index(c[0])
                if j != 0:
                    raise ValueError(f"position channels are only supported on the root, got {c} on joint {j}")
                root_pos[:, axis] = bvh.motion[:, col + k] - skel.offsets[0, axis]
        if rot_axes:
            local[:, j] = Rotation.from_euler(rot_axes, bvh.motion[:, rot_cols], degrees=True).as_matrix()
        col += len(chans)
    return forward_kinematics(skel, local, root_pos)


CMU_BVH_TO_CANONICAL = {
    "pelvis": "Hips", "r_hip": "RightHip", "r_knee": "RightKnee", "r_ankle": "RightAnkle",
    "l_hip": "LeftHip", "l_knee": "LeftKnee", "l_ankle": "LeftAnkle", "spine": "Chest2", "neck": "Neck",
    "head": "Head", "l_shoulder": "LeftShoulder", "l_elbow": "LeftElbow", "l_wrist": "LeftWrist",
    "r_shoulder": "RightShoulder", "r_elbow": "RightElbow", "r_wrist": "RightWrist",
}  # fmt: skip
CMU_BVH_FEET = ("LeftToe", "LeftToe_end", "RightToe", "RightToe_end", "LeftAnkle", "RightAnkle")


def _to_canonical(pos: np.ndarray, names: Sequence[str], mapping: dict[str, str], head_end: str) -> np.ndarray:
    """Select the canonical 17 joints from (T, J, 3) positions. Without ``head_top`` in ``mapping`` it is
    placed on the line head -> ``head_end`` at :data:`CMU_HEAD_TOP_FACTOR` times that bone."""
    out = np.empty((pos.shape[0], len(JOINTS), 3))
    for cname, sname in mapping.items():
        out[:, INDEX[cname]] = pos[:, names.index(sname)]
    if head_end:
        head, end = pos[:, names.index(mapping["head"])], pos[:, names.index(head_end)]
        out[:, INDEX["head_top"]] = head + CMU_HEAD_TOP_FACTOR * (end - head)
    return out


def bvh_joints(bvh: Bvh) -> tuple[np.ndarray, np.ndarray]:
    """Canonical joints (T, 17, 3) in mm (CMU BVH units x :data:`CMU_UNIT_MM`), not yet canonicalised,
    and the foot points (T, 6, 3) (toes, toe ends, ankles) used to find the ground."""
    pos = bvh_positions(bvh) * CMU_UNIT_MM
    names = bvh.skeleton.names
    missing = [n for n in (*CMU_BVH_TO_CANONICAL.values(), *CMU_BVH_FEET) if n not in names]
    if missing:
        raise ValueError(f"BVH skeleton lacks the CMU joints {missing}; expected CMU's 31-joint BVH conversion")
    joints = _to_canonical(pos, names, CMU_BVH_TO_CANONICAL, "Head_end")
    feet = pos[:, [names.index(n) for n in CMU_BVH_FEET]]
    return joints, feet


# ------------------------------------------------------------------------------------------ exp-map


@dataclass(frozen=True)
class ExpmapFormat:
    """An exp-map motion file layout: columns 0:3 root translation, then 3 exp-map numbers per joint
    (joint j at columns 3+3j : 6+3j, the root's first). Rotations act on row vectors in these files, so a
    joint's local rotation (column convention) is the transpose of ``expmap(r)``.

    ``unit_mm`` converts offsets and translation to mm; ``root_velocity`` says the translation columns
    hold per-frame displacements in the body frame and the root exp-map a per-frame heading change
    (Human3.6M), rather than absolute values (CMU); ``fps`` is the native rate."""

    name: str
    skeleton: Skeleton
    mapping: dict[str, str]
    head_end: str
    feet: tuple[str, ...]
    unit_mm: float
    root_velocity: bool
    fps: float

    @property
    def n_cols(self) -> int:
        return 3 + 3 * len(self.skeleton.names)


def _expmap_skeleton(parents_1based: Sequence[int], offsets: Sequence[float], names: Sequence[str]) -> Skeleton:
    return Skeleton(tuple(names), np.array(parents_1based) - 1, np.array(offsets, dtype=np.float64).reshape(-1, 3))


# Human3.6M 32-joint skeleton of Martinez et al. 2017 (github.com/una-dinosauria/human-motion-prediction,
# src/forward_kinematics.py): parents (1-based) and rest offsets in mm. Rest pose: every bone along an axis.
_H36M_NAMES = (
    "Hips", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightToe_end",
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftToe_end",
    "Spine", "Spine1", "Thorax", "Nose", "Head", "LeftShoulder",
    "LeftArm", "LeftForeArm", "LeftHand", "LeftHandThumb", "LeftThumb_end", "LeftWrist", "LeftWrist_end",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightHandThumb", "RightThumb_end",
    "RightWrist", "RightWrist_end",
)  # fmt: skip
H36M_EXPMAP = ExpmapFormat(
    name="h36m_expmap",
    skeleton=_expmap_skeleton(
        [0, 1, 2, 3, 4, 5, 1, 7, 8, 9, 10, 1, 12, 13, 14, 15, 13, 17, 18, 19, 20, 21, 20, 23, 13, 25, 26, 27,
         28, 29, 28, 31],
        [0, 0, 0, -132.948591, 0, 0, 0, -442.894612, 0, 0, -454.206447, 0, 0, 0, 162.767078, 0, 0, 74.999437,
         132.948826, 0, 0, 0, -442.894413, 0, 0, -454.206590, 0, 0, 0, 162.767426, 0, 0, 74.999948,
         0, 0.1, 0, 0, 233.383263, 0, 0, 257.077681, 0, 0, 121.134938, 0, 0, 115.002227, 0,
         0, 257.077681, 0, 0, 151.034226, 0, 0, 278.882773, 0, 0, 251.733451, 0, 0, 0, 0, 0, 0, 99.999627,
         0, 100.000188, 0, 0, 0, 0, 0, 257.077681, 0, 0, 151.031437, 0, 0, 278.892924, 0, 0, 251.728680, 0,
         0, 0, 0, 0, 0, 99.999888, 0, 137.499922, 0, 0, 0, 0],
        _H36M_NAMES,
    ),
    mapping={
        "pelvis": "Hips", "r_hip": "RightUpLeg", "r_knee": "RightLeg", "r_ankle": "RightFoot",
        "l_hip": "LeftUpLeg", "l_knee": "LeftLeg", "l_ankle": "LeftFoot", "spine": "Spine1", "neck": "Thorax",
        "head": "Nose", "head_top": "Head", "l_shoulder": "LeftArm", "l_elbow": "LeftForeArm",
        "l_wrist": "LeftHand", "r_shoulder": "RightArm", "r_elbow": "RightForeArm", "r_wrist": "RightHand",
    },
    head_end="",
    feet=("LeftToeBase", "LeftToe_end", "RightToeBase", "RightToe_end", "LeftFoot", "RightFoot"),
    unit_mm=1.0,
    root_velocity=True,
    fps=50.0,
)  # fmt: skip

# CMU 38-joint skeleton of Li et al. 2018 (github.com/chaneyddtt/Convolutional-Sequence-to-Sequence-Model-
# for-Human-Dynamics, src/forward_kinematics_cmu.py): parents (1-based) and rest offsets in CMU ASF units
# (that code multiplies them by 70; we use the ASF unit, 56.44 mm, which gives a 428 mm femur).
_CMU_NAMES = (
    "Hips", "LHipJoint", "LeftHip", "LeftKnee", "LeftAnkle", "LeftToe", "LeftToe_end",
    "RHipJoint", "RightHip", "RightKnee", "RightAnkle", "RightToe", "RightToe_end",
    "lowerback", "Chest", "Chest2", "lowerneck", "Neck", "Head", "Head_end",
    "LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist", "lhand", "LFingers", "LFingers_end", "LThumb",
    "LThumb_end", "RightCollar", "RightShoulder", "RightElbow", "RightWrist", "rhand", "RFingers",
    "RFingers_end", "RThumb", "RThumb_end",
)  # fmt: skip
CMU_EXPMAP = ExpmapFormat(
    name="cmu_expmap",
    skeleton=_expmap_skeleton(
        [0, 1, 2, 3, 4, 5, 6, 1, 8, 9, 10, 11, 12, 1, 14, 15, 16, 17, 18, 19, 16, 21, 22, 23, 24, 25, 26, 24,
         28, 16, 30, 31, 32, 33, 34, 35, 33, 37],
        [0, 0, 0, 0, 0, 0, 1.65674, -1.80282, 0.62477, 2.59720, -7.13576, 0, 2.49236, -6.84770, 0,
         0.19704, -0.54136, 2.14581, 0, 0, 1.11249, 0, 0, 0, -1.61070, -1.80282, 0.62476, -2.59502, -7.12977,
         0, -2.46780, -6.78024, 0, -0.23024, -0.63258, 2.13368, 0, 0, 1.11569, 0, 0, 0, 0.01961, 2.05450,
         -0.14112, 0.01021, 2.06436, -0.05921, 0, 0, 0, 0.00713, 1.56711, 0.14968, 0.03429, 1.56041,
         -0.10006, 0.01305, 1.62560, -0.05265, 0, 0, 0, 3.54205, 0.90436, -0.17364, 4.86513, 0, 0, 3.35554,
         0, 0, 0, 0, 0, 0.66117, 0, 0, 0.53306, 0, 0, 0, 0, 0, 0.54120, 0, 0.54120, 0, 0, 0, -3.49802,
         0.75994, -0.32616, -5.02649, 0, 0, -3.36431, 0, 0, 0, 0, 0, -0.73041, 0, 0, -0.58887, 0, 0, 0, 0,
         0, -0.59786, 0, 0.59786],
        _CMU_NAMES,
    ),
    mapping=CMU_BVH_TO_CANONICAL,
    head_end="Head_end",
    feet=CMU_BVH_FEET,
    unit_mm=CMU_UNIT_MM,
    root_velocity=False,
    fps=120.0,
)  # fmt: skip


def expmap_positions(values: np.ndarray, fmt: ExpmapFormat) -> np.ndarray:
    """World positions (T, J, 3) in mm of every joint of ``fmt``'s skeleton from exp-map rows (T, n_cols)."""
    skel = fmt.skeleton
    J = len(skel.names)
    if values.ndim != 2 or values.shape[1] != fmt.n_cols:
        raise ValueError(f"{fmt.name} rows must have {fmt.n_cols} columns, got array of shape {values.shape}")
    T = values.shape[0]
    rotvec = values[:, 3:].reshape(T * J, 3)
    local = Rotation.from_rotvec(rotvec).as_matrix().reshape(T, J, 3, 3).transpose(0, 1, 3, 2)
    trans = values[:, :3] * fmt.unit_mm
    if fmt.root_velocity:
        # per-frame body-frame displacement and heading change: integrate
        root_rot = np.empty((T, 3, 3))
        root_pos = np.empty((T, 3))
        rot, pos = np.eye(3), np.zeros(3)
        for t in range(T):
            pos = pos + rot @ trans[t]
            rot = rot @ local[t, 0]
            root_rot[t], root_pos[t] = rot, pos
        local = local.copy()
        local[:, 0] = root_rot
    else:
        root_pos = trans
    offsets_mm = Skeleton(skel.names, skel.parents, skel.offsets * fmt.unit_mm)
    return forward_kinematics(offsets_mm, local, root_pos)


def expmap_joints(values: np.ndarray, fmt: ExpmapFormat) -> tuple[np.ndarray, np.ndarray]:
    """Canonical joints (T, 17, 3) mm (not yet canonicalised) and foot points (T, 6, 3) from exp-map rows."""
    pos = expmap_positions(values, fmt)
    names = fmt.skeleton.names
    joints = _to_canonical(pos, names, fmt.mapping, fmt.head_end)
    return joints, pos[:, [names.index(n) for n in fmt.feet]]


def trajectory_up(points: np.ndarray, body_up: np.ndarray) -> np.ndarray:
    """Unit normal (3,) of the best plane through a root trajectory ``points`` (T, 3), signed to agree with
    the mean ``body_up`` (3,). For level walking this is the world's vertical, whatever the frame."""
    centred = points - points.mean(0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][2]
    return normal if normal @ body_up >= 0 else -normal


def canonicalize(joints: np.ndarray, feet: np.ndarray | None, up: np.ndarray | None = None) -> np.ndarray:
    """Put a clip in the canonical world frame: (T, 17, 3) -> (T, 17, 3) float32 mm.

    ``up`` (3,): the world's vertical in the input frame (default +y) is turned to +y; the lowest of the
    ``feet`` points (T, F, 3) over the clip goes to y = 0 (heights are kept when ``feet`` is None); the
    facing direction (right hip -> left hip, crossed with up) averaged over the first 10 frames turns to
    +z; the first pelvis goes to x = z = 0.
    """
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINTS), 3):
        raise ValueError(f"expected joints of shape (T, 17, 3), got {joints.shape}")
    rot = np.eye(3)
    if up is not None:
        rot = Rotation.align_vectors([[0.0, 1.0, 0.0]], [up / np.linalg.norm(up)])[0].as_matrix()
    left = (joints[:10, INDEX["l_hip"]] - joints[:10, INDEX["r_hip"]]).mean(0) @ rot.T
    yaw = np.arctan2(left[2], left[0])  # turning by yaw about +y maps the facing (-left_z, 0, left_x) to +z
    rot = Rotation.from_euler("y", yaw).as_matrix() @ rot
    out = joints @ rot.T
    if feet is not None:
        out[..., 1] -= (feet @ rot.T)[..., 1].min()
    out[..., [0, 2]] -= out[0, INDEX["pelvis"], [0, 2]]
    return out.astype(np.float32)


def resample(joints: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling in time of (T, ...) samples taken at ``fps_in`` to ``fps_out`` over the same span."""
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be positive, got fps_in={fps_in}, fps_out={fps_out}")
    T = joints.shape[0]
    t_out = np.arange(int(np.floor((T - 1) * fps_out / fps_in)) + 1) / fps_out
    flat = joints.reshape(T, -1)
    t_in = np.arange(T) / fps_in
    res = np.stack([np.interp(t_out, t_in, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return res.reshape(len(t_out), *joints.shape[1:]).astype(joints.dtype)


# ------------------------------------------------------------------------------- committed subset


def build_cmu_subset(data_root: str | Path, out_path: str | Path = CMU_SUBSET_PATH, fps: float = 30.0) -> dict:
    """Convert the CMU BVH walking trials and the CMU exp-map clips under ``data_root/cmu_mocap`` to
    canonical joints (mm, y up, ground 0, facing +z) at ``fps`` and save them as one npz (no pickle):
    ``joints`` (sum T, 17, 3) float32, ``lengths`` (N,), ``names``/``activities``/``sources`` (N,) str,
    ``fps`` (N,) float32. Returns a summary {source: (clips, frames)}."""
    cmu = Path(data_root) / "cmu_mocap"
    bvh_files = sorted((cmu / "bvh").glob("*.bvh"))
    exp_files = sorted((cmu / "expmap").glob("*/*/*.txt"))
    if not bvh_files or not exp_files:
        raise FileNotFoundError(f"no CMU BVH or exp-map files under {cmu} (download: {DOWNLOAD_HINT})")
    rows: list[tuple[str, str, str, np.ndarray]] = []
    for path in bvh_files:
        bvh = load_bvh(path)
        joints, feet = bvh_joints(bvh)
        rows.append((f"cmu_bvh_{path.stem}", "walking", "cmu_bvh", resample(canonicalize(joints, feet), bvh.fps, fps)))
    for path in exp_files:
        split, activity = path.parent.parent.name, path.parent.name
        # row 0 of these files is a reference pose, not motion
        values = load_expmap(path, CMU_EXPMAP.n_cols, "cmu_mocap")[1:]
        joints, feet = expmap_joints(values, CMU_EXPMAP)
        name = f"cmu_expmap_{split}_{path.stem}"
        rows.append((name, activity, "cmu_expmap", resample(canonicalize(joints, feet), CMU_EXPMAP.fps, fps)))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                joints=np.concatenate([r[3] for r in rows]).astype(np.float32),
                lengths=np.array([len(r[3]) for r in rows], dtype=np.int64),
                names=np.array([r[0] for r in rows]),
                activities=np.array([r[1] for r in rows]),
                sources=np.array([r[2] for r in rows]),
                fps=np.full(len(rows), fps, dtype=np.float32),
            )
    summary: dict[str, tuple[int, int]] = {}
    for r in rows:
        n, f = summary.get(r[2], (0, 0))
        summary[r[2]] = (n + 1, f + len(r[3]))
    return summary


def load_cmu_subset(path: str | Path = CMU_SUBSET_PATH) -> list[tuple[str, str, str, np.ndarray, float]]:
    """The committed CMU subset as (name, activity, source, joints (T, 17, 3) float32 mm, fps) tuples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: it is committed with the repository; rebuild it with "
            f"`python -m lib.world.mocap <data_root>` from the raw CMU files ({DOWNLOAD_HINT})"
        )
    with np.load(path, allow_pickle=False) as z:
        keys = {"joints", "lengths", "names", "activities", "sources", "fps"}
        if not keys <= set(z.files):
            raise ValueError(f"{path} lacks arrays {sorted(keys - set(z.files))}; rebuild it with build_cmu_subset")
        joints, lengths = z["joints"], z["lengths"]
        if joints.shape[1:] != (len(JOINTS), 3) or lengths.sum() != joints.shape[0]:
            raise ValueError(f"{path}: joints {joints.shape} do not match lengths summing to {lengths.sum()}")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return [
            (str(n), str(a), str(s), joints[b : b + k], float(f))
            for n, a, s, b, k, f in zip(
                z["names"], z["activities"], z["sources"], starts, lengths, z["fps"], strict=True
            )
        ]


if __name__ == "__main__":
    import sys

    print(build_cmu_subset(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
