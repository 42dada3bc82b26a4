"""TV-L1 flow of the synthetic world's videos, computed once in worker processes and cached on disk.

:func:`world_flows` returns a :class:`FlowCache`: the flow from every frame of the given sequences to the
next frame (:func:`lib.flow.sequence_flows`), float16, stored under ``data/cache/`` as an ``.npz`` (no
pickle) keyed by the world's configuration, the sequences, the TV-L1 parameters, the flow size,
:data:`FLOW_VERSION` and the code of :mod:`lib.flow` and this module. A stale or corrupt file is
regenerated with a warning naming it, never reused silently.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib import flow as flow_lib
from lib.flow import COURSE_TVL1, TVL1Params, endpoint_errors, many_sequence_flows
from lib.runtime import atomic_path, source_fingerprint
from lib.world.synth import CACHE_DIR

FLOW_VERSION = 1


@dataclass
class FlowCache:
    """Flows of whole sequences, aligned with their frames.

    ``flows`` ``(n, H, W, 2)`` float16 pixels: ``flows[k]`` moves world frame ``index[k]`` onto the next frame
    of its sequence (zero at a sequence's last frame, which has no next frame); ``index`` ``(n,)``: the world
    frame indices, every frame of ``sequences`` in world order; ``params`` and ``size`` as computed.
    """

    flows: np.ndarray
    index: np.ndarray
    sequences: np.ndarray
    params: TVL1Params
    size: int | None
    path: Path | None = None

    def rows(self, frames: np.ndarray) -> np.ndarray:
        """Positions in :attr:`flows` of world frame indices ``frames``; an error names a frame not cached."""
        frames = np.asarray(frames)
        pos = np.searchsorted(self.index, frames)
        pos = np.minimum(pos, len(self.index) - 1)
        missing = frames[self.index[pos] != frames]
        if len(missing):
            raise KeyError(f"frames {missing[:5].tolist()} are not in this flow cache (sequences {self.sequences})")
        return pos


def _key(world: Any, sequences: np.ndarray, params: TVL1Params, size: int | None) -> dict[str, Any]:
    return {
        "flow_version": FLOW_VERSION,
        "code": source_fingerprint([flow_lib, Path(__file__)]),
        "world": world.config,
        "sequences": [int(s) for s in sequences],
        "params": params.to_json(),
        "size": size,
    }


def _load(path: Path, key: dict[str, Any], index: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """The flows stored in ``path`` for ``key``, or a ValueError saying why the file is unusable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            stored_key, flows, stored_index = str(z["key_json"]), z["flows"], z["index"]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise ValueError(f"not a readable flow cache ({type(e).__name__}: {e})") from e
    if json.loads(stored_key) != json.loads(json.dumps(key)):
        raise ValueError("written for another world, sequences, parameters or code")
    expected = (len(index), *frame_shape, 2)
    if flows.dtype != np.float16 or flows.shape != expected or not np.array_equal(stored_index, index):
        raise ValueError(f"flows {flows.dtype} {flows.shape} do not match the {len(index)} frames expected")
    return flows


def world_flows(
    world: Any,
    sequences: np.ndarray,
    params: TVL1Params = COURSE_TVL1,
    size: int | None = None,
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | Path = CACHE_DIR,
) -> FlowCache:
    """TV-L1 flows between consecutive frames of ``sequences`` of ``world`` (a :class:`lib.world.synth.World`).

    ``size``: compute at ``size x size`` and upsample (see :func:`lib.flow.sequence_flows`); ``workers``:
    processes (default: all CPUs). With ``cache``, read ``cache_dir/flows_<profile>_<digest>.npz`` when it
    holds exactly these flows, else compute and write it.
    """
    sequences = np.unique(np.asarray(sequences, np.int64))
    if len(sequences) == 0:
        raise ValueError("world_flows needs at least one sequence")
    frames_of = [world.sequence_frames(int(s)) for s in sequences]
    index = np.concatenate(frames_of)
    key = _key(world, sequences, params, size)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"flows_{world.config.get('profile', 'world')}_{digest}.npz"
    frame_shape = world.frames.shape[1:3]
    if cache and path.exists():
        try:
            return FlowCache(_load(path, key, index, frame_shape), index, sequences, params, size, path)
        except ValueError as e:
            warnings.warn(f"regenerating the flow cache: {path} is unusable ({e})", stacklevel=2)
    per_seq = many_sequence_flows([world.frames[f] for f in frames_of], params, size, workers)
    flows = np.zeros((len(index), *frame_shape, 2), np.float16)
    start = 0
    for f, fl in zip(frames_of, per_seq, strict=True):
        flows[start : start + len(f) - 1] = fl
        start += len(f)
    if cache:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, flows=flows, index=index, key_json=np.array(json.dumps(key, sort_keys=True)))
    return FlowCache(flows, index, sequences, params, size, path if cache else None)


def joint_flow_errors(world: Any, flows: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """How well flows ``(n, H, W, 2)`` (``flows[k]`` from world frame ``index[k]`` to the next) follow the
    world's exact joints: per joint visible in both frames, the end-point error (pixels) of the flow
    sampled at the joint against its true displacement ``joints2d[t + 1] - joints2d[t]``, and the error of
    the zero flow (the displacement's length).

    Returns ``epe``, ``zero``, ``frame`` (world index of frame t) and ``activity``, each ``(m,)``, over the
    m visible joints of the frames that have a next frame in their sequence.
    """
    index = np.asarray(index)
    if len(flows) != len(index) or np.ndim(flows) != 4 or np.shape(flows)[1:3] != world.frames.shape[1:3]:
        raise ValueError(f"flows {np.shape(flows)} must be (n, H, W, 2) for {len(index)} frames of the world's size")
    has_next = (index + 1 < len(world.seq)) & (world.seq[np.minimum(index + 1, len(world.seq) - 1)] == world.seq[index])
    epe, zero, frame = [], [], []
    for k in np.flatnonzero(has_next):
        t = index[k]
        vis = world.visible[t] & world.visible[t + 1]
        pts, disp = world.joints2d[t][vis], world.joints2d[t + 1][vis] - world.joints2d[t][vis]
        epe.append(endpoint_errors(np.asarray(flows[k], np.float32), pts, disp))
        zero.append(np.linalg.norm(disp, axis=1))
        frame.append(np.full(int(vis.sum()), t))
    frame_all = np.concatenate(frame) if frame else np.zeros(0, np.int64)
    return {
        "epe": np.concatenate(epe) if epe else np.zeros(0),
        "zero": np.concatenate(zero) if zero else np.zeros(0),
        "frame": frame_all,
        "activity": world.activity[frame_all],
    }
