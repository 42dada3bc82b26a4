"""Dense optical flow: TV-L1 (Zach, Pock & Bischof 2007) through OpenCV, and the flow blocks of
Purushwalkam & Gupta 2016 (12 horizontal then 12 vertical maps between frames t and t + 12).

Flow fields are float ``(H, W, 2)`` arrays in pixels: channel 0 is the horizontal displacement u (x, to the
right), channel 1 the vertical v (y, down); the vector at pixel ``(i, j)`` moves the point ``(j + 0.5,
i + 0.5)`` of the first frame (pixel centres at +0.5, the convention of :mod:`lib.images`).

- :class:`TVL1Params`, :data:`OPENCV_DEFAULT_TVL1`, :data:`COURSE_TVL1` -- the solver's parameters.
- :func:`tvl1_flow` -- the flow between two frames; :func:`sequence_flows` -- between consecutive frames of
  a sequence, optionally computed at a lower resolution; :func:`many_sequence_flows` -- many sequences
  in worker processes.
- :func:`stack_flow_maps`, :func:`flow_block` -- ``(delta, H, W, 2)`` flows -> ``(2 delta, H, W)`` block
  (u maps, then v maps); :func:`flip_flow_block`, :func:`reverse_flow_block` -- the two augmentations.
- :func:`sample_flow`, :func:`endpoint_errors` -- the flow at given points and its end-point error.
- :func:`flow_to_color` -- the usual HSV coding (hue = direction, value = magnitude) for figures.

The block functions take numpy arrays or torch tensors alike (they only index, negate and swap axes).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import map_coordinates


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of ``cv2.optflow.DualTVL1OpticalFlow`` (names as in OpenCV; ``inner`` and ``outer`` are
    its ``innnerIterations`` and ``outerIterations``)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner: int = 30
    outer: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def create(self) -> Any:
        """A new OpenCV solver with these parameters."""
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=self.tau, lambda_=self.lambda_, theta=self.theta, nscales=self.nscales, warps=self.warps,
            epsilon=self.epsilon, innnerIterations=self.inner, outerIterations=self.outer,
            scaleStep=self.scale_step, gamma=self.gamma, medianFiltering=self.median_filtering,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OPENCV_DEFAULT_TVL1 = TVL1Params()
# fewer scales, warps and iterations: about 3x faster at 64 px, and as accurate on the synthetic world
COURSE_TVL1 = TVL1Params(nscales=3, warps=2, inner=10, outer=5)


def _grey(frame: np.ndarray, name: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"{name} must be a uint8 (H, W, 3) RGB or (H, W) grey image, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def _check_pair(frame0: np.ndarray, frame1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g0, g1 = _grey(frame0, "frame0"), _grey(frame1, "frame1")
    if np.shape(frame0) != np.shape(frame1):
        raise ValueError(f"frames must have the same shape, got {np.shape(frame0)} and {np.shape(frame1)}")
    return g0, g1


def tvl1_flow(frame0: np.ndarray, frame1: np.ndarray, params: TVL1Params = COURSE_TVL1) -> np.ndarray:
    """TV-L1 flow from ``frame0`` to ``frame1`` (uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grey, the same shape)
    -> float32 ``(H, W, 2)`` in pixels (u = x, v = y)."""
    g0, g1 = _check_pair(frame0, frame1)
    return params.create().calc(g0, g1, None)


def _resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resampling of a ``(h, w, 2)`` field to ``(height, width)``, vectors scaled by the same factors."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


def sequence_flows(frames: np.ndarray, params: TVL1Params = COURSE_TVL1, size: int | None = None) -> np.ndarray:
    """Flows between consecutive frames of uint8 ``(T, H, W, 3)`` -> float32 ``(T - 1, H, W, 2)``.

    ``size``: compute each flow on frames area-downsampled to ``size x size`` and upsample the field
    bilinearly to ``(H, W)``, multiplying the vectors by the same factor (None: at full resolution).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"frames must be uint8 (T >= 2, H, W, 3), got {frames.dtype} {frames.shape}")
    H, W = frames.shape[1:3]
    if size is not None and not 8 <= size <= min(H, W):
        raise ValueError(f"size must be in 8..{min(H, W)} (the frame size), got {size}")
    grey = [_grey(f, "frame") for f in frames]
    if size is not None and size != H:
        grey = [cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for g in grey]
    solver = params.create()
    out = np.empty((len(frames) - 1, H, W, 2), np.float32)
    for t in range(len(frames) - 1):
        flow = solver.calc(grey[t], grey[t + 1], None)
        out[t] = flow if flow.shape[:2] == (H, W) else _resize_flow(flow, H, W)
    return out


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _sequence_flows_job(args: tuple[np.ndarray, dict[str, Any], int | None]) -> np.ndarray:
    frames, params, size = args
    return sequence_flows(frames, TVL1Params(**params), size).astype(np.float16)


