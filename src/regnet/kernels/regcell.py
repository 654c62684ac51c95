"""The fused light-gate cell (`regcell.cpp`) as an autograd function over the cells' weights.

`fused_update(cell, x, state)` returns the cell's new state, or None where the fused kernel
does not apply (then the cell runs its eager form). It applies to CPU tensors of 4 dims in
float32, bfloat16 or float64 with a multiple of 8 channels (4 in float64), the light gate conv
in its canonical (separate) layout, the kernel built, not under `torch.compile`/tracing/export
(those see the eager form, which they can lower), and not switched off (`REGNET_FUSED_CELL=0`,
`REGNET_NATIVE=0` or the `disabled()` context). Any layout goes in; the kernel works in NHWC
(channels_last), so NCHW inputs are converted and the new state is channels_last.

The kernel's parameter blocks are differentiable views of the stored weights (a few
kilobytes: `pack`), so autograd maps their gradients back to `pw`/`dw` as it would for the
eager convs. The forward saves its inputs (X, H, C: tensors the network keeps anyway) and, with
`save_gates` (the default), the gate activations; backward recomputes what it was not given.
No double backward.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator

import torch

from regnet.kernels import load

__all__ = ["available", "disabled", "fused_update", "pack"]

_DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float64: 2}
_CELL_IDS = {"rnn": 0, "gru": 1, "lstm": 2}
_state = {"off": 0}
# When a list, every kernel call appends (direction, cell, shape, dtype): benchmarks/roofline.py
# counts the fused cell's bytes from it (the profiler sees no tensor shapes of a ctypes call).
trace: list | None = None
# A training forward keeps the gate activations (LSTM: 5 planes the size of X, GRU 3, RNN 1, in
# float32) for backward, which then skips recomputing the 3x3s and the sigmoids / tanhs: faster
# (docs/PERFORMANCE.md), at that much more activation memory. False: backward recomputes them
# (the memory of the eager form's inputs only).
save_gates = True


def _env_on() -> bool:
    return os.environ.get("REGNET_FUSED_CELL", "1").strip().lower() not in ("0", "false", "no",
                                                                            "off")


def _lib():
    lib = load("regcell")
    if lib is not None and not getattr(lib, "_typed", False):
        i64, vp = ctypes.c_int64, ctypes.c_void_p
        lib.regcell_forward.argtypes = [ctypes.c_int, ctypes.c_int, i64, i64, i64, i64,
                                        vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_int]
        lib.regcell_lanes.argtypes = [ctypes.c_int]
        lib.regcell_backward.argtypes = [ctypes.c_int, ctypes.c_int, i64, i64, i64, i64,
                                         vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp,
                                         vp, ctypes.c_int]
        lib.regcell_saved_planes.argtypes = [ctypes.c_int]
        lib._typed = True
    return lib


def available() -> bool:
    """Whether the fused cell can run here (it builds the kernel on first call)."""
    return _env_on() and _state["off"] == 0 and _lib() is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run every cell in its eager form inside the block (export uses this)."""
    _state["off"] += 1
    try:
        yield
    finally:
        _state["off"] -= 1


def pack(conv, dtype: torch.dtype) -> torch.Tensor:
    """One `LightGateConv`'s weights as the kernel's [pa | pb | pc | w | d] block (see the
    .cpp): per gate j, channel k; differentiable."""
    n, g = conv.chs, conv.gates
    pw = conv.pw.weight.view(n, g, 2)
    parts = (pw[..., 0].t(), pw[..., 1].t(), conv.pw.bias.view(n, g).t(),
             conv.dw.weight.view(n, g, 9).permute(1, 2, 0), conv.dw.bias.view(n, g).t())
    return torch.cat([p.reshape(-1) for p in parts]).to(dtype)


def _ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _nhwc(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype).contiguous(memory_format=torch.channels_last)


