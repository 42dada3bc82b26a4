import numpy as np
import pytest
import torch

from lib.methods import stn
from lib.training import sequence_groups


def aligned_box(n: int = 1) -> torch.Tensor:
    return torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=torch.float64).repeat(n, 1)


def test_crop_of_an_aligned_box_is_the_exact_centre_and_uncrop_inverts_it():
    img = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    box = aligned_box(2)
    c = stn.crop(img, box, 32)
    torch.testing.assert_close(c, img[:, :, 16:48, 16:48], rtol=0, atol=1e-12)
    back = stn.uncrop(c, box, 64)
    torch.testing.assert_close(back[:, :, 16:48, 16:48], img[:, :, 16:48, 16:48], rtol=0, atol=1e-12)
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[16:48, 16:48] = False
    assert back[:, :, outside].abs().max() == 0


def test_resynthesis_is_the_background_outside_the_box_and_follows_eq1_inside():
    bg = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    dec = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    mask = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    img, m, d = stn.resynthesize(dec, mask, aligned_box(), bg)
    inside = (slice(None), slice(None), slice(16, 48), slice(16, 48))
    torch.testing.assert_close(img[inside], mask * dec + (1 - mask) * bg[inside])
    ring = torch.ones(64, 64, dtype=torch.bool)
    ring[16:48, 16:48] = False
    assert m[0, 0][ring].abs().max() == 0
    torch.testing.assert_close(img[:, :, ring], bg[:, :, ring], rtol=0, atol=0)


def test_gradients_reach_every_box_parameter():
    img = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    box = torch.tensor([[0.4, 0.3, 0.11, -0.07]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b: stn.crop(img, b, 6), (box,))
    assert torch.autograd.gradcheck(lambda b: stn.uncrop(img[:, :, :6, :6], b, 12), (box,))


def test_box_conversions_by_hand():
    box = torch.tensor([[0.5, 0.25, 0.5, -0.5]])
    np.testing.assert_allclose(stn.box_to_theta(box)[0].numpy(), [[0.5, 0, 0.5], [0, 0.25, -0.5]])
    np.testing.assert_allclose(stn.inverse_theta(box)[0].numpy(), [[2, 0, -1], [0, 4, 2]])
    # x spans [0, 1] of [-1, 1] -> pixels 32..64 of 64; y spans [-0.75, -0.25] -> 8..24
    np.testing.assert_allclose(stn.box_to_pixels(box, 64), [[32, 8, 64, 24]])
    win = np.array([[40.0, 20.0, 16.0]])  # a 16 px square centred at (40, 20)
    np.testing.assert_allclose(stn.box_to_pixels(stn.windows_to_box(win, 64), 64), [[32, 12, 48, 28]], atol=1e-5)
    assert stn.windows_to_box(np.array([[32.0, 32.0, 1.0]]), 64)[0, 0] == pytest.approx(stn.S_MIN)
    with pytest.raises(ValueError, match="degenerate"):
        stn.box_to_theta(torch.tensor([[0.0, 0.5, 0, 0]]))


def test_box_iou_by_hand():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]], float)
    b = np.array([[1, 1, 3, 3], [2, 2, 3, 3], [0, 0, 2, 2]], float)
    np.testing.assert_allclose(stn.box_iou(a, b), [1 / 7, 0, 1])


def test_median_background_removes_a_moving_square():
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frames = np.repeat(bg[None], 7, 0)
    for t in range(7):
        frames[t, 2 * t : 2 * t + 3, 4:7] = 255  # a square moving down, never in one place for > 2 frames
    np.testing.assert_array_equal(stn.median_background(frames), bg)
    with pytest.raises(ValueError, match="uint8"):
        stn.median_background(frames.astype(np.float32))


def test_box_prior_acts_on_the_batch_mean():
    two = torch.tensor([[0.3, 0.7, 0.2, -0.1], [0.7, 0.3, -0.2, 0.1]])  # mean (0.5, 0.5, 0, 0)
    assert float(stn.box_prior(two)) == 0
    off = torch.tensor([[0.6, 0.5, 0.1, 0.0]])
    assert float(stn.box_prior(off)) == pytest.approx(0.01 + 0.01)
    assert float(stn.box_prior(off, centre=False)) == pytest.approx(0.01)


