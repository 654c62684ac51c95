#!/usr/bin/env python
"""A roofline of one training step: per op class, the FLOPs and bytes it moves, the time it
takes at this machine's measured bandwidth and convolution rate, and the time it took.

For each model, after warm-up steps of a training step as `regnet train`'s fast path runs it
(batch, threads, amp, channels_last): one step under `torch.profiler` for the time of every
outermost ATen op, and one step under a TorchDispatchMode that sees every ATen call with its
real tensors (forward, backward and optimizer). Each op goes in a class (conv, batch norm,
elementwise, copy/cat, pool, loss, optimizer, fused cell, views, other) and is given

  bytes: every tensor it reads and writes, at its own element size (an output that aliases an
         input, a view, moves nothing; an in-place op reads and writes its first input). The
         fused cell (a native call the dispatcher does not see) reads X, H (C) and writes H'
         (C') forward; backward reads those and the output gradients and writes three
         gradients (regnet.kernels.regcell.trace records its calls).
  FLOPs: 2 per multiply-add of conv/matmul forward, 2x that for conv backward, none elsewhere;
         the fused cell's counted multiply-adds (13 per gate, channel and pixel) x2, x2 back,
         its sigmoids/tanhs (5 per element for the LSTM, 3 GRU, 1 RNN) and the float32 gate
         planes it keeps for backward (regcell.save_gates; without: recomputed there).
  bound: max(bytes / bandwidth, FLOPs / conv rate [+ transcendentals / ATen's sigmoid rate]),
         all measured here first (a 256 MB tensor triad c = a + b; a 3x3 conv of 32 channels
         on 16x16 maps, channels_last, in the step's dtype; torch.sigmoid on 128 KB in cache).

The per-class and total bounds are lower limits of what this design can take on this
machine; the measured column is the profiler's time of the same ops (profiling adds a few %).
A ratio of two nets' bounds is the best ratio the present design allows (the issue's 0.40x
target for regnet20_lstm / resnet20 is checked against it in docs/PERFORMANCE.md).

Usage (from the repository root):
    .venv/bin/python benchmarks/roofline.py --models resnet20,regnet20_lstm --threads 1 \
        --out benchmarks/results/roofline_t1.json
    .venv/bin/python benchmarks/roofline.py --models regnet20_lstm --eager-cell   # the eager cell
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from regnet import create_model
from regnet.kernels import regcell
from regnet.train.engine import cpu_supports_bf16

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, machine_info, machine_line, parse_models, write_result  # noqa

MODELS = "resnet20,se_resnet20,regnet20_gru,regnet20_lstm,se_regnet20_lstm"

VIEWS = {"view", "reshape", "as_strided", "t", "permute", "transpose", "unsqueeze", "squeeze",
         "expand", "split", "split_with_sizes", "chunk", "unbind", "slice", "select", "detach",
         "alias", "empty", "empty_like", "empty_strided", "resize_", "unflatten", "flatten",
         "narrow", "_unsafe_view", "lift_fresh", "result_type", "is_same_size"}
CLASSES = [  # (class, name fragments); first match wins
    ("conv", ("convolution", "conv2d", "conv3d")),
    ("matmul", ("addmm", "linear", "::mm", "matmul", "bmm")),
    ("batch norm", ("batch_norm",)),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "_softmax")),
    ("optimizer", ("_foreach", "_fused_sgd", "_fused_adam")),
    ("pool", ("pool", "::mean", "::sum", "::amax", "::max")),
    ("copy/cat", ("::cat", "::stack", "copy", "clone", "contiguous", "_to_copy", "::to",
                  "slice_backward", "select_backward")),
]
REDUCTIONS = ("::sum", "::mean", "::amax", "::max", "adaptive_avg_pool", "nll_loss")
CELL_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
TRANSCENDENTALS = {"rnn": 1, "gru": 3, "lstm": 5}  # sigmoid/tanh per element
SAVED_PLANES = {"rnn": 1, "gru": 3, "lstm": 5}     # regcell.save_gates


def classify(name: str) -> str:
    if name.startswith("regnet::fused_cell"):
        return "fused cell"
    if name.split("::")[-1] in VIEWS:
        return "views"
    for cls, parts in CLASSES:
        if any(p in name for p in parts):
            return cls
    return "elementwise" if name.startswith("aten::") else "other"


def _tensors(tree):
    return [t for t in pytree.tree_leaves(tree) if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def op_cost(name: str, args, kwargs, out) -> tuple[float, float]:
    """(bytes, flops) of one ATen call from its real tensors: every tensor read and written
    (outputs that alias an input, i.e. views, move nothing)."""
    if classify(name) == "views":
        return 0.0, 0.0
    ins = _tensors((args, kwargs))
    in_ptrs = {t.untyped_storage().data_ptr() for t in ins if t.numel()}
    outs = [t for t in _tensors(out) if t.untyped_storage().data_ptr() not in in_ptrs
            or not t.numel()]
    if name.endswith("_") and ins:  # in-place: the first input is read and written
        outs = outs + ins[:1]
    nbytes = float(sum(_nbytes(t) for t in ins) + sum(_nbytes(t) for t in outs))
    flops = 0.0
    if "convolution_backward" in name:
        grad_out, w = ins[0], ins[2]
        flops = 4.0 * grad_out.numel() * math.prod(w.shape[1:])
    elif "convolution" in name and len(ins) >= 2:
        outs_t = _tensors(out)
        if outs_t:
            flops = 2.0 * outs_t[0].numel() * math.prod(ins[1].shape[1:])
    elif name.split("::")[-1] in ("mm", "addmm", "bmm", "matmul"):
        a, b = ins[-2], ins[-1]
        flops = 2.0 * a.numel() * b.shape[-1]
    return nbytes, flops


class _Counter(TorchDispatchMode):
    """Every ATen call of a step: its class, bytes, FLOPs and bound, summed per class."""

    def __init__(self, bandwidth: float, rate: float):
        super().__init__()
        self.bw, self.rate = bandwidth, rate
        self.phase = None  # "optimizer" while the optimizer steps
        self.classes: dict[str, dict] = {}

    def add(self, cls: str, nbytes: float, flops: float, extra_s: float = 0.0):
        row = self.classes.setdefault(cls, {"bytes": 0.0, "flops": 0.0, "bound_s": 0.0,
                                            "ops": 0})
        row["bytes"] += nbytes
        row["flops"] += flops
        row["bound_s"] += max(nbytes / self.bw, flops / self.rate + extra_s)
        row["ops"] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = "aten::" + func.__name__.split(".")[0]
        cls = self.phase or classify(name)
        self.add(cls, *op_cost(name, args, kwargs, out))
        return out


def cell_cost(direction: str, cell: str, shape, elem: int, saved: bool
              ) -> tuple[float, float, float]:
    """(bytes, flops, transcendentals) of one fused-cell call; `saved`: forward keeps the gate
    activations (float32 planes) and backward reads them instead of recomputing."""
    n = math.prod(shape)
    states = 2 if cell == "lstm" else 1
    planes = SAVED_PLANES[cell] * n * 4 if saved else 0
    if direction == "forward":
        tensors = (1 + states) + states            # read X, H (C); write H' (C')
        flops = 2 * 13 * CELL_GATES[cell] * n
        transcendentals = TRANSCENDENTALS[cell] * n
    else:
        tensors = (1 + states) + states + (1 + states)  # + output grads; write dX, dH (dC)
        flops = (2 if saved else 3) * 2 * 13 * CELL_GATES[cell] * n
        transcendentals = 0 if saved else TRANSCENDENTALS[cell] * n
    return float(tensors * n * elem + planes), float(flops), float(transcendentals)


def _best_time(fn, repeats: int = 5) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_machine(dtype: torch.dtype) -> dict:
    n = 64 * 2 ** 20  # 64 M floats = 256 MB per fp32 tensor: far beyond any cache
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    triad = _best_time(lambda: torch.add(a, b, out=c))
    copy = _best_time(lambda: c.copy_(a))
    del a, b, c
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(128, 32, 16, 16).to(memory_format=torch.channels_last)
    if dtype != torch.float32:
        conv, x = conv.to(dtype), x.to(dtype)
    with torch.no_grad():
        t = _best_time(lambda: conv(x))
    conv_flops = 2 * 128 * 32 * 16 * 16 * 32 * 9
    small = torch.randn(32768)  # 128 KB: the rate of sigmoid itself, from cache
    sig = _best_time(lambda: [torch.sigmoid(small, out=small.new_empty(0).resize_(32768))
                              for _ in range(64)])
    return {"bandwidth_gb_s": 3 * n * 4 / triad / 1e9, "copy_gb_s": 2 * n * 4 / copy / 1e9,
            "conv_gflop_s": conv_flops / t / 1e9,
            "transcendental_g_s": 64 * small.numel() / sig / 1e9}


def profile_step(name: str, batch: int, dtype: torch.dtype, channels_last: bool, warmup: int,
                 bandwidth: float, rate: float):
    """The step's wall time (best of 3), its profiler events (times), and its calls counted
    (bytes, FLOPs, bounds) under `_Counter` with the fused cell's calls."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    amp = dtype != torch.float32

    def step(counter=None):
        with torch.autocast("cpu", dtype=dtype, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if counter is not None:
            counter.phase = "optimizer"
        opt.step()
        if counter is not None:
            counter.phase = None

    for _ in range(warmup):
        step()
    wall = _best_time(step, repeats=3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    regcell.trace = []
    try:
        counter = _Counter(bandwidth, rate)
        with counter:
            step(counter)
        calls = list(regcell.trace)
    finally:
        regcell.trace = None
    return wall, prof.events(), counter, calls


def _outermost(events):
    """(op, inside the optimizer's step) for every op no other ATen/regnet op encloses."""
    for e in events:
        if not (e.name.startswith("aten::") or e.name.startswith("regnet::")):
            continue
        parent, nested, optimizer = e.cpu_parent, False, False
        while parent is not None:
            if parent.name.startswith(("aten::", "regnet::")):
                nested = True
                break
            optimizer = optimizer or parent.name.startswith("Optimizer.")
            parent = parent.cpu_parent
        if not nested:
            yield e, optimizer


def roofline(name: str, machine: dict, batch: int, dtype: torch.dtype, channels_last: bool,
             warmup: int) -> dict:
    bw, rate = machine["bandwidth_gb_s"] * 1e9, machine["conv_gflop_s"] * 1e9
    wall, events, counter, calls = profile_step(name, batch, dtype, channels_last, warmup,
                                                bw, rate)
    elem = 2 if dtype == torch.bfloat16 else 4
    for direction, cell, shape, _ in calls:
        nbytes, flops, transcendentals = cell_cost(direction, cell, shape, elem,
                                                   regcell.save_gates)
        counter.add("fused cell", nbytes, flops,
                    extra_s=transcendentals / (machine["transcendental_g_s"] * 1e9))
    classes = counter.classes
    for row in classes.values():
        row["measured_s"] = 0.0
    for e, in_optimizer in _outermost(events):
        cls = "optimizer" if in_optimizer else classify(e.name)
        classes.setdefault(cls, {"bytes": 0.0, "flops": 0.0, "bound_s": 0.0, "ops": 0,
                                 "measured_s": 0.0})["measured_s"] += e.cpu_time_total / 1e6
    total = {k: sum(r[k] for r in classes.values()) for k in ("bytes", "flops", "measured_s",
                                                               "bound_s")}
    return {"model": name, "step_s": wall, "images_per_s": batch / wall,
            "bound_step_s": total["bound_s"], "bound_images_per_s": batch / total["bound_s"],
            "profiled_s": total["measured_s"], "gbytes": total["bytes"] / 1e9,
            "gflops": total["flops"] / 1e9,
            "classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["measured_s"]))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=MODELS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto",
                   help="auto: bf16 where the CPU runs it natively (regnet train's rule)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--eager-cell", action="store_true",
                   help="run the cells in their eager PyTorch form (REGNET_FUSED_CELL=0)")
    p.add_argument("--out")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.eager_cell:
        os.environ["REGNET_FUSED_CELL"] = "0"
    torch.set_num_threads(args.threads)
    bf16 = args.amp == "bf16" or (args.amp == "auto" and cpu_supports_bf16())
    dtype = torch.bfloat16 if bf16 else torch.float32
    machine = measure_machine(dtype)
    rows = [roofline(m, machine, args.batch_size, dtype, args.channels_last, args.warmup)
            for m in parse_models(args.models)]
    first = rows[0]
    for r in rows:
        r["measured_ratio_vs_first"] = first["step_s"] / r["step_s"]
        r["bound_ratio_vs_first"] = first["bound_step_s"] / r["bound_step_s"]
    result = {"benchmark": "roofline", "command": command_line(), "machine": machine_info(),
              "measured": machine, "settings": {"batch_size": args.batch_size,
                                                "threads": args.threads, "dtype": str(dtype),
                                                "channels_last": args.channels_last,
                                                "fused_cell": regcell.available()},
              "models": rows}
    write_result(args.out, result, quiet=args.quiet)
    print(f"\n{machine_line(result['machine'])}")
    print(f"measured: triad {machine['bandwidth_gb_s']:.1f} GB/s, copy "
          f"{machine['copy_gb_s']:.1f} GB/s, 3x3 conv {machine['conv_gflop_s']:.0f} GFLOP/s, "
          f"sigmoid {machine['transcendental_g_s']:.2f} G/s "
          f"({dtype}, {args.threads} thread(s), fused cell "
          f"{'on' if regcell.available() else 'off'})")
    for r in rows:
        print(f"\n{r['model']}: step {r['step_s'] * 1e3:.0f} ms ({r['images_per_s']:.0f} img/s),"
              f" bound {r['bound_step_s'] * 1e3:.0f} ms ({r['bound_images_per_s']:.0f} img/s);"
              f" ratio to {first['model']}: measured {r['measured_ratio_vs_first']:.2f}, "
              f"bound {r['bound_ratio_vs_first']:.2f}")
        print(f"  {'class':<13}{'GB':>7}{'GFLOP':>8}{'measured ms':>13}{'bound ms':>10}")
        for cls, c in r["classes"].items():
            print(f"  {cls:<13}{c['bytes'] / 1e9:>7.2f}{c['flops'] / 1e9:>8.1f}"
                  f"{c['measured_s'] * 1e3:>13.1f}{c['bound_s'] * 1e3:>10.1f}")
    return result


if __name__ == "__main__":
    main()
