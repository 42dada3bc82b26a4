import numpy as np
import pytest
import torch

from lib.images import images_to_tensor
from lib.nets.vgg import VGGS, embed_images, vgg_m, vgg_s


def test_vgg_s_shapes_and_unit_norm():
    torch.manual_seed(0)
    for size in (32, 64, 80):
        net = vgg_s(in_channels=3, image_size=size, dim=16, width=4).eval()
        x = torch.randn(5, 3, size, size)
        z = net(x)
        assert z.shape == (5, 16)
        np.testing.assert_allclose(z.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
        assert net.pool5(x).shape == (5, net.n_pool5)


def test_embed_images_matches_forward_and_restores_mode():
    torch.manual_seed(0)
    net = vgg_s(image_size=32, dim=8, width=4)
    net.train()
    imgs = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    z = embed_images(net, imgs, batch_size=3)
    assert net.training
    with torch.no_grad():
        ref = net.eval()(images_to_tensor(imgs)).numpy()
    np.testing.assert_allclose(z, ref, atol=1e-5)
    assert embed_images(net, imgs, layer="pool5").shape == (7, net.n_pool5)
    with pytest.raises(ValueError, match="unknown layer"):
        embed_images(net, imgs, layer="fc9")


def test_vgg_s_rejects_tiny_images():
    with pytest.raises(ValueError, match="image_size"):
        vgg_s(image_size=16)


def test_vgg_m_variant_shapes_and_fc6():
    torch.manual_seed(0)
    for size in (32, 56, 64, 112):
        m = vgg_m(in_channels=24, image_size=size, width=4).eval()
        s = vgg_s(in_channels=3, image_size=size, width=4).eval()
        assert (m.variant, m.conv_stride, s.variant, s.conv_stride) == ("vgg_m", 16, "vgg_s", 8)
        x = torch.randn(2, 24, size, size)
        assert m.fc6_features(x).shape == (2, 64) and m.n_fc6 == 64
        assert (m.fc6_features(x) >= 0).all()  # after the ReLU
        assert m(x).shape == (2, 128)
    m, s = vgg_m(image_size=64, width=4).eval(), vgg_s(image_size=64, width=4).eval()
    assert m.conv5(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 4, 4)  # 64 / 16
    assert s.conv5(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 8, 8)  # 64 / 8
    assert m.conv5(torch.zeros(1, 3, 128, 128)).shape == (1, 16, 8, 8)  # any input size
    # conv2 is the only difference: same parameter shapes up to pool5
    conv_shapes = [(k, v.shape) for k, v in m.state_dict().items() if k.startswith("conv")]
    assert conv_shapes == [(k, v.shape) for k, v in s.state_dict().items() if k.startswith("conv")]
    assert m.conv[4].stride == (2, 2) and s.conv[4].stride == (1, 1)
    # fc6 features are what forward normalises after fc7
    x = torch.randn(3, 3, 64, 64)
    torch.testing.assert_close(m(x), torch.nn.functional.normalize(m.fc7(m.fc6_features(x)), dim=1))
    with pytest.raises(ValueError, match="variant"):
        VGGS(variant="vgg_x")


def test_embed_images_fc6_layer():
    torch.manual_seed(0)
    net = vgg_m(image_size=32, width=4)
    imgs = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    z = embed_images(net, imgs, layer="fc6", batch_size=2)
    with torch.no_grad():
        ref = net.eval().fc6_features(images_to_tensor(imgs)).numpy()
    assert z.shape == (5, 64)
    np.testing.assert_allclose(z, ref, atol=1e-5)
    assert embed_images(net, imgs[:0], layer="fc6").shape == (0, 64)
