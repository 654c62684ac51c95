"""Micro-benchmark (issue 19): one regulator cell update, forward and backward, at the three
stage shapes of RegNet-20 (batch 128, fp32 channels_last, 1 thread), in three forms:
  eager:     the cell in PyTorch ops (REGNET_FUSED_CELL=0's form);
  recompute: the fused native cell, backward recomputing the gates (regcell.save_gates=False);
  saved:     the fused native cell keeping the gate activations for backward (the default).
Each figure is the best of 5 calls after one warm-up, forms interleaved.
    taskset -c 0 .venv/bin/python benchmarks/experiments/regulator_fused_cell_micro.py
"""
import time

import torch

from regnet.kernels import regcell
from regnet.models.cells import create_cell

torch.manual_seed(0)
torch.set_num_threads(1)
FORMS = {"eager": (False, True), "recompute": (True, False), "saved": (True, True)}

for name in ("gru", "lstm"):
    for n, s in ((16, 32), (32, 16), (64, 8)):
        cell = create_cell(name, n)
        fmt = torch.channels_last
        x = torch.randn(128, n, s, s).to(memory_format=fmt).requires_grad_()
        st = tuple(torch.randn(128, n, s, s).to(memory_format=fmt).requires_grad_()
                   for _ in range(cell.state_size))
        best = {k: [float("inf"), float("inf")] for k in FORMS}
        for rep in range(6):
            for form, (fused, save) in FORMS.items():
                cell.fused, regcell.save_gates = fused, save
                t0 = time.perf_counter()
                new = cell(x, st)
                t1 = time.perf_counter()
                sum(a.sum() for a in new).backward()
                t2 = time.perf_counter()
                if rep:
                    best[form][0] = min(best[form][0], t1 - t0)
                    best[form][1] = min(best[form][1], t2 - t1)
        regcell.save_gates = True
        e = sum(best["eager"])
        print(f"{name} N={n} {s}x{s}: " + ", ".join(
            f"{k} {f * 1e3:.1f} + {b * 1e3:.1f} = {(f + b) * 1e3:.1f} ms ({e / (f + b):.2f}x)"
            for k, (f, b) in best.items()))
