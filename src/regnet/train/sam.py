"""Sharpness-aware minimisation (Foret et al., "Sharpness-Aware Minimization for Efficiently
Improving Generalization", ICLR 2021).

A SAM step takes the gradient at w + e instead of at w, where e = rho * g / ||g|| is the
steepest-ascent step of length rho from the ordinary gradient g. The optimiser (SGD here) then
applies that gradient to the unperturbed weights w. It costs a second forward and backward
pass per step.

Two details follow the paper's reference practice:
- Batch-norm running statistics are updated by the first pass only, so that the perturbed
  weights leave no trace in the evaluation-time statistics.
- Under DistributedDataParallel the ascent uses each rank's own gradient (the first backward
  skips the all-reduce), which is the paper's m-sharpness with m = the per-rank batch. Only the
  second gradient is averaged across ranks.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def local_gradients(model: nn.Module):
    """A context in which backward does not all-reduce gradients (DDP's `no_sync`), also
    through a `torch.compile` wrapper; a no-op for a plain module."""
    inner = getattr(model, "_orig_mod", model)
    return inner.no_sync() if hasattr(inner, "no_sync") else contextlib.nullcontext()


@contextlib.contextmanager
def ascent(net: nn.Module, rho: float):
    """Move `net`'s weights to w + rho * g / ||g|| (g: their current gradients) and freeze
    batch-norm running statistics; on exit, restore both exactly.

    A non-finite gradient norm (an fp16 overflow, which the grad scaler will then skip) gives
    no perturbation rather than NaN weights. The norm is taken on device with no host sync.
    """
    params = [p for p in net.parameters() if p.grad is not None]
    # w is copied rather than recovered as (w + e) - e, which rounds in floating point.
    saved = [p.detach().clone() for p in params]
    if params:
        grads = [p.grad.float() for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        scale = torch.where(torch.isfinite(norm), rho / (norm + 1e-12), torch.zeros_like(norm))
        with torch.no_grad():
            torch._foreach_add_(params, [e.to(p.dtype) for e, p in
                                         zip(torch._foreach_mul(grads, scale), params)])
    # In training mode a BN layer with track_running_stats off normalises by the batch as
    # usual but neither reads nor writes its running buffers.
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True
        with torch.no_grad():
            for p, w in zip(params, saved):
                p.copy_(w)
