"""RNN-regulated ResNets (Xu et al., "RegNet: Self-Regulated Network for Image Classification").

A regulated net is a ResNet built by `resnet.build_resnet` whose stages get a ConvRNN memory
from `regulated.regulate`; the block code is ResNet's own:
- the basic RegNet module (CIFAR) is `BasicBlock` with the memory reading X2 = ReLU(BN(conv1(X1)))
  and X3 = ReLU(BN(conv1x1(concat[X2, H]))) feeding conv2 (+ SE after BN for SE-RegNet);
- the bottleneck RegNet module (ImageNet) is `Bottleneck` with the memory reading the strided
  3x3's output X3 and the fuse conv feeding the last 1x1.
The canonical reading of the paper and its ambiguities (each a named option of `RegulatorCfg`)
are in docs/ARCHITECTURE.md; tests/reference/self_regulated.tsv holds the exact counts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from regnet.registry import register_model

from .anynet import build_regnet, zoo_cfg
from .iresnet import IRESNET, build_iresnet, imagenet_cfg
from .net import Net
from .regulated import RegulatorCfg, regulate, regulator_cfg
from .resnet import IMAGENET_RESNET, ResNetCfg, build_resnet, cifar_resnet

__all__ = ["SelfRegulatedCfg", "build_self_regulated", "RegulatedFamilyCfg",
           "build_regulated_family"]


@dataclass(frozen=True)
class SelfRegulatedCfg(RegulatorCfg, ResNetCfg):
    """A ResNet (every `ResNetCfg` knob, e.g. `shortcut="A"`) plus the regulator's options
    (every `RegulatorCfg` field).

    Canonical defaults: ConvLSTM, light gate convs, one per gate, BN + ReLU on H, ReLU on C,
    option-B shortcut with bias on CIFAR (set by the registered configs).
    """

    regulated: tuple[int, ...] = (1, 2, 3)  # 1-based stages with a memory (Table V: one stage)

    def __post_init__(self):
        ResNetCfg.__post_init__(self)
        RegulatorCfg.__post_init__(self)
        object.__setattr__(self, "regulated", tuple(int(i) for i in self.regulated))
        bad = [i for i in self.regulated if not 1 <= i <= len(self.depths)]
        if bad:
            raise ValueError(f"regulated stages {bad} out of range 1..{len(self.depths)}")


def build_self_regulated(cfg: SelfRegulatedCfg, num_classes: int) -> Net:
    net = build_resnet(cfg, num_classes)
    return regulate(net, regulator_cfg(cfg), cfg.regulated)


def _cifar(depth: int, **kw) -> SelfRegulatedCfg:
    base = cifar_resnet(depth)  # 6n+2 layers, option-B shortcut with bias (the paper's counts)
    return SelfRegulatedCfg(**{**base.__dict__, **kw})


# -- the registered variants --------------------------------------------------------------------
_PAPER = "Xu et al., RegNet: Self-Regulated Network for Image Classification"
_CIFAR = dict(num_classes=10, input_size=(3, 32, 32), family="self_regulated", paper=_PAPER)
_IMAGENET = dict(num_classes=1000, input_size=(3, 224, 224), family="self_regulated",
                 paper=_PAPER)
_CELL_NAMES = {"rnn": "ConvRNN", "gru": "ConvGRU", "lstm": "ConvLSTM"}
# SE after the residual branch's last BN, squeeze 8x, no FC bias (the paper's SE-RegNet).
_SE = dict(se_ratio=1 / 8, se_bias=False)

for _d in (20, 32, 56):
    for _cell, _long in _CELL_NAMES.items():
        register_model(f"regnet{_d}_{_cell}", build_self_regulated, _cifar(_d, cell=_cell),
                       aliases=(f"RegNet-{_d}({_long})",), **_CIFAR)
        register_model(f"se_regnet{_d}_{_cell}", build_self_regulated,
                       _cifar(_d, cell=_cell, **_SE), aliases=(f"SE-RegNet-{_d}({_long})",),
                       **_CIFAR)
for _cell in ("gru", "lstm"):
    for _s in (1, 2, 3):  # Table V: RegNet(i), the memory in stage i only
        register_model(f"regnet20_{_cell}_s{_s}", build_self_regulated,
                       _cifar(20, cell=_cell, regulated=(_s,)),
                       aliases=(f"RegNet({_s})({_CELL_NAMES[_cell]})",), **_CIFAR)
# Table I: every gate a dense 3x3 conv instead of the light 2-step conv.
register_model("regnet20_gru_full3x3", build_self_regulated,
               _cifar(20, cell="gru", gate_conv="dense"), **_CIFAR)

_IMAGENET_CFG = SelfRegulatedCfg(**{**IMAGENET_RESNET.__dict__, "regulated": (1, 2, 3, 4)})
for _cell, _long in _CELL_NAMES.items():
    register_model(f"regnet50_{_cell}", build_self_regulated,
                   dataclasses.replace(_IMAGENET_CFG, cell=_cell),
                   aliases=(f"RegNet-50({_long})",), **_IMAGENET)


# -- the regulator on other families: built by their own builders, regulated afterwards ---------
@dataclass(frozen=True)
class RegulatedFamilyCfg(RegulatorCfg):
    """Any family's net (`base`, its frozen config, built by `build_base` after `base_args`
    overrides) with a memory in the stages `regulated` (None = all). Where the memory enters
    each block is declared by the block class itself (`RegulatableBlock.tap`)."""

    base: Any = None
    build_base: Callable[[Any, int], Net] | None = None
    base_args: dict = dataclasses.field(default_factory=dict)
    regulated: tuple[int, ...] | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.base is None or self.build_base is None:
            raise ValueError("RegulatedFamilyCfg needs a base config and its builder")


def build_regulated_family(cfg: RegulatedFamilyCfg, num_classes: int) -> Net:
    base = dataclasses.replace(cfg.base, **cfg.base_args) if cfg.base_args else cfg.base
    return regulate(cfg.build_base(base, num_classes), regulator_cfg(cfg), cfg.regulated)


# RegNetX's X block is the shared Bottleneck (tap: the grouped 3x3's ReLU); iResNet's blocks are
# StageBlocks (tap: the ReLU after the strided 3x3). Neither family's code is copied or changed.
for _name, _base, _build in (("regulated_regnetx_400mf", zoo_cfg("x", "400mf"), build_regnet),
                             ("regulated_iresnet50", imagenet_cfg(IRESNET, 50), build_iresnet)):
    register_model(_name, build_regulated_family,
                   RegulatedFamilyCfg(base=_base, build_base=_build), num_classes=1000,
                   input_size=(3, 224, 224), family="self_regulated", paper=_PAPER)
