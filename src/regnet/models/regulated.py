"""The regulator as a reusable part: attach a ConvRNN memory to ANY family's residual stage.

The self-regulated paper adds, to every block t of a stage, a recurrent cell that reads a
block-internal feature map Y^t (the output of the 3x3 conv's ReLU), updates a memory
(H, C) carried from block to block, and replaces Y^t by ReLU(BN(conv1x1(concat[Y^t, H^t]))).
Everything else in the block is the family's own code, so the regulator is attached rather
than written into each family:

- `Regulator` (one per block, registered as `block.regulator`): BN_h + ReLU on the new H, ReLU
  on C, and the 2N -> N fuse conv. It is installed as a forward hook on the block's *tap*
  module (the module whose output the memory reads, e.g. `act1` of a CIFAR `BasicBlock`), so the
  block's forward and its parameter names stay exactly the family's own.
- `RegulatedStage(Stage)` owns the one cell shared by its blocks (time step = block index),
  hands each block the state and the cell, starts every stage at H = C = 0 and lets no state
  out, and keeps gradient checkpointing: a segment maps (x, *state) -> (x, *state).
- `regulate(net, stages, cfg)` turns stages of an already built `Net` into regulated ones;
  `TAPS` says where the memory enters each known block class (`register_tap` adds one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from regnet.layers import ConvBnAct, bn_nd

from .cells import CELLS, GATE_CONVS, GATE_LAYOUTS, create_cell
from .net import Net, Stage


@dataclass(frozen=True)
class RegulatorCfg:
    cell: str = "lstm"            # rnn | gru | lstm
    gate_conv: str = "light"      # light (grouped 1x1 over interleaved [X, H] + depthwise 3x3) | dense
    gates: str = "separate"       # separate (canonical, one light conv per gate) | fused (own counts)
    state_bn: bool = True         # BN on H in every block before its ReLU (the paper's Eq. 2)
    cell_relu: bool = True        # ReLU on H and C before they are passed on (the paper's Eq. 2)

    def __post_init__(self):
        for value, valid, what in ((self.cell, CELLS, "cell"), (self.gate_conv, GATE_CONVS,
                                   "gate_conv"), (self.gates, GATE_LAYOUTS, "gates")):
            if value not in valid:
                raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(valid)}")


# block class -> (tap, width_from), or a function block -> (tap, width_from): the submodule whose
# output the memory reads, and the submodule whose `num_features` / `out_channels` is its width.
TAPS: dict[type, tuple[str, str] | Callable[[nn.Module], tuple[str, str]]] = {}


def register_tap(block_cls: type, tap: str | Callable[[nn.Module], tuple[str, str]],
                 width_from: str | None = None) -> None:
    """Declare where the memory enters blocks of `block_cls`: the output of submodule `tap`
    (called exactly once per block forward: a ReLU module reused twice would not do), whose
    width is read from submodule `width_from`. `tap` may be a function of the block instance
    returning both names, for classes whose layout depends on their arguments."""
    TAPS[block_cls] = tap if callable(tap) else (tap, width_from or tap)


def find_tap(block: nn.Module) -> tuple[str, str]:
    spec = TAPS.get(type(block))
    if spec is None:
        raise ValueError(f"no tap registered for {type(block).__name__}; pass tap= and "
                         "width_from= or call regnet.models.regulated.register_tap")
    return spec(block) if callable(spec) else spec


def _width(module: nn.Module) -> int:
    for attr in ("num_features", "out_channels", "out_chs"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise ValueError(f"cannot read a channel count from {type(module).__name__}")


class Regulator(nn.Module):
    """Per-block part of the regulator; runs inside the block as a forward hook on its tap."""

    def __init__(self, chs: int, cfg: RegulatorCfg, dims: int = 2):
        super().__init__()
        self.chs = chs
        self.state_norm = nn.Sequential(
            bn_nd(dims, chs) if cfg.state_bn else nn.Identity(),
            nn.ReLU() if cfg.cell_relu else nn.Identity())
        self.cell_relu = cfg.cell_relu
        self.fuse = ConvBnAct(2 * chs, chs, 1, dims=dims)  # the paper's W23 (W34 in bottlenecks)
        self._io: dict | None = None  # set by `step` for the duration of one block forward

    def step(self, block: nn.Module, x: torch.Tensor, state, cell: nn.Module):
        """Run `block` on x with the memory `state` (None = zeros); return (output, new state)."""
        self._io = {"state": state, "cell": cell, "out": None}
        try:
            y = block(x)
            new = self._io["out"]
        finally:
            self._io = None
        if new is None:
            raise RuntimeError(f"the tap of {type(block).__name__} was not called: the "
                               "regulator never saw the block's feature map")
        return y, new

    def hook(self, _module, _inputs, y: torch.Tensor) -> torch.Tensor:
        io = self._io
        if io is None:
            raise RuntimeError("a regulated block must run inside its RegulatedStage, which "
                               "hands it the memory; call the stage, not the block")
        if io["out"] is not None:
            raise RuntimeError("the regulator's tap ran twice in one block forward; register "
                               "a tap module that the block calls once")
        new = io["cell"](y, io["state"])
        h = self.state_norm(new[0])
        c = tuple(torch.relu(s) if self.cell_relu else s for s in new[1:])
        io["out"] = (h, *c)
        return self.fuse(torch.cat((y, h), 1))


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
        x, state = block.regulator.step(block, x, state, cell)
    return (x, *state)


def attach_regulator(block: nn.Module, cfg: RegulatorCfg, tap: str | None = None,
                     width_from: str | None = None) -> int:
    """Give `block` a `regulator` hooked on its tap; returns the tap's width (the cell's)."""
    if tap is None:
        tap, width_from = find_tap(block)
    chs = _width(block.get_submodule(width_from or tap))
    block.regulator = Regulator(chs, cfg)
    block.get_submodule(tap).register_forward_hook(block.regulator.hook)
    return chs


def regulate_stage(stage: Stage, cfg: RegulatorCfg, tap: str | None = None,
                   width_from: str | None = None) -> RegulatedStage:
    blocks = stage.blocks()
    widths = {attach_regulator(b, cfg, tap, width_from) for b in blocks}
    if len(widths) != 1:
        raise ValueError(f"the memory needs one width per stage, the taps give {sorted(widths)}")
    new = RegulatedStage(blocks, create_cell(cfg.cell, widths.pop(), cfg.gate_conv, cfg.gates))
    new.set_grad_checkpointing(stage.grad_checkpointing, stage.checkpoint_every)
    return new


def regulate(net: Net, cfg: RegulatorCfg, stages: Sequence[int] | None = None,
             tap: str | None = None, width_from: str | None = None) -> Net:
    """Regulate stages (1-based; None = all) of a built `Net` in place.

    The fuse conv and BN_h get the families' init (Kaiming fan-out, unit BN). The cell keeps
    PyTorch's default (fan-in) init: fan-out Kaiming would give its 2-input 1x1 groups a
    weight std of sqrt(2 / (gates * N)), making every gate ~ its bias at the start."""
    from .resnet import init_weights
    n = len(net.feature_info)
    for i in (range(1, n + 1) if stages is None else stages):
        if not 1 <= i <= n:
            raise ValueError(f"stage {i} out of range 1..{n}")
        name = f"s{i}"
        new = regulate_stage(getattr(net, name), cfg, tap, width_from)
        setattr(net, name, new)
        for block in new.blocks():
            init_weights(block.regulator)
    return net


def regulated_stages(net: nn.Module) -> list[RegulatedStage]:
    return [m for m in net.modules() if isinstance(m, RegulatedStage)]


def _register_resnet_taps() -> None:
    from .resnet import BasicBlock, Bottleneck
    # The memory reads X2 = ReLU(BN(conv3x3(X1))) of the basic block and the strided 3x3's
    # output of the bottleneck (so the first, strided block already works at stage resolution).
    register_tap(BasicBlock, "act1", "bn1")
    register_tap(Bottleneck, "act2", "bn2")


_register_resnet_taps()
