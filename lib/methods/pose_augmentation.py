"""2D pose sequences from 3D motion capture seen by random cameras (Skip-Pose Vectors, Sec. 3.3).
Taught in ``notebooks/06_skip_pose_vectors.ipynb``.

A 3D clip (canonical 17 joints, mm, world y up, as :mod:`lib.world.mocap` returns them) is filmed by a static
pinhole camera placed at a random azimuth, elevation and distance, looking at the clip's mean pelvis
position; the projected 2D joints are then put in the target dataset's joint order (``penn13``,
``jhmdb15``, ...) with :func:`lib.skeleton.to_format`. Every keypoint is "visible": the pose normalisation
(:func:`lib.methods.skip_pose.normalize_sequence`) removes the camera's image scale and offset anyway. The camera
model is the synthetic world's (:mod:`lib.world.render`: ``look_at``, ``orbit_eye``, ``world_to_camera``, ``project``).

The 3D clips come from the synthetic world's motion library; when the synthetic world is also the test set,
the recordings behind its held-out sequences must stay out of them, or augmentation trains on test motion:

- :func:`held_out_recordings` -- the recordings a world's val and test sequences replay.
- :func:`augmentation_clips` -- the motion library without the excluded recordings.
- :func:`random_cameras` -- cameras on a sphere around a target.
- :func:`project_clips` -- 3D clips -> list of 2D sequences in a dataset's joint order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from lib.skeleton import INDEX, to_format
from lib.world.motion import MotionClip, motion_library, recording_of
from lib.world.render import intrinsics, look_at, orbit_eye, project, world_to_camera
from lib.world.synth import World


def held_out_recordings(world: World) -> list[str]:
    """The recordings (:func:`lib.world.motion.recording_of`) behind ``world``'s val and test sequences,
    sorted: the exclusion list for :func:`augmentation_clips`."""
    return sorted(world.recordings_of_split("val") | world.recordings_of_split("test"))


def augmentation_clips(
    profile: str,
    seed: int,
    *,
    exclude: Collection[str],
    data_root: str | Path | None = None,
    fps: float | None = None,
) -> list[MotionClip]:
    """The clips of :func:`lib.world.motion.motion_library` (``profile``, ``seed``, ``data_root``, ``fps``)
    that come from no recording in ``exclude``.

    ``exclude``: clip names or recording ids, each mapped to its recording, so every window and mirror image of
    an excluded recording, and the same CMU trial in its other conversion, are left out too (``()`` for none).
    """
    if isinstance(exclude, str):
        raise TypeError(f"exclude must be a collection of clip or recording names, got the string {exclude!r}")
    excluded = {recording_of(name) for name in exclude}
    clips = motion_library(profile, seed, data_root=data_root, fps=fps)
    return [c for c in clips if recording_of(c.name) not in excluded]


def random_cameras(
    n: int,
    target: np.ndarray,
    rng: np.random.Generator,
    distance_mm: tuple[float, float] = (3000.0, 8000.0),
    elevation_deg: tuple[float, float] = (-10.0, 40.0),
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` cameras looking at ``target`` from azimuth U[0, 360), elevation and distance uniform in the
    given ranges (degrees above the horizontal plane; mm). Returns ``R (n, 3, 3)``, ``t (n, 3)``."""
    az = rng.uniform(0, 2 * np.pi, n)
    el = np.deg2rad(rng.uniform(*elevation_deg, n))
    dist = rng.uniform(*distance_mm, n)
    cams = [look_at(orbit_eye(target, a, e, d), target) for a, e, d in zip(az, el, dist, strict=True)]
    return np.stack([c[0] for c in cams]), np.stack([c[1] for c in cams])


def project_clips(
    clips: Sequence[np.ndarray],
    fmt: str,
    views_per_clip: int,
    rng: np.random.Generator,
    focal: float = 1000.0,
    distance_mm: tuple[float, float] = (3000.0, 8000.0),
    elevation_deg: tuple[float, float] = (-10.0, 40.0),
) -> list[np.ndarray]:
    """Each 3D clip ``(T, 17, 3)`` (canonical joints, mm, y up) seen by ``views_per_clip`` random static
    cameras: a list of ``len(clips) * views_per_clip`` 2D sequences ``(T, len(fmt), 2)`` float32 in pixels,
    clip by clip.

    Cameras aim at the clip's mean pelvis position; ``distance_mm`` is measured from the sphere around that
    point holding every joint of the clip, so a walk across the room never passes behind the camera.
    """
    K = intrinsics(focal, 0, 0)  # principal point at the origin: the normalisation removes it anyway
    out = []
    for k, clip in enumerate(clips):
        clip = np.asarray(clip, np.float64)
        if clip.ndim != 3 or clip.shape[1:] != (len(INDEX), 3):
            raise ValueError(f"clips[{k}] must be (T, {len(INDEX)}, 3) canonical joints, got {clip.shape}")
        target = clip[:, INDEX["pelvis"]].mean(axis=0)
        radius = np.linalg.norm(clip - target, axis=-1).max()
        dist = (distance_mm[0] + radius, distance_mm[1] + radius)
        rots, ts = random_cameras(views_per_clip, target, rng, distance_mm=dist, elevation_deg=elevation_deg)
        for rot, t in zip(rots, ts, strict=True):
            out.append(to_format(project(world_to_camera(clip, rot, t), K), fmt).astype(np.float32))
    return out
