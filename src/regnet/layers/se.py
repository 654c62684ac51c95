"""Squeeze-and-excitation (Hu et al.), as 1x1 convs so it works for 2-D and 3-D maps."""
from __future__ import annotations

import torch.nn as nn

from .conv import conv_nd


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean(x))))); `rd_chs` is the squeezed width."""

    def __init__(self, chs: int, rd_chs: int, bias: bool = True, dims: int = 2):
        super().__init__()
        self.dims = dims
        self.fc1 = conv_nd(dims, chs, rd_chs, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = conv_nd(dims, rd_chs, chs, 1, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
