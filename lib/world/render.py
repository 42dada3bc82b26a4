"""Pinhole cameras and a fast batched renderer of people made of shaded capsules.

Conventions (used by every function here and by :mod:`lib.world.synth`):

- World frame: metres are never used, everything is **millimetres**; ``y`` points **up**, the ground is
  ``y = 0``.
- Camera frame (OpenCV): ``x`` right, ``y`` down, ``z`` forward (depth). A world point ``X`` maps to
  ``R @ X + t`` with ``R`` a rotation whose rows are the camera's right, down and forward axes in world
  coordinates, and ``t = -R @ C`` for the camera centre ``C``.
- Pixels: ``(u, v) = (x, y)`` image coordinates, ``u = fx * x / z + cx``. Pixel ``(row i, col j)`` covers
  ``[j, j + 1) x [i, i + 1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``, so the pixel that
  contains ``(u, v)`` is ``(floor(v), floor(u))``.

The renderer draws capsules (a segment with a radius, spheres are capsules of length 0) as depth impostors:
at each pixel the nearest point of the projected segment gives a projected radius and a depth, the
surface bulges towards the camera like a cylinder, and a z-buffer keeps the nearest surface. That is exact
for the silhouette of a sphere seen head-on and a good approximation for limbs, and it gives the depth
buffer the visibility test uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# a light from the upper left, slightly in front of the person (camera frame, pointing to the light)
LIGHT = np.array([-0.45, -0.65, -0.6]) / np.linalg.norm([-0.45, -0.65, -0.6])
AMBIENT = 0.38
MIN_RADIUS_PX = 0.75  # thin limbs still cover the pixel of their joints (its centre is <= 0.71 px away)


# ---------------------------------------------------------------------------------------------------------
# cameras


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """(3, 3) pinhole intrinsics with square pixels and the principal point at the image centre."""
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extrinsics ``(R (3, 3), t (3,))`` of a camera at ``eye`` looking at ``target`` (world mm, y up).

    The camera is upright: its ``x`` axis is horizontal. ``eye`` must not be straight above ``target``.
    """
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: the camera looks straight up or down; its roll is undefined")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ eye


def orbit_eye(target: np.ndarray, azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """Camera centre at ``distance`` mm from ``target``, ``azimuth`` about the vertical (0 = on the +z
    side), ``elevation`` above the horizontal (radians)."""
    ce = np.cos(elevation)
    offset = np.array([ce * np.sin(azimuth), np.sin(elevation), ce * np.cos(azimuth)])
    return np.asarray(target, float) + distance * offset


def world_to_camera(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World points (..., 3) -> camera frame (..., 3) with one camera ``R (3, 3)``, ``t (3,)``,
    or per-leading-index cameras ``R (T, 3, 3)``, ``t (T, 3)`` for points (T, ..., 3)."""
    points = np.asarray(points, float)
    if R.ndim == 2:
        return points @ R.T + t
    extra = points.ndim - 2
    Rb = R.reshape(R.shape[0], *([1] * extra), 3, 3)
    tb = t.reshape(t.shape[0], *([1] * extra), 3)
    return np.einsum("...ij,...j->...i", Rb, points) + tb


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) in mm -> pixels (..., 2) with intrinsics ``K (3, 3)``."""
    points_cam = np.asarray(points_cam, float)
    z = points_cam[..., 2:3]
    if np.any(z <= 0):
        raise ValueError("project: some points are behind the camera (z <= 0)")
    uv = points_cam[..., :2] / z
    return uv * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])


def pixel_rays(K: np.ndarray, R: np.ndarray, height: int, width: int) -> np.ndarray:
    """World-frame unit directions (H, W, 3) of the rays through every pixel centre."""
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    uu, vv = np.meshgrid(u, v)
    d = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], axis=-1)
    d = d @ R  # camera -> world: R^T d, written for row vectors
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------
# background scene: a textured ground plane with decals and a distant skyline, rendered per camera


@dataclass(frozen=True)
class Scene:
    """A static world seen behind the person: tiled ground with clutter decals, skyline at infinity.

    All colours RGB in [0, 1]; lengths in mm. Because the texture lives in the world, a moving camera
    sees a consistently moving background, and a static one sees the same image in every frame.
    """

    ground: np.ndarray  # (2, 3) tile colours
    tile: float  # tile size, mm
    waves: np.ndarray  # (4, 4) ground shading waves: kx, kz (1/mm), phase, amplitude
    decals: np.ndarray  # (D, 6) x, z, radius (mm), r, g, b
    sky: np.ndarray  # (2, 3) colour at the horizon and overhead
    skyline: np.ndarray  # (24,) building height per azimuth sector, as elevation angles (radians)
    buildings: np.ndarray  # (24, 3) building colours
    fog: float  # distance (mm) at which the ground fades to the horizon colour


