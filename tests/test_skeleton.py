"""Joint-order mappings between the canonical skeleton and the datasets' orders."""

from __future__ import annotations

import numpy as np
import pytest

from lib.skeleton import BONES, FLIP, FORMATS, JOINTS, PARENTS, format_bones, format_indices, to_format


def test_tree_is_rooted_and_parents_come_first():
    assert PARENTS[0] == -1 and all(0 <= p < c for c, p in enumerate(PARENTS) if c > 0)
    assert len(BONES) == len(JOINTS) - 1


def test_flip_swaps_left_and_right_and_is_an_involution():
    flip = np.array(FLIP)
    assert JOINTS[flip[JOINTS.index("l_wrist")]] == "r_wrist"
    assert JOINTS[flip[JOINTS.index("pelvis")]] == "pelvis"
    assert np.array_equal(flip[flip], np.arange(len(JOINTS)))


@pytest.mark.parametrize(
    ("fmt", "k", "name"),
    [
        ("lsp14", 0, "r_ankle"), ("lsp14", 12, "neck"), ("lsp14", 13, "head_top"),
        ("jhmdb15", 1, "spine"), ("jhmdb15", 2, "head"), ("jhmdb15", 3, "r_shoulder"), ("jhmdb15", 14, "l_ankle"),
        ("penn13", 0, "head"), ("penn13", 1, "l_shoulder"), ("penn13", 12, "r_ankle"),
        ("h36m17", 9, "head"), ("h36m17", 10, "head_top"), ("h36m17", 16, "r_wrist"),
    ],
)  # fmt: skip
def test_known_positions_in_each_format(fmt, k, name):
    joints = np.arange(len(JOINTS), dtype=float)[:, None].repeat(2, axis=1)  # joint i sits at (i, i)
    assert to_format(joints, fmt)[k, 0] == JOINTS.index(name)
    assert len(FORMATS[fmt]) == int(fmt[-2:])


def test_batched_selection_and_errors():
    x = np.random.default_rng(0).normal(size=(4, 5, 17, 3))
    assert to_format(x, "lsp14").shape == (4, 5, 14, 3)
    with pytest.raises(ValueError, match="unknown joint format 'coco'"):
        format_indices("coco")
    with pytest.raises(ValueError, match="expected canonical joints with 17"):
        to_format(x[..., :14, :], "lsp14")


def test_format_bones_bridge_missing_parents():
    lsp = FORMATS["lsp14"]
    named = {(lsp[a], lsp[b]) for a, b in format_bones("lsp14")}
    assert ("neck", "head_top") in named  # through the missing 'head'
    assert ("r_knee", "r_ankle") in named and ("r_shoulder", "r_elbow") in named
    assert not any("r_hip" == b for _, b in named)  # its only ancestor, the pelvis, is not in LSP
