"""The regulator as a reusable part: a ConvRNN memory beside any family's residual stages.

The self-regulated paper adds, to every block t of a stage, a recurrent cell that reads a
block-internal feature map Y^t, updates a memory (H, C) carried from block to block, and
replaces Y^t by ReLU(BN(conv1x1(concat[Y^t, H^t]))). Everything else in the block is the
family's own code:

- the block declares where the memory reads (`RegulatableBlock.tap` in `blocks.py`, called in
  its own forward) and takes the memory as an argument: `block(x, state, cell) -> (y, state)`;
- `Regulator` (one per block, `block.regulator`) is the per-block part: BN_h + ReLU on the new
  H, ReLU on C, and the 2N -> N fuse conv;
- `RegulatedStage(Stage)` owns the one cell its blocks share (time step = block index), starts
  every stage at H = C = 0, passes the state from block to block and lets none out, and keeps
  gradient checkpointing: a segment maps (x, *state) -> (x, *state);
- `regulate(net, cfg, stages)` turns stages of a built `Net` into regulated ones.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from regnet.layers import ConvBnAct

from .blocks import RegulatableBlock, init_weights
from .cells import CELLS, GATE_CONVS, GATE_LAYOUTS, create_cell
from .net import Net, Stage

__all__ = ["RegulatorCfg", "Regulator", "RegulatedStage", "regulate", "regulate_stage",
           "regulated_stages", "regulator_cfg"]


@dataclass(frozen=True)
class RegulatorCfg:
    """The regulator's options; the regulated families' configs inherit these fields."""

    cell: str = "lstm"            # rnn | gru | lstm
    gate_conv: str = "light"      # light (grouped 1x1 over interleaved [X, H] + depthwise 3x3) |
                                  # dense (Table I's standard 3x3 ablation)
    gates: str = "separate"       # separate (canonical: one light conv per gate) | fused (own
                                  # counts, see cells.py)
    state_bn: bool = True         # BN on H in every block before its ReLU (the paper's Eq. 2)
    cell_relu: bool = True        # ReLU on H and C before they are passed on (the paper's Eq. 2)

    def __post_init__(self):
        for value, valid, what in ((self.cell, CELLS, "cell"), (self.gate_conv, GATE_CONVS,
                                   "gate_conv"), (self.gates, GATE_LAYOUTS, "gates")):
            if value not in valid:
                raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(valid)}")
        if self.gate_conv == "dense" and self.gates == "fused":
            raise ValueError("gates='fused' is a layout of the light gate conv; the dense "
                             "gate conv has one layout")


def regulator_cfg(cfg: RegulatorCfg) -> RegulatorCfg:
    """The `RegulatorCfg` part of a config that inherits its fields."""
    return RegulatorCfg(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(RegulatorCfg)})


class Regulator(nn.Module):
    """Per-block part of the regulator, called by the block at its tap:
    `(y, state, cell) -> (fused y, new state)`."""

    def __init__(self, chs: int, cfg: RegulatorCfg):
        super().__init__()
        self.chs = chs
        self.state_norm = nn.Sequential(
            nn.BatchNorm2d(chs) if cfg.state_bn else nn.Identity(),
            nn.ReLU() if cfg.cell_relu else nn.Identity())
        self.cell_relu = cfg.cell_relu
        self.fuse = ConvBnAct(2 * chs, chs, 1)  # the paper's W23 (W34 in bottlenecks)

    def forward(self, y: torch.Tensor, state, cell: nn.Module):
        new = cell(y, state)
        h = self.state_norm(new[0])
        c = tuple(torch.relu(s) if self.cell_relu else s for s in new[1:])
        return self.fuse(torch.cat((y, h), 1)), (h, *c)


class RegulatedStage(Stage):
    """A stage whose blocks share one cell and pass its state (H[, C]) from block to block."""

    def __init__(self, blocks: Sequence[nn.Module], cell: nn.Module):
        super().__init__(blocks)
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.blocks()
        # H = C = 0 at the first block of every stage: no state crosses a stage boundary.
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            return _run_regulated(blocks, self.cell, x)[0]
        size = self.checkpoint_every or max(1, math.ceil(math.sqrt(len(blocks))))
        state = None
        for start in range(0, len(blocks), size):
            segment = blocks[start:start + size]
            out = checkpoint(_run_regulated, segment, self.cell, x, *(state or ()),
                             use_reentrant=False)
            x, state = out[0], tuple(out[1:])
        return x


def _run_regulated(blocks, cell, x, *state):
    state = tuple(state) or None
    for block in blocks:
        x, state = block(x, state, cell)
    return (x, *state)


def regulate_stage(stage: Stage, cfg: RegulatorCfg) -> RegulatedStage:
    """A regulated copy of `stage` holding the same block objects, each given a `Regulator`."""
    blocks = stage.blocks()
    for block in blocks:
        if not isinstance(block, RegulatableBlock):
            raise ValueError(f"{type(block).__name__} cannot be regulated: a block must derive "
                             "from regnet.models.blocks.RegulatableBlock and call self.tap(...) "
                             "where the memory reads its feature map")
    widths = {b.regulator_chs for b in blocks}
    if len(widths) != 1:
        raise ValueError(f"the memory needs one width per stage, the taps give {sorted(widths)}")
    for block in blocks:
        block.regulator = Regulator(block.regulator_chs, cfg)
    new = RegulatedStage(blocks, create_cell(cfg.cell, widths.pop(), cfg.gate_conv, cfg.gates))
    new.set_grad_checkpointing(stage.grad_checkpointing, stage.checkpoint_every)
    return new


def regulate(net: Net, cfg: RegulatorCfg, stages: Sequence[int] | None = None) -> Net:
    """Regulate stages (1-based; None = all) of a built `Net` in place.

    The fuse conv and BN_h get the families' init (Kaiming fan-out, unit BN). The cell keeps
    PyTorch's default (fan-in) init: fan-out Kaiming would give its 2-input 1x1 groups a
    weight std of sqrt(2 / (gates * N)), making every gate ~ its bias at the start."""
    n = len(net.stage_names)
    for i in (range(1, n + 1) if stages is None else stages):
        if not 1 <= i <= n:
            raise ValueError(f"stage {i} out of range 1..{n}")
        name = f"s{i}"
        new = regulate_stage(getattr(net, name), cfg)
        setattr(net, name, new)
        for block in new.blocks():
            init_weights(block.regulator)
    return net


def regulated_stages(net: nn.Module) -> list[RegulatedStage]:
    return [m for m in net.modules() if isinstance(m, RegulatedStage)]
