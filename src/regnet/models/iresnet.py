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

FLOP conventions. `regnet info` reports `macs` (multiply-adds of convs and the classifier, no
bias adds; the `gmacs_224_or_32` column of `reference/iresnet.tsv`, matched exactly by the tests)
and `flops` = macs + bias adds; these nets have bias-free convs, so flops = macs + num_classes.
The paper's "GFLOPs" column is neither: its figures follow an old third-party PyTorch counter
that also counts 4 operations per BN output element and the classifier as (2*in - 1)*out (and,
for the CIFAR nets, one operation per ReLU output element). Our `macs` therefore sit 1-3%
(ImageNet) and 5-7% (CIFAR) below the paper: iResNet-50 4.1277 vs 4.18 G, iResNet-1001 1.4910 vs
1.59 G. `paper_flops()` below recomputes that convention: it gives 4.1766 (4.18), 7.9093 (7.92),
14.688 (ResGroup-152, 14.70), and for CIFAR 0.2639 (0.26), 1.5872 (1.59), 3.1667 (3.17),
4.7509 (4.75): every paper figure within 0.3%, the ImageNet
ones not always to the last printed digit (the old counter's exact rules are not published).

The public reference code has no CIFAR, ResMax, 3D or detection versions; those follow the
paper's text (see `reference/iresnet.md`). The face-recognition "IR-ResNet" is unrelated.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch.nn as nn

from regnet.layers import Stem, bn_nd, conv_nd, make_shortcut
from regnet.registry import register_model

from .net import Net, Stage, make_blocks
from .resnet import BasicBlock, Bottleneck, init_weights

POSITIONS = ("start", "middle", "end")


class StageBlock(nn.Module):
    """A ResStage block; what it does depends on its `position` in the stage.

    - start: conv -> BN -> ReLU ... conv -> BN, + shortcut(x); no ReLU after the addition.
    - middle: [BN0] -> ReLU -> conv -> BN -> ReLU ... conv, + x (pre-activation branch).
    - end: the middle branch, then BN -> ReLU after the addition.
    `pre_bn=False` drops BN0: the first Middle block of a stage (or the End block of a two-block
    stage) reads the Start block's already normalised output.
    `block="bottleneck"`: 1x1 (in -> mid) -> 3x3 (mid, groups, stride) -> 1x1 (mid -> out);
    `block="basic"`: 3x3 (in -> out, stride) -> 3x3 (out -> out).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, position: str = "middle",
                 pre_bn: bool = True, block: str = "bottleneck", mid_chs: int = 0,
                 groups: int = 1, shortcut: str = "improved", dims: int = 2):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r}; expected one of {POSITIONS}")
        if position != "start" and (in_chs != out_chs or stride != 1):
            raise ValueError("only the Start block of a stage may change width or stride")
        self.position = position
        if block == "bottleneck":
            specs = [(in_chs, mid_chs, 1, 1, 1), (mid_chs, mid_chs, 3, stride, groups),
                     (mid_chs, out_chs, 1, 1, 1)]
        elif block == "basic":
            specs = [(in_chs, out_chs, 3, stride, 1), (out_chs, out_chs, 3, 1, 1)]
        else:
            raise ValueError(f"unknown block {block!r}; expected basic or bottleneck")
        self.n = len(specs)
        if position != "start":
            # Out-of-place: the unnormalised input is still needed by the identity shortcut.
            self.bn0 = bn_nd(dims, in_chs) if pre_bn else nn.Identity()
            self.act0 = nn.ReLU(inplace=pre_bn)
        for i, (cin, cout, k, s, g) in enumerate(specs, 1):
            self.add_module(f"conv{i}", conv_nd(dims, cin, cout, k, s, groups=g))
            if i < self.n:
                self.add_module(f"bn{i}", bn_nd(dims, cout))
                self.add_module(f"act{i}", nn.ReLU(inplace=True))
        # Start normalises its branch before the addition (the shortcut is normalised too);
        # End normalises the sum, preparing the signal for the next stage. Same parameter name.
        if position in ("start", "end"):
            self.add_module(f"bn{self.n}", bn_nd(dims, out_chs))
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, False, dims)
        if position == "end":
            self.act_out = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        # Zeroing the End block's BN would zero the whole signal: zero its last conv instead.
        last = getattr(self, f"bn{self.n}") if self.position == "start" else \
            getattr(self, f"conv{self.n}")
        nn.init.zeros_(last.weight)

    def forward(self, x):
        y = x if self.position == "start" else self.act0(self.bn0(x))
        for i in range(1, self.n):
            y = getattr(self, f"act{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y)))
        y = getattr(self, f"conv{self.n}")(y)
        if self.position == "start":
            return getattr(self, f"bn{self.n}")(y) + self.shortcut(x)
        y = y + self.shortcut(x)
        if self.position == "end":
            y = self.act_out(getattr(self, f"bn{self.n}")(y))
        return y


def stage_positions(index: int, depth: int) -> dict:
    """make_blocks' `per_block` hook: Start, Middle (the first without BN0), End."""
    if depth < 2:
        raise ValueError("a ResStage stage needs at least 2 blocks (a Start and an End)")
    if index == 0:
        return {"position": "start"}
    return {"position": "end" if index == depth - 1 else "middle", "pre_bn": index > 1}


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
        block_fn, per_block, extra = StageBlock, stage_positions, {"block": cfg.block}
    else:
        block_fn, per_block, extra = (Bottleneck if cfg.block == "bottleneck" else BasicBlock), \
            None, {}
    stem = Stem(cfg.stem, cfg.input_size[0], cfg.stem_chs)
    stages, chs, in_chs = [], [], cfg.stem_chs
    for depth, planes, stride in zip(cfg.depths, cfg.widths, cfg.strides):
        out_chs = planes * cfg.expansion
        stages.append(Stage(make_blocks(block_fn, in_chs, out_chs, depth, stride, per_block,
                                        **_block_args(cfg, planes), **extra)))
        chs.append(out_chs)
        in_chs = out_chs
    net = Net(stem, stages, chs, cfg.strides, num_classes, stem_reduction=stem.reduction,
              input_size=cfg.input_size, drop_rate=cfg.drop_rate)
    init_weights(net, cfg.zero_init_last)
    return net


def ssd_trunk(name: str = "iresnet50", **overrides) -> nn.Module:
    """The paper's SSD backbone: stem + stages 1-3 with stride 1 in stage 3 (1024 x 38 x 38 for a
    300x300 image from iResNet-50). A `FeatureNet`, so classifier checkpoints load with
    strict=False. Works for any registered net whose config has `strides`."""
    from regnet.registry import create_model, get_entry
    strides = list(overrides.pop("strides", get_entry(name).cfg.strides))
    strides[2] = 1
    return create_model(name, features_only=True, out_indices=(2,), strides=tuple(strides),
                        **overrides)


def paper_flops(model: nn.Module, input_size=None, count_relu: bool = False) -> int:
    """FLOPs in the paper's convention (see the module docstring): conv multiply-adds,
    4 per BN output element, (2*in - 1)*out for the classifier, and optionally 1 per ReLU
    output element (the CIFAR tables)."""
    from regnet.complexity import complexity, resolve_input_size
    shape = resolve_input_size(model, input_size)
    total = {"n": 0}

    def bn_hook(m, i, out):
        total["n"] += 4 * out[0].numel()

    def relu_hook(m, i, out):
        total["n"] += out[0].numel()

    handles = [m.register_forward_hook(bn_hook) for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if count_relu:
        handles += [m.register_forward_hook(relu_hook) for m in model.modules()
                    if isinstance(m, nn.ReLU)]
    try:
        base = complexity(model, shape)
    finally:
        for h in handles:
            h.remove()
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # complexity counts the classifier as in*out multiply-adds; the paper's counter as
    # (2*in - 1)*out.
    fc_extra = sum((m.in_features - 1) * m.out_features for m in fc)
    return base["macs"] + fc_extra + total["n"]


# -- the registered variants ------------------------------------------------------------------
_PAPER = "Duta et al., Improved Residual Networks for Image and Video Recognition"
_IMAGENET = dict(num_classes=1000, input_size=(3, 224, 224), family="iresnet", paper=_PAPER)
_CIFAR = dict(num_classes=10, input_size=(3, 32, 32), family="iresnet", paper=_PAPER)
LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
           152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3)),
           302: ("bottleneck", (4, 34, 58, 4)), 404: ("bottleneck", (4, 46, 80, 4))}
