"""SGD or AdamW with weight decay only where it regularises, per-pattern learning-rate scales
and frozen parameters, and the learning-rate schedules.

The learning rate is a pure function of the global step, set on the optimiser before every
step; there is no scheduler object whose state could disagree with a resumed run.
"""
from __future__ import annotations

import fnmatch
import math

import torch
import torch.nn as nn

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, exempt_norm_bias: bool) -> list[dict]:
    """Two groups: decayed weights, and (when exempt) 1-d parameters (BN scales/shifts, biases)
    without decay, which otherwise only shrink toward zero without regularising the function."""
    if not exempt_norm_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad],
                 "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def freeze(model: nn.Module, patterns) -> list[str]:
    """Fix the parameters whose names match any of `patterns`; returns their names."""
    frozen = [n for n, p in model.named_parameters()
              if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    for name in frozen:
        model.get_parameter(name).requires_grad_(False)
    if patterns and not frozen:
        raise ValueError(f"freeze {list(patterns)} matches no parameter of the model "
                         f"(names look like {next(iter(dict(model.named_parameters())))})")
    return frozen


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    scales = cfg.lr_scales
    groups = []
    for group in param_groups(model, cfg.weight_decay, cfg.wd_exempt_norm_bias):
        if not scales:
            groups.append(group)
            continue
        # Split each decay group by learning-rate scale; `set_lr` multiplies group["lr_scale"].
        names = {id(p): n for n, p in model.named_parameters()}
        by_scale: dict[float, list] = {}
        for p in group["params"]:
            scale = next((f for pat, f in scales if fnmatch.fnmatchcase(names[id(p)], pat)), 1.0)
            by_scale.setdefault(scale, []).append(p)
        groups += [{**group, "params": ps, "lr_scale": s} for s, ps in by_scale.items()]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.effective_lr)
    return torch.optim.SGD(groups, lr=cfg.effective_lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate at global `step` (0-based): linear warm-up, then the schedule.

    Step and multi-step drops happen at epoch boundaries (as the papers state them);
    cosine and linear decay move every step, from the end of warm-up to the last step."""
    base = cfg.effective_lr
    epoch = step / steps_per_epoch
    warm_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warm_steps:
        t = step / warm_steps
        return base * (cfg.warmup_factor + (1 - cfg.warmup_factor) * t)
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "step":
        return base * cfg.gamma ** (int(epoch) // cfg.step_size)
    if cfg.schedule == "multistep":
        return base * cfg.gamma ** sum(int(epoch) >= m for m in cfg.milestones)
    total = max(1, cfg.epochs * steps_per_epoch - warm_steps)
    t = min(1.0, (step - warm_steps) / total)
    shape = 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else 1 - t
    return cfg.min_lr + (base - cfg.min_lr) * shape


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