def test_gravity_losses_by_hand():
    t = torch.arange(4, dtype=torch.float64)
    quad = torch.stack([2 * t**2 - 3 * t + 1, -0.5 * t**2, t]).double()
    torch.testing.assert_close(stn.constant_acceleration_loss(quad), torch.zeros(3, dtype=torch.float64))
    assert float(stn.constant_acceleration_loss((t**3)[None])) == 36  # ((0 + 24) - (27 + 3))^2
    tau = 0.1
    falling = torch.tensor([[0.0, 0.1, 0.25, 0.5]])  # y grows downwards: a fall, steps >= tau
    assert float(stn.order_loss(falling, tau)) == pytest.approx(0)
    assert float(stn.order_loss(torch.zeros(1, 4), tau)) == pytest.approx(3 * tau)
    rising = torch.tensor([[0.5, 0.4, 0.3, 0.2]])
    assert float(stn.order_loss(rising, tau)) == pytest.approx(3 * (tau + 0.1))
    s = torch.tensor([[[0.5, 0.5], [0.6, 0.5], [0.6, 0.3], [0.6, 0.3]]])
    assert float(stn.scale_loss(s)) == pytest.approx(0.01 + 0.04)
    boxes = torch.cat([s, torch.zeros(1, 4, 1), falling[..., None]], 2)
    assert float(stn.track_loss(boxes, tau)) == pytest.approx(0.05 + float(stn.constant_acceleration_loss(falling)))


def test_sample_equidistant():
    groups = sequence_groups(np.repeat([0, 1, 2], [5, 12, 9]))
    q = stn.sample_equidistant(groups, 200, 3, np.random.default_rng(0))
    assert q.shape == (200, 4)
    np.testing.assert_array_equal(np.diff(q, axis=1), 3)
    seq = np.repeat([0, 1, 2], [5, 12, 9])
    assert (seq[q] == seq[q[:, :1]]).all() and not (seq[q] == 0).any()  # video 0 is too short for 10 frames
    with pytest.raises(ValueError, match="longest: 12"):
        stn.sample_equidistant(groups, 1, 4, np.random.default_rng(0))


def test_detector_starts_at_half_the_image_centred_and_stays_in_range():
    torch.manual_seed(0)
    det = stn.Detector(width=2, input_size=32)
    box = det(torch.rand(3, 3, 64, 64))
    torch.testing.assert_close(box, torch.tensor([[0.5, 0.5, 0.0, 0.0]]).repeat(3, 1), atol=1e-6, rtol=0)
    with torch.no_grad():
        det.head.weight.normal_(0, 100)
    box = det(torch.rand(8, 3, 64, 64))
    assert (box[:, :2] >= stn.S_MIN).all() and (box[:, :2] <= 1).all() and (box[:, 2:].abs() <= 1).all()


def test_optimal_mask_by_hand():
    b = np.zeros((1, 1, 4, 3))
    i = np.array([[[[1.0, 1, 1], [0.5, 0.5, 0.5], [0.0, 0, 0], [1.0, 0, 0]]]])
    d = np.array([[[[1.0, 1, 1], [1.0, 1, 1], [1.0, 1, 1], [0.0, 0, 0]]]])
    # D = I: 1; I halfway between B and D: 0.5; I = B: 0; D = B: the mask does not matter, 0
    np.testing.assert_allclose(stn.optimal_mask(d, i, b), [[[1.0, 0.5, 0.0, 0.0]]])
    d2 = np.array([[[[0.5, 0.5, 0.5]] * 4]])  # I beyond D is clipped to 1; I on the other side of B to 0
    i2 = np.array([[[[1.0, 1, 1], [-0.5, -0.5, -0.5], [0.25, 0.25, 0.25], [0.0, 0, 0]]]])
    np.testing.assert_allclose(stn.optimal_mask(d2, i2, b), [[[1.0, 0.0, 0.5, 0.0]]])
    rng = np.random.default_rng(0)  # invariant: no mask in [0, 1] composites closer than the optimal one
    d, i, b = rng.random((3, 2, 5, 5, 3))
    m = stn.optimal_mask(d, i, b)[..., None]
    best = ((m * d + (1 - m) * b - i) ** 2).sum(-1)
    for t in np.linspace(0, 1, 11):
        assert (best <= ((t * d + (1 - t) * b - i) ** 2).sum(-1) + 1e-12).all()
    with pytest.raises(ValueError, match="share"):
        stn.optimal_mask(d[:1], i, b)


def test_soft_iou_by_hand():
    g = np.zeros((3, 2, 2), bool)
    g[:, 0, 0] = True
    m = np.zeros((3, 2, 2))
    m[0, 0, 0] = 1.0  # exact: 1
    m[1, 0, :] = 1.0  # binary: 1 / 2
    m[2, 0, 0], m[2, 1, 1] = 0.5, 0.5  # soft: min 0.5 / max (1 + 0.5)
    np.testing.assert_allclose(stn.soft_iou(m, g), [1.0, 0.5, 0.5 / 1.5])
    assert np.isnan(stn.soft_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool)))[0]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        stn.soft_iou(m * 2, g)
