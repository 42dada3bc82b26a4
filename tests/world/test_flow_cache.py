"""The world's flow cache: aligned with the frames, reused, invalidated by a parameter change, regenerated
when corrupt."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from lib.flow import COURSE_TVL1, sequence_flows
from lib.world.flow_cache import joint_flow_errors, world_flows


class TinyWorld:
    """The three things world_flows reads: ``config``, ``frames``, ``sequence_frames``."""

    def __init__(self, lengths=(4, 3, 5), size=32, seed=0):
        rng = np.random.default_rng(seed)
        self.config = {"profile": "test", "seed": seed}
        base = (rng.random((size + 8, size + 8)) * 255).astype(np.uint8)
        frames = []
        for n in lengths:
            for t in range(n):  # a texture drifting right by one pixel per frame
                frames.append(np.repeat(base[4 : 4 + size, 4 - t % 4 : 4 - t % 4 + size, None], 3, 2))
        self.frames = np.stack(frames)
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])

    def sequence_frames(self, s):
        return np.arange(self._offsets[s], self._offsets[s + 1])


def test_world_flows_are_aligned_with_frames_and_cached(tmp_path):
    world = TinyWorld()
    fc = world_flows(world, [2, 0], workers=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(fc.sequences, [0, 2])
    np.testing.assert_array_equal(fc.index, [0, 1, 2, 3, 7, 8, 9, 10, 11])
    assert fc.flows.dtype == np.float16 and fc.flows.shape == (9, 32, 32, 2)
    ref = sequence_flows(world.frames[7:12])
    np.testing.assert_allclose(fc.flows[fc.rows(np.arange(7, 11))].astype(np.float32), ref, atol=0.01)
    assert not fc.flows[fc.rows([3, 11])].any()  # last frames of their sequences: no next frame
    with pytest.raises(KeyError, match=r"\[4\]"):
        fc.rows([4])
    assert fc.path is not None and fc.path.exists()
    mtime = fc.path.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid cache is read without a warning
        again = world_flows(world, [0, 2], workers=1, cache_dir=tmp_path)
    assert again.path == fc.path and fc.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.flows, fc.flows)


def test_a_parameter_change_gives_another_cache(tmp_path):
    world = TinyWorld()
    a = world_flows(world, [1], workers=1, cache_dir=tmp_path)
    b = world_flows(world, [1], dataclasses.replace(COURSE_TVL1, warps=1), workers=1, cache_dir=tmp_path)
    c = world_flows(world, [1], size=16, workers=1, cache_dir=tmp_path)
    assert len({a.path, b.path, c.path}) == 3
    assert len(list(tmp_path.glob("flows_*.npz"))) == 3


def test_a_truncated_cache_is_regenerated_with_a_warning(tmp_path):
    world = TinyWorld()
    good = world_flows(world, [0], workers=1, cache_dir=tmp_path)
    data = good.path.read_bytes()
    good.path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=f"regenerating the flow cache: {good.path}"):
        again = world_flows(world, [0], workers=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.flows, good.flows)
    assert again.path.read_bytes() == data  # rewritten


def test_a_cache_written_for_other_frames_is_regenerated(tmp_path):
    world = TinyWorld()
    good = world_flows(world, [0], workers=1, cache_dir=tmp_path)
    with np.load(good.path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    original = arrays["index"].copy()
    arrays["index"] = arrays["index"] + 1
    with open(good.path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match="do not match"):
        world_flows(world, [0], workers=1, cache_dir=tmp_path)
    with np.load(good.path, allow_pickle=False) as z:
        assert np.array_equal(z["index"], original)  # rewritten for these frames


def test_world_flows_needs_sequences(tmp_path):
    with pytest.raises(ValueError, match="at least one sequence"):
        world_flows(TinyWorld(), [], cache_dir=tmp_path)


def test_joint_flow_errors_against_known_displacements():
    world = TinyWorld(lengths=(3, 2), size=16)
    n = len(world.frames)
    world.seq = np.repeat([0, 1], [3, 2])
    world.activity = np.repeat([4, 7], [3, 2])
    world.joints2d = np.zeros((n, 2, 2), np.float32)
    world.joints2d[:, 0] = np.column_stack([np.arange(n) + 3.0, np.full(n, 5.0)])  # joint 0 moves right 1 px
    world.joints2d[:, 1] = [8.0, 8.0]  # joint 1 stands still
    world.visible = np.ones((n, 2), bool)
    world.visible[1, 1] = False  # hidden in frame 1: no error for frames 0 -> 1 and 1 -> 2
    flows = np.zeros((n, 16, 16, 2), np.float32)
    flows[..., 0] = 1.0  # a uniform rightward flow
    out = joint_flow_errors(world, flows, np.arange(n))
    # pairs 0->1, 1->2 (sequence 0) and 3->4 (sequence 1); 2 and 4 are last frames
    np.testing.assert_array_equal(out["frame"], [0, 1, 3, 3])
    np.testing.assert_allclose(out["epe"], [0, 0, 0, 1])  # the still joint is off by the flow's 1 px
    np.testing.assert_allclose(out["zero"], [1, 1, 1, 0])
    np.testing.assert_array_equal(out["activity"], [4, 4, 7, 7])
    with pytest.raises(ValueError, match="5 frames"):
        joint_flow_errors(world, flows[:4], np.arange(n))
