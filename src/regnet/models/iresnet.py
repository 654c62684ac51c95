"""Improved residual networks (Duta et al., "Improved Residual Networks for Image and Video
Recognition"): ResStage, ResMax, iResNet, ResGroup(Fix), iResGroup(Fix), CIFAR iResNets.

Three independent changes to a ResNet, each a config field here:
- `layout="stage"` (ResStage): each stage is a Start block, Middle blocks and an End block
  (`StageBlock(position=...)`), so only the End block's ReLU sits on the main path of a stage:
  the signal crosses one ReLU per stage whatever the depth (the plain ResNet crosses one per
  block). BN layers are rearranged, not added: the parameter count equals the plain ResNet's.
- `shortcut="improved"` (ResMax): 3x3 max-pool stride 2 -> 1x1 conv -> BN on projections
  (`regnet.layers.make_shortcut`).
- `mid_mult=4, expansion=2` with grouped 3x3s (ResGroup): the 3x3 gets the widest channels.
iResNet = ResStage + improved shortcut + a stem without max-pool (stage 1's Start block does
that stride-2 step instead, with the max-pool in its shortcut).

FLOP conventions: `regnet info` reports `macs` (the `gmacs_224_or_32` column of the reference
table, matched exactly by the tests); the paper's "GFLOPs" follow an older counter that
`regnet.complexity.paper_flops` reproduces (docs/ARCHITECTURE.md gives the figures and why).

The public reference code has no CIFAR, ResMax, 3D or detection versions; those follow the
paper's text (docs/ARCHITECTURE.md). The face-recognition "IR-ResNet" is unrelated.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from regnet.layers import Stem
from regnet.registry import register_model

from .blocks import (IMAGENET_LAYOUTS, BasicBlock, Bottleneck, StageBlock, init_weights,
                     stage_positions)
from .net import Net, StageSpec

@dataclass(frozen=True)
class IResNetCfg:
    """One config for every network of the paper (ImageNet and CIFAR)."""

    block: str = "bottleneck"               # basic | bottleneck
    layout: str = "stage"                   # stage (Start/Middle/End) | plain (He et al.)
    depths: tuple[int, ...] = (3, 4, 6, 3)  # blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # planes; outputs are widths * expansion
    strides: tuple[int, ...] = (2, 2, 2, 2)
    expansion: int = 4                      # ResGroup: 2 (W -> W/2)
    mid_mult: int = 1                       # 3x3 width = planes * mid_mult (ResGroup: 4)
    groups: int = 1                         # 3x3 groups in every stage (ResGroupFix: 64)
    group_width: int = 0                    # > 0: groups = 3x3 width // group_width (ResGroup: 32)
    stem: str = "imagenet_nopool"           # see regnet.layers.STEMS
    stem_chs: int = 64
    shortcut: str = "improved"              # B | improved (| A | conv)
    # The identity of the block after each Start block (the one without BN0): "rectified",
    # ReLU(x) + F(ReLU(x)), as the authors' code computes it (its in-place ReLU rectifies the
    # tensor the identity holds), which produced the published numbers and checkpoints; "raw",
    # x + F(ReLU(x)), the paper's text. Same parameters either way.
    stage_identity: str = "rectified"
    drop_rate: float = 0.0
    zero_init_last: bool = False
    input_size: tuple[int, ...] = (3, 224, 224)

    def __post_init__(self):
        if self.block not in ("basic", "bottleneck"):
            raise ValueError(f"unknown block {self.block!r}; expected basic or bottleneck")
        if self.layout not in ("stage", "plain"):
            raise ValueError(f"unknown layout {self.layout!r}; expected stage or plain")
        if not (len(self.depths) == len(self.widths) == len(self.strides)):
            raise ValueError("depths, widths and strides need one entry per stage")
        if self.stage_identity not in ("rectified", "raw"):
            raise ValueError(f"unknown stage_identity {self.stage_identity!r}; expected "
                             "rectified (the authors' code) or raw (the paper's text)")
        if self.layout == "stage" and min(self.depths) < 2:
            raise ValueError(f"layout='stage' needs >= 2 blocks per stage, got {self.depths}")


def _block_args(cfg: IResNetCfg, planes: int) -> dict:
    args = {"shortcut": cfg.shortcut}
    if cfg.block == "bottleneck":
        mid = planes * cfg.mid_mult
        args.update(mid_chs=mid, groups=mid // cfg.group_width if cfg.group_width else cfg.groups)
    return args


def build_iresnet(cfg: IResNetCfg, num_classes: int) -> Net:
    if cfg.layout == "stage":
        block, per_block = StageBlock, stage_positions
        extra = {"block": cfg.block, "rectify_identity": cfg.stage_identity == "rectified"}
    else:
        block, per_block, extra = (Bottleneck if cfg.block == "bottleneck" else BasicBlock), \
            None, {}
    specs = [StageSpec(depth, planes * cfg.expansion, stride, {**_block_args(cfg, planes), **extra})
             for depth, planes, stride in zip(cfg.depths, cfg.widths, cfg.strides)]
    net = Net.from_specs(Stem(cfg.stem, cfg.input_size[0], cfg.stem_chs), block, specs,
                         num_classes, input_size=cfg.input_size, per_block=per_block,
                         drop_rate=cfg.drop_rate)
    init_weights(net, cfg.zero_init_last)
    return net


# -- the registered variants ------------------------------------------------------------------
_PAPER = "Duta et al., Improved Residual Networks for Image and Video Recognition"
_IMAGENET = dict(num_classes=1000, input_size=(3, 224, 224), family="iresnet", paper=_PAPER)
_CIFAR = dict(num_classes=10, input_size=(3, 32, 32), family="iresnet", paper=_PAPER)
# 9n + 2 layers of bottleneck stages. The paper's CIFAR nets are 164 and up; 56 and 110 are the
# shallower rungs of this repository's depth study (docs/RESULTS.md section 5), same blocks.
CIFAR_LAYOUTS = {56: (6, 6, 6), 110: (12, 12, 12), 164: (18, 18, 18), 1001: (111, 111, 111),
                 2000: (222, 222, 222),
                 3002: (333, 334, 333)}  # this 3002 split gives the paper's 30.93M

IRESNET = IResNetCfg()
# ResStage keeps the plain ResNet's max-pool stem and strided-1x1 shortcut.
RESSTAGE = dataclasses.replace(IRESNET, stem="imagenet", strides=(1, 2, 2, 2), shortcut="B")
RESMAX = dataclasses.replace(RESSTAGE, layout="plain", shortcut="improved")
# ResGroup: 1x1 (-> W = 4 planes) -> grouped 3x3 (W) -> 1x1 (-> W/2); the plain ResNet around it.
RESGROUP = dataclasses.replace(RESSTAGE, layout="plain", mid_mult=4, expansion=2, group_width=32)
RESGROUPFIX = dataclasses.replace(RESGROUP, group_width=0, groups=64)
IRESGROUP = dataclasses.replace(IRESNET, mid_mult=4, expansion=2, group_width=32)
IRESGROUPFIX = dataclasses.replace(IRESGROUP, group_width=0, groups=64)
CIFAR_IRESNET = dataclasses.replace(IRESNET, depths=CIFAR_LAYOUTS[164], widths=(16, 32, 64),
                                    strides=(1, 2, 2), stem="cifar", stem_chs=16,
                                    input_size=(3, 32, 32))


def imagenet_cfg(cfg: IResNetCfg, depth: int) -> IResNetCfg:
    """`cfg` (IRESNET, RESSTAGE, ...) with the blocks and depths of the ImageNet `depth`."""
    block, depths = IMAGENET_LAYOUTS[depth]
    return dataclasses.replace(cfg, block=block, depths=depths,
                               expansion=1 if block == "basic" else cfg.expansion)


for _d in IMAGENET_LAYOUTS:
    register_model(f"iresnet{_d}", build_iresnet, imagenet_cfg(IRESNET, _d),
                   aliases=(f"iResNet-{_d}",), **_IMAGENET)
for _d in (50, 101, 152, 200):
    register_model(f"resstage{_d}", build_iresnet, imagenet_cfg(RESSTAGE, _d),
                   aliases=(f"ResStage-{_d}",), **_IMAGENET)
register_model("resmax50", build_iresnet, imagenet_cfg(RESMAX, 50), aliases=("ResMax-50",),
               **_IMAGENET)
for _d in (50, 101, 152):
    for _name, _cfg in (("resgroup", RESGROUP), ("resgroupfix", RESGROUPFIX),
                        ("iresgroup", IRESGROUP), ("iresgroupfix", IRESGROUPFIX)):
        register_model(f"{_name}{_d}", build_iresnet, imagenet_cfg(_cfg, _d), **_IMAGENET)
for _d, _depths_cifar in CIFAR_LAYOUTS.items():
    register_model(f"iresnet{_d}", build_iresnet,
                   dataclasses.replace(CIFAR_IRESNET, depths=_depths_cifar),
                   aliases=(f"iResNet-{_d}",), **_CIFAR)
