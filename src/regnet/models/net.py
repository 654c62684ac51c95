"""The one network shape every family builds: stem -> stages s1..sN of blocks b1..bM -> head.

A family contributes a stem, a block class (`Block(in_chs, out_chs, stride, **block_args)`) and
a list of `StageSpec`s, built by the one `build_stages`; `Net` supplies the interface users call
(timm's conventions): `forward_features`, `forward_head(x, pre_logits=False)`,
`reset_classifier`, `feature_info`, `forward_intermediates`, `set_grad_checkpointing`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .features import FeatureInfo, resolve_out_indices


class Stage(nn.Module):
    """Blocks b1..bM applied in order.

    With gradient checkpointing on, the blocks run in segments of `checkpoint_every` blocks and
    only segment inputs are kept for backward; the default segment of ~sqrt(M) blocks keeps
    memory O(sqrt(M)) per stage, which is what lets 1000+ layer networks train on a laptop.
    Subclasses that carry state between blocks (the RNN-regulated stages) override `forward`.
    """

    def __init__(self, blocks: Iterable[nn.Module]):
        super().__init__()
        for i, block in enumerate(blocks, 1):
            self.add_module(f"b{i}", block)
        self.grad_checkpointing = False
        self.checkpoint_every = 0  # 0 = ceil(sqrt(number of blocks))

    def blocks(self) -> list[nn.Module]:
        return [m for name, m in self.named_children() if name[0] == "b" and name[1:].isdigit()]

    def set_grad_checkpointing(self, enable: bool = True, every: int = 0) -> None:
        self.grad_checkpointing = enable
        self.checkpoint_every = every

    def _segment_size(self, n: int) -> int:
        return self.checkpoint_every or max(1, math.ceil(math.sqrt(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.blocks()
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            for block in blocks:
                x = block(x)
            return x
        size = self._segment_size(len(blocks))
        for start in range(0, len(blocks), size):
            segment = blocks[start:start + size]
            x = checkpoint(_run_blocks, segment, x, use_reentrant=False)
        return x


def _run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


@dataclass(frozen=True)
class StageSpec:
    """One stage of a network: `depth` blocks of `out_chs` channels, the first with `stride`."""

    depth: int
    out_chs: int
    stride: int
    block_args: dict = field(default_factory=dict)  # kwargs of every block of the stage


def build_stages(block: Callable[..., nn.Module], in_chs: int, specs: Sequence[StageSpec],
                 per_block: Callable[[int, int], dict] | None = None) -> list[Stage]:
    """The stages of every family: in each, the first block changes the width and carries the
    stride. `per_block(index, depth)` adds kwargs for one block (iResNet's start / middle / end
    position), merged over the stage's `block_args`."""
    stages = []
    for spec in specs:
        blocks = []
        for i in range(spec.depth):
            extra = per_block(i, spec.depth) if per_block else {}
            blocks.append(block(in_chs if i == 0 else spec.out_chs, spec.out_chs,
                                spec.stride if i == 0 else 1, **{**spec.block_args, **extra}))
        stages.append(Stage(blocks))
        in_chs = spec.out_chs
    return stages