def sample_scene(rng: np.random.Generator, clutter: int) -> Scene:
    """A random scene with ``clutter`` decals scattered on the ground near the origin."""
    base = rng.uniform(0.25, 0.75, 3)
    ground = np.stack([base, np.clip(base * rng.uniform(0.6, 0.85) + rng.uniform(-0.05, 0.05, 3), 0, 1)])
    waves = np.column_stack([rng.normal(0, 1 / 1500, (4, 2)), rng.uniform(0, 2 * np.pi, 4), rng.uniform(0.02, 0.08, 4)])
    decals = np.column_stack(
        [rng.uniform(-6000, 6000, (clutter, 2)), rng.uniform(150, 700, clutter), rng.uniform(0, 1, (clutter, 3))]
    )
    sky = np.stack([rng.uniform(0.6, 0.95, 3), rng.uniform(0.3, 0.8, 3)])
    return Scene(
        ground=ground,
        tile=float(rng.uniform(400, 1500)),
        waves=waves,
        decals=decals,
        sky=sky,
        skyline=rng.uniform(0.0, 0.35, 24),
        buildings=rng.uniform(0.1, 0.7, (24, 3)),
        fog=float(rng.uniform(15_000, 40_000)),
    )


def render_background(scene: Scene, K: np.ndarray, R: np.ndarray, t: np.ndarray, height: int, width: int):
    """The scene as seen by one camera: (H, W, 3) float32 RGB in [0, 1]."""
    d = pixel_rays(K, R, height, width)
    eye = -R.T @ t
    # above the horizon: skyline sectors against a sky gradient, at infinity
    azimuth = np.arctan2(d[..., 0], d[..., 2])
    elev = np.arcsin(np.clip(d[..., 1], -1, 1))
    sector = ((azimuth + np.pi) / (2 * np.pi) * len(scene.skyline)).astype(int) % len(scene.skyline)
    sky = scene.sky[0] + (scene.sky[1] - scene.sky[0]) * np.clip(elev / 0.8, 0, 1)[..., None]
    window_rows = (np.floor(elev * 40) % 2 == 0)[..., None] * 0.08
    far = np.where((elev < scene.skyline[sector])[..., None], scene.buildings[sector] + window_rows, sky)
    # below the horizon: the ground plane y = 0
    down = d[..., 1] < -1e-6
    s = np.where(down, -eye[1] / np.where(down, d[..., 1], -1.0), 0.0)
    x = eye[0] + s * d[..., 0]
    z = eye[2] + s * d[..., 2]
    checker = (np.floor(x / scene.tile) + np.floor(z / scene.tile)) % 2
    ground = scene.ground[0] + (scene.ground[1] - scene.ground[0]) * checker[..., None]
    for kx, kz, phase, amp in scene.waves:
        ground = ground * (1 + amp * np.sin(kx * x + kz * z + phase))[..., None]
    for dx, dz, radius, *colour in scene.decals:
        inside = (x - dx) ** 2 + (z - dz) ** 2 < radius**2
        ground = np.where(inside[..., None], np.array(colour), ground)
    fade = np.exp(-s / scene.fog)[..., None]
    ground = ground * fade + scene.sky[0] * (1 - fade)
    image = np.where(down[..., None], ground, far)
    return np.clip(image, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# capsule renderer


def render_capsules(
    start: np.ndarray,
    end: np.ndarray,
    radius: np.ndarray,
    color: np.ndarray,
    K: np.ndarray,
    background: np.ndarray,
    stripes: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    chunk_pixels: int = 1_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Render capsules over backgrounds with a z-buffer.

    Args:
        start, end: (T, C, 3) camera-frame capsule end points, mm (``z > 0``).
        radius: (C,) or (T, C) capsule radii, mm.
        color: (C, 2, 3) or (T, C, 2, 3) RGB in [0, 1]: main colour and stripe colour of each capsule.
        K: (3, 3) or (T, 3, 3) intrinsics.
        background: (T, H, W, 3) float RGB in [0, 1].
        stripes: (C,) number of stripe pairs along each capsule (0 = plain).
        device: where the per-pixel work runs.
        chunk_pixels: frames are processed in groups of about this many capsule-pixels.

    Returns:
        image (T, H, W, 3) float32 in [0, 1] and depth (T, H, W) float32 mm (``inf`` where no capsule).

    Each capsule is rasterised only in a window around its projection and z-tested against the frames'
    depth buffers, so the cost scales with the person's size on screen, not the image size.
    """
    T, C = start.shape[:2]
    H, W = background.shape[1:3]
    radius = np.broadcast_to(np.asarray(radius, float), (T, C))
    color = np.broadcast_to(np.asarray(color, float), (T, C, 2, 3))
    Ks = np.broadcast_to(np.asarray(K, float), (T, 3, 3))
    stripes = np.zeros(C) if stripes is None else np.asarray(stripes, float)
    if np.any(start[..., 2] <= 0) or np.any(end[..., 2] <= 0):
        raise ValueError("render_capsules: capsule end points behind the camera (z <= 0)")
    f = Ks[:, 0, 0][:, None]
    a2 = project_batched(start, Ks)
    b2 = project_batched(end, Ks)
    ra = np.maximum(f * radius / start[..., 2], MIN_RADIUS_PX)
    rb = np.maximum(f * radius / end[..., 2], MIN_RADIUS_PX)
    # per-frame, per-capsule windows (clipped to the image) holding the capsule's projection
    lo = np.minimum(a2 - ra[..., None], b2 - rb[..., None])
    hi = np.maximum(a2 + ra[..., None], b2 + rb[..., None])
    x0 = np.clip(np.floor(lo[..., 0]), 0, W).astype(int)  # (T, C)
    y0 = np.clip(np.floor(lo[..., 1]), 0, H).astype(int)
    x1 = np.clip(np.ceil(hi[..., 0]) + 1, 0, W).astype(int)
    y1 = np.clip(np.ceil(hi[..., 1]) + 1, 0, H).astype(int)
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    dev = torch.device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # the per-capsule tensors are small: threads cost more than they give
    try:
        return _rasterise(start, end, radius, color, stripes, a2, b2, ra, rb, (x0, y0, x1, y1), area,
                          background, chunk_pixels, dev)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _rasterise(start, end, radius, color, stripes, a2, b2, ra, rb, window, area, background, chunk_pixels, dev):
    """The per-capsule z-buffer loop of :func:`render_capsules` (arguments as computed there)."""
    T, C = start.shape[:2]
    H, W = background.shape[1:3]
    x0, y0, x1, y1 = window

    def tt(a, dtype=torch.float32):
        return torch.tensor(np.asarray(a), dtype=dtype, device=dev)

    image = tt(background).reshape(T * H * W, 3).clone()
    depth = torch.full((T * H * W,), float("inf"), device=dev)
    light = LIGHT.astype(np.float32)
    frame = 0
    while frame < T:
        # a group of frames whose capsule windows hold about chunk_pixels pixels in all
        stop = frame + 1 + int(np.searchsorted(np.cumsum(area[frame + 1 :].sum(1)), chunk_pixels))
        stop = min(stop, T)
        B = stop - frame
        for c in range(C):
            sl = slice(frame, stop)
            ww = int((x1[sl, c] - x0[sl, c]).max())
            hh = int((y1[sl, c] - y0[sl, c]).max())
            if ww <= 0 or hh <= 0:
                continue
            col = tt(x0[sl, c], torch.int64)[:, None, None] + torch.arange(ww, device=dev)[None, None, :]
            row = tt(y0[sl, c], torch.int64)[:, None, None] + torch.arange(hh, device=dev)[None, :, None]
            valid = (col < tt(x1[sl, c], torch.int64)[:, None, None]) & (
                row < tt(y1[sl, c], torch.int64)[:, None, None]
            )
            px, py = col.float() + 0.5, row.float() + 0.5  # (B, 1, ww), (B, hh, 1)
            ax, ay = tt(a2[sl, c, 0])[:, None, None], tt(a2[sl, c, 1])[:, None, None]
            ex, ey = tt(b2[sl, c, 0])[:, None, None] - ax, tt(b2[sl, c, 1])[:, None, None] - ay
            len2 = (ex * ex + ey * ey).clamp_min(1e-9)
            s = (((px - ax) * ex + (py - ay) * ey) / len2).clamp(0, 1)  # (B, hh, ww)
            dx = px - (ax + s * ex)
            dy = py - (ay + s * ey)
            r_a, r_b = tt(ra[sl, c])[:, None, None], tt(rb[sl, c])[:, None, None]
            rad = r_a + (r_b - r_a) * s
            rel2 = (dx * dx + dy * dy) / (rad * rad)
            bulge = torch.sqrt((1 - rel2).clamp_min(0))
            za, zb = tt(start[sl, c, 2])[:, None, None], tt(end[sl, c, 2])[:, None, None]
            z = za + (zb - za) * s - tt(radius[sl, c])[:, None, None] * bulge
            flat = (torch.arange(frame, stop, device=dev)[:, None, None] * H + row) * W + col
            inside = (rel2 < 1) & valid
            flat, z = flat[inside], z[inside]
            win = z < depth[flat]
            flat, z = flat[win], z[win]
            if flat.numel() == 0:
                continue
            lambert = (
                (dx[inside][win] / rad[inside][win]) * light[0]
                + (dy[inside][win] / rad[inside][win]) * light[1]
                - bulge[inside][win] * light[2]
            ).clamp_min(0)
            shade = AMBIENT + (1 - AMBIENT) * lambert
            cols = tt(color[sl, c])  # (B, 2, 3)
            which = torch.arange(B, device=dev)[:, None, None].expand(B, hh, ww)[inside][win]
            striped = (torch.floor(s[inside][win] * stripes[c] * 2) % 2 == 1).long() if stripes[c] > 0 else 0
            image[flat] = cols[which, striped] * shade[:, None]
            depth[flat] = z
        frame = stop
    image = image.reshape(T, H, W, 3).clamp(0, 1).cpu().numpy()
    return image, depth.reshape(T, H, W).cpu().numpy()


def project_batched(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Points (T, ..., 3) with per-frame intrinsics ``K (T, 3, 3)`` -> pixels (T, ..., 2)."""
    extra = points_cam.ndim - 2
    Kb = K.reshape(K.shape[0], *([1] * extra), 3, 3)
    uv = points_cam[..., :2] / points_cam[..., 2:3]
    return uv * np.stack([Kb[..., 0, 0], Kb[..., 1, 1]], -1) + np.stack([Kb[..., 0, 2], Kb[..., 1, 2]], -1)


# ---------------------------------------------------------------------------------------------------------
# ground truth from the render


def joint_visibility(
    joints_cam: np.ndarray, joints2d: np.ndarray, depth: np.ndarray, tolerance: np.ndarray
) -> np.ndarray:
    """(T, J) bool: a joint is visible when it is in the frame and no surface lies more than its
    ``tolerance`` (J,) mm in front of it at its pixel (its own limb's surface is about one radius in front).

    Args:
        joints_cam: (T, J, 3) camera-frame joints, mm.  joints2d: (T, J, 2) their pixels.
        depth: (T, H, W) rendered depth, ``inf`` where nothing was drawn.
    """
    T, H, W = depth.shape
    col = np.floor(joints2d[..., 0]).astype(int)
    row = np.floor(joints2d[..., 1]).astype(int)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (joints_cam[..., 2] > 0)
    frames = np.broadcast_to(np.arange(T)[:, None], col.shape)
    surface = depth[frames, np.clip(row, 0, H - 1), np.clip(col, 0, W - 1)]
    return inside & np.isfinite(surface) & (surface >= joints_cam[..., 2] - tolerance)


def mask_boxes(masks: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """(T, 4) float32 boxes ``x0, y0, x1, y1`` (pixel edges) enclosing each mask (T, H, W).

    A frame with an empty mask gets ``fallback[t]`` (T, 4) if given, else zeros.
    """
    T = masks.shape[0]
    cols = masks.any(axis=1)
    rows = masks.any(axis=2)
    boxes = np.zeros((T, 4), np.float32) if fallback is None else np.asarray(fallback, np.float32).copy()
    has = cols.any(axis=1)
    if has.any():
        W, H = cols.shape[1], rows.shape[1]
        boxes[has, 0] = cols[has].argmax(axis=1)
        boxes[has, 2] = W - cols[has][:, ::-1].argmax(axis=1)
        boxes[has, 1] = rows[has].argmax(axis=1)
        boxes[has, 3] = H - rows[has][:, ::-1].argmax(axis=1)
    return boxes
