"""Convolutional RNN cells for the RNN-regulated ResNets (Xu et al., "RegNet: Self-Regulated
Network for Image Classification"): ConvRNN, ConvGRU, ConvLSTM, hidden width = input width N.

Every gate is a 2N -> N convolution over [X, H]. The paper's *light* gate conv (its Eq. 1, "2
steps") is a grouped 1x1 with N groups over the INTERLEAVED channels (X_1, H_1, X_2, H_2, ...),
so group k mixes input channel k with memory channel k, then a depthwise 3x3: 13N parameters
per gate. (Concatenating [X, H] and taking N groups would pair X with X and never mix input with
memory.) The *dense* ablation (Table I) is one full 3x3 conv 2N -> N with bias per gate.

Storage and speed. The gates that read the same input are stored stacked in one module per
step (`pw`: 2N -> gN with N groups, output channel k*g + j = gate j of channel k; `dw`: gN -> gN
depthwise), which is exactly g separate light convs: the same 13gN parameters, FLOPs and
activations. The default forward evaluates all gates with 2 kernels instead of 2g (the 1x1 as
one dense block-sparse conv, see `PairConv`), gate-major, and the gate arithmetic in a few
fused ops (`torch.lerp`, `torch.addcmul`); `forward_reference` runs the literal
one-grouped-conv-per-gate form on slices of the same weights. The tests hold the two equal.
`gates="fused"` is a different, *non-canonical* architecture with its own counts: the 3x3 of the
second step takes N groups over the gN stacked maps (so each spatial filter sees all g gate
maps of channel k), which is the literal "N groups" reading of the paper's step 2 for a fused
conv.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from regnet.kernels.regcell import fused_update

GATE_CONVS = ("light", "dense")
GATE_LAYOUTS = ("separate", "fused")


def interleave(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(X_1, H_1, X_2, H_2, ...): the channel order the light conv's N groups need."""
    return torch.stack((x, h), dim=2).flatten(1, 2)


class PairConv(nn.Conv2d):
    """The light conv's first step: grouped 1x1, 2N -> gN, N groups over interleaved [X, H].

    Stored as that grouped conv (output channel k*g + j = gate j of channel k). `forward` gives
    the same map as ONE dense 1x1 conv over the plain concatenation [X, H] with a block-sparse
    weight scattered from the stored one, with GATE-MAJOR outputs (j*N + k): on CPU a dense
    1x1 runs at matrix-multiply speed, while a grouped conv of 2-channel groups (and the
    interleaving copy it needs) is among the slowest kernels there are. It is still an
    `nn.Conv2d` with the grouped conv's parameters, and complexity hooks count the grouped
    conv it is (2 multiply-adds + bias per output), not the dense form used to evaluate it
    (`executed_fan_in`: 2N, what `complexity(..., executed=True)` counts).
    `group_major=True` (the fused layout, whose 3x3 groups a channel's g gate maps) evaluates
    the literal grouped conv instead, with group-major outputs.
    """

    def __init__(self, chs: int, gates: int, group_major: bool = False):
        super().__init__(2 * chs, gates * chs, 1, groups=chs, bias=True)
        self.chs, self.gates, self.group_major = chs, gates, group_major

    @property
    def executed_fan_in(self) -> int:
        """Multiply-adds per output element of the form `forward` runs."""
        return 2 if self.group_major else 2 * self.chs

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(gN, 2N, 1, 1) gate-major weight over [X, H] and its gate-major bias."""
        n, g = self.chs, self.gates
        w = self.weight.view(n, g, 2).permute(1, 0, 2)  # [gate j, channel k, (x, h)]
        dense = _scatter_pairs(w, n, g)
        return dense.reshape(g * n, 2 * n, 1, 1), self.bias.view(n, g).t().reshape(-1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.group_major:
            return self.forward_reference(x, h)
        weight, bias = self.dense_weight()
        return F.conv2d(torch.cat((x, h), 1), weight, bias)

    def forward_reference(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The literal grouped conv on the interleaved channels; group-major outputs."""
        return F.conv2d(interleave(x, h), self.weight, self.bias, groups=self.groups)


