"""The residual blocks every family builds from, their initialisation, and the regulator's tap.

Every block has the one signature `Block(in_chs, out_chs, stride, **block_args)`; the first block
of a stage changes the width and carries the stride. Which family uses which:
- `BasicBlock`: CIFAR ResNets, SE-ResNets, the CIFAR RNN-regulated nets, pycls's basic AnyNet;
- `Bottleneck`: ImageNet ResNets / ResNeXts (stride on the 3x3, as torchvision), RegNet's X block
  (inner width w*b, group width g) and Y block (SE after the 3x3), the ImageNet regulated nets;
- `PreActBottleneck`: the identity-mapping ResNets (He et al. 2016), the iResNet paper's baseline;
- `StageBlock`: iResNet's ResStage Start / Middle / End blocks.

A block that a ConvRNN regulator (`regnet.models.regulated`) can attach to derives from
`RegulatableBlock`: it names the width of the feature map the memory reads (`regulator_chs`) and
calls `self.tap(y, state, cell)` at that point of its own forward, so where the memory enters is
written in the block, once, and the memory goes in and out as arguments.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from regnet.layers import SqueezeExcite, conv2d, make_shortcut

__all__ = ["RegulatableBlock", "BasicBlock", "Bottleneck", "PreActBottleneck", "StageBlock",
           "POSITIONS", "stage_positions", "se_width", "init_weights", "IMAGENET_LAYOUTS"]

# ImageNet depth -> (block, blocks per stage): He et al.'s table, and the iResNet paper's 302 /
# 404-layer nets (Duta et al., Table 4).
IMAGENET_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                    50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                    152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3)),
                    302: ("bottleneck", (4, 34, 58, 4)), 404: ("bottleneck", (4, 46, 80, 4))}


def se_width(ratio: float, in_chs: int, out_chs: int, base: str) -> int:
    """SE squeeze width: a ratio of the block's input width (RegNetY) or output width (SENet)."""
    return int(round(ratio * (in_chs if base == "in" else out_chs)))


class RegulatableBlock(nn.Module):
    """Base of the blocks that a ConvRNN memory can regulate.

    Unregulated (`self.regulator is None`, as built) `tap` is the identity and `forward(x)`
    returns the block's output. With a regulator attached, `forward(x, state, cell)` returns
    `(output, new_state)`: the stage hands in the memory `state` (None: zeros at the first
    block) and the cell it shares among its blocks, and gets the new memory back.
    """

    regulator_chs: int  # width of the feature map at the tap (the memory's width)

    def __init__(self):
        super().__init__()
        self.regulator: nn.Module | None = None  # set by regnet.models.regulated.regulate

    def tap(self, y: torch.Tensor, state, cell):
        """The memory reads `y` and replaces it: (regulated y, new state)."""
        if self.regulator is None:
            return y, state
        if cell is None:
            raise RuntimeError(f"this {type(self).__name__} is regulated: call it as "
                               "block(x, state, cell) with its stage's cell (state None = "
                               "zeros), or call the RegulatedStage")
        return self.regulator(y, state, cell)

    def result(self, out: torch.Tensor, state):
        return out if self.regulator is None else (out, state)


class BasicBlock(RegulatableBlock):
    """3x3 -> BN -> ReLU -> 3x3 -> BN [-> SE], + shortcut, ReLU.

    The memory reads X2 = ReLU(BN(conv1(x))) and its fused map feeds conv2 (the self-regulated
    paper's basic RegNet module)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, shortcut: str = "B",
                 shortcut_bias: bool = False, se_ratio: float = 0.0, se_bias: bool = True):
        super().__init__()
        self.conv1 = conv2d(in_chs, out_chs, 3, stride)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv2d(out_chs, out_chs, 3)
        self.bn2 = nn.BatchNorm2d(out_chs)
        rd = se_width(se_ratio, in_chs, out_chs, "out")
        self.se = SqueezeExcite(out_chs, rd, se_bias) if rd else nn.Identity()
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, shortcut_bias)
        self.act2 = nn.ReLU(inplace=True)
        self.regulator_chs = out_chs

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x, state=None, cell=None):
        y = self.act1(self.bn1(self.conv1(x)))
        y, state = self.tap(y, state, cell)
        y = self.se(self.bn2(self.conv2(y)))
        return self.result(self.act2(y + self.shortcut(x)), state)


class Bottleneck(RegulatableBlock):
    """1x1 -> BN -> ReLU -> grouped 3x3 (stride) -> BN -> ReLU -> 1x1 -> BN, + shortcut, ReLU.

    `mid_chs` is the inner width, `groups` the 3x3's groups. SE sits after the 3x3 (RegNetY,
    `se_after="conv2"`, squeeze width from the block input) or after the last BN (SENet). The
    memory reads the strided 3x3's ReLU, so the first block of a stage already works at the
    stage's resolution."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, mid_chs: int,
                 groups: int = 1, shortcut: str = "B", shortcut_bias: bool = False,
                 se_ratio: float = 0.0, se_after: str = "conv3", se_bias: bool = True):
        super().__init__()
        self.conv1 = conv2d(in_chs, mid_chs, 1)
        self.bn1 = nn.BatchNorm2d(mid_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = conv2d(mid_chs, mid_chs, 3, stride, groups=groups)
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.act2 = nn.ReLU(inplace=True)
        se_chs = mid_chs if se_after == "conv2" else out_chs
        rd = se_width(se_ratio, in_chs, out_chs, "in" if se_after == "conv2" else "out")
        self.se = SqueezeExcite(se_chs, rd, se_bias) if rd else nn.Identity()
        self.se_after = se_after
        self.conv3 = conv2d(mid_chs, out_chs, 1)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, shortcut_bias)
        self.act3 = nn.ReLU(inplace=True)
        self.regulator_chs = mid_chs

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x, state=None, cell=None):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y)))
        y, state = self.tap(y, state, cell)
        if self.se_after == "conv2":
            y = self.se(y)
        y = self.bn3(self.conv3(y))
        if self.se_after == "conv3":
            y = self.se(y)
        return self.result(self.act3(y + self.shortcut(x)), state)