CIFAR_LAYOUTS = {164: (18, 18, 18), 1001: (111, 111, 111), 2000: (222, 222, 222),
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


def _depths(cfg: IResNetCfg, depth: int) -> IResNetCfg:
    block, depths = LAYOUTS[depth]
    return dataclasses.replace(cfg, block=block, depths=depths,
                               expansion=1 if block == "basic" else cfg.expansion)


for _d in LAYOUTS:
    register_model(f"iresnet{_d}", build_iresnet, _depths(IRESNET, _d),
                   aliases=(f"iResNet-{_d}",), **_IMAGENET)
for _d in (50, 101, 152, 200):
    register_model(f"resstage{_d}", build_iresnet, _depths(RESSTAGE, _d),
                   aliases=(f"ResStage-{_d}",), **_IMAGENET)
register_model("resmax50", build_iresnet, _depths(RESMAX, 50), aliases=("ResMax-50",), **_IMAGENET)
for _d in (50, 101, 152):
    for _name, _cfg in (("resgroup", RESGROUP), ("resgroupfix", RESGROUPFIX),
                        ("iresgroup", IRESGROUP), ("iresgroupfix", IRESGROUPFIX)):
        register_model(f"{_name}{_d}", build_iresnet, _depths(_cfg, _d), **_IMAGENET)
for _d, _depths_cifar in CIFAR_LAYOUTS.items():
    register_model(f"iresnet{_d}", build_iresnet,
                   dataclasses.replace(CIFAR_IRESNET, depths=_depths_cifar),
                   aliases=(f"iResNet-{_d}",), **_CIFAR)
