import numpy as np
import pytest
import torch

from lib.images import images_to_tensor
from lib.nets.vgg import embed_images, vgg_s


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
