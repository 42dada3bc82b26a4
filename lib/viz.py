"""Drawing helpers the notebooks share: skeletons over images (2D and 3D), boxes, montages, filmstrips, and
:func:`explore`, the one way a notebook offers an ipywidgets explorer.

Left limbs are drawn in blue, right limbs in red and the trunk in green unless a colour is given; joints
that are not visible get hollow markers and their bones dashed lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

from lib.skeleton import FORMATS, format_bones

SIDE_COLOURS = {"l": "tab:blue", "r": "tab:red", "c": "tab:green"}


def _side(name: str) -> str:
    return name[0] if name[:2] in ("l_", "r_") else "c"


def bone_colours(fmt: str = "canonical") -> list[str]:
    """One colour per bone of ``format_bones(fmt)``: by the side of its child joint."""
    names = FORMATS[fmt]
    return [SIDE_COLOURS[_side(names[c])] for _, c in format_bones(fmt)]


def draw_skeleton(
    ax,
    joints2d: np.ndarray,
    fmt: str = "canonical",
    visible: np.ndarray | None = None,
    color: str | None = None,
    linewidth: float = 1.5,
    markersize: float = 12,
) -> list:
    """Draw one 2D skeleton (J, 2) in pixel coordinates of format ``fmt`` on matplotlib axes ``ax``.

    Returns the bone line artists (one per bone of ``format_bones(fmt)``, in that order).
    """
    joints2d = np.asarray(joints2d, float)
    names = FORMATS[fmt]
    if joints2d.shape != (len(names), 2):
        raise ValueError(f"expected joints of shape ({len(names)}, 2) for format {fmt!r}, got {joints2d.shape}")
    vis = np.ones(len(names), bool) if visible is None else np.asarray(visible, bool)
    lines = []
    for (p, c), col in zip(format_bones(fmt), bone_colours(fmt), strict=True):
        style = "-" if vis[p] and vis[c] else "--"
        (line,) = ax.plot(*joints2d[[p, c]].T, style, color=color or col, linewidth=linewidth)
        lines.append(line)
    colours = [color or SIDE_COLOURS[_side(n)] for n in names]
    ax.scatter(*joints2d[vis].T, s=markersize, c=[colours[i] for i in np.flatnonzero(vis)], zorder=3)
    hidden = np.flatnonzero(~vis)
    if len(hidden):
        ax.scatter(*joints2d[hidden].T, s=markersize, facecolors="none",
                   edgecolors=[colours[i] for i in hidden], zorder=3)  # fmt: skip
    return lines


def draw_skeleton_3d(ax, joints3d: np.ndarray, fmt: str = "canonical", color: str | None = None) -> list:
    """Draw a 3D skeleton (J, 3), world mm with y up, on a matplotlib 3D axes (plotted as x, z, y so that
    up is up). Returns the bone line artists."""
    joints3d = np.asarray(joints3d, float)
    lines = []
    for (p, c), col in zip(format_bones(fmt), bone_colours(fmt), strict=True):
        seg = joints3d[[p, c]]
        lines += ax.plot(seg[:, 0], seg[:, 2], seg[:, 1], color=color or col, linewidth=2)
    return lines


def draw_box(ax, box: Sequence[float], color: str = "yellow", linewidth: float = 1.0):
    """Draw a box ``x0, y0, x1, y1`` (pixel edges) as a rectangle outline."""
    x0, y0, x1, y1 = box
    return ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color=color, linewidth=linewidth)[0]


def montage(
    images: np.ndarray,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    joints2d: np.ndarray | None = None,
    fmt: str = "canonical",
    visible: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    size: float = 1.6,
):
    """A grid of images (n, H, W, 3) with optional titles, skeleton overlays (n, J, 2) and boxes (n, 4).

    Returns the matplotlib figure; unused cells are blank.
    """
    n = len(images)
    if n == 0:
        raise ValueError("montage needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.08), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k])
        if joints2d is not None:
            draw_skeleton(ax, joints2d[k], fmt, None if visible is None else visible[k], linewidth=1.0, markersize=4)
        if boxes is not None:
            draw_box(ax, boxes[k])
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
        ax.set_xlim(-0.5, images[k].shape[1] - 0.5)
        ax.set_ylim(images[k].shape[0] - 0.5, -0.5)
    fig.tight_layout(pad=0.2)
    return fig


def filmstrip(frames: np.ndarray, step: int = 1, max_frames: int = 12, **kwargs):
    """One row of every ``step``-th frame (at most ``max_frames``), titled with the frame number; other
    keyword arguments (``joints2d``, ``visible``, ``boxes``, ``fmt``, ``size``) go to :func:`montage`."""
    idx = np.arange(0, len(frames), step)[:max_frames]
    per_frame = {k: (v[idx] if k in ("joints2d", "visible", "boxes") and v is not None else v)
                 for k, v in kwargs.items()}  # fmt: skip
    return montage(frames[idx], ncols=len(idx), titles=[f"t={i}" for i in idx], **per_frame)


def explore(view: Callable[..., object], interactive: bool, **controls: object) -> dict[str, object]:
    """An explorer of ``view(**values)``: with ``interactive``, ipywidgets controls built from ``controls``
    (widgets, or ``interact`` abbreviations: ``(min, max)`` sliders, option lists) redraw it; without, it is
    drawn once with the controls' initial values, so reports and CI still run every explorer's code.

    Returns the initial values.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if interactive:
        panel = widgets.interactive(view, **controls)
        display(panel)
        return dict(panel.kwargs)
    panel = widgets.interactive(view, {"manual": True}, **controls)  # builds the controls, draws nothing
    values = {w._kwarg: w.value for w in panel.kwargs_widgets}
    print(f"explorer drawn once with {values} (interactive=True makes it a widget)")
    view(**values)
    return values
