"""ResNet baselines (He et al.): CIFAR 6n+2 basic-block nets, SE-ResNets, pre-activation
bottleneck nets, ImageNet ResNets and ResNeXts (torchvision layout: stride on the 3x3).

The blocks here are the base the other families extend: RegNet's X block is `Bottleneck` with
a group width and a bottleneck multiplier, its Y block adds SE after the 3x3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from regnet.layers import SqueezeExcite, Stem, bn_nd, conv_nd, make_shortcut
from regnet.registry import register_model

from .net import Net, Stage, make_blocks


def se_width(ratio: float, in_chs: int, out_chs: int, base: str) -> int:
    """SE squeeze width: a ratio of the block's input width (RegNetY) or output width (SENet)."""
    return int(round(ratio * (in_chs if base == "in" else out_chs)))


class BasicBlock(nn.Module):
    """3x3 -> BN -> ReLU -> 3x3 -> BN [-> SE], + shortcut, ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, shortcut: str = "B",
                 shortcut_bias: bool = False, se_ratio: float = 0.0, se_bias: bool = True,
                 dims: int = 2):
        super().__init__()
        self.conv1 = conv_nd(dims, in_chs, out_chs, 3, stride)
        self.bn1 = bn_nd(dims, out_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv_nd(dims, out_chs, out_chs, 3)
        self.bn2 = bn_nd(dims, out_chs)
        rd = se_width(se_ratio, in_chs, out_chs, "out")
        self.se = SqueezeExcite(out_chs, rd, se_bias, dims) if rd else nn.Identity()
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, shortcut_bias, dims)
        self.act2 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return self.act2(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> BN -> ReLU -> grouped 3x3 (stride) -> BN -> ReLU -> 1x1 -> BN, + shortcut, ReLU.

    `mid_chs` is the inner width, `groups` the 3x3's groups. SE sits after the 3x3 (RegNetY,
    `se_after="conv2"`, squeeze width from the block input) or after the last BN (SENet).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, mid_chs: int,
                 groups: int = 1, shortcut: str = "B", shortcut_bias: bool = False,
                 se_ratio: float = 0.0, se_after: str = "conv3", se_bias: bool = True,
                 dims: int = 2):
        super().__init__()
        self.conv1 = conv_nd(dims, in_chs, mid_chs, 1)
        self.bn1 = bn_nd(dims, mid_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv_nd(dims, mid_chs, mid_chs, 3, stride, groups=groups)
        self.bn2 = bn_nd(dims, mid_chs)
        self.act2 = nn.ReLU(inplace=True)
        se_chs = mid_chs if se_after == "conv2" else out_chs
        rd = se_width(se_ratio, in_chs, out_chs, "in" if se_after == "conv2" else "out")
        self.se = SqueezeExcite(se_chs, rd, se_bias, dims) if rd else nn.Identity()
        self.se_after = se_after
        self.conv3 = conv_nd(dims, mid_chs, out_chs, 1)
        self.bn3 = bn_nd(dims, out_chs)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, shortcut_bias, dims)
        self.act3 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y)))
        if self.se_after == "conv2":
            y = self.se(y)
        y = self.bn3(self.conv3(y))
        if self.se_after == "conv3":
            y = self.se(y)
        return self.act3(y + self.shortcut(x))


class PreActBottleneck(nn.Module):
    """Identity-mapping bottleneck (He et al. 2016): BN -> ReLU -> 1x1 -> BN -> ReLU -> 3x3
    (stride) -> BN -> ReLU -> 1x1, + shortcut. A projection shortcut reads the pre-activated
    input, as in the authors' code, and has no BN of its own."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, mid_chs: int,
                 dims: int = 2, **_unused_shortcut_args):
        super().__init__()
        self.bn1 = bn_nd(dims, in_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv_nd(dims, in_chs, mid_chs, 1)
        self.bn2 = bn_nd(dims, mid_chs)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = conv_nd(dims, mid_chs, mid_chs, 3, stride)
        self.bn3 = bn_nd(dims, mid_chs)
        self.act3 = nn.ReLU(inplace=True)
        self.conv3 = conv_nd(dims, mid_chs, out_chs, 1)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, "conv", False, dims)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        shortcut = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        y = self.act2(self.bn2(self.conv1(pre)))
        y = self.act3(self.bn3(self.conv2(y)))
        return self.conv3(y) + shortcut


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "preact": PreActBottleneck}


@dataclass(frozen=True)
class ResNetCfg:
    """A ResNet / ResNeXt / SE-ResNet / pre-activation ResNet."""

    block: str = "basic"                    # basic | bottleneck | preact
    depths: tuple[int, ...] = (3, 3, 3)     # blocks per stage
    widths: tuple[int, ...] = (16, 32, 64)  # planes per stage (outputs are widths * expansion)
    strides: tuple[int, ...] = (1, 2, 2)
    expansion: int = 1                      # 4 for bottlenecks
    stem: str = "cifar"                     # see regnet.layers.STEMS
    stem_chs: int = 16
    groups: int = 1                         # ResNeXt cardinality
    base_width: int = 64                    # ResNeXt width per group at 64 planes
    shortcut: str = "B"                     # B (1x1 conv + BN) | A (zero pad) | improved
    shortcut_bias: bool = False             # the self-regulated paper's CIFAR counts need True
    se_ratio: float = 0.0                   # SE squeeze width / block output width
    se_bias: bool = True
    drop_rate: float = 0.0
    zero_init_last: bool = False            # zero the last BN gamma of every residual branch
    input_size: tuple[int, ...] = (3, 32, 32)

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; expected one of {', '.join(BLOCKS)}")
        if not (len(self.depths) == len(self.widths) == len(self.strides)):
            raise ValueError("depths, widths and strides need one entry per stage")