class ClassifierHead(nn.Module):
    """Global average pool over every spatial (or spatio-temporal) axis -> dropout -> fc."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.in_chs = in_chs
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.in_chs, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(2).mean(-1) if x.dim() > 2 else x
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class Net(nn.Module):
    """stem -> s1..sN -> [final norm] -> head.

    `strides[i]` is stage i's stride and `stem_reduction` the stem's total stride, from which
    `feature_info` (channels and reduction of every stage output) follows without a dry run.
    `norm` runs after the last stage (pre-activation nets need a final BN + ReLU there).
    """

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], stage_chs: Sequence[int],
                 strides: Sequence[int], num_classes: int, *, stem_reduction: int,
                 input_size: tuple[int, ...], norm: nn.Module | None = None,
                 drop_rate: float = 0.0):
        super().__init__()
        if not (len(stages) == len(stage_chs) == len(strides)):
            raise ValueError("stages, stage_chs and strides must have the same length")
        self.stem = stem
        for i, stage in enumerate(stages, 1):
            self.add_module(f"s{i}", stage)
        self.norm = norm if norm is not None else nn.Identity()
        self.num_features = stage_chs[-1]
        self.num_classes = num_classes
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.default_input_size = tuple(input_size)
        self.model_name = ""  # set by the registry
        self.stage_names = [f"s{i}" for i in range(1, len(stages) + 1)]
        # timm's convention: feature 0 is the stem's output, feature i stage s<i>'s.
        # (A stem without `out_chs`, e.g. nn.Identity in a test, passes the input through.)
        info, reduction = [{"num_chs": getattr(stem, "out_chs", input_size[0]),
                            "reduction": stem_reduction, "module": "stem"}], stem_reduction
        for name, chs, stride in zip(self.stage_names, stage_chs, strides):
            reduction *= stride
            info.append({"num_chs": chs, "reduction": reduction, "module": name})
        self.feature_info = FeatureInfo(info)

    @classmethod
    def from_specs(cls, stem: nn.Module, block: Callable[..., nn.Module],
                   specs: Sequence[StageSpec], num_classes: int, *, input_size: tuple[int, ...],
                   per_block: Callable[[int, int], dict] | None = None,
                   norm: nn.Module | None = None, drop_rate: float = 0.0) -> "Net":
        """stem -> `build_stages(block, stem.out_chs, specs, per_block)` -> head."""
        return cls(stem, build_stages(block, stem.out_chs, specs, per_block),
                   [s.out_chs for s in specs], [s.stride for s in specs], num_classes,
                   stem_reduction=stem.reduction, input_size=input_size, norm=norm,
                   drop_rate=drop_rate)

    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]

    # -- the interface ---------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes)

    def set_grad_checkpointing(self, enable: bool = True, every: int = 0) -> None:
        for stage in self.stages():
            stage.set_grad_checkpointing(enable, every)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              intermediates_only: bool = False):
        """The feature maps at `indices` of `feature_info` (0 = the stem, i = stage s<i>; an
        int k = the last k; None = all), as timm's `forward_intermediates`.

        Returns the list, or `(final_features, list)` unless `intermediates_only`.
        """
        take = resolve_out_indices(indices, len(self.feature_info))
        x = self.stem(x)
        outs = [x] if 0 in take else []
        n = len(self.stage_names)
        for i, stage in enumerate(self.stages(), 1):
            if intermediates_only and i > max(take):
                break
            x = stage(x)
            if i == n:
                x = self.norm(x)
            if i in take:
                outs.append(x)
        return outs if intermediates_only else (x, outs)


class FeatureNet(nn.Module):
    """A backbone that returns the feature maps at `out_indices` (timm's `features_only`:
    index 0 is the stem, i is stage s<i>; default all).

    It keeps the classifier's module names (stem, s1, ...) so a classifier checkpoint loads into
    it with `strict=False` (only `head.*` is left over); stages past the last index are dropped.
    `feature_info` is the classifier's, with these `out_indices`.
    """

    def __init__(self, net: Net, out_indices: Sequence[int] | None = None):
        super().__init__()
        self.feature_info = net.feature_info.from_other(out_indices)
        self.out_indices = list(self.feature_info.out_indices)
        last = max(self.out_indices)
        self.stem = net.stem
        self.stage_names = net.stage_names[:last]
        for name in self.stage_names:
            self.add_module(name, getattr(net, name))
        # Pre-activation nets normalise only after the last stage; keep that when it is taken.
        self.norm = net.norm if last == len(net.stage_names) else nn.Identity()
        self.default_input_size = net.default_input_size
        self.model_name = net.model_name

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = [x] if 0 in self.out_indices else []
        for i, name in enumerate(self.stage_names, 1):
            x = getattr(self, name)(x)
            if i == len(self.stage_names):
                x = self.norm(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
