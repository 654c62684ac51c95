"""AnyNet and RegNet (Radosavovic et al., "Designing Network Design Spaces").

AnyNet is stem (3x3/2, 32) -> stages of (depth, width, bottleneck multiplier, group width,
stride) -> head. Its X block is the shared `Bottleneck` with inner width w*b and groups (w*b)/g;
the Y block is the same with SE after the 3x3, squeezed to round(se_ratio * block input width).
A RegNet is an AnyNet whose stage table comes from `generate_regnet`, so the zoo below is one
line of generator parameters per model.

Two generic entries take any configuration through `create_model` overrides:
`create_model("anynet", depths=(1, 2, 4, 2), widths=(32, 64, 128, 256), ...)` and
`create_model("regnet", depth=13, w0=24, wa=36.44, wm=2.49, group_w=8)`.
CIFAR versions use the 3x3/1 stem: `stem="cifar", input_size=(3, 32, 32)`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch.nn as nn

from regnet.layers import Stem
from regnet.registry import register_model

from .blocks import BasicBlock, Bottleneck, init_weights
from .net import Net, StageSpec
from .regnet_gen import RegNetStages, generate_regnet

__all__ = ["AnyNetCfg", "RegNetCfg", "build_anynet", "build_regnet", "anynet_block_args",
           "REGNET_ZOO"]

# "bottleneck" is the X block (Y with se_ratio > 0); "basic" is pycls's residual basic block,
# which ignores the bottleneck multiplier and the group width.
ANYNET_BLOCKS = {"bottleneck": Bottleneck, "basic": BasicBlock}


def _per_stage(value, n: int, name: str) -> tuple:
    """A scalar broadcasts to every stage; lists (from JSON) become tuples.

    A tuple whose entries are all equal broadcasts too, so overriding only `depths` and
    `widths` of a 4-stage default with 2 stages keeps the (uniform) defaults of the rest.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != n and len(set(value)) == 1:
            return (value[0],) * n
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} stages")
        return tuple(value)
    return (value,) * n


@dataclass(frozen=True)
class AnyNetCfg:
    """An AnyNet: one entry per stage in each tuple (scalars broadcast to every stage)."""

    depths: tuple[int, ...] = (1, 1, 4, 7)
    widths: tuple[int, ...] = (24, 56, 152, 368)
    bot_muls: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)   # inner width = width * bot_mul
    group_widths: tuple[int, ...] = (8, 8, 8, 8)         # channels per group of the 3x3 conv
    strides: tuple[int, ...] = (2, 2, 2, 2)
    se_ratio: float = 0.0                                # > 0: Y block (SE after the 3x3)
    block: str = "bottleneck"
    stem: str = "anynet"                                 # "cifar": 3x3 stride 1 for 32x32
    stem_chs: int = 32
    drop_rate: float = 0.0
    zero_init_last: bool = False
    input_size: tuple[int, ...] = (3, 224, 224)

    def __post_init__(self):
        n = len(self.depths) if isinstance(self.depths, (list, tuple)) else 0
        if n == 0:
            raise ValueError("AnyNet needs a tuple of stage depths")
        for name in ("depths", "widths", "bot_muls", "group_widths", "strides", "input_size"):
            value = getattr(self, name)
            fixed = tuple(value) if name == "input_size" else _per_stage(value, n, name)
            object.__setattr__(self, name, fixed)
        if self.block not in ANYNET_BLOCKS:
            raise ValueError(f"unknown AnyNet block {self.block!r}; expected one of "
                             f"{', '.join(ANYNET_BLOCKS)}")
        for i, (d, w, b, g) in enumerate(zip(self.depths, self.widths, self.bot_muls,
                                             self.group_widths), 1):
            if d < 1 or w < 1 or b <= 0 or g < 1:
                raise ValueError(f"stage {i}: depth, width, group width must be >= 1 and "
                                 f"bot_mul > 0, got d={d}, w={w}, b={b}, g={g}")
            if self.block == "bottleneck":
                mid = w * b
                if mid != int(mid) or int(mid) % g:
                    raise ValueError(
                        f"stage {i}: inner width {w}*{b}={mid:g} is not a multiple of the group "
                        f"width {g} (regnet.models.regnet_gen.adjust_compatibility fixes this)")

    @property
    def num_stages(self) -> int:
        return len(self.depths)