def stage_block_args(cfg: ResNetCfg, planes: int) -> dict:
    """The block kwargs of one stage (also used by the families that extend ResNet)."""
    args = {"shortcut": cfg.shortcut, "shortcut_bias": cfg.shortcut_bias}
    if cfg.block == "basic":
        return {**args, "se_ratio": cfg.se_ratio, "se_bias": cfg.se_bias}
    mid = int(planes * cfg.base_width / 64) * cfg.groups
    if cfg.block == "preact":
        return {"mid_chs": mid}
    return {**args, "mid_chs": mid, "groups": cfg.groups, "se_ratio": cfg.se_ratio,
            "se_bias": cfg.se_bias}


def init_weights(model: nn.Module, zero_init_last: bool = False) -> None:
    """Kaiming-normal (fan_out) convs, unit BN, the torchvision / iResNet initialisation."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


def build_resnet(cfg: ResNetCfg, num_classes: int) -> Net:
    block = BLOCKS[cfg.block]
    stem = Stem(cfg.stem, cfg.input_size[0], cfg.stem_chs)
    stages, chs, in_chs = [], [], cfg.stem_chs
    for depth, planes, stride in zip(cfg.depths, cfg.widths, cfg.strides):
        out_chs = planes * cfg.expansion
        stages.append(Stage(make_blocks(block, in_chs, out_chs, depth, stride,
                                        **stage_block_args(cfg, planes))))
        chs.append(out_chs)
        in_chs = out_chs
    # Pre-activation nets end un-normalised: BN + ReLU before the pool.
    norm = nn.Sequential(bn_nd(2, in_chs), nn.ReLU(inplace=True)) if cfg.block == "preact" else None
    net = Net(stem, stages, chs, cfg.strides, num_classes, stem_reduction=stem.reduction,
              input_size=cfg.input_size, norm=norm, drop_rate=cfg.drop_rate)
    init_weights(net, cfg.zero_init_last)
    return net


# -- the registered variants ------------------------------------------------------------------
_HE2016 = "He et al., Deep Residual Learning for Image Recognition"
_CIFAR = dict(num_classes=10, input_size=(3, 32, 32), family="resnet")
_IMAGENET = dict(num_classes=1000, input_size=(3, 224, 224), family="resnet")

CIFAR_RESNET = ResNetCfg(shortcut_bias=True)
IMAGENET_RESNET = ResNetCfg(block="bottleneck", depths=(3, 4, 6, 3), widths=(64, 128, 256, 512),
                            strides=(1, 2, 2, 2), expansion=4, stem="imagenet", stem_chs=64,
                            input_size=(3, 224, 224))
PREACT_CIFAR = ResNetCfg(block="preact", depths=(18, 18, 18), expansion=4, stem="cifar_conv")


def cifar_resnet(depth: int, **kw) -> ResNetCfg:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNetCfg(**{**CIFAR_RESNET.__dict__, "depths": (n, n, n), **kw})


def _imagenet(depths, block="bottleneck", **kw) -> ResNetCfg:
    expansion = 4 if block == "bottleneck" else 1
    return ResNetCfg(**{**IMAGENET_RESNET.__dict__, "block": block, "depths": depths,
                        "expansion": expansion, **kw})


for _d in (20, 32, 44, 56, 110):
    register_model(f"resnet{_d}", build_resnet, cifar_resnet(_d), paper=_HE2016,
                   aliases=(f"ResNet-{_d}",), **_CIFAR)
for _d in (20, 32, 56):
    # SE after the branch's last BN, squeeze 8x, no FC bias (the self-regulated paper's SE-ResNet)
    register_model(f"se_resnet{_d}", build_resnet, cifar_resnet(_d, se_ratio=1 / 8, se_bias=False),
                   paper="Hu et al., Squeeze-and-Excitation Networks", aliases=(f"SE-ResNet-{_d}",),
                   **_CIFAR)
for _d, _n in ((164, 18), (1001, 111)):
    register_model(f"preact_resnet{_d}", build_resnet,
                   ResNetCfg(**{**PREACT_CIFAR.__dict__, "depths": (_n, _n, _n)}),
                   paper="He et al., Identity Mappings in Deep Residual Networks",
                   aliases=(f"PreAct-ResNet-{_d}",), **_CIFAR)

_IMAGENET_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                     50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                     152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3))}
for _d, (_block, _depths) in _IMAGENET_LAYOUTS.items():
    register_model(f"resnet{_d}", build_resnet, _imagenet(_depths, _block), paper=_HE2016,
                   aliases=(f"ResNet-{_d}",), **_IMAGENET)
for _d, _depths in ((50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)), (152, (3, 8, 36, 3))):
    register_model(f"resnext{_d}_32x4d", build_resnet, _imagenet(_depths, groups=32, base_width=4),
                   paper="Xie et al., Aggregated Residual Transformations",
                   aliases=(f"ResNeXt-{_d}",), **_IMAGENET)
register_model("se_resnet50", build_resnet, _imagenet((3, 4, 6, 3), se_ratio=1 / 16),
               paper="Hu et al., Squeeze-and-Excitation Networks", aliases=("SE-ResNet-50",),
               **_IMAGENET)
