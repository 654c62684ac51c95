"""RNN-regulated ResNets (Xu et al., "RegNet: Self-Regulated Network for Image Classification").

A regulated net is a ResNet built by `resnet.build_resnet` whose stages get a ConvRNN memory
from `regulated.regulate`; the block code is ResNet's own:
- the basic RegNet module (CIFAR) is `BasicBlock` with the memory reading X2 = ReLU(BN(conv1(X1)))
  and X3 = ReLU(BN(conv1x1(concat[X2, H]))) feeding conv2 (+ SE after BN for SE-RegNet);
- the bottleneck RegNet module (ImageNet) is `Bottleneck` with the memory reading the strided
  3x3's output X3 and the fuse conv feeding the last 1x1.
The canonical reading of the paper, its ambiguities (each a named option below) and the exact
counts are in `../shared/reference/self_regulated.md` / `.tsv`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from regnet.registry import register_model

from .net import Net
from .regulated import RegulatorCfg, register_tap, regulate
from .resnet import IMAGENET_RESNET, ResNetCfg, build_resnet, cifar_resnet

__all__ = ["SelfRegulatedCfg", "build_self_regulated", "regulator_cfg"]


@dataclass(frozen=True)
class SelfRegulatedCfg(ResNetCfg):
    """A ResNet (every `ResNetCfg` knob, e.g. `shortcut="A"`) plus the regulator's options.

    Canonical defaults: ConvLSTM, light gate convs, one per gate, BN + ReLU on H, ReLU on C,
    option-B shortcut with bias on CIFAR (set by the registered configs).
    """

    cell: str = "lstm"                      # rnn | gru | lstm
    gate_conv: str = "light"                # light | dense (Table I's standard 3x3 ablation)
    gates: str = "separate"                 # separate (canonical) | fused (non-canonical counts)
    state_bn: bool = True                   # per-block BN on H before its ReLU
    cell_relu: bool = True                  # ReLU on H and C before they are passed on
    regulated: tuple[int, ...] = (1, 2, 3)  # 1-based stages with a memory (Table V: one stage)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "regulated", tuple(int(i) for i in self.regulated))
        bad = [i for i in self.regulated if not 1 <= i <= len(self.depths)]
        if bad:
            raise ValueError(f"regulated stages {bad} out of range 1..{len(self.depths)}")
        regulator_cfg(self)  # validates cell / gate_conv / gates


def regulator_cfg(cfg: SelfRegulatedCfg) -> RegulatorCfg:
    return RegulatorCfg(cell=cfg.cell, gate_conv=cfg.gate_conv, gates=cfg.gates,
                        state_bn=cfg.state_bn, cell_relu=cfg.cell_relu)


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
class RegulatedFamilyCfg:
    """Any registered net (`base`, built by its own family's code with `base_args` overrides)
    with a memory in the stages `regulated` (None = all). Where the memory enters each block
    class is declared once in `regulated.TAPS`."""

    base: str = "regnetx_400mf"
    base_args: dict = dataclasses.field(default_factory=dict)
    cell: str = "lstm"
    gate_conv: str = "light"
    gates: str = "separate"
    state_bn: bool = True
    cell_relu: bool = True
    regulated: tuple[int, ...] | None = None

    def __post_init__(self):
        regulator_cfg(self)


def build_regulated_family(cfg: RegulatedFamilyCfg, num_classes: int) -> Net:
    from regnet.registry import create_model
    net = create_model(cfg.base, num_classes=num_classes, **cfg.base_args)
    return regulate(net, regulator_cfg(cfg), cfg.regulated)


def _register_family_taps() -> None:
    from .iresnet import StageBlock
    # iResNet's ResStage block: the memory reads the ReLU after its 3x3 (the strided one), the
    # last activation inside the branch: act1 of a basic block, act2 of a bottleneck.
    register_tap(StageBlock, lambda b: (f"act{b.n - 1}", f"bn{b.n - 1}"))


_register_family_taps()
for _base, _family in (("regnetx_400mf", "regnet"), ("iresnet50", "iresnet")):
    # RegNetX's X block is ResNet's Bottleneck (tap: the grouped 3x3's ReLU); iResNet's blocks
    # are StageBlocks. Neither family's code is copied or changed.
    register_model(f"regulated_{_base}", build_regulated_family,
                   RegulatedFamilyCfg(base=_base), num_classes=1000, input_size=(3, 224, 224),
                   family="self_regulated", paper=_PAPER)