@dataclass(frozen=True)
class RegNetCfg:
    """A RegNet: generator parameters; the stages follow from `generate_regnet`."""

    depth: int = 13
    w0: int = 24
    wa: float = 36.44
    wm: float = 2.49
    group_w: int = 8
    bot_mul: float = 1.0
    se_ratio: float = 0.0    # RegNetY: 0.25
    stride: int = 2          # of every stage
    q: int = 8               # width quantum
    stem: str = "anynet"
    stem_chs: int = 32
    drop_rate: float = 0.0
    zero_init_last: bool = False
    input_size: tuple[int, ...] = (3, 224, 224)

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(self.input_size))
        self.stages()  # raises ValueError on invalid generator parameters

    def stages(self) -> RegNetStages:
        return generate_regnet(self.depth, self.w0, self.wa, self.wm, self.group_w,
                               self.bot_mul, self.q)

    def to_anynet(self) -> AnyNetCfg:
        s = self.stages()
        return AnyNetCfg(depths=s.depths, widths=s.widths, bot_muls=s.bot_muls,
                         group_widths=s.group_widths, strides=(self.stride,) * s.num_stages,
                         se_ratio=self.se_ratio, stem=self.stem, stem_chs=self.stem_chs,
                         drop_rate=self.drop_rate, zero_init_last=self.zero_init_last,
                         input_size=self.input_size)


def anynet_block_args(cfg: AnyNetCfg, stage: int) -> dict:
    """Block kwargs of stage `stage` (0-based): the X / Y block as a ResNet Bottleneck."""
    if cfg.block == "basic":
        return {"se_ratio": cfg.se_ratio}
    mid = int(cfg.widths[stage] * cfg.bot_muls[stage])
    # SE after the 3x3 squeezes the block *input* width (RegNetY), with biased 1x1 convs.
    return {"mid_chs": mid, "groups": mid // cfg.group_widths[stage], "se_ratio": cfg.se_ratio,
            "se_after": "conv2", "se_bias": True}


def build_anynet(cfg: AnyNetCfg, num_classes: int) -> Net:
    specs = [StageSpec(depth, width, stride, anynet_block_args(cfg, i))
             for i, (depth, width, stride) in enumerate(zip(cfg.depths, cfg.widths, cfg.strides))]
    net = Net.from_specs(Stem(cfg.stem, cfg.input_size[0], cfg.stem_chs), ANYNET_BLOCKS[cfg.block],
                         specs, num_classes, input_size=cfg.input_size, drop_rate=cfg.drop_rate)
    init_weights(net, cfg.zero_init_last)
    # The reference initialises the classifier N(0, 0.01) with a zero bias.
    if isinstance(net.head.fc, nn.Linear):
        nn.init.normal_(net.head.fc.weight, std=0.01)
        nn.init.zeros_(net.head.fc.bias)
    return net


def build_regnet(cfg: RegNetCfg, num_classes: int) -> Net:
    return build_anynet(cfg.to_anynet(), num_classes)


