"""The synthetic human-motion world: mocap-driven people rendered as video with exact ground truth.

``make_world(profile, seed, **overrides)`` builds (or loads from ``data/cache/``) a :class:`World`: short
sequences, each one identity (:mod:`lib.world.people`) performing one motion clip (:mod:`lib.world.motion`, real CMU
mocap or procedural) in front of a static textured scene, filmed by a perspective camera that is either
static or tracks the person with a slow pan (:mod:`lib.world.render`). Every frame comes with exact 2D and 3D
joints, visibility, box, mask, identity, activity, sequence and camera.

Arrays of a :class:`World` (N frames of S sequences, concatenated in sequence order, H x W images):

==================  ==================  ===================================================================
``frames``          (N, H, W, 3) uint8  rendered RGB frames
``joints2d``        (N, 17, 2) float32  pixel (x, y) of the canonical joints (:mod:`lib.skeleton` order)
``joints3d``        (N, 17, 3) float32  camera-frame joints, mm (x right, y down, z forward)
``joints_world``    (N, 17, 3) float32  world joints, mm (y up, ground at y = 0)
``visible``         (N, 17) bool        in the frame and not hidden by the body (depth test)
``boxes``           (N, 4) float32      person box x0, y0, x1, y1 (pixel edges) from the mask
``masks``           (N, H, W) bool      foreground (person) mask
``seq``             (N,) int            sequence id; ``frame_index`` (N,) position in the sequence
``subject``         (N,) int            identity; ``activity`` (N,) indexes ``activity_names``
``cam_R, cam_t``    (N, 3, 3), (N, 3)   world -> camera: ``X_cam = R @ X_world + t`` (mm)
``K``               (S, 3, 3)           intrinsics per sequence
``fps``             (S,) float          frame rate per sequence
``backgrounds``     (S, H, W, 3) uint8  clean background (the first frame's, for a moving camera)
``camera_moving``   (S,) bool           whether the camera tracks/pans (then the background moves)
``seq_clip``        (S,) str            motion clip each sequence was cut from; ``seq_source`` its source
==================  ==================  ===================================================================

Views: :meth:`World.sequence_frames`, :meth:`World.split_indices`, :meth:`World.split_sequences`,
:meth:`World.clips_of_split`, :meth:`World.recordings_of_split`, :meth:`World.person_crops`,
:meth:`World.pose_sequences`, :meth:`World.lsp_stills`, :meth:`World.class_statistics`, and the torch datasets
:class:`FrameDataset` and :class:`ChunkDataset`.

Splits hold out people and motion: by subject (``split_of_subject``: no identity appears in two splits) and by
recording (each activity's recordings, :func:`lib.world.motion.recording_of`, are divided between the
splits before sequences draw from them: no motion recording, real or procedural, appears in two splits).
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.images import crop_coordinates, square_crop
from lib.runtime import REPO_ROOT, atomic_path, find_data_root, resolve_profile, source_fingerprint
from lib.skeleton import J, to_format
from lib.world.motion import recording_of
from lib.world.people import Identity, make_identities
from lib.world.render import (
    intrinsics,
    joint_visibility,
    look_at,
    mask_boxes,
    orbit_eye,
    project_batched,
    render_background,
    render_capsules,
    sample_scene,
    world_to_camera,
)

GENERATOR_VERSION = 2  # 2: splits by recording as well as by subject
CACHE_DIR = REPO_ROOT / "data" / "cache"
SPLITS = ("train", "val", "test")

# every parameter of the world; make_world(**overrides) accepts exactly these names
DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {
        "image_size": 64,  # pixels (square frames), 64 .. 256
        "seq_len": 40,  # frames per sequence (shorter if the clip is shorter)
        "sequences_per_activity": 8,
        "n_subjects": 12,
        "split_fractions": (0.6, 0.2, 0.2),  # train, val, test share of the subjects and of each activity's recordings
        "moving_camera_share": 0.3,  # share of sequences with a tracking, panning camera
        "activities": None,  # None = all activities of the motion library, else a tuple of names
        "h36m_walking": False,  # add Human3.6M walking from <data_root>/h36m_expmap (never committed)
        "clutter": 6,  # decals on the ground
        "noise": 0.0,  # std of Gaussian pixel noise, in grey levels
        "person_height": (0.45, 0.8),  # range of the person's height as a share of the image height
        "elevation_deg": (0.0, 30.0),
        "focal": (1.1, 1.7),  # focal length range in units of the image size
    },
    "full": {
        "image_size": 128,
        "seq_len": 64,
        "sequences_per_activity": 48,
        "n_subjects": 20,
        "split_fractions": (0.6, 0.2, 0.2),
        "moving_camera_share": 0.3,
        "activities": None,
        "h36m_walking": False,
        "clutter": 10,
        "noise": 0.0,
        "person_height": (0.45, 0.8),
        "elevation_deg": (0.0, 30.0),
        "focal": (1.1, 1.7),
    },
}
STATIC_ACTIVITIES = ("diving",)  # always filmed by a static camera (the gravity check needs it)
FIT_MARGIN = 0.04  # share of the image kept free around a static camera's whole trajectory


# ---------------------------------------------------------------------------------------------------------
# the world


@dataclass
class World:
    """All frames and annotations of one synthetic world (see the module docstring for the arrays)."""

    frames: np.ndarray
    joints2d: np.ndarray
    joints3d: np.ndarray
    joints_world: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    seq: np.ndarray
    frame_index: np.ndarray
    subject: np.ndarray
    activity: np.ndarray
    cam_R: np.ndarray
    cam_t: np.ndarray
    K: np.ndarray
    fps: np.ndarray
    backgrounds: np.ndarray
    camera_moving: np.ndarray
    seq_clip: np.ndarray
    seq_source: np.ndarray
    activity_names: tuple[str, ...]
    split_of_subject: dict[int, str]
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = np.bincount(self.seq, minlength=self.n_sequences)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])

    @property
    def n_sequences(self) -> int:
        return len(self.fps)

    @property
    def image_size(self) -> int:
        return self.frames.shape[1]

    @property
    def seq_activity(self) -> np.ndarray:
        """(S,) activity of each sequence."""
        return self.activity[self._offsets[:-1]]

    @property
    def seq_subject(self) -> np.ndarray:
        """(S,) subject of each sequence."""
        return self.subject[self._offsets[:-1]]

    def sequence_frames(self, s: int) -> np.ndarray:
        """(T_s,) frame indices of sequence ``s`` in time order."""
        if not 0 <= s < self.n_sequences:
            raise IndexError(f"sequence {s} out of range 0..{self.n_sequences - 1}")
        return np.arange(self._offsets[s], self._offsets[s + 1])

    def split_indices(self, split: str) -> np.ndarray:
        """Frame indices of the subjects in ``split`` ('train', 'val' or 'test')."""
        return np.flatnonzero(np.isin(self.subject, self._split_subjects(split)))

    def split_sequences(self, split: str) -> np.ndarray:
        """Sequence ids of the subjects in ``split``."""
        return np.flatnonzero(np.isin(self.seq_subject, self._split_subjects(split)))

    def _split_subjects(self, split: str) -> list[int]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        return [s for s, sp in self.split_of_subject.items() if sp == split]

    def clips_of_split(self, split: str) -> set[str]:
        """Names of the motion clips the sequences of ``split`` were cut from."""
        return set(self.seq_clip[self.split_sequences(split)].tolist())

    def recordings_of_split(self, split: str) -> set[str]:
        """The recordings (:func:`lib.world.motion.recording_of`) behind the sequences of ``split``; disjoint
        between the splits."""
        return {recording_of(c) for c in self.clips_of_split(split)}

    def crop_boxes(self, indices: np.ndarray | None = None, margin: float = 1.2) -> np.ndarray:
        """(n, 3) square crop windows ``cx, cy, side`` (pixels) centred on the person boxes, side =
        ``margin`` x the longer box side (at least 8 px)."""
        b = self.boxes if indices is None else self.boxes[indices]
        centre = 0.5 * (b[:, :2] + b[:, 2:])
        side = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * margin, 8.0)
        return np.column_stack([centre, side])

    def person_crops(
        self, size: int, indices: np.ndarray | None = None, margin: float = 1.2
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box-centred square crops resized to ``size`` px, and the 2D joints in crop pixels.

        Returns crops (n, size, size, 3) uint8 and joints2d_in_crop (n, 17, 2) float32, for ``indices``
        (default all frames). Outside the image the border pixels are repeated.
        """
        idx = np.arange(len(self.frames)) if indices is None else np.asarray(indices)
        win = self.crop_boxes(idx, margin)
        crops = np.stack([square_crop(self.frames[i], w, size) for i, w in zip(idx, win, strict=True)])
        return crops, crop_coordinates(self.joints2d[idx], win, size)

    def pose_sequences(
        self, dim: int = 2, fmt: str = "canonical", sequences: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """One (T_s, J_fmt, dim) float32 array per sequence: 2D pixels (dim=2) or camera-frame mm (dim=3)."""
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 (pixels) or 3 (camera mm), got {dim}")
        src = self.joints2d if dim == 2 else self.joints3d
        ids = range(self.n_sequences) if sequences is None else sequences
        return [to_format(src[self.sequence_frames(int(s))], fmt).astype(np.float32) for s in ids]

    def lsp_stills(self, split: str = "test", size: int = 64, stride: int = 5, margin: float = 1.2) -> Stills:
        """Person-centred still images with LSP-14 joints (every ``stride``-th frame of ``split``)."""
        idx = self.split_indices(split)
        idx = idx[self.frame_index[idx] % stride == 0]
        crops, joints = self.person_crops(size, idx, margin)
        return Stills(
            images=crops,
            joints=to_format(joints, "lsp14"),
            visible=to_format(self.visible[idx][..., None], "lsp14")[..., 0],
            index=idx,
            subject=self.subject[idx],
            activity=self.activity[idx],
        )

    def class_statistics(self) -> list[dict[str, Any]]:
        """Per activity: sequences, frames, fps range, subjects, share with a moving camera, source."""
        rows = []
        for a, name in enumerate(self.activity_names):
            seqs = np.flatnonzero(self.seq_activity == a)
            rows.append(
                {
                    "activity": name,
                    "sequences": len(seqs),
                    "frames": int(np.sum(self.activity == a)),
                    "fps": (float(self.fps[seqs].min()), float(self.fps[seqs].max())) if len(seqs) else None,
                    "subjects": len(set(self.seq_subject[seqs].tolist())),
                    "moving_camera": float(self.camera_moving[seqs].mean()) if len(seqs) else 0.0,
                    "source": ", ".join(sorted(set(self.seq_source[seqs].tolist()))),
                }
            )
        return rows

    # -- storage ---------------------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as plain numpy arrays (what the cache file holds)."""
        subjects = np.array(sorted(self.split_of_subject), dtype=np.int64)
        return {
            **{name: getattr(self, name) for name in ARRAY_FIELDS},
            "activity_names": np.array(self.activity_names, dtype=str),
            "split_subjects": subjects,
            "split_names": np.array([self.split_of_subject[int(s)] for s in subjects], dtype=str),
            "config_json": np.array(json.dumps(self.config, sort_keys=True)),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> World:
        """Inverse of :meth:`arrays`; raises ``ValueError`` naming what is missing or inconsistent."""
        missing = [k for k in (*ARRAY_FIELDS, *META_FIELDS) if k not in arrays]
        if missing:
            raise ValueError(f"missing arrays {missing}")
        a = {k: arrays[k] for k in ARRAY_FIELDS}
        n, s = len(a["frames"]), len(a["fps"])
        if a["frames"].ndim != 4 or a["frames"].dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got {a['frames'].shape} {a['frames'].dtype}")
        h, w = a["frames"].shape[1:3]
        expect = {
            "joints2d": (n, J, 2), "joints3d": (n, J, 3), "joints_world": (n, J, 3), "visible": (n, J),
            "boxes": (n, 4), "masks": (n, h, w), "seq": (n,), "frame_index": (n,), "subject": (n,),
            "activity": (n,), "cam_R": (n, 3, 3), "cam_t": (n, 3), "K": (s, 3, 3),
            "backgrounds": (s, h, w, 3), "camera_moving": (s,), "seq_clip": (s,), "seq_source": (s,),
        }  # fmt: skip
        bad = {k: (a[k].shape, v) for k, v in expect.items() if a[k].shape != v}
        if bad:
            raise ValueError(f"wrong shapes (got, expected): {bad}")
        if n and (np.any(np.diff(a["seq"]) < 0) or a["seq"].max() >= s):
            raise ValueError("seq must be sorted and index the per-sequence arrays")
        return cls(
            **a,
            activity_names=tuple(str(x) for x in arrays["activity_names"]),
            split_of_subject={
                int(k): str(v) for k, v in zip(arrays["split_subjects"], arrays["split_names"], strict=True)
            },
            config=json.loads(str(arrays["config_json"])),
        )


ARRAY_FIELDS = (
    "frames", "joints2d", "joints3d", "joints_world", "visible", "boxes", "masks", "seq", "frame_index",
    "subject", "activity", "cam_R", "cam_t", "K", "fps", "backgrounds", "camera_moving", "seq_clip",
    "seq_source",
)  # fmt: skip
META_FIELDS = ("activity_names", "split_subjects", "split_names", "config_json")


@dataclass
class Stills:
    """Still person crops with LSP-14 joints: images (n, s, s, 3) uint8, joints (n, 14, 2) crop pixels,
    visible (n, 14) bool, index (n,) frame index in the world, subject (n,), activity (n,)."""

    images: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    index: np.ndarray
    subject: np.ndarray
    activity: np.ndarray


# ---------------------------------------------------------------------------------------------------------
# building a world


def world_config(profile: str = "smoke", **overrides: Any) -> dict[str, Any]:
    """The full parameter set for ``profile`` ('smoke' | 'full' | 'auto') with ``overrides`` applied.

    Raises ``TypeError`` listing the valid names when an override is unknown, ``ValueError`` on bad values.
    """
    prof = resolve_profile(profile)
    config = dict(DEFAULTS[prof.name])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise TypeError(f"unknown world parameter(s) {unknown}; valid names are {sorted(config)}")
    config.update(overrides)
    if not 64 <= int(config["image_size"]) <= 256:
        raise ValueError(f"image_size must be in 64..256 pixels, got {config['image_size']}")
    if int(config["seq_len"]) < 2 or int(config["sequences_per_activity"]) < 1:
        raise ValueError("seq_len must be >= 2 and sequences_per_activity >= 1")
    if int(config["n_subjects"]) < 3:
        raise ValueError(f"n_subjects must be >= 3 (one per split), got {config['n_subjects']}")
    if not 0 <= float(config["moving_camera_share"]) <= 1:
        raise ValueError(f"moving_camera_share must be in [0, 1], got {config['moving_camera_share']}")
    if config["activities"] is not None:
        config["activities"] = tuple(config["activities"])
    config["profile"] = prof.name
    return json.loads(json.dumps(config))  # tuples -> lists, exactly as stored in the cache


def make_world(
    profile: str = "smoke",
    seed: int = 0,
    data_root: str | Path | None = None,
    cache: bool = True,
    **overrides: Any,
) -> World:
    """The synthetic world for ``profile`` and ``seed``, loaded from ``data/cache/`` when possible.

    Args:
        profile: 'smoke' (64 px, about 3k frames), 'full' (128 px, tens of thousands) or 'auto'.
        seed: drives everything; the same seed gives byte-identical arrays.
        data_root: where the Human3.6M walking files live, read only with ``h36m_walking=True`` (default
            :func:`lib.runtime.find_data_root`). Otherwise the world is made from the mocap committed under
            ``data/mocap`` and procedural motion alone, so it is the same for every user.
        cache: read and write the cache file (a stale or corrupt one is regenerated with a warning).
        overrides: any of the names in ``DEFAULTS`` (e.g. ``image_size=96``).
    """
    config = world_config(profile, **overrides)
    root = str(find_data_root(data_root)) if config["h36m_walking"] else None
    from lib.world import motion

    key = {
        "generator_version": GENERATOR_VERSION,
        "sources": world_fingerprint(),
        "seed": int(seed),
        "data_root": root,
        **config,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"world_{config['profile']}_s{seed}_{digest}.npz"
    if cache and path.exists():
        try:
            return load_world(path, key)
        except Exception as e:  # noqa: BLE001 -- any unreadable or mismatched file is regenerated
            warnings.warn(f"regenerating the synthetic world: cache file {path} is unusable ({e})", stacklevel=2)
    clips = motion.motion_library(config["profile"], seed, data_root=root, h36m=config["h36m_walking"])
    world = generate_world(clips, key, seed, motion.retarget)
    if cache:
        save_world(world, path)
    return world


def world_fingerprint() -> str:
    """A hash of the code and committed motion data the world is made from (the generator and motion
    modules, the CMU subset), so that a cache file written by other code is never reused."""
    from lib.world import mocap, motion, people, render

    return source_fingerprint([mocap, motion, people, render, Path(__file__), mocap.CMU_SUBSET_PATH])


def save_world(world: World, path: str | Path) -> Path:
    """Write ``world`` as an uncompressed ``.npz`` (no pickle), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **world.arrays())
    return path


def load_world(path: str | Path, expected_config: dict[str, Any] | None = None) -> World:
    """Read a world written by :func:`save_world`; raises ``ValueError`` naming the file when it is corrupt,
    incomplete, or (given ``expected_config``) written for another configuration or generator version."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a readable .npz ({type(e).__name__}: {e})") from e
    try:
        world = World.from_arrays(arrays)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: {e}") from e
    if expected_config is not None and world.config != json.loads(json.dumps(expected_config)):
        raise ValueError(f"{path} was written for another configuration or generator version")
    return world


def split_counts(n: int, fractions: tuple[float, float, float], what: str) -> tuple[int, int, int]:
    """How many of ``n`` items (subjects, recordings) go to train, val and test: val and test get their share
    of ``fractions`` rounded, at least one each, train the rest; ``ValueError`` naming ``what`` when train
    would get none."""
    frac = np.asarray(fractions, float) / np.sum(fractions)
    n_val = max(1, round(frac[1] * n))
    n_test = max(1, round(frac[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"{n} {what} cannot be split by {tuple(fractions)} into train/val/test with at least one each "
            f"(val {n_val}, test {n_test} would leave train {n_train})"
        )
    return n_train, n_val, n_test


def assign_subjects(
    n_sequences: int, n_subjects: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> tuple[dict[int, str], np.ndarray]:
    """Split subjects into train/val/test (at least one each) and give each of ``n_sequences`` sequences of
    one activity a subject, so that every split gets its share of the sequences.

    Returns ``(split_of_subject, subjects (n_sequences,))``; the split of subjects is fixed by their ids.
    """
    frac = np.asarray(fractions, float) / np.sum(fractions)
    n_train, n_val, _ = split_counts(n_subjects, fractions, "subjects")
    split_of_subject = {s: ("train" if s < n_train else "val" if s < n_train + n_val else "test")
                        for s in range(n_subjects)}  # fmt: skip
    groups = {sp: [s for s, v in split_of_subject.items() if v == sp] for sp in SPLITS}
    # the split of each sequence: a deterministic interleaving that follows the fractions
    counts = np.zeros(3)
    subjects = np.empty(n_sequences, np.int64)
    offsets = {sp: int(rng.integers(len(groups[sp]))) for sp in SPLITS}
    used = dict.fromkeys(SPLITS, 0)
    for k in range(n_sequences):
        i = int(np.argmax(frac * (k + 1) - counts))
        counts[i] += 1
        sp = SPLITS[i]
        subjects[k] = groups[sp][(offsets[sp] + used[sp]) % len(groups[sp])]
        used[sp] += 1
    return split_of_subject, subjects


def split_recordings(
    clips: list, fractions: tuple[float, float, float], rng: np.random.Generator, activity: str
) -> dict[str, list]:
    """Divide one activity's ``clips`` between train/val/test by recording (:func:`lib.world.motion.recording_of`:
    every window and mirror image of a recording goes with it), in the shares of ``fractions`` with at least
    one recording per split, the recordings shuffled by ``rng``. Returns each split's clips in a random order.

    Raises ``ValueError`` naming ``activity`` and its recordings when there are too few for three splits.
    """
    recordings = sorted({recording_of(c.name) for c in clips})
    try:
        counts = split_counts(len(recordings), fractions, f"recordings of activity {activity!r}")
    except ValueError as e:
        raise ValueError(
            f"{e}; its recordings are {recordings}: held-out splits need motion no training sequence uses, "
            "so give the motion library more clips of it or leave it out (activities=...)"
        ) from None
    shuffled = [recordings[i] for i in rng.permutation(len(recordings))]
    bounds = np.cumsum([0, *counts])
    split_of = {r: SPLITS[i] for i in range(3) for r in shuffled[bounds[i] : bounds[i + 1]]}
    out = {}
    for sp in SPLITS:
        mine = [c for c in clips if split_of[recording_of(c.name)] == sp]
        out[sp] = [mine[i] for i in rng.permutation(len(mine))]
    return out


def generate_world(clips: list, key: dict[str, Any], seed: int, retarget) -> World:
    """Render a world from motion ``clips`` (objects with ``name, activity, joints (T, 17, 3) mm y-up,
    fps, source``) with the parameters in ``key`` (see :func:`world_config`), deterministic in ``seed``.

    Splits hold out people (:func:`assign_subjects`) and motion (:func:`split_recordings`): a sequence of a
    split is cut from a clip of that split, the split's clips taken in turn. ``retarget(joints, bone_scale)``
    gives each identity its own bone lengths.
    """
    size = int(key["image_size"])
    # real motion's activities first (alphabetically), then the procedural ones
    procedural = {c.activity: c.source == "procedural" for c in clips}
    activity_names = tuple(sorted(procedural, key=lambda a: (procedural[a], a)))
    if key["activities"] is not None:
        unknown = sorted(set(key["activities"]) - set(activity_names))
        if unknown:
            raise ValueError(f"unknown activities {unknown}; the motion library has {list(activity_names)}")
        activity_names = tuple(a for a in activity_names if a in key["activities"])
    people = make_identities(int(key["n_subjects"]), seed)
    ss = np.random.SeedSequence([seed, 31_337])
    plan_rng = np.random.default_rng(ss.spawn(1)[0])
    per_act = int(key["sequences_per_activity"])
    fractions = tuple(key["split_fractions"])

    plans = []
    split_of_subject: dict[int, str] = {}
    for a, name in enumerate(activity_names):
        split_of_subject, subjects = assign_subjects(per_act, int(key["n_subjects"]), fractions, plan_rng)
        pools = split_recordings([c for c in clips if c.activity == name], fractions, plan_rng, name)
        used = dict.fromkeys(SPLITS, 0)
        for k in range(per_act):
            sp = split_of_subject[int(subjects[k])]
            plans.append((a, pools[sp][used[sp] % len(pools[sp])], int(subjects[k])))
            used[sp] += 1

    out: dict[str, list] = {k: [] for k in ARRAY_FIELDS}
    seq_rngs = np.random.SeedSequence([seed, 4_242]).spawn(len(plans))
    for s, (a, clip, subject) in enumerate(plans):
        rng = np.random.default_rng(seq_rngs[s])
        seq = render_sequence(clip, people[subject], key, rng, size, retarget)
        T = len(seq["frames"])
        seq.update(seq=np.full(T, s), frame_index=np.arange(T), subject=np.full(T, subject), activity=np.full(T, a))
        for k in ARRAY_FIELDS:
            out[k].append(seq[k])
    per_sequence = ("K", "fps", "backgrounds", "camera_moving", "seq_clip", "seq_source")
    arrays = {k: (np.stack(v) if k in per_sequence else np.concatenate(v)) for k, v in out.items()}
    dtypes = {"joints2d": np.float32, "joints3d": np.float32, "joints_world": np.float32,
              "boxes": np.float32, "cam_R": np.float32, "cam_t": np.float32, "K": np.float32,
              "fps": np.float64, "seq": np.int64, "frame_index": np.int64, "subject": np.int64,
              "activity": np.int64}  # fmt: skip
    for k, dt in dtypes.items():
        arrays[k] = arrays[k].astype(dt)
    arrays["seq_clip"] = arrays["seq_clip"].astype(str)
    arrays["seq_source"] = arrays["seq_source"].astype(str)
    return World(**arrays, activity_names=activity_names, split_of_subject=split_of_subject, config=dict(key))


def render_sequence(clip, person: Identity, key: dict[str, Any], rng: np.random.Generator, size: int, retarget):
    """Cut, retarget, film and render one sequence; returns its per-frame and per-sequence arrays."""
    seq_len = int(key["seq_len"])
    T = min(seq_len, len(clip.joints))
    start = int(rng.integers(len(clip.joints) - T + 1))
    joints = retarget(np.asarray(clip.joints[start : start + T], float), person.bone_scale)
    joints = joints - np.array([joints[0, 0, 0], 0.0, joints[0, 0, 2]])  # start above the origin

    moving = clip.activity not in STATIC_ACTIVITIES and rng.uniform() < float(key["moving_camera_share"])
    focal = size * rng.uniform(*key["focal"])
    K = intrinsics(focal, size, size)
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = np.deg2rad(rng.uniform(*key["elevation_deg"]))
    pan = rng.uniform(-0.4, 0.4) if moving else 0.0
    height = rng.uniform(*key["person_height"])
    stature = np.ptp(joints[..., 1], axis=1).max() + 150.0  # tallest extent, plus the head's and feet's
    d_person = focal * stature / (height * size)

    if moving:
        root = joints[:, 0]
        win = max(3, int(round(float(clip.fps) * 0.5)) | 1)
        pad = np.pad(root, ((win // 2, win // 2), (0, 0)), mode="edge")
        smooth = np.stack([np.convolve(pad[:, i], np.ones(win) / win, mode="valid") for i in range(3)], -1)
        target = np.column_stack([smooth[:, 0], np.full(T, np.median(root[:, 1])), smooth[:, 2]])
        az = azimuth + pan * np.linspace(0, 1, T)

        def cameras(d):
            return _stack_cams([look_at(orbit_eye(target[t], az[t], elevation, d), target[t]) for t in range(T)])

        distance = d_person
    else:
        lo, hi = joints.reshape(-1, 3).min(0), joints.reshape(-1, 3).max(0)
        target = 0.5 * (lo + hi)

        def cameras(d):
            R, t = look_at(orbit_eye(target, azimuth, elevation, d), target)
            return np.broadcast_to(R, (T, 3, 3)), np.broadcast_to(t, (T, 3))

        distance = _fit_distance(joints, cameras, K, size, d_person)
    R, t = cameras(distance)
    R, t = np.ascontiguousarray(R), np.ascontiguousarray(t)
    cam = world_to_camera(joints, R, t)
    starts, ends = person.capsules(cam)
    near = min(starts[..., 2].min(), ends[..., 2].min()) - person.radius.max()
    if near < 200:  # a motion that walks into the camera: back off until everything is in front
        distance += 200 - near
        R, t = (np.ascontiguousarray(x) for x in cameras(distance))
        cam = world_to_camera(joints, R, t)
        starts, ends = person.capsules(cam)

    scene = sample_scene(rng, int(key["clutter"]))
    if moving:
        bg = np.stack([render_background(scene, K, R[i], t[i], size, size) for i in range(T)])
    else:
        bg = np.broadcast_to(render_background(scene, K, R[0], t[0], size, size), (T, size, size, 3))
    Ks = np.broadcast_to(K, (T, 3, 3))
    image, depth = render_capsules(starts, ends, person.radius, person.colors, Ks, bg, person.stripes)
    if float(key["noise"]) > 0:
        image = image + rng.normal(0, float(key["noise"]) / 255, image.shape)
    frames = _to_uint8(image)
    joints2d = project_batched(cam, Ks)
    visible = joint_visibility(cam, joints2d, depth, person.joint_tolerance)
    masks = np.isfinite(depth)
    fallback = np.column_stack([joints2d.min(1), joints2d.max(1)]).clip(0, size)
    return {
        "frames": frames,
        "joints2d": joints2d,
        "joints3d": cam,
        "joints_world": joints,
        "visible": visible,
        "boxes": mask_boxes(masks, fallback),
        "masks": masks,
        "cam_R": R,
        "cam_t": t,
        "K": K,
        "fps": float(clip.fps),
        "backgrounds": _to_uint8(bg[0]),
        "camera_moving": bool(moving),
        "seq_clip": str(clip.name),
        "seq_source": str(clip.source),
    }


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(image) * 255), 0, 255).astype(np.uint8)


def _stack_cams(cams: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([c[0] for c in cams]), np.stack([c[1] for c in cams])


def _fit_distance(joints: np.ndarray, cameras, K: np.ndarray, size: int, d_person: float) -> float:
    """The smallest distance >= ``d_person`` (up to 3x) at which a static camera sees every joint of the
    whole sequence inside the image with a margin; 3x ``d_person`` if none does."""
    lo, hi = FIT_MARGIN * size, (1 - FIT_MARGIN) * size
    for d in d_person * np.geomspace(1.0, 3.0, 16):
        R, t = cameras(d)
        cam = joints @ R[0].T + t[0]
        if np.any(cam[..., 2] <= 0):
            continue
        uv = project_batched(cam[None], K[None])[0]
        if uv.min() >= lo and uv.max() <= hi:
            return float(d)
    return float(d_person * 3.0)


# ---------------------------------------------------------------------------------------------------------
# torch datasets


def _image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, -3))).float() / 255


class FrameDataset(Dataset):
    """Single frames with their annotations.

    Each item is a dict: ``image`` (3, s, s) float in [0, 1] (box-centred crop of ``crop_size`` px, or the
    whole frame when ``crop_size`` is None), ``joints2d`` (J, 2) in that image's pixels, ``visible`` (J,),
    ``joints3d`` (J, 3) camera mm, and ints ``subject``, ``activity``, ``seq``, ``frame_index``, ``index``.
    ``fmt`` picks the joint format (:func:`lib.skeleton.to_format`). Crops are computed once, up front, and
    kept as uint8; images are converted to float per item.
    """

    def __init__(self, world: World, split: str | None = None, crop_size: int | None = 64, fmt: str = "canonical"):
        self.world = world
        self.indices = np.arange(len(world.frames)) if split is None else world.split_indices(split)
        if crop_size is None:
            self.images, joints = None, world.joints2d[self.indices]
        else:
            self.images, joints = world.person_crops(crop_size, self.indices)
        self.joints2d = torch.from_numpy(to_format(joints, fmt))
        self.visible = torch.from_numpy(to_format(world.visible[self.indices][..., None], fmt)[..., 0])
        self.joints3d = torch.from_numpy(to_format(world.joints3d[self.indices], fmt))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = int(self.indices[k])
        w = self.world
        return {
            "image": _image_tensor(self.world.frames[i] if self.images is None else self.images[k]),
            "joints2d": self.joints2d[k],
            "visible": self.visible[k],
            "joints3d": self.joints3d[k],
            "subject": int(w.subject[i]),
            "activity": int(w.activity[i]),
            "seq": int(w.seq[i]),
            "frame_index": int(w.frame_index[i]),
            "index": i,
        }


class ChunkDataset(Dataset):
    """Chunks of ``length`` consecutive frames of one sequence, starting every ``stride`` frames.

    Each item is a dict: ``poses`` (length, J, dim) float32 (2D full-frame pixels or 3D camera mm, format
    ``fmt``),
    ``visible`` (length, J), ``images`` (length, 3, s, s) crops when ``crop_size`` is given, and ints
    ``seq``, ``start`` (frame index of the first frame), ``subject``, ``activity``.
    """

    def __init__(
        self,
        world: World,
        length: int,
        split: str | None = None,
        stride: int = 1,
        dim: int = 2,
        fmt: str = "canonical",
        crop_size: int | None = None,
    ):
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be >= 1, got {length}, {stride}")
        self.world, self.length, self.crop_size = world, length, crop_size
        seqs = range(world.n_sequences) if split is None else world.split_sequences(split)
        self.starts = [
            (int(s), int(f0))
            for s in seqs
            for f0 in world.sequence_frames(int(s))[: max(0, len(world.sequence_frames(int(s))) - length + 1)][::stride]
        ]
        self.poses = torch.from_numpy(to_format(world.joints2d if dim == 2 else world.joints3d, fmt))
        self.visible = torch.from_numpy(to_format(world.visible[..., None], fmt)[..., 0])

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> dict[str, Any]:
        s, f0 = self.starts[k]
        w = self.world
        idx = np.arange(f0, f0 + self.length)
        item = {
            "poses": self.poses[idx],
            "visible": self.visible[idx],
            "seq": s,
            "start": int(w.frame_index[f0]),
            "subject": int(w.subject[f0]),
            "activity": int(w.activity[f0]),
        }
        if self.crop_size is not None:
            item["images"] = _image_tensor(w.person_crops(self.crop_size, idx)[0])
        return item
