"""Micro-benchmark (issue 19 item 2): the regulator's fuse conv over [Y, H] as evaluated
(`torch.cat` then one 1x1 conv 2N -> N, then BN) vs forms without the concatenation copy:
  two_convs: conv(Y, W_y) + conv(H, W_h);
  addmm:     the 1x1 as matrices over channels_last pixels, out = Y W_y^T, then out += H W_h^T
             (one accumulating matmul: no concatenated input, no separate sum).
Forward + backward of the fuse conv alone (its BN and ReLU are the same in every form), stage 1
to 3 shapes at batch 128, fp32 channels_last, the thread count of the caller; each figure the
best of 5 repeats of 5 calls, interleaved. Every form is checked equal to the first.
    taskset -c 0 .venv/bin/python benchmarks/experiments/regulator_fuse_cat_micro.py
"""
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)


def cat_form(y, h, w):
    return F.conv2d(torch.cat((y, h), 1), w)


def two_convs(y, h, w):
    n = y.shape[1]
    return F.conv2d(y, w[:, :n]) + F.conv2d(h, w[:, n:])


def addmm_form(y, h, w):
    b, n, hh, ww = y.shape
    wm = w.flatten(1)                                   # (N, 2N)
    ym = y.permute(0, 2, 3, 1).reshape(-1, n)           # channels_last: a view
    hm = h.permute(0, 2, 3, 1).reshape(-1, n)
    out = torch.addmm(ym @ wm[:, :n].t(), hm, wm[:, n:].t())
    return out.view(b, hh, ww, -1).permute(0, 3, 1, 2)  # back to NCHW sizes, NHWC memory


FORMS = {"cat": cat_form, "two_convs": two_convs, "addmm": addmm_form}
for n, s in ((16, 32), (32, 16), (64, 8)):
    fmt = torch.channels_last
    y = torch.randn(128, n, s, s).to(memory_format=fmt).requires_grad_()
    h = torch.randn(128, n, s, s).to(memory_format=fmt).requires_grad_()
    w = (torch.randn(n, 2 * n, 1, 1) * 0.1).requires_grad_()
    g = torch.randn(128, n, s, s).to(memory_format=fmt)
    ref = cat_form(y, h, w)
    for name, fn in FORMS.items():
        torch.testing.assert_close(fn(y, h, w), ref, rtol=1e-4, atol=1e-4)
    best = {k: float("inf") for k in FORMS}
    for _ in range(5):
        for name, fn in FORMS.items():
            t0 = time.perf_counter()
            for _ in range(5):
                fn(y, h, w).backward(g)
            best[name] = min(best[name], (time.perf_counter() - t0) / 5)
    line = ", ".join(f"{k} {v * 1e3:.2f} ms ({best['cat'] / v:.2f}x)" for k, v in best.items())
    print(f"N={n} {s}x{s}: {line}")
