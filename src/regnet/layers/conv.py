"""Convolution + batch norm + activation, written once for 1-, 2- and 3-D inputs."""
from __future__ import annotations

import torch.nn as nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


def conv_nd(dims: int, in_chs: int, out_chs: int, kernel_size=1, stride=1, groups: int = 1,
            bias: bool = False, padding=None) -> nn.Module:
    """A conv with 'same' padding for odd kernels (output size (h - 1) // stride + 1)."""
    if padding is None:
        ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * dims
        padding = tuple(k // 2 for k in ks)
    return _CONV[dims](in_chs, out_chs, kernel_size, stride=stride, padding=padding,
                       groups=groups, bias=bias)


def bn_nd(dims: int, chs: int) -> nn.Module:
    return _BN[dims](chs)


def pool_nd(dims: int, kernel_size=3, stride=2, padding=1) -> nn.Module:
    return _MAXPOOL[dims](kernel_size, stride=stride, padding=padding)


def create_act(act: str | None) -> nn.Module:
    if act is None or act == "none":
        return nn.Identity()
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "sigmoid":
        return nn.Sigmoid()
    if act == "tanh":
        return nn.Tanh()
    if act == "silu":
        return nn.SiLU(inplace=True)
    raise ValueError(f"unknown activation {act!r}; expected relu, sigmoid, tanh, silu or none")


class ConvBnAct(nn.Module):
    """conv -> BN -> activation; `act=None` leaves the activation out."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size=3, stride=1, groups: int = 1,
                 bias: bool = False, act: str | None = "relu", dims: int = 2):
        super().__init__()
        self.conv = conv_nd(dims, in_chs, out_chs, kernel_size, stride, groups, bias)
        self.bn = bn_nd(dims, out_chs)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
