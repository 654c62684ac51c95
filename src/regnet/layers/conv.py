"""Convolution and conv + BN + ReLU, with the 'same' padding every family uses."""
from __future__ import annotations

import torch.nn as nn


def conv2d(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
           bias: bool = False) -> nn.Conv2d:
    """A conv padded so that the output is (h - 1) // stride + 1 for an odd kernel.

    Only 2-D: the 3-D nets are 2-D nets inflated layer by layer (`regnet.models.inflate`).
    """
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2,
                     groups=groups, bias=bias)


class ConvBnAct(nn.Module):
    """conv -> BN -> ReLU (`act=False` leaves the ReLU out)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, bias: bool = False, act: bool = True):
        super().__init__()
        self.conv = conv2d(in_chs, out_chs, kernel_size, stride, groups, bias)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
