"""Tests of the drawing helpers: what is drawn where, in which style and colour."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lib.skeleton import FORMATS, INDEX, format_bones  # noqa: E402
from lib.viz import bone_colours, draw_box, draw_skeleton, draw_skeleton_3d, filmstrip, montage  # noqa: E402


def test_draw_skeleton_draws_each_bone_between_its_joints():
    fig, ax = plt.subplots()
    joints = np.arange(14 * 2, dtype=float).reshape(14, 2)
    visible = np.ones(14, bool)
    visible[FORMATS["lsp14"].index("l_wrist")] = False
    lines = draw_skeleton(ax, joints, "lsp14", visible)
    bones = format_bones("lsp14")
    assert len(lines) == len(bones) == 11  # 4 leg, 4 arm, 2 shoulder-neck, neck-head_top (no pelvis)
    for line, (p, c) in zip(lines, bones, strict=True):
        np.testing.assert_array_equal(np.column_stack(line.get_data()), joints[[p, c]])
        hidden = not (visible[p] and visible[c])
        assert (line.get_linestyle() == "--") == hidden
    plt.close(fig)


def test_bone_colours_follow_the_side():
    colours = dict(zip(format_bones("canonical"), bone_colours("canonical"), strict=True))
    assert colours[(INDEX["l_elbow"], INDEX["l_wrist"])] == "tab:blue"
    assert colours[(INDEX["r_hip"], INDEX["r_knee"])] == "tab:red"
    assert colours[(INDEX["spine"], INDEX["neck"])] == "tab:green"


def test_wrong_joint_count_is_a_clear_error():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"\(13, 2\) for format 'penn13'"):
        draw_skeleton(ax, np.zeros((17, 2)), "penn13")
    plt.close(fig)


def test_box_and_3d_skeleton():
    fig = plt.figure()
    ax = fig.add_subplot(1, 2, 1)
    line = draw_box(ax, (1, 2, 5, 7))
    np.testing.assert_array_equal(np.column_stack(line.get_data()), [[1, 2], [5, 2], [5, 7], [1, 7], [1, 2]])
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    joints = np.random.default_rng(0).normal(size=(17, 3))
    lines = draw_skeleton_3d(ax3, joints)
    x, z, y = lines[0]._verts3d  # plotted as (x, z, y): world y up is the plot's vertical axis
    p, c = format_bones("canonical")[0]
    np.testing.assert_allclose(np.column_stack([x, y, z]), joints[[p, c]])
    plt.close(fig)


def test_montage_and_filmstrip_layout():
    images = np.zeros((5, 8, 8, 3), np.uint8)
    fig = montage(images, ncols=3, titles=list("abcde"))
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5 and shown[4].get_title() == "e"
    plt.close(fig)
    joints = np.full((10, 17, 2), 4.0)
    fig = filmstrip(np.zeros((10, 8, 8, 3)), step=3, joints2d=joints)
    assert [ax.get_title() for ax in fig.axes] == ["t=0", "t=3", "t=6", "t=9"]
    assert all(len(ax.lines) == 16 for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one image"):
        montage(np.zeros((0, 8, 8, 3)))


def test_explore_draws_once_with_the_initial_values_or_builds_the_widget(capsys):
    import ipywidgets as widgets

    from lib.viz import explore

    calls = []

    def view(s, kind, k):  # no defaults: the controls decide (a default would be the initial value)
        calls.append((s, kind, k))

    values = explore(view, False, s=widgets.IntSlider(3, 0, 9), kind=["b", "c"], k=(0, 10))
    assert values == {"s": 3, "kind": "b", "k": 5} and calls == [(3, "b", 5)]
    assert "explorer drawn once" in capsys.readouterr().out
    assert explore(view, True, s=widgets.IntSlider(4, 0, 9), kind=["c"], k=(2, 4)) == {"s": 4, "kind": "c", "k": 3}
    assert calls[-1] == (4, "c", 3)  # the widget draws its first view at once