class PreActBottleneck(nn.Module):
    """Identity-mapping bottleneck (He et al. 2016): BN -> ReLU -> 1x1 -> BN -> ReLU -> 3x3
    (stride) -> BN -> ReLU -> 1x1, + shortcut. A projection shortcut reads the pre-activated
    input, as in the authors' code, and has no BN of its own."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, mid_chs: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = conv2d(in_chs, mid_chs, 1)
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = conv2d(mid_chs, mid_chs, 3, stride)
        self.bn3 = nn.BatchNorm2d(mid_chs)
        self.act3 = nn.ReLU(inplace=True)
        self.conv3 = conv2d(mid_chs, out_chs, 1)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, "conv", False)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        shortcut = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        y = self.act2(self.bn2(self.conv1(pre)))
        y = self.act3(self.bn3(self.conv2(y)))
        return self.conv3(y) + shortcut


POSITIONS = ("start", "middle", "end")


class StageBlock(RegulatableBlock):
    """A ResStage block (Duta et al.); what it does depends on its `position` in the stage.

    - start: conv -> BN -> ReLU ... conv -> BN, + shortcut(x); no ReLU after the addition.
    - middle: [BN0] -> ReLU -> conv -> BN -> ReLU ... conv, + x (pre-activation branch).
    - end: the middle branch, then BN -> ReLU after the addition.
    `pre_bn=False` drops BN0: the first Middle block of a stage (or the End block of a two-block
    stage) reads the Start block's already normalised output. Its identity is what the authors'
    code adds, ReLU(x) + F(ReLU(x)) (their in-place ReLU rectifies the tensor the identity holds,
    `rectify_identity=True`); the paper's text reads x + F(ReLU(x)) (`rectify_identity=False`).
    `block="bottleneck"`: 1x1 (in -> mid) -> 3x3 (mid, groups, stride) -> 1x1 (mid -> out);
    `block="basic"`: 3x3 (in -> out, stride) -> 3x3 (out -> out).
    The memory reads the ReLU after the (strided) 3x3, the last activation inside the branch.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, position: str = "middle",
                 pre_bn: bool = True, block: str = "bottleneck", mid_chs: int = 0,
                 groups: int = 1, shortcut: str = "improved", rectify_identity: bool = True):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r}; expected one of {POSITIONS}")
        if position != "start" and (in_chs != out_chs or stride != 1):
            raise ValueError("only the Start block of a stage may change width or stride")
        self.position = position
        self.rectify_identity = rectify_identity and position != "start" and not pre_bn
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
            self.bn0 = nn.BatchNorm2d(in_chs) if pre_bn else nn.Identity()
            self.act0 = nn.ReLU(inplace=pre_bn)
        for i, (cin, cout, k, s, g) in enumerate(specs, 1):
            self.add_module(f"conv{i}", conv2d(cin, cout, k, s, groups=g))
            if i < self.n:
                self.add_module(f"bn{i}", nn.BatchNorm2d(cout))
                self.add_module(f"act{i}", nn.ReLU(inplace=True))
        # Start normalises its branch before the addition (the shortcut is normalised too);
        # End normalises the sum, preparing the signal for the next stage. Same parameter name.
        if position in ("start", "end"):
            self.add_module(f"bn{self.n}", nn.BatchNorm2d(out_chs))
        self.shortcut = make_shortcut(in_chs, out_chs, stride, shortcut, False)
        if position == "end":
            self.act_out = nn.ReLU(inplace=True)
        self.regulator_chs = specs[-1][0]

    def zero_init_last(self) -> None:
        # Zeroing the End block's BN would zero the whole signal: zero its last conv instead.
        last = getattr(self, f"bn{self.n}") if self.position == "start" else \
            getattr(self, f"conv{self.n}")
        nn.init.zeros_(last.weight)

    def forward(self, x, state=None, cell=None):
        y = x if self.position == "start" else self.act0(self.bn0(x))
        if self.rectify_identity:
            x = y
        for i in range(1, self.n):
            y = getattr(self, f"act{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y)))
        y, state = self.tap(y, state, cell)
        y = getattr(self, f"conv{self.n}")(y)
        if self.position == "start":
            return self.result(getattr(self, f"bn{self.n}")(y) + self.shortcut(x), state)
        y = y + self.shortcut(x)
        if self.position == "end":
            y = self.act_out(getattr(self, f"bn{self.n}")(y))
        return self.result(y, state)


def stage_positions(index: int, depth: int) -> dict:
    """`build_stages`' per-block hook for ResStage stages: Start, Middle (the first without
    BN0), End."""
    if depth < 2:
        raise ValueError("a ResStage stage needs at least 2 blocks (a Start and an End)")
    if index == 0:
        return {"position": "start"}
    return {"position": "end" if index == depth - 1 else "middle", "pre_bn": index > 1}


def init_weights(model: nn.Module, zero_init_last: bool = False) -> None:
    """Kaiming-normal (fan_out) convs, unit BN, the torchvision / iResNet initialisation."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
