"""Identities of the synthetic world: body proportions, widths and colours that never change over time.

Each :class:`Identity` scales the bones of the motion it performs (limbs by about +-10%, left and right
alike), sets the radii of the capsules its body is drawn with, and fixes its skin, hair, shirt (plain or
striped), trousers (long or shorts) and shoe colours. These are the time-invariant appearance factors
that an embedding of pose must ignore and that a disentangling model (Honari et al.) can separate.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from lib.skeleton import INDEX, J

# capsules as (name, from-joint, to-joint, garment); a sphere has from == to
CAPSULES: tuple[tuple[str, str, str, str], ...] = (
    ("belly", "pelvis", "spine", "shirt"),
    ("chest", "spine", "neck", "shirt"),
    ("shoulders", "l_shoulder", "r_shoulder", "shirt"),
    ("hips", "l_hip", "r_hip", "trousers"),
    ("r_pelvis", "pelvis", "r_hip", "trousers"),
    ("l_pelvis", "pelvis", "l_hip", "trousers"),
    ("r_thigh", "r_hip", "r_knee", "trousers"),
    ("l_thigh", "l_hip", "l_knee", "trousers"),
    ("r_shin", "r_knee", "r_ankle", "legs"),
    ("l_shin", "l_knee", "l_ankle", "legs"),
    ("r_shoe", "r_ankle", "r_ankle", "shoes"),
    ("l_shoe", "l_ankle", "l_ankle", "shoes"),
    ("r_upper_arm", "r_shoulder", "r_elbow", "shirt"),
    ("l_upper_arm", "l_shoulder", "l_elbow", "shirt"),
    ("r_forearm", "r_elbow", "r_wrist", "sleeves"),
    ("l_forearm", "l_elbow", "l_wrist", "sleeves"),
    ("r_hand", "r_wrist", "r_wrist", "skin"),
    ("l_hand", "l_wrist", "l_wrist", "skin"),
    ("neck", "neck", "head", "skin"),
    ("head", "head", "head_top", "skin"),  # drawn as a sphere between the two joints
    ("hair", "head", "head_top", "hair"),  # a sphere shifted up and back from the head
)
CAPSULE_INDEX = {c[0]: k for k, c in enumerate(CAPSULES)}
SPHERES = ("head", "hair")  # capsules whose two joints define a centre, not a segment

# bone groups scaled together (both sides alike): group -> joints whose parent bone it scales
BONE_GROUPS = {
    "thigh": ("r_knee", "l_knee"),
    "shin": ("r_ankle", "l_ankle"),
    "hip_width": ("r_hip", "l_hip"),
    "upper_arm": ("r_elbow", "l_elbow"),
    "forearm": ("r_wrist", "l_wrist"),
    "shoulder_width": ("r_shoulder", "l_shoulder"),
    "spine": ("spine", "neck"),
    "head": ("head", "head_top"),
}

SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.80, 0.60, 0.45], [0.65, 0.46, 0.33], [0.45, 0.31, 0.22]]
)


@dataclass(frozen=True)
class Identity:
    """One person of the world. Radii in mm; colours (C, 2, 3) RGB in [0, 1] (main, stripe) per capsule."""

    subject: int
    bone_scale: np.ndarray  # (17,) length factor of the bone ending at each joint (1 for the root)
    radius: np.ndarray  # (C,) capsule radii, mm
    colors: np.ndarray  # (C, 2, 3)
    stripes: np.ndarray  # (C,) stripe pairs along each capsule (0 = plain)

    @property
    def joint_tolerance(self) -> np.ndarray:
        """(17,) mm: how far in front of a joint its own body surface may lie before it counts as
        occluded (the largest radius of a capsule ending at the joint, plus 15 mm)."""
        tol = np.zeros(J)
        for k, (_, a, b, _) in enumerate(CAPSULES):
            for name in (a, b):
                tol[INDEX[name]] = max(tol[INDEX[name]], self.radius[k])
        return tol + 15.0

    def capsules(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Capsule end points ``(start, end)``, each (T, C, 3), for joints (T, 17, 3) in any right-handed
        frame (mm). The head and hair spheres get start == end at their centres."""
        a = np.array([INDEX[c[1]] for c in CAPSULES])
        b = np.array([INDEX[c[2]] for c in CAPSULES])
        start, end = joints[:, a].copy(), joints[:, b].copy()
        head = 0.5 * (joints[:, INDEX["head"]] + joints[:, INDEX["head_top"]])
        up = _unit(joints[:, INDEX["neck"]] - joints[:, INDEX["pelvis"]])
        left = joints[:, INDEX["l_hip"]] - joints[:, INDEX["r_hip"]]
        forward = _unit(np.cross(left, up))
        r = self.radius[CAPSULE_INDEX["head"]]
        hair = head + 0.22 * r * up - 0.2 * r * forward
        for name, centre in (("head", head), ("hair", hair)):
            k = CAPSULE_INDEX[name]
            start[:, k] = end[:, k] = centre
        return start, end


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)))