class _FusedCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cell: str, keep: bool, x, h, c, p1, p2):
        lib = _lib()
        b, n, hh, ww = x.shape
        hn = torch.empty_like(x, memory_format=torch.channels_last)
        cn = torch.empty_like(x, memory_format=torch.channels_last) if cell == "lstm" else None
        saved = None
        if keep:
            planes = lib.regcell_saved_planes(_CELL_IDS[cell])
            saved = torch.empty((b, planes, hh, ww, n), dtype=p1.dtype)
        with torch.profiler.record_function("regnet::fused_cell"):
            rc = lib.regcell_forward(_CELL_IDS[cell], _DTYPES[x.dtype], b, hh, ww, n, _ptr(x),
                                     _ptr(h), _ptr(c), _ptr(p1), _ptr(p2), _ptr(hn),
                                     _ptr(cn), _ptr(saved), torch.get_num_threads())
        if rc:
            raise RuntimeError(f"regcell_forward failed (code {rc}) on {tuple(x.shape)}")
        if trace is not None:
            trace.append(("forward", cell, tuple(x.shape), x.dtype))
        ctx.cell = cell
        ctx.save_for_backward(x, h, c, p1, p2, saved)
        return (hn, cn) if cell == "lstm" else hn

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dhn, dcn=None):
        x, h, c, p1, p2, saved = ctx.saved_tensors
        cell, lib = ctx.cell, _lib()
        b, n, hh, ww = x.shape
        dhn = _nhwc(dhn, x.dtype)
        dcn = _nhwc(dcn, x.dtype) if cell == "lstm" else None
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        dh = torch.empty_like(x, memory_format=torch.channels_last)
        dc = torch.empty_like(x, memory_format=torch.channels_last) if cell == "lstm" else None
        dp1 = torch.empty_like(p1)
        dp2 = torch.empty_like(p2) if p2 is not None else None
        with torch.profiler.record_function("regnet::fused_cell_backward"):
            rc = lib.regcell_backward(_CELL_IDS[cell], _DTYPES[x.dtype], b, hh, ww, n, _ptr(x),
                                      _ptr(h), _ptr(c), _ptr(p1), _ptr(p2), _ptr(dhn),
                                      _ptr(dcn), _ptr(dx), _ptr(dh), _ptr(dc), _ptr(dp1),
                                      _ptr(dp2), _ptr(saved), torch.get_num_threads())
        if trace is not None:
            trace.append(("backward", cell, tuple(x.shape), x.dtype))
        if rc:
            raise RuntimeError(f"regcell_backward failed (code {rc}) on {tuple(x.shape)}")
        return None, None, dx, dh, dc, dp1, dp2


def _applies(cell, x: torch.Tensor) -> bool:
    if cell.reference or x.device.type != "cpu" or x.dim() != 4 or not _env_on():
        return False
    if _state["off"] or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return available()


def fused_update(cell, x: torch.Tensor, state) -> tuple[torch.Tensor, ...] | None:
    """The new state of `cell` (a ConvRNN / ConvGRU / ConvLSTM whose gate convs are light,
    separate-layout `LightGateConv`s: the cell checks that) from the fused kernel, or None
    where it does not apply."""
    if not _applies(cell, x):
        return None
    tensors = (x,) + (tuple(state) if state is not None else ())
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype not in _DTYPES or x.shape[1] % _lib().regcell_lanes(_DTYPES[dtype]):
        return None  # the kernel takes whole vectors of channels (8 float, 4 double)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = _nhwc(x, dtype)
    if state is None:
        h = torch.zeros_like(x)
        c = torch.zeros_like(x) if cell.state_size == 2 else None
    else:
        h = _nhwc(state[0], dtype)
        c = _nhwc(state[1], dtype) if cell.state_size == 2 else None
    convs = cell.gate_convs()
    p1 = pack(convs[0], acc)
    p2 = pack(convs[1], acc) if len(convs) > 1 else None
    name = type(cell).cell_name
    # keep the gate activations only where a backward will read them (inside the Function's
    # forward grad mode is off, and needs_input_grad says nothing about no_grad/eval calls)
    keep = save_gates and torch.is_grad_enabled() and (
        p1.requires_grad or any(t is not None and t.requires_grad for t in (x, h, c)))
    out = _FusedCell.apply(name, keep, x, h, c, p1, p2)
    return tuple(out) if name == "lstm" else (out,)
