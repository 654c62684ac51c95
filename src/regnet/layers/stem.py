"""Network stems, by name, shared by every family."""
from __future__ import annotations

import torch.nn as nn

from .conv import conv2d

# name -> (kernel, stride, max-pool after, BN+ReLU after); the total stride is stride * (2 if pool)
STEMS = {
    "cifar": (3, 1, False, True),          # He et al. CIFAR ResNets, the RNN-regulated nets
    "cifar_conv": (3, 1, False, False),    # pre-activation nets: the first block normalises
    "imagenet": (7, 2, True, True),        # torchvision ResNet: 7x7/2 + 3x3/2 max-pool
    "imagenet_nopool": (7, 2, False, True),  # iResNet: stage 1's start block does the 2nd step
    "anynet": (3, 2, False, True),         # pycls AnyNet / RegNet: 3x3/2, 32 channels
}


class Stem(nn.Module):
    def __init__(self, kind: str, in_chs: int, out_chs: int):
        super().__init__()
        if kind not in STEMS:
            raise ValueError(f"unknown stem {kind!r}; expected one of {', '.join(STEMS)}")
        kernel, stride, pool, norm = STEMS[kind]
        self.kind = kind
        self.conv = conv2d(in_chs, out_chs, kernel, stride)
        self.bn = nn.BatchNorm2d(out_chs) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True) if norm else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()
        self.reduction = stride * (2 if pool else 1)
        self.out_chs = out_chs

    def forward(self, x):
        return self.pool(self.act(self.bn(self.conv(x))))
