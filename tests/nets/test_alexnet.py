import pytest
import torch

from lib.nets.alexnet import ALEXNET_CHANNELS, AlexNet


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_pool5_shapes_at_the_course_sizes_and_227():
    for size, side in ((64, 3), (96, 5), (227, 6)):
        net = AlexNet(image_size=size, width=0.125)
        assert net.pool5_shape[1:] == (side, side), size
        assert net.pool5(torch.zeros(2, 3, size, size)).shape == (2, net.n_pool5)
        assert net.n_pool5 == net.pool5_shape[0] * side * side == round(256 * 0.125) * side * side


def test_parameter_counts_of_the_published_conv_layers():
    # one tower, no filter groups, 11x11/4 conv1, biases included: sum of out * (in * k * k + 1)
    k = (11, 5, 3, 3, 3)
    cin = (3, *ALEXNET_CHANNELS[:-1])
    by_hand = sum(o * (i * kk * kk + 1) for o, i, kk in zip(ALEXNET_CHANNELS, cin, k, strict=True))
    assert by_hand == 3_747_200
    assert n_params(AlexNet(image_size=227)) == by_hand
    # torchvision's single-tower AlexNet (Krizhevsky 2014, 64-192-384-256-256): 2,469,696 conv parameters
    assert n_params(AlexNet(image_size=227, channels=(64, 192, 384, 256, 256))) == 2_469_696


def test_leaky_relu_after_conv5_only():
    net = AlexNet(image_size=64, width=0.125, leak=0.1)
    acts = [m for m in net.features if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    assert [type(m).__name__ for m in acts] == ["ReLU"] * 4 + ["LeakyReLU"] and acts[-1].negative_slope == 0.1
    torch.manual_seed(0)
    assert (net.pool5(torch.randn(4, 3, 64, 64)) < 0).any()  # the negative slope lets negatives through


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        AlexNet(width=0)
    with pytest.raises(ValueError, match="leak"):
        AlexNet(leak=1.5)
    with pytest.raises(ValueError, match="channels"):
        AlexNet(channels=(1, 2, 3))
    with pytest.raises(ValueError, match="too small"):
        AlexNet(image_size=8)
