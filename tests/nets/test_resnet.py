import pytest
import torch

from lib.nets.resnet import resnet


def test_published_parameter_counts():
    # torchvision's resnet18 / resnet50 with a 1000-way head (He et al. 2016; torchvision v1.5 bottleneck)
    assert sum(p.numel() for p in resnet(18, 64, 3, 1000).parameters()) == 11_689_512
    assert sum(p.numel() for p in resnet(50, 64, 3, 1000).parameters()) == 25_557_032


def test_feature_shapes_and_pooled_code():
    torch.manual_seed(0)
    net = resnet(18, width=4).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = net.features(x, "layer3")
    assert [tuple(f.shape) for f in feats] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4)]
    assert net.pooled(x).shape == (2, 32) == net(x).shape and net.out_dim == 32
    torch.testing.assert_close(net.pooled(x), net.features(x, "layer4")[-1].mean((2, 3)))
    wide = resnet(50, width=2, in_channels=1, num_classes=5)
    assert wide.out_dim == 64 and wide(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="depth"):
        resnet(34)
    with pytest.raises(ValueError, match="width"):
        resnet(18, width=0)
    with pytest.raises(ValueError, match="upto"):
        resnet(18, 4).features(torch.zeros(1, 3, 32, 32), "layer5")
