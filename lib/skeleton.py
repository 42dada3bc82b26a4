"""The course's canonical 17-joint skeleton and its mappings to the datasets' joint orders.

The canonical order is the Human3.6M 17-joint order (the one most 3D work uses), with names that say
which anatomical point each joint is. Every other format is a selection of canonical joints:

- ``lsp14``: Leeds Sports Pose / LSPET (Johnson & Everingham 2010/2011).
- ``h36m17``: Human3.6M 17 (Ionescu et al. 2014), identical to canonical.
- ``jhmdb15``: JHMDB (Jhuang et al. 2013); its "belly" is our ``spine`` and "face" our ``head``.
- ``penn13``: Penn Action (Zhang et al. 2013); its "head" is our ``head`` (the head's centre).
"""

from __future__ import annotations

import numpy as np

JOINTS: tuple[str, ...] = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "spine", "neck", "head", "head_top",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip
J = len(JOINTS)
INDEX = {name: i for i, name in enumerate(JOINTS)}

# parent of each canonical joint in the kinematic tree (-1 for the root)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# bones as (parent, child) index pairs: the sticks a renderer draws
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)
# the permutation that swaps left and right (for horizontal flips)
FLIP: tuple[int, ...] = tuple(INDEX[n.replace("l_", "#").replace("r_", "l_").replace("#", "r_")] for n in JOINTS)

FORMATS: dict[str, tuple[str, ...]] = {
    "canonical": JOINTS,
    "h36m17": JOINTS,
    "lsp14": (
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
        "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
        "neck", "head_top",
    ),
    "jhmdb15": (
        "neck", "spine", "head", "r_shoulder", "l_shoulder", "r_hip", "l_hip",
        "r_elbow", "l_elbow", "r_knee", "l_knee", "r_wrist", "l_wrist", "r_ankle", "l_ankle",
    ),
    "penn13": (
        "head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
        "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
    ),
}  # fmt: skip


def format_indices(fmt: str) -> np.ndarray:
    """Indices into the canonical order that give the joints of ``fmt``, in that format's order."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown joint format {fmt!r}; expected one of {sorted(FORMATS)}")
    return np.array([INDEX[n] for n in FORMATS[fmt]], dtype=np.int64)


def to_format(joints: np.ndarray, fmt: str) -> np.ndarray:
    """Select the joints of ``fmt`` from canonical joints: (..., 17, D) -> (..., len(fmt), D)."""
    if joints.shape[-2] != J:
        raise ValueError(f"expected canonical joints with {J} joints on axis -2, got shape {joints.shape}")
    return joints[..., format_indices(fmt), :]


def format_bones(fmt: str) -> list[tuple[int, int]]:
    """Bones of the canonical tree expressed in the indices of ``fmt``.

    A joint whose parent is missing from ``fmt`` is joined to its nearest ancestor that the format has
    (LSP's ``head_top`` to its ``neck`` through the missing ``head``); one with no such ancestor is left
    unconnected.
    """
    idx = {int(c): k for k, c in enumerate(format_indices(fmt))}
    bones = []
    for child, k in idx.items():
        p = PARENTS[child]
        while p >= 0 and p not in idx:
            p = PARENTS[p]
        if p >= 0:
            bones.append((idx[p], k))
    return bones
