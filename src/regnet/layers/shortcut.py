"""Residual shortcuts, chosen by name so any family's block can use any of them.

- "B" (projection): 1x1 conv carrying the stride, then BN (He et al.; torchvision, pycls).
- "A": parameter-free; subsample spatially and zero-pad the new channels (He et al. CIFAR).
- "improved": iResNet's projection (Duta et al.): 3x3 max-pool stride 2 -> 1x1 conv -> BN, so that
  the shortcut looks at every position of the 3x3 window the main branch sees instead of
  dropping 3 of every 4 positions with a strided 1x1.
- "conv": preact-ResNet's projection, a 1x1 conv with no BN (the next block normalises).
An identity is used whenever shape does not change, whatever the choice.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .conv import conv2d

SHORTCUTS = ("B", "A", "improved", "conv")


class ProjectionShortcut(nn.Module):
    """[max-pool] -> [1x1 conv] -> [BN]; which parts exist depends on the shortcut kind."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, kind: str = "B",
                 bias: bool = False):
        super().__init__()
        pool_first = kind == "improved" and stride > 1
        self.pool = nn.MaxPool2d(3, stride, 1) if pool_first else nn.Identity()
        conv_stride = 1 if pool_first else stride
        if in_chs != out_chs or conv_stride > 1:
            self.conv = conv2d(in_chs, out_chs, 1, conv_stride, bias=bias)
            self.bn = nn.Identity() if kind == "conv" else nn.BatchNorm2d(out_chs)
        else:  # "improved" with a stride but no channel change: the max-pool alone
            self.conv = nn.Identity()
            self.bn = nn.Identity()

    def forward(self, x):
        return self.bn(self.conv(self.pool(x)))


class PadShortcut(nn.Module):
    """Option A: take every `stride`-th position and zero-pad the extra channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_chs - in_chs
        if self.extra < 0:
            raise ValueError("shortcut 'A' cannot reduce channels")

    def forward(self, x):
        if self.stride > 1:
            index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)
            x = x[index]
        if self.extra:
            lo = self.extra // 2
            pad = [0, 0] * (x.dim() - 2) + [lo, self.extra - lo]
            x = F.pad(x, pad)
        return x


def make_shortcut(in_chs: int, out_chs: int, stride: int, kind: str = "B",
                  bias: bool = False) -> nn.Module:
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; expected one of {', '.join(SHORTCUTS)}")
    if in_chs == out_chs and stride == 1:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_chs, out_chs, stride)
    return ProjectionShortcut(in_chs, out_chs, stride, kind, bias)
