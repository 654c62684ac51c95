"""Parameters, FLOPs and activations of an AnyNet / RegNet computed from its config alone.

Same convention as `regnet.complexity` (which counts by running the built model): FLOPs are
multiply-adds plus one add per output element of a biased layer, params include 2 per BN
channel, acts are conv / linear output elements. No model is built, so a design-space sampler
can test tens of thousands of candidates against a FLOP band in seconds;
tests/test_design.py checks that the two agree exactly on random configs.
"""
from __future__ import annotations

from dataclasses import dataclass

from regnet.layers import STEMS
from regnet.models.anynet import AnyNetCfg, RegNetCfg
from regnet.models.blocks import se_width

__all__ = ["Counts", "anynet_complexity", "regnet_complexity"]


@dataclass
class Counts:
    params: int = 0
    flops: int = 0
    acts: int = 0

    def conv(self, c_in: int, c_out: int, k: int, h: int, w: int, groups: int = 1,
             bias: bool = False) -> None:
        """Add one conv whose *output* is h x w."""
        per_out = k * k * (c_in // groups)
        self.params += per_out * c_out + (c_out if bias else 0)
        self.flops += (per_out + (1 if bias else 0)) * c_out * h * w
        self.acts += c_out * h * w

    def bn(self, c: int) -> None:
        self.params += 2 * c

    def as_dict(self) -> dict:
        return {"params": self.params, "flops": self.flops, "acts": self.acts}


def _out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def _bottleneck(c: Counts, cfg: AnyNetCfg, stage: int, w_in: int, w_out: int, stride: int,
                h: int, w: int) -> tuple[int, int]:
    mid = int(cfg.widths[stage] * cfg.bot_muls[stage])
    groups = mid // cfg.group_widths[stage]
    h2, w2 = _out(h, stride), _out(w, stride)
    c.conv(w_in, mid, 1, h, w)
    c.bn(mid)
    c.conv(mid, mid, 3, h2, w2, groups)
    c.bn(mid)
    rd = se_width(cfg.se_ratio, w_in, w_out, "in")
    if rd:  # SE on the pooled 1x1 map, biased convs
        c.conv(mid, rd, 1, 1, 1, bias=True)
        c.conv(rd, mid, 1, 1, 1, bias=True)
    c.conv(mid, w_out, 1, h2, w2)
    c.bn(w_out)
    return h2, w2


def _basic(c: Counts, cfg: AnyNetCfg, stage: int, w_in: int, w_out: int, stride: int,
           h: int, w: int) -> tuple[int, int]:
    h2, w2 = _out(h, stride), _out(w, stride)
    c.conv(w_in, w_out, 3, h2, w2)
    c.bn(w_out)
    c.conv(w_out, w_out, 3, h2, w2)
    c.bn(w_out)
    rd = se_width(cfg.se_ratio, w_in, w_out, "out")
    if rd:
        c.conv(w_out, rd, 1, 1, 1, bias=True)
        c.conv(rd, w_out, 1, 1, 1, bias=True)
    return h2, w2


_BLOCKS = {"bottleneck": _bottleneck, "basic": _basic}


def anynet_complexity(cfg: AnyNetCfg, num_classes: int = 1000,
                      input_size: tuple[int, ...] | int | None = None) -> dict:
    """{"params", "flops", "acts"} of `build_anynet(cfg, num_classes)` at `input_size`."""
    size = cfg.input_size if input_size is None else input_size
    if isinstance(size, int):
        size = (cfg.input_size[0], size, size)
    chans, h, w = size[0], size[-2], size[-1]
    kernel, stride, pool, norm = STEMS[cfg.stem]
    c = Counts()
    h, w = _out(h, stride), _out(w, stride)
    c.conv(chans, cfg.stem_chs, kernel, h, w)
    if norm:
        c.bn(cfg.stem_chs)
    if pool:
        h, w = _out(h, 2), _out(w, 2)
        c.acts += cfg.stem_chs * h * w
    block = _BLOCKS[cfg.block]
    w_in = cfg.stem_chs
    for i, (depth, width, s) in enumerate(zip(cfg.depths, cfg.widths, cfg.strides)):
        if w_in != width or s != 1:  # projection shortcut of the first block: 1x1 conv + BN
            c.conv(w_in, width, 1, _out(h, s), _out(w, s))
            c.bn(width)
        h, w = block(c, cfg, i, w_in, width, s, h, w)
        if depth > 1:
            # The other blocks of a stage are identical: count one, multiply (sampling speed).
            one = Counts()
            block(one, cfg, i, width, width, 1, h, w)
            c.params += (depth - 1) * one.params
            c.flops += (depth - 1) * one.flops
            c.acts += (depth - 1) * one.acts
        w_in = width
    if num_classes > 0:
        c.params += w_in * num_classes + num_classes
        c.flops += w_in * num_classes + num_classes
        c.acts += num_classes
    return c.as_dict()


def regnet_complexity(cfg: RegNetCfg, num_classes: int = 1000, input_size=None) -> dict:
    return anynet_complexity(cfg.to_anynet(), num_classes, input_size)
