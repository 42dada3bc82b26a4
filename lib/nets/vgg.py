"""Backbone CNNs shared by the notebooks.

- :func:`vgg_s` -- a VGG-S-like CNN (Chatfield et al. 2014: 7x7/2 conv, 5x5 conv, three 3x3 convs, fc6,
  fc7) scaled down to small person crops, with a ``dim``-d L2-normalised output, as in Milbich et al. 2017
  (VGG-S to fc6, a 128-d fc7, L2 normalisation).
- :func:`vgg_m` -- the same network with VGG-M's strided conv2 (5x5/2), used to fc6 by Purushwalkam &
  Gupta 2016 (:meth:`VGGS.fc6_features`; its conv1-conv5 feed the Pose ConvNet, :meth:`VGGS.conv5`).
- :func:`embed_images` -- batched, no-grad embedding of a uint8 image array (the embedding, fc6 or pool5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lib.images import images_to_tensor

VARIANTS = ("vgg_s", "vgg_m")


class VGGS(nn.Module):
    """VGG-S-like CNN: conv1-conv5 (batch norm instead of LRN), fc6, fc7 to ``dim``, L2 normalisation.

    Input: float ``(B, in_channels, image_size, image_size)`` (see :func:`lib.images.images_to_tensor`).
    ``forward`` returns the ``(B, dim)`` unit-norm embedding; ``pool5`` the flattened last conv block,
    which the paper uses for zero-shot transfer to another dataset; ``fc6_features`` the ``(B, 16 width)``
    fc6 activations (after the ReLU). ``variant``: ``"vgg_s"`` (conv2 stride 1, conv5 at 1/8 of the input)
    or ``"vgg_m"`` (conv2 stride 2, conv5 at 1/16).
    """

    def __init__(
        self, in_channels: int = 3, image_size: int = 64, dim: int = 128, width: int = 32, variant: str = "vgg_s"
    ):
        super().__init__()
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels (five conv stages), got {image_size}")
        if in_channels < 1 or dim < 1 or width < 1:
            raise ValueError(f"in_channels, dim and width must be >= 1, got {in_channels}, {dim}, {width}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}")
        self.in_channels, self.image_size, self.dim, self.variant = in_channels, image_size, dim, variant

        def block(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        w = width
        self.conv = nn.Sequential(
            *block(in_channels, w, 7, 2),  # conv1 (96 filters 7x7/2 in VGG-S)
            nn.MaxPool2d(2),
            *block(w, 2 * w, 5, 2 if variant == "vgg_m" else 1),  # conv2 (256 5x5, stride 2 in VGG-M)
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w, 3),  # conv3-5 (512 3x3)
            *block(4 * w, 4 * w, 3),
            *block(4 * w, 4 * w, 3),
            nn.MaxPool2d(2),
        )
        with torch.no_grad():
            n_pool5 = self.conv(torch.zeros(1, in_channels, image_size, image_size)).numel()
        self.n_pool5 = n_pool5
        hidden = 16 * w  # fc6 (4096 in VGG-S and VGG-M)
        self.n_fc6 = hidden
        self.conv_stride = 16 if variant == "vgg_m" else 8  # of conv5, before pool5
        self.fc6 = nn.Sequential(nn.Flatten(), nn.Linear(n_pool5, hidden), nn.ReLU(True), nn.Dropout(0.2))
        self.fc7 = nn.Linear(hidden, dim)

    def pool5(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, n_pool5)`` flattened conv features."""
        return self.conv(x).flatten(1)

    def conv5(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, 4 width, S / conv_stride, S / conv_stride)`` (for S a multiple of the
        stride): conv1-conv5, without pool5, for any input size."""
        return self.conv[:-1](x)

    def fc6_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, n_fc6)`` fc6 after its ReLU (dropout in training mode), no fc7."""
        return self.fc6(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, dim)`` L2-normalised embedding."""
        return F.normalize(self.fc7(self.fc6_features(x)), dim=1)


def vgg_s(in_channels: int = 3, image_size: int = 64, dim: int = 128, width: int = 32) -> VGGS:
    """A VGG-S-like CNN for ``image_size`` crops with a ``dim``-d L2-normalised output (random init)."""
    return VGGS(in_channels=in_channels, image_size=image_size, dim=dim, width=width)


def vgg_m(in_channels: int = 3, image_size: int = 64, width: int = 32, dim: int = 128) -> VGGS:
    """The VGG-M variant (conv2 5x5/2) for ``image_size`` inputs with ``in_channels`` channels (random init);
    its embedding is fc6 (:meth:`VGGS.fc6_features`, ``16 width``-d)."""
    return VGGS(in_channels=in_channels, image_size=image_size, dim=dim, width=width, variant="vgg_m")


@torch.no_grad()
def embed_images(model: VGGS, images: np.ndarray, batch_size: int = 256, layer: str = "embedding") -> np.ndarray:
    """Embed uint8 ``(N, H, W, C)`` images with ``model`` in eval mode -> float32 ``(N, D)``.

    ``layer``: ``"embedding"`` (the L2-normalised output), ``"fc6"`` or ``"pool5"``. The model's train/eval
    mode is restored afterwards; tensors go to the model's device.
    """
    layers = {"embedding": (model.forward, model.dim), "fc6": (model.fc6_features, model.n_fc6),
              "pool5": (model.pool5, model.n_pool5)}  # fmt: skip
    if layer not in layers:
        raise ValueError(f"unknown layer {layer!r}; expected one of {list(layers)}")
    fn, dim = layers[layer]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = images_to_tensor(images[i : i + batch_size], device)
            out.append(fn(x).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)
