"""AlexNet's convolutional layers (Krizhevsky et al. 2012), hand-written and scaled to small person crops.

conv1-conv5 have 96, 256, 384, 384, 256 filters (11x11/4, 5x5, 3x3, 3x3, 3x3) times a ``width`` factor,
one tower (no filter groups), with 3x3/2 max-pooling after conv1, conv2 and conv5. At 227 px pool5 is
6x6. Below 200 px conv1 is 7x7/2 (padding 3): pool5 is 3x3 at 64 px and 5x5 at 96 px. As in Sümer et al.
2017, the ReLU after conv5 is a *leaky* ReLU (slope ``leak``; the paper gives none, we use 0.1). No LRN.

- :class:`AlexNet` -- the conv layers; :meth:`AlexNet.pool5` is the embedding.
- :data:`ALEXNET_CHANNELS` -- the paper's filter counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ALEXNET_CHANNELS = (96, 256, 384, 384, 256)


class AlexNet(nn.Module):
    """AlexNet conv1-conv5 + pool5 for ``(B, in_channels, image_size, image_size)`` float inputs.

    ``width``: factor on :data:`ALEXNET_CHANNELS` (``channels`` overrides the five counts); ``conv1``:
    ``(kernel, stride)``, default 11/4 (no padding) at >= 200 px, else 7/2 (padding 3). ``n_pool5`` is the
    flattened pool5 size.
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 64,
        width: float = 1.0,
        leak: float = 0.1,
        channels: Sequence[int] | None = None,
        conv1: tuple[int, int] | None = None,
    ):
        super().__init__()
        if width <= 0 or in_channels < 1:
            raise ValueError(f"width must be > 0 and in_channels >= 1, got {width}, {in_channels}")
        if not 0 <= leak < 1:
            raise ValueError(f"leak (the negative slope after conv5) must be in [0, 1), got {leak}")
        ch = [max(1, round(c * width)) for c in ALEXNET_CHANNELS] if channels is None else [int(c) for c in channels]
        if len(ch) != 5 or min(ch) < 1:
            raise ValueError(f"channels must be five positive filter counts, got {channels}")
        k1, s1 = conv1 if conv1 is not None else ((11, 4) if image_size >= 200 else (7, 2))
        p1 = 0 if s1 == 4 else k1 // 2
        self.in_channels, self.image_size, self.channels = in_channels, image_size, tuple(ch)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, ch[0], k1, s1, p1), nn.ReLU(True), nn.MaxPool2d(3, 2),  # conv1, pool1
            nn.Conv2d(ch[0], ch[1], 5, 1, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),  # conv2, pool2
            nn.Conv2d(ch[1], ch[2], 3, 1, 1), nn.ReLU(True),  # conv3
            nn.Conv2d(ch[2], ch[3], 3, 1, 1), nn.ReLU(True),  # conv4
            nn.Conv2d(ch[3], ch[4], 3, 1, 1), nn.LeakyReLU(leak, True), nn.MaxPool2d(3, 2),  # conv5, pool5
        )  # fmt: skip
        try:
            with torch.no_grad():
                out = self.features(torch.zeros(1, in_channels, image_size, image_size))
        except RuntimeError as e:
            raise ValueError(f"image_size {image_size} is too small for AlexNet's three poolings") from e
        self.pool5_shape = tuple(out.shape[1:])
        self.n_pool5 = out.numel()

    def pool5(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, n_pool5)`` flattened pool5 (after the leaky ReLU and the last pooling)."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`pool5`."""
        return self.pool5(x)
