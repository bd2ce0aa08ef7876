"""The U-Net member, as in the original project.

Four encoder levels of two 3x3 convolution + batch norm + ReLU layers, a
bottleneck, and four decoder levels; every block also has a 1x1 convolution +
batch norm + ReLU path added to its output, so each block learns a residual on
top of a cheap projection (this trains faster from scratch than a plain U-Net,
which matters because no pretrained weights are ever downloaded).
"""
from __future__ import annotations

import torch
from torch import nn

DEPTH = 4  # encoder levels; the input must be a multiple of 2**DEPTH


class ResidualDoubleConv(nn.Module):
    """conv3x3-BN-ReLU x2, plus a conv1x1-BN-ReLU path from the block input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class UNet(nn.Module):
    """Returns class logits [B, num_classes, H, W] for a normalised float input."""

    def __init__(self, in_channels: int = 3, num_classes: int = 4, init_features: int = 32) -> None:
        super().__init__()
        if init_features < 1:
            raise ValueError(f"init_features must be positive, got {init_features}")
        self.init_features = init_features
        widths = [init_features * 2**level for level in range(DEPTH + 1)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths[:DEPTH]:
            self.encoders.append(ResidualDoubleConv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = ResidualDoubleConv(widths[DEPTH - 1], widths[DEPTH])
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(DEPTH)):
            self.upsamplers.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.decoders.append(ResidualDoubleConv(widths[level] * 2, widths[level]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    divisor = 2**DEPTH

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)
