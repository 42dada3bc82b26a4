"""TV-L1 flow and flow blocks: a known shift, the channel order, the flip and reversal identities."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lib.flow import (
    COURSE_TVL1,
    OPENCV_DEFAULT_TVL1,
    endpoint_errors,
    flip_flow_block,
    flow_block,
    flow_to_color,
    many_sequence_flows,
    reverse_flow_block,
    sample_flow,
    sequence_flows,
    stack_flow_maps,
    tvl1_flow,
)


def texture(size: int = 64, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size + 16, size + 16)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    blurred = (blurred - blurred.min()) / np.ptp(blurred) * 255
    return blurred.astype(np.uint8)


def shifted_pair(dx: int = 2, dy: int = 1, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    big = texture(size)
    f0 = big[8 : 8 + size, 8 : 8 + size]
    f1 = big[8 - dy : 8 - dy + size, 8 - dx : 8 - dx + size]  # content moved right by dx, down by dy
    return f0, f1


@pytest.mark.parametrize("params", [COURSE_TVL1, OPENCV_DEFAULT_TVL1])
def test_tvl1_recovers_a_known_shift(params):
    f0, f1 = shifted_pair(2, 1)
    np.testing.assert_array_equal(f1[1:, 2:], f0[:-1, :-2])  # the fixture really is that shift
    flow = tvl1_flow(f0, f1, params)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [2.0, 1.0], atol=0.15)
    rgb = np.repeat(f0[..., None], 3, axis=2), np.repeat(f1[..., None], 3, axis=2)
    np.testing.assert_allclose(tvl1_flow(*rgb, params), flow, atol=1e-4)  # RGB is converted to grey


def test_tvl1_rejects_bad_frames():
    f0, f1 = shifted_pair()
    with pytest.raises(ValueError, match="same shape"):
        tvl1_flow(f0, f1[:32])
    with pytest.raises(ValueError, match="uint8"):
        tvl1_flow(f0.astype(np.float32), f1)
    with pytest.raises(ValueError, match="uint8"):
        tvl1_flow(f0[..., None].repeat(4, 2), f1[..., None].repeat(4, 2))


def test_sequence_flows_full_and_downsampled_and_in_workers():
    f0, f1 = shifted_pair(2, 0)
    frames = np.repeat(np.stack([f0, f1, f0])[..., None], 3, axis=3)
    full = sequence_flows(frames)
    assert full.shape == (2, 64, 64, 2)
    np.testing.assert_allclose(np.median(full[0, 8:-8, 8:-8].reshape(-1, 2), 0), [2, 0], atol=0.15)
    np.testing.assert_allclose(np.median(full[1, 8:-8, 8:-8].reshape(-1, 2), 0), [-2, 0], atol=0.15)
    half = sequence_flows(frames, size=32)  # a 1 px shift at 32 px, scaled back up by 2
    assert half.shape == (2, 64, 64, 2)
    np.testing.assert_allclose(np.median(half[0, 8:-8, 8:-8].reshape(-1, 2), 0), [2, 0], atol=0.3)
    both = many_sequence_flows([frames, frames[:2]], workers=2)
    assert [b.shape for b in both] == [(2, 64, 64, 2), (1, 64, 64, 2)] and both[0].dtype == np.float16
    np.testing.assert_allclose(both[0].astype(np.float32), full, atol=0.01)
    with pytest.raises(ValueError, match="size"):
        sequence_flows(frames, size=100)
    with pytest.raises(ValueError, match="T >= 2"):
        sequence_flows(frames[:1])


def test_flow_block_channel_order_and_bounds():
    flows = np.zeros((20, 4, 5, 2), np.float32)
    flows[..., 0] = np.arange(20)[:, None, None]  # u of flow t is t
    flows[..., 1] = 100 + np.arange(20)[:, None, None]  # v of flow t is 100 + t
    block = flow_block(flows, 3, delta=12)
    assert block.shape == (24, 4, 5)
    np.testing.assert_array_equal(block[:, 0, 0], [*range(3, 15), *range(103, 115)])  # 12 u maps, then 12 v
    np.testing.assert_array_equal(flow_block(torch.from_numpy(flows), 3).numpy(), block)
    assert flow_block(flows, 8).shape == (24, 4, 5)  # the last start: flows 8..19
    with pytest.raises(ValueError, match="delta 12"):
        flow_block(flows, 9)
    with pytest.raises(ValueError, match="delta"):
        flow_block(flows, 0, delta=0)
    with pytest.raises(ValueError, match=r"\(T - 1, H, W, 2\)"):
        flow_block(flows[..., 0], 0)
    batch = stack_flow_maps(np.stack([flows[3:15], flows[5:17]]))
    np.testing.assert_array_equal(batch[0], block)
    np.testing.assert_array_equal(batch[1], flow_block(flows, 5))


def test_flip_and_reverse_are_involutions_and_point_the_right_way():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(24, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(flip_flow_block(flip_flow_block(block)), block)
    np.testing.assert_array_equal(reverse_flow_block(reverse_flow_block(block)), block)
    rightward = np.zeros((24, 6, 7), np.float32)
    rightward[:12] = 1.0
    rightward[12:] = 0.5  # and downward
    flipped = flip_flow_block(rightward)
    assert (flipped[:12] == -1).all() and (flipped[12:] == 0.5).all()  # points left, still down
    ramp = flow_block(np.broadcast_to(np.arange(12.0)[:, None, None, None], (12, 2, 2, 2)).copy(), 0)
    rev = reverse_flow_block(ramp)
    np.testing.assert_array_equal(rev[:12, 0, 0], -np.arange(11.0, -1, -1))  # last step first, negated
    np.testing.assert_array_equal(rev[12:, 0, 0], -np.arange(11.0, -1, -1))
    # a mirrored image mirrors the map: the value at column j moves to column W - 1 - j
    np.testing.assert_array_equal(flip_flow_block(block)[12:, :, 0], block[12:, :, -1])
    t = torch.from_numpy(block[None])  # torch batches alike, and the input is left untouched
    np.testing.assert_array_equal(flip_flow_block(t)[0].numpy(), flip_flow_block(block))
    np.testing.assert_array_equal(reverse_flow_block(t)[0].numpy(), reverse_flow_block(block))
    np.testing.assert_array_equal(t[0].numpy(), block)
    with pytest.raises(ValueError, match="even"):
        flip_flow_block(block[:23])


def test_sample_flow_is_bilinear_at_pixel_centres_and_epe():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 0] = np.arange(4)[None, :]  # u = column index
    flow[..., 1] = 10 * np.arange(4)[:, None]  # v = 10 x row index
    pts = np.array([[0.5, 0.5], [2.0, 1.5], [3.5, 3.0], [-5.0, 0.5]])
    np.testing.assert_allclose(sample_flow(flow, pts), [[0, 0], [1.5, 10], [3, 25], [0, 0]])
    np.testing.assert_allclose(endpoint_errors(flow, pts[:2], [[3, 4], [1.5, 10]]), [5, 0])
    with pytest.raises(ValueError, match="match"):
        endpoint_errors(flow, pts, np.zeros((2, 2)))


def test_flow_to_color_hue_is_direction_value_is_magnitude():
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, 0] = (1, 0)  # right: hue 0, red
    flow[0, 1] = (0, 2)  # down (angle 90 degrees): hue 60 of 180, chartreuse, full value
    flow[0, 2] = (-1, 0)  # left: cyan
    rgb = flow_to_color(flow)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 3], [0, 0, 0])  # no motion is black
    assert rgb[0, 0].argmax() == 0 and rgb[0, 0, 0] == 127  # half the largest magnitude
    assert rgb[0, 2, 0] == 0 and rgb[0, 2, 1] == rgb[0, 2, 2] == 127
    assert rgb[0, 1].max() == 255
