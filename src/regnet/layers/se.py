"""Squeeze-and-excitation (Hu et al.), with 1x1 convs so that an inflated (3-D) net keeps it."""
from __future__ import annotations

import torch.nn as nn

from .conv import conv2d


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean(x))))); `rd_chs` is the squeezed width.

    The mean runs over every axis after the channels, so the same module serves a clip.
    """

    def __init__(self, chs: int, rd_chs: int, bias: bool = True):
        super().__init__()
        self.fc1 = conv2d(chs, rd_chs, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = conv2d(rd_chs, chs, 1, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