# -- the model zoo -----------------------------------------------------------------------------
# name suffix -> (depth, w0, wa, wm, group_w) for X, then for Y (regnet_model_zoo.tsv).
REGNET_ZOO = {
    "x": {
        "200mf": (13, 24, 36.44, 2.49, 8), "400mf": (22, 24, 24.48, 2.54, 16),
        "600mf": (16, 48, 36.97, 2.24, 24), "800mf": (16, 56, 35.73, 2.28, 16),
        "1_6gf": (18, 80, 34.01, 2.25, 24), "3_2gf": (25, 88, 26.31, 2.25, 48),
        "4_0gf": (23, 96, 38.65, 2.43, 40), "6_4gf": (17, 184, 60.83, 2.07, 56),
        "8_0gf": (23, 80, 49.56, 2.88, 120), "12gf": (19, 168, 73.36, 2.37, 112),
        "16gf": (22, 216, 55.59, 2.1, 128), "32gf": (23, 320, 69.86, 2.0, 168),
    },
    "y": {
        "200mf": (13, 24, 36.44, 2.49, 8), "400mf": (16, 48, 27.89, 2.09, 8),
        "600mf": (15, 48, 32.54, 2.32, 16), "800mf": (14, 56, 38.84, 2.4, 16),
        "1_6gf": (27, 48, 20.71, 2.65, 24), "3_2gf": (21, 80, 42.63, 2.66, 24),
        "4_0gf": (22, 96, 31.41, 2.24, 64), "6_4gf": (25, 112, 33.22, 2.27, 72),
        "8_0gf": (17, 192, 76.82, 2.19, 56), "12gf": (19, 168, 73.36, 2.37, 112),
        "16gf": (18, 200, 106.23, 2.48, 112), "32gf": (20, 232, 115.89, 2.53, 232),
    },
}
# CIFAR versions (3x3/1 stem, 32x32 input) of the smallest models, registered by name.
CIFAR_SIZES = ("200mf", "400mf")
# RegNetX / RegNetY found on CIFAR by this repository, the paper's way: of 100 models sampled at
# 3-4 MF and trained briefly (RegNetX: `regnet study chain`, benchmarks/results/design_chain/
# cifar_chain; RegNetY: the same preset and seed, benchmarks/results/design_chain/regnety), the
# two distinct best retrained at Table III's 30-epoch recipe at two seeds (benchmarks/campaigns/
# chain_best.yaml, chain_best_y.yaml). Both pairs tied, so each kept its population's best, the
# smaller net: regnetx/m0055 (81.04 vs 81.01 mean val top-1, 60% of the other's parameters) and
# regnety/m0004 (80.98 vs 81.05, 61%). (depth, w0, wa, wm, group_w), q = 8, CIFAR stem, each
# block's last BN zero-initialised as in its training. Weights: the tags `c10jpg_r12_s0`.
CIFAR_FOUND = {"x": {"3_6mf": (13, 8, 9.8, 2.981, 2)},
               "y": {"3_5mf": (13, 8, 10.3, 2.997, 1)}}

_PAPER = "Radosavovic et al., Designing Network Design Spaces"
_IMAGENET = dict(num_classes=1000, input_size=(3, 224, 224), family="regnet", paper=_PAPER)
_CIFAR = dict(num_classes=10, input_size=(3, 32, 32), family="regnet", paper=_PAPER)


def _reference_name(kind: str, size: str) -> str:
    """'x', '1_6gf' -> 'RegNetX-1.6GF' (the paper's spelling; normalises back to our name)."""
    return f"RegNet{kind.upper()}-{size.replace('_', '.').upper()}"


def zoo_cfg(kind: str, size: str, table: dict = REGNET_ZOO, **overrides) -> RegNetCfg:
    d, w0, wa, wm, g = table[kind][size]
    cfg = RegNetCfg(depth=d, w0=w0, wa=wa, wm=wm, group_w=g, se_ratio=0.25 if kind == "y" else 0.0)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


register_model("anynet", build_anynet, AnyNetCfg(), **_IMAGENET)
register_model("regnet", build_regnet, RegNetCfg(), **_IMAGENET)
for _kind, _table in REGNET_ZOO.items():
    for _size in _table:
        register_model(f"regnet{_kind}_{_size}", build_regnet, zoo_cfg(_kind, _size),
                       aliases=(_reference_name(_kind, _size),), **_IMAGENET)
    for _size in CIFAR_SIZES:
        register_model(f"regnet{_kind}_{_size}_cifar", build_regnet,
                       zoo_cfg(_kind, _size, stem="cifar", input_size=(3, 32, 32)),
                       aliases=(_reference_name(_kind, _size) + "-CIFAR",), **_CIFAR)
for _kind, _table in CIFAR_FOUND.items():
    for _size in _table:
        register_model(f"regnet{_kind}_{_size}_cifar", build_regnet,
                       zoo_cfg(_kind, _size, CIFAR_FOUND, stem="cifar", zero_init_last=True,
                               input_size=(3, 32, 32)),
                       aliases=(_reference_name(_kind, _size) + "-CIFAR",), **_CIFAR)
