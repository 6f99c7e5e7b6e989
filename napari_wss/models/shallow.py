"""A few-layer CNN for the toy experiments, where a U-Net would be overkill."""

from __future__ import annotations

from torch import Tensor, nn


class ShallowCNN(nn.Module):
    """Three 3×3 conv–BN–ReLU layers and a 1×1 classifier; receptive field 7×7.

    Enough for the seed's TOY set, where intensity and a little context decide the class.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(3):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.Conv2d(width, num_classes, 1))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