def make_identities(n: int, seed: int) -> list[Identity]:
    """``n`` distinct identities, deterministic in ``seed``; subject ids ``0 .. n-1``.

    Body build (a single width factor) and limb lengths vary by up to about +-10% around an average adult.
    """
    if n < 1:
        raise ValueError(f"need at least one identity, got n={n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7_171]))
    people = []
    for subject in range(n):
        scale = np.ones(J)
        for joints in BONE_GROUPS.values():
            s = rng.uniform(0.9, 1.1)
            for name in joints:
                scale[INDEX[name]] = s
        build = rng.uniform(0.85, 1.2)
        base = {
            "belly": 120, "chest": 135, "shoulders": 65, "hips": 85, "r_pelvis": 85, "l_pelvis": 85,
            "r_thigh": 72, "l_thigh": 72, "r_shin": 52, "l_shin": 52, "r_shoe": 55, "l_shoe": 55,
            "r_upper_arm": 48, "l_upper_arm": 48, "r_forearm": 40, "l_forearm": 40,
            "r_hand": 45, "l_hand": 45, "neck": 50, "head": 105, "hair": 100,
        }  # fmt: skip
        radius = np.array([base[c[0]] * (build if c[0] not in SPHERES else 1.0) for c in CAPSULES], float)
        radius[CAPSULE_INDEX["head"]] *= scale[INDEX["head"]]
        radius[CAPSULE_INDEX["hair"]] = radius[CAPSULE_INDEX["head"]] * rng.uniform(0.9, 0.98)

        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.05)
        hair = _colour(rng, (0.2, 0.8), (0.05, 0.5))
        shirt = _colour(rng, (0.3, 1.0), (0.3, 1.0))
        shirt2 = _colour(rng, (0.0, 1.0), (0.2, 1.0))
        trousers = _colour(rng, (0.1, 0.8), (0.15, 0.7))
        shoes = _colour(rng, (0.0, 0.5), (0.05, 0.9))
        shorts = rng.uniform() < 0.3
        long_sleeves = rng.uniform() < 0.5
        striped = rng.uniform() < 0.4
        garments = {
            "shirt": (shirt, shirt2),
            "sleeves": (shirt, shirt2) if long_sleeves else (skin, skin),
            "trousers": (trousers, trousers),
            "legs": (skin, skin) if shorts else (trousers, trousers),
            "shoes": (shoes, shoes),
            "skin": (skin, skin),
            "hair": (hair, hair),
        }
        colors = np.clip(np.array([garments[c[3]] for c in CAPSULES], float), 0, 1)
        stripes = np.array([3.0 if (striped and c[3] in ("shirt", "sleeves")) else 0.0 for c in CAPSULES])
        if not long_sleeves:
            stripes[[CAPSULE_INDEX["r_forearm"], CAPSULE_INDEX["l_forearm"]]] = 0
        people.append(Identity(subject, scale, radius, colors, stripes))
    return people
