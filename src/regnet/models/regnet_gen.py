"""The RegNet generator: (depth, w0, wa, wm, group_w, bot_mul) -> per-stage depths and widths.

Pure Python (no torch, no numpy) so the design-space samplers can call it tens of thousands of
times a second. The rule (regnet_design_space.md, "The quantized linear rule"):

    u_j = w0 + wa * j                       continuous width of block j
    s_j = round(log(u_j / w0) / log(wm))    its quantisation level
    w_j = round(w0 * wm**s_j / q) * q       quantised to a multiple of q (= 8)

consecutive equal w_j form a stage, then every stage's width and group width are made
compatible with its bottleneck multiplier. `round` is Python's, half to even, as the reference
implementation's numpy rounding is: a port that rounds half up gets other widths for
RegNetX-400MF (and four more zoo models).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RegNetStages", "quantized_widths", "adjust_compatibility", "generate_regnet"]


@dataclass(frozen=True)
class RegNetStages:
    """The generator's output: one entry per stage, plus the per-block detail behind it."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    group_widths: tuple[int, ...]
    bot_muls: tuple[float, ...]
    block_widths: tuple[int, ...]        # w_j per block, before the compatibility step
    block_widths_cont: tuple[float, ...]  # u_j per block
    num_levels: int                       # max(s_j) + 1: stages the rule asked for

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def complete(self) -> bool:
        """Every quantisation level got at least one block (no stage skipped by the rounding)."""
        return self.num_stages == self.num_levels


def quantized_widths(depth: int, w0: float, wa: float, wm: float, q: int = 8):
    """Per-block (continuous widths u_j, levels s_j, quantised widths w_j)."""
    if depth < 1:
        raise ValueError(f"RegNet depth must be >= 1, got {depth}")
    if not (w0 > 0 and w0 % q == 0):
        raise ValueError(f"RegNet w0 must be a positive multiple of {q}, got {w0}")
    if wa < 0:
        raise ValueError(f"RegNet wa must be >= 0, got {wa}")
    if wm <= 1:
        raise ValueError(f"RegNet wm must be > 1, got {wm}")
    log_wm = math.log(wm)
    cont = [w0 + wa * j for j in range(depth)]
    levels = [round(math.log(u / w0) / log_wm) for u in cont]
    widths = [int(round(w0 * wm ** s / q)) * q for s in levels]
    return cont, levels, widths


def adjust_compatibility(widths, bot_muls, group_widths):
    """Make each stage's inner width w*b a multiple of its group width (of lcm(g, b) if b > 1).

    The group width is first capped at the inner width; the inner width is then rounded to the
    nearest multiple; the stage width follows as inner / b. This can shrink g (RegNetX-8.0GF's
    first stage: 80 < 120). Returns (widths, bot_muls, group_widths) as tuples.
    """
    if not (len(widths) == len(bot_muls) == len(group_widths)):
        raise ValueError("widths, bot_muls and group_widths need one entry per stage")
    out_w, out_g = [], []
    for w, b, g in zip(widths, bot_muls, group_widths):
        if w <= 0 or b <= 0 or g <= 0:
            raise ValueError(f"width, bottleneck multiplier and group width must be > 0, got "
                             f"w={w}, b={b}, g={g}")
        v = int(max(1, w * b))
        g = int(min(g, v))
        m = math.lcm(g, int(b)) if b > 1 and float(b).is_integer() else g
        v = max(m, int(round(v / m) * m))
        out_w.append(int(v / b))
        out_g.append(g)
    return tuple(out_w), tuple(float(b) for b in bot_muls), tuple(out_g)


def generate_regnet(depth: int, w0: float, wa: float, wm: float, group_w: int,
                    bot_mul: float = 1.0, q: int = 8) -> RegNetStages:
    """Stage depths, widths and group widths of the RegNet with these parameters."""
    cont, levels, block_widths = quantized_widths(depth, w0, wa, wm, q)
    # Widths never decrease along the blocks (wa >= 0, wm > 1), so runs of equal widths are the
    # stages.
    depths, widths = [], []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    n = len(widths)
    widths, bot_muls, groups = adjust_compatibility(widths, [bot_mul] * n, [group_w] * n)
    return RegNetStages(tuple(depths), widths, groups, bot_muls, tuple(block_widths),
                        tuple(cont), max(levels) + 1)
