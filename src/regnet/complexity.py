"""Exact parameters, FLOPs and activations, with the convention of the reference tables.

- params: every parameter element (BN contributes its weight and bias, 2 per channel).
- flops: multiply-adds of conv and linear layers; a conv costs k*k*c_in/groups per output
  element plus 1 per output element for its bias; BN, activations, pooling, the SE multiply and
  residual adds cost nothing.
- acts: output elements of every conv and linear layer, plus the stem's max-pool.

Counts come from forward hooks on one batch-1 forward pass, so a module called n times (a
recurrent cell shared by a stage's blocks) is counted n times, as the papers count it.
`macs` (the same without bias adds) is reported too: the iResNet paper's tables use it.
`paper_flops` is that paper's own convention (an older counter that also counts BN and the
classifier's adds; docs/ARCHITECTURE.md says where it matters).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from regnet.models.factory import create_model

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


def _per_sample(t: torch.Tensor) -> int:
    return t.numel() // t.shape[0]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def complexity(model_or_name, input_size=None, num_classes: int | None = None,
               executed: bool = False) -> dict:
    """Return `{"params", "flops", "macs", "acts", "input_size"}` for one input (batch 1).

    `input_size` is an int (square image), a (H, W) / (C, H, W) / (C, T, H, W) tuple, or None for
    the model's default. `executed=True` counts the form a layer runs rather than the one the
    papers count, where they differ (a conv with `executed_fan_in`: the regulator's light gate
    conv, evaluated as a dense block-sparse 1x1 in its eager form). Counting runs the eager
    form: the fused CPU cell (`regnet.kernels.regcell`) calls no gate conv module, and it
    executes exactly the counted multiply-adds (the 1x1 as 2 per output).
    """
    from regnet.kernels.regcell import disabled
    if isinstance(model_or_name, str):
        model = create_model(model_or_name, num_classes=num_classes)
    else:
        model = model_or_name
    shape = resolve_input_size(model, input_size)
    totals = {"flops": 0, "macs": 0, "acts": 0}
    stem = getattr(model, "stem", None)
    stem_pools = {id(m) for m in stem.modules() if isinstance(m, _POOLS)} if stem else set()

    def conv_hook(m, inputs, out):
        per_out = m.in_channels // m.groups * math.prod(m.kernel_size)
        if executed:
            per_out = getattr(m, "executed_fan_in", per_out)
        n = _per_sample(out)
        totals["macs"] += n * per_out
        totals["flops"] += n * per_out + (n if m.bias is not None else 0)
        totals["acts"] += n

    def linear_hook(m, inputs, out):
        n = _per_sample(out)
        totals["macs"] += n * m.in_features
        totals["flops"] += n * m.in_features + (n if m.bias is not None else 0)
        totals["acts"] += n

    def pool_hook(m, inputs, out):
        if id(m) in stem_pools:
            totals["acts"] += _per_sample(out)

    handles = []
    for m in model.modules():
        if isinstance(m, _CONVS):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, _POOLS):
            handles.append(m.register_forward_hook(pool_hook))
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad(), disabled():
            model(torch.zeros((1,) + shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {"params": count_params(model), **totals, "input_size": list(shape)}


def resolve_input_size(model: nn.Module, input_size=None) -> tuple[int, ...]:
    default = tuple(getattr(model, "default_input_size", (3, 224, 224)))
    if input_size is None:
        return default
    if isinstance(input_size, int):
        return default[:-2] + (input_size, input_size)
    size = tuple(int(s) for s in input_size)
    if len(size) == len(default):
        return size
    if len(size) == len(default) - 1:  # spatial (and temporal) sizes without the channels
        return default[:1] + size
    if len(size) == 2:
        return default[:-2] + size
    raise ValueError(f"input_size {input_size} does not fit a model with input {default}")


def paper_flops(model: nn.Module, input_size=None, count_relu: bool = False) -> int:
    """FLOPs in the iResNet paper's convention: conv multiply-adds, 4 per BN output element,
    (2*in - 1)*out for the classifier, and optionally 1 per ReLU output element (its CIFAR
    tables)."""
    shape = resolve_input_size(model, input_size)
    total = {"n": 0}

    def bn_hook(m, i, out):
        total["n"] += 4 * out[0].numel()

    def relu_hook(m, i, out):
        total["n"] += out[0].numel()

    handles = [m.register_forward_hook(bn_hook) for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if count_relu:
        handles += [m.register_forward_hook(relu_hook) for m in model.modules()
                    if isinstance(m, nn.ReLU)]
    try:
        base = complexity(model, shape)
    finally:
        for h in handles:
            h.remove()
    # `complexity` counts the classifier as in*out multiply-adds; the paper's counter as
    # (2*in - 1)*out.
    fc_extra = sum((m.in_features - 1) * m.out_features for m in model.modules()
                   if isinstance(m, nn.Linear))
    return base["macs"] + fc_extra + total["n"]