def many_sequence_flows(
    sequences: Sequence[np.ndarray],
    params: TVL1Params = COURSE_TVL1,
    size: int | None = None,
    workers: int | None = None,
) -> list[np.ndarray]:
    """:func:`sequence_flows` of each uint8 ``(T_s, H, W, 3)`` sequence, as float16 ``(T_s - 1, H, W, 2)``.

    Runs in ``workers`` processes (default: the CPU count; 1 runs in this process), each with one OpenCV
    thread. The workers are spawned, never forked: a forked child can inherit a lock held by another thread
    of the parent (torch's, or the pool's own feeder thread) and hang. So a script that calls this needs
    the usual ``if __name__ == "__main__":`` guard; notebooks need nothing.
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = [(np.asarray(s), params.to_json(), size) for s in sequences]
    if workers == 1 or len(jobs) <= 1:
        return [_sequence_flows_job(j) for j in jobs]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_worker_init) as pool:
        return list(pool.map(_sequence_flows_job, jobs))


# ---------------------------------------------------------------------------------------------------------
# flow blocks (numpy arrays or torch tensors)


def stack_flow_maps(flows: Any) -> Any:
    """``(..., delta, H, W, 2)`` consecutive flows -> ``(..., 2 delta, H, W)``: the delta horizontal maps,
    then the delta vertical maps, the channel order of the paper's Motion ConvNet input."""
    if flows.ndim < 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows must be (..., delta, H, W, 2), got shape {tuple(flows.shape)}")
    *lead, delta, H, W, _ = flows.shape
    x = flows.swapaxes(-4, -1).swapaxes(-3, -1).swapaxes(-2, -1)  # (..., 2, delta, H, W)
    return x.reshape(*lead, 2 * delta, H, W)


def flow_block(flows: Any, frame: int, delta: int = 12) -> Any:
    """The ``delta`` flows from frame ``frame`` to ``frame + delta`` of one sequence as a ``(2 delta, H, W)``
    block (12 u maps, then 12 v maps for delta = 12).

    ``flows``: ``(T - 1, H, W, 2)``, ``flows[t]`` from frame t to t + 1 (numpy or torch).
    """
    if not isinstance(delta, int | np.integer) or delta < 1:
        raise ValueError(f"delta must be a positive int, got {delta!r}")
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows must be (T - 1, H, W, 2), got shape {tuple(flows.shape)}")
    if not 0 <= frame <= len(flows) - delta:
        raise ValueError(
            f"frame {frame} + delta {delta} needs flows up to {frame + delta - 1}, but the sequence has "
            f"{len(flows)} flows ({len(flows) + 1} frames)"
        )
    return stack_flow_maps(flows[frame : frame + delta])


def _check_block(block: Any) -> int:
    if block.ndim < 3 or block.shape[-3] % 2:
        raise ValueError(f"a flow block is (..., 2 delta, H, W) with an even channel count, got {tuple(block.shape)}")
    return block.shape[-3] // 2


def flip_flow_block(block: Any) -> Any:
    """The block of the horizontally mirrored video: every map mirrored, the u maps negated."""
    delta = _check_block(block)
    out = block[..., list(range(block.shape[-1] - 1, -1, -1))]  # a copy (advanced indexing)
    out[..., :delta, :, :] = -out[..., :delta, :, :]
    return out


def reverse_flow_block(block: Any) -> Any:
    """The block of the time-reversed video, taking the backward flow to be minus the forward flow: the
    delta steps in reverse order, every vector negated."""
    delta = _check_block(block)
    order = [*range(delta - 1, -1, -1), *range(2 * delta - 1, delta - 1, -1)]
    return -block[..., order, :, :]


# ---------------------------------------------------------------------------------------------------------
# accuracy and display


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow ``(H, W, 2)`` at image points ``(n, 2)`` (x, y pixels, centres at +0.5) -> ``(n, 2)``;
    points outside take the nearest border value."""
    flow, points = np.asarray(flow, np.float64), np.asarray(points, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2 or points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"expected flow (H, W, 2) and points (n, 2), got {flow.shape} and {points.shape}")
    coords = np.stack([points[:, 1] - 0.5, points[:, 0] - 0.5])  # (row, col)
    return np.stack([map_coordinates(flow[..., c], coords, order=1, mode="nearest") for c in range(2)], 1)


def endpoint_errors(flow: np.ndarray, points: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """End-point error (pixels) of ``flow`` ``(H, W, 2)`` at ``points`` ``(n, 2)`` against the true
    ``displacement`` ``(n, 2)`` of those points -> ``(n,)``."""
    displacement = np.asarray(displacement, np.float64)
    if displacement.shape != np.shape(points):
        raise ValueError(f"displacement {displacement.shape} must match points {np.shape(points)}")
    return np.linalg.norm(sample_flow(flow, points) - displacement, axis=1)


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """``(H, W, 2)`` flow -> uint8 ``(H, W, 3)`` RGB: hue = direction, value = magnitude / ``max_magnitude``
    (default: the field's largest magnitude), full saturation."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    mag, ang = cv2.cartToPolar(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))
    top = float(mag.max()) if max_magnitude is None else float(max_magnitude)
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (ang * (90 / np.pi)).astype(np.uint8) % 180  # OpenCV hue is 0..179 for 0..360 degrees
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max(top, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
