"""2D -> 3D inflation of any registered network, for clip inputs (N, C, T, H, W).

`inflate(model, rule)` swaps every Conv2d for a Conv3d, BatchNorm2d for BatchNorm3d and 2-D
pools for 3-D ones, in place, keeping module names (so checkpoints keep their keys). The
temporal kernel and stride of each layer come from an `InflationRule`; 2-D weights are spread
over the temporal kernel and divided by its length (Carreira & Zisserman's I3D bootstrap), so an
inflated ImageNet net starts from the 2-D net's filters. Heads, SE and parameter-free shortcuts
need nothing: they pool or slice over every axis after the channels. Every registered net built
from standard layers inflates (the ResNet, RegNet/AnyNet and iResNet families); the RNN-regulated
nets' gate convs are Conv2d subclasses with their own 2-D forward and are refused with an error.

The default rule reproduces the iResNet paper's video nets (its Table V: stem 7x7 -> 5x7x7,
spatial 3x3 -> 3x3x3, 1x1 stays 1x1x1, time halved where space is in stages 3 and 4);
docs/ARCHITECTURE.md gives the counts this yields against the paper's and the rules it rules out.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from regnet.registry import register_model

from .iresnet import IRESNET, build_iresnet, imagenet_cfg
from .net import Net
from .resnet import IMAGENET_RESNET, build_resnet

__all__ = ["InflationRule", "inflate", "Inflated3dCfg", "build_inflated"]


@dataclass(frozen=True)
class InflationRule:
    """Temporal kernel / stride per layer kind (1 = no temporal extent)."""

    stem_kt: int = 5         # the stem conv (the net's first conv)
    stem_st: int = 1
    spatial_kt: int = 3      # every conv with a spatial kernel > 1 (the 3x3s)
    pointwise_kt: int = 1    # every 1x1 conv (branch and shortcut)
    pool_kt: int = 1         # pools that do not stride time
    # Temporal stride of stage i (s1, s2, ...): applied to every conv and pool of the stage that
    # strides space, so the branch and its shortcut shrink time together. Stages past the
    # tuple's end keep time.
    stage_st: tuple[int, ...] = (1, 1, 2, 2)

    def stride(self, stage: int, spatial_stride) -> int:
        strided = max(_pair(spatial_stride)) > 1
        return self.stage_st[stage - 1] if strided and 0 < stage <= len(self.stage_st) else 1

    def conv(self, is_stem: bool, stage: int, conv: nn.Conv2d) -> tuple[int, int]:
        if is_stem:
            return self.stem_kt, self.stem_st
        kt = self.spatial_kt if max(conv.kernel_size) > 1 else self.pointwise_kt
        return kt, self.stride(stage, conv.stride)

    def pool(self, stage: int, pool: nn.Module) -> tuple[int, int]:
        st = self.stride(stage, getattr(pool, "stride", 1) or 1)
        # A pool that strides time looks at the same 3-frame window as the 3x3x3 beside it.
        return (3 if st > 1 else self.pool_kt), st


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv3d(conv: nn.Conv2d, kt: int, st: int) -> nn.Conv3d:
    if isinstance(conv.padding, str):
        raise ValueError("inflate: string paddings are not supported")
    new = nn.Conv3d(conv.in_channels, conv.out_channels, (kt,) + conv.kernel_size,
                    stride=(st,) + conv.stride, padding=(kt // 2,) + conv.padding,
                    dilation=(1,) + conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                    padding_mode=conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(conv.weight.unsqueeze(2).expand_as(new.weight) / kt)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.device)


def _bn3d(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    new = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    return new.to(bn.running_mean.device if bn.running_mean is not None else "cpu")


def _triple(v, t):
    return (t,) + _pair(v)


def _pool3d(pool: nn.Module, kt: int, st: int) -> nn.Module:
    if isinstance(pool, nn.MaxPool2d):
        return nn.MaxPool3d(_triple(pool.kernel_size, kt), _triple(pool.stride, st),
                            _triple(pool.padding, kt // 2), _triple(pool.dilation, 1),
                            ceil_mode=pool.ceil_mode)
    if isinstance(pool, nn.AvgPool2d):
        return nn.AvgPool3d(_triple(pool.kernel_size, kt), _triple(pool.stride, st),
                            _triple(pool.padding, kt // 2), pool.ceil_mode,
                            pool.count_include_pad)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d(_triple(pool.output_size, 1))
    return pool


_POOLS_2D = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_INFLATABLE = (nn.Conv2d, nn.BatchNorm2d) + _POOLS_2D


def _stage_index(qualname: str) -> int:
    """1-based stage of a module named 's3.b1.conv2' (the Net convention); 0 outside stages."""
    top = qualname.split(".")[0]
    return int(top[1:]) if top[:1] == "s" and top[1:].isdigit() else 0


def inflate(model: nn.Module, rule: InflationRule = InflationRule()) -> nn.Module:
    """Make `model` take clips: every 2-D conv / BN / pool becomes 3-D, in place; returns it.

    The "stem conv" is the first Conv2d in module order (`model.stem.conv` for every registered
    net). A `default_input_size` of (C, H, W) becomes (C, 16, H, W).
    """
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise ValueError("inflate: the model has no Conv2d to inflate")
    swaps = []
    for qualname, parent in model.named_modules():
        for name, child in parent.named_children():
            full = f"{qualname}.{name}" if qualname else name
            stage = _stage_index(full)
            if isinstance(child, _INFLATABLE) and type(child) not in _INFLATABLE:
                # A subclass with its own forward (the RNN cells' gate convs call F.conv2d):
                # swapping its class would silently drop that behaviour.
                raise ValueError(f"inflate: cannot inflate {full} ({type(child).__name__}, a "
                                 f"{type(child).__mro__[1].__name__} subclass with its own "
                                 f"forward); only plain Conv2d / BatchNorm2d / pools are")
            if isinstance(child, nn.Conv2d):
                kt, st = rule.conv(child is first_conv, stage, child)
                swaps.append((parent, name, _conv3d(child, kt, st)))
            elif isinstance(child, nn.BatchNorm2d):
                swaps.append((parent, name, _bn3d(child)))
            elif isinstance(child, _POOLS_2D):
                swaps.append((parent, name, _pool3d(child, *rule.pool(stage, child))))
    for parent, name, new in swaps:
        setattr(parent, name, new)
    size = tuple(getattr(model, "default_input_size", ()))
    if len(size) == 3:
        model.default_input_size = (size[0], 16) + size[1:]
    return model


@dataclass(frozen=True)
class Inflated3dCfg:
    """A 2-D net (`base`, its family's frozen config, built by `build_base` after `base_args`
    overrides) inflated by `rule`."""

    base: Any = None
    build_base: Callable[[Any, int], Net] | None = None
    rule: InflationRule = InflationRule()
    base_args: dict = dataclasses.field(default_factory=dict)
    input_size: tuple[int, ...] = (3, 16, 224, 224)

    def __post_init__(self):
        if self.base is None or self.build_base is None:
            raise ValueError("Inflated3dCfg needs a base config and its builder")
        if len(self.input_size) != 4:
            raise ValueError(f"input_size must be (C, T, H, W), got {self.input_size}")


def build_inflated(cfg: Inflated3dCfg, num_classes: int) -> nn.Module:
    base = dataclasses.replace(cfg.base, **cfg.base_args) if cfg.base_args else cfg.base
    net = inflate(cfg.build_base(base, num_classes), cfg.rule)
    net.default_input_size = tuple(cfg.input_size)
    return net


_PAPER = "Duta et al., Improved Residual Networks for Image and Video Recognition"
_VIDEO = dict(num_classes=400, input_size=(3, 16, 224, 224), family="iresnet", paper=_PAPER)
register_model("iresnet3d50", build_inflated,
               Inflated3dCfg(imagenet_cfg(IRESNET, 50), build_iresnet),
               aliases=("iResNet3D-50",), **_VIDEO)
register_model("resnet3d50", build_inflated, Inflated3dCfg(IMAGENET_RESNET, build_resnet),
               aliases=("ResNet3D-50",), **_VIDEO)