def _scatter_pairs(w: torch.Tensor, n: int, g: int) -> torch.Tensor:
    """w[j, k, s] -> dense[j, k, s, k]: gate j of channel k reads only X_k (s=0) and H_k (s=1)."""
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    return w.unsqueeze(-1) * eye.view(1, n, 1, n)


class LightGateConv(nn.Module):
    """g light gate convs (or the fused variant) over [X, H]; output (B, g*N, H, W), gate-major
    (channels j*N .. j*N + N-1 are gate j), so a cell splits gates with `chunk(g, 1)`."""

    def __init__(self, chs: int, gates: int = 1, layout: str = "separate"):
        super().__init__()
        if layout not in GATE_LAYOUTS:
            raise ValueError(f"unknown gate layout {layout!r}; expected one of "
                             f"{', '.join(GATE_LAYOUTS)}")
        self.chs, self.gates, self.layout = chs, gates, layout
        self.pw = PairConv(chs, gates, group_major=layout != "separate")
        if layout == "separate":
            self.dw = GateDepthwise(chs, gates)
        else:  # N groups of g maps: each 3x3 filter sees all gates of its channel
            self.dw = nn.Conv2d(gates * chs, gates * chs, 3, padding=1, groups=chs, bias=True)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.layout != "separate":  # group-major (k*g + j) -> gate-major (j*N + k)
            y = self.dw(self.pw(x, h))
            return y.unflatten(1, (self.chs, self.gates)).transpose(1, 2).flatten(1, 2)
        return self.dw(self.pw(x, h))

    def forward_reference(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One grouped 1x1 and one depthwise 3x3 per gate, on slices of the stored weights."""
        n, g = self.chs, self.gates
        if self.layout != "separate":  # group-major (k*g + j) -> gate-major (j*N + k)
            y = self.dw(self.pw.forward_reference(x, h))
            return y.unflatten(1, (n, g)).transpose(1, 2).flatten(1, 2)
        xh = interleave(x, h)
        outs = []
        for j in range(g):
            y = F.conv2d(xh, self.pw.weight[j::g], self.pw.bias[j::g], groups=n)
            outs.append(F.conv2d(y, self.dw.weight[j::g], self.dw.bias[j::g], padding=1,
                                 groups=n))
        return torch.cat(outs, dim=1)


class GateDepthwise(nn.Conv2d):
    """The light conv's second step for g stacked gates: depthwise 3x3 with bias, stored in the
    grouped conv's group-major channel order, applied to gate-major maps (`PairConv.forward`)."""

    def __init__(self, chs: int, gates: int):
        super().__init__(gates * chs, gates * chs, 3, padding=1, groups=gates * chs, bias=True)
        self.chs, self.gates = chs, gates

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, g = self.chs, self.gates
        weight = self.weight.view(n, g, 1, 3, 3).transpose(0, 1).reshape(g * n, 1, 3, 3)
        bias = self.bias.view(n, g).t().reshape(-1)
        return F.conv2d(y, weight, bias, padding=1, groups=g * n)


class DenseGateConv(nn.Module):
    """The Table I ablation: a full 3x3 conv 2N -> N with bias per gate, stacked gate-major
    into one conv (exactly g separate convs: the same parameters, FLOPs and activations).
    Output (B, g*N, H, W), gate-major."""

    def __init__(self, chs: int, gates: int = 1):
        super().__init__()
        self.chs, self.gates = chs, gates
        self.conv = nn.Conv2d(2 * chs, gates * chs, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((x, h), 1))

    def forward_reference(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xh, n = torch.cat((x, h), 1), self.chs
        outs = [F.conv2d(xh, self.conv.weight[j * n:(j + 1) * n],
                         self.conv.bias[j * n:(j + 1) * n], padding=1)
                for j in range(self.gates)]
        return torch.cat(outs, dim=1)


def gate_conv(kind: str, chs: int, gates: int, layout: str = "separate") -> nn.Module:
    if kind not in GATE_CONVS:
        raise ValueError(f"unknown gate conv {kind!r}; expected one of {', '.join(GATE_CONVS)}")
    if kind == "light":
        return LightGateConv(chs, gates, layout)
    if layout != "separate":
        raise ValueError(f"gate layout {layout!r} is a layout of the light gate conv; the dense "
                         "gate conv has one layout")
    return DenseGateConv(chs, gates)


class _Cell(nn.Module):
    """`cell(x, state) -> new state`; state is a tuple of tensors (H,) or (H, C), None = zeros.

    `reference=True` routes every gate conv through its literal per-gate form (slow; for tests).
    On CPU the light cells run the fused native kernel (`regnet.kernels.regcell`) where it
    applies: the same map in one pass over the gate maps; `fused=False` keeps the eager form.
    """

    state_size = 1
    cell_name = ""

    def __init__(self, chs: int):
        super().__init__()
        self.chs = chs
        self.reference = False
        self.fused = True

    def gate_convs(self) -> list[nn.Module]:
        """The gate convs in the order the fused kernel takes them."""
        raise NotImplementedError

    def _fused(self, x, state):
        """The fused kernel's new state, or None: the eager form runs."""
        if not self.fused or not all(isinstance(m, LightGateConv) and m.layout == "separate"
                                     for m in self.gate_convs()):
            return None
        return fused_update(self, x, state)

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros_like(x) for _ in range(self.state_size))

    def _gates(self, conv: nn.Module, x, h):
        return conv.forward_reference(x, h) if self.reference else conv(x, h)


class ConvRNN(_Cell):
    """H = tanh(G([X, H]))."""

    cell_name = "rnn"

    def __init__(self, chs: int, kind: str = "light", layout: str = "separate"):
        super().__init__(chs)
        self.gate = gate_conv(kind, chs, 1, layout)

    def gate_convs(self):
        return [self.gate]

    def forward(self, x, state=None):
        fused = self._fused(x, state)
        if fused is not None:
            return fused
        (h,) = state if state is not None else self.zero_state(x)
        return (torch.tanh(self._gates(self.gate, x, h)),)


class ConvGRU(_Cell):
    """z, r = sigmoid(G_zr([X, H])); H~ = tanh(G_h([X, r*H])); H = (1 - z) H + z H~.

    The candidate reads r*H, so it cannot share a conv call with z and r: two stacked convs.
    """

    cell_name = "gru"

    def __init__(self, chs: int, kind: str = "light", layout: str = "separate"):
        super().__init__(chs)
        self.zr = gate_conv(kind, chs, 2, layout)
        self.cand = gate_conv(kind, chs, 1, layout)

    def gate_convs(self):
        return [self.zr, self.cand]

    def forward(self, x, state=None):
        fused = self._fused(x, state)
        if fused is not None:
            return fused
        (h,) = state if state is not None else self.zero_state(x)
        z, r = torch.sigmoid(self._gates(self.zr, x, h)).chunk(2, 1)
        cand = torch.tanh(self._gates(self.cand, x, r * h))
        return (torch.lerp(h, cand, z),)  # (1 - z) h + z cand, one kernel


class ConvLSTM(_Cell):
    """i, f, o = sigmoid(G_ifo([X, H])); g = tanh(G_g([X, H])); C = f C + i g; H = o tanh(C)."""

    state_size = 2
    cell_name = "lstm"

    def __init__(self, chs: int, kind: str = "light", layout: str = "separate"):
        super().__init__(chs)
        self.gates = gate_conv(kind, chs, 4, layout)  # gate order i, f, o, g

    def gate_convs(self):
        return [self.gates]

    def forward(self, x, state=None):
        fused = self._fused(x, state)
        if fused is not None:
            return fused
        h, c = state if state is not None else self.zero_state(x)
        # Gate-major channels split by `chunk` (a split: backward concatenates the gate
        # gradients instead of zero-filling a full buffer per slice). Other forms of this
        # arithmetic measured no faster (docs/PERFORMANCE.md, "Where RegNet-20-LSTM's time goes").
        i, f, o, g = self._gates(self.gates, x, h).chunk(4, 1)
        c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))
        return (torch.sigmoid(o) * torch.tanh(c), c)


CELLS = {"rnn": ConvRNN, "gru": ConvGRU, "lstm": ConvLSTM}


def create_cell(name: str, chs: int, kind: str = "light", layout: str = "separate") -> _Cell:
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {', '.join(CELLS)}")
    return CELLS[name](chs, kind, layout)
