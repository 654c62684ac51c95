"""ResNet baselines (He et al.): CIFAR 6n+2 basic-block nets, SE-ResNets, pre-activation
bottleneck nets, ImageNet ResNets and ResNeXts (torchvision layout: stride on the 3x3).

The blocks are in `blocks.py`, shared with the other families (RegNet's X block is the same
`Bottleneck` with a group width and a bottleneck multiplier).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from regnet.layers import Stem
from regnet.registry import register_model

from .blocks import IMAGENET_LAYOUTS, BasicBlock, Bottleneck, PreActBottleneck, init_weights
from .net import Net, StageSpec

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
    """The block kwargs of one stage."""
    args = {"shortcut": cfg.shortcut, "shortcut_bias": cfg.shortcut_bias}
    if cfg.block == "basic":
        return {**args, "se_ratio": cfg.se_ratio, "se_bias": cfg.se_bias}
    mid = int(planes * cfg.base_width / 64) * cfg.groups
    if cfg.block == "preact":
        return {"mid_chs": mid}
    return {**args, "mid_chs": mid, "groups": cfg.groups, "se_ratio": cfg.se_ratio,
            "se_bias": cfg.se_bias}


def resnet_stages(cfg: ResNetCfg) -> list[StageSpec]:
    return [StageSpec(depth, planes * cfg.expansion, stride, stage_block_args(cfg, planes))
            for depth, planes, stride in zip(cfg.depths, cfg.widths, cfg.strides)]


def build_resnet(cfg: ResNetCfg, num_classes: int) -> Net:
    # Pre-activation nets end un-normalised: BN + ReLU before the pool.
    last = cfg.widths[-1] * cfg.expansion
    norm = nn.Sequential(nn.BatchNorm2d(last), nn.ReLU(inplace=True)) \
        if cfg.block == "preact" else None
    net = Net.from_specs(Stem(cfg.stem, cfg.input_size[0], cfg.stem_chs), BLOCKS[cfg.block],
                         resnet_stages(cfg), num_classes, input_size=cfg.input_size, norm=norm,
                         drop_rate=cfg.drop_rate)
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

for _d in (18, 34, 50, 101, 152, 200):
    _block, _depths = IMAGENET_LAYOUTS[_d]
    register_model(f"resnet{_d}", build_resnet, _imagenet(_depths, _block), paper=_HE2016,
                   aliases=(f"ResNet-{_d}",), **_IMAGENET)
for _d in (50, 101, 152):
    register_model(f"resnext{_d}_32x4d", build_resnet,
                   _imagenet(IMAGENET_LAYOUTS[_d][1], groups=32, base_width=4),
                   paper="Xie et al., Aggregated Residual Transformations",
                   aliases=(f"ResNeXt-{_d}",), **_IMAGENET)
register_model("se_resnet50", build_resnet, _imagenet(IMAGENET_LAYOUTS[50][1], se_ratio=1 / 16),
               paper="Hu et al., Squeeze-and-Excitation Networks", aliases=("SE-ResNet-50",),
               **_IMAGENET)
