"""ResNet (He et al. 2016), hand-written: no torchvision, so no pretrained weights either.

- :func:`resnet` -- ResNet18 (BasicBlock) or ResNet50 (Bottleneck, stride on the 3x3 conv as in torchvision's
  "v1.5"), BatchNorm, at any ``width`` (64 is the published network: 11,689,512 and 25,557,032 parameters
  with a 1000-way head), with an optional classification head.
- :meth:`ResNet.features` -- the outputs of ``layer1`` .. ``layer<k>`` (the feature loss of Honari et al. 2022
  compares layers 1-3); :meth:`ResNet.pooled` -- the globally average-pooled last layer, the trunk code.

Used by :mod:`lib.methods.temporal_representation` as detector, encoder trunk and feature-loss network.
"""

from __future__ import annotations

import torch
from torch import nn

LAYERS = ("layer1", "layer2", "layer3", "layer4")
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and a skip (a 1x1 conv + BN when the shape changes)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, each with BatchNorm, and a skip."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """7x7/2 conv, 3x3/2 max-pool, four stages of blocks (widths w, 2w, 4w, 8w; stride 2 from the second),
    global average pooling and, with ``num_classes``, a linear head. Input ``(B, in_channels, H, W)``."""

    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int | None):
        super().__init__()
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for k, (name, n) in enumerate(zip(LAYERS, counts, strict=True)):
            w = width * 2**k
            blocks = []
            for i in range(n):
                blocks.append(block(cin, w, stride=2 if (i == 0 and k > 0) else 1))
                cin = w * block.expansion
            setattr(self, name, nn.Sequential(*blocks))
        self.out_dim = cin
        self.fc = nn.Linear(cin, num_classes) if num_classes is not None else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor, upto: str = "layer3") -> list[torch.Tensor]:
        """The outputs of ``layer1`` .. ``upto``, in order (``upto`` one of ``layer1`` .. ``layer4``)."""
        if upto not in LAYERS:
            raise ValueError(f"upto must be one of {LAYERS}, got {upto!r}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for name in LAYERS[: LAYERS.index(upto) + 1]:
            x = getattr(self, name)(x)
            out.append(x)
        return out

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, out_dim)``: ``layer4`` averaged over space."""
        return self.features(x, "layer4")[-1].mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled code, through the head when there is one."""
        z = self.pooled(x)
        return z if self.fc is None else self.fc(z)


def resnet(depth: int = 18, width: int = 64, in_channels: int = 3, num_classes: int | None = None) -> ResNet:
    """A randomly initialised ResNet of ``depth`` 18 or 50 with first-stage ``width`` channels (64 in the
    paper's networks), ``in_channels`` input channels and, when ``num_classes`` is given, a linear head."""
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth!r}")
    if width < 1 or in_channels < 1 or (num_classes is not None and num_classes < 1):
        raise ValueError(f"width, in_channels and num_classes must be >= 1, got {width}, {in_channels}, {num_classes}")
    return ResNet(depth, width, in_channels, num_classes)
