#!/usr/bin/env python
"""Where a training step's time goes: `torch.profiler` over a few steps of `regnet train`'s fast
path (the same set-up as `train_throughput.py`'s fast side), per operator and per op family.

    .venv/bin/python benchmarks/profile_step.py --models resnet20,regnet20_lstm \
        --out benchmarks/results/profile_resnet20_regnet20_lstm.json

For each model it prints the top operators by self CPU time (forward and backward ops are
separate rows: `aten::convolution_backward` is the convolutions' backward) and a summary by
family (convolution, batch norm, elementwise, copies and concatenations, optimiser, other),
each as ms per step and share of the step. Run it on a quiet machine: the profiler adds some
overhead of its own, so compare shares, not absolute times, with `train_throughput.py`.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from common import (FastRun, fast_config, load_data, machine_info, machine_line,  # noqa: E402
                    parse_models, write_result)

# op name fragments -> family (first match wins: "addmm" is the head, not an elementwise add)
FAMILIES = (
    ("convolution", ("conv",)),
    ("batch norm", ("batch_norm",)),
    ("optimiser", ("_foreach", "sgd")),
    ("copies / concat / layout", ("cat", "copy_", "contiguous", "clone", "stack", "to_copy",
                                  "empty_strided", "fill_", "zero_", "split",
                                  "unbind", "permute", "transpose", "view", "reshape", "slice",
                                  "select", "as_strided", "unflatten", "flatten")),
    ("pooling / head", ("pool", "mean", "linear", "addmm", "mm", "log_softmax", "nll_loss",
                        "cross_entropy")),
    ("elementwise / activations", ("relu", "sigmoid", "tanh", "mul", "add", "lerp",
                                   "threshold", "div", "sub", "neg", "rsub", "where")),
)


def family(op: str) -> str:
    name = op.lower().removeprefix("aten::")
    for fam, keys in FAMILIES:
        if any(k in name for k in keys):
            return fam
    return "other"


def profile_model(name: str, args, ds, mean, std) -> dict:
    cfg = fast_config(name, args.batch_size, amp=args.amp, channels_last=not args.no_channels_last,
                      threads=args.threads)
    run = FastRun(cfg, ds, mean, std)
    if args.warmup:  # allocation, oneDNN primitive creation: not what a long run pays
        run.epoch(args.warmup)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        row = run.epoch(args.steps, first_epoch=100)
    step_ms = 1000 * row["train_seconds"] / args.steps
    ops = []
    for ev in prof.key_averages():
        self_ms = ev.self_cpu_time_total / 1000 / args.steps
        if self_ms > 0:
            ops.append({"op": ev.key, "calls_per_step": ev.count / args.steps,
                        "self_ms_per_step": self_ms, "family": family(ev.key)})
    ops.sort(key=lambda o: -o["self_ms_per_step"])
    total = sum(o["self_ms_per_step"] for o in ops)
    fams: dict[str, float] = {}
    for o in ops:
        fams[o["family"]] = fams.get(o["family"], 0.0) + o["self_ms_per_step"]
    return {"model": name, "threads": run.threads, "batch_size": cfg.batch_size,
            "dtype": run.dtype, "channels_last": cfg.channels_last, "steps": args.steps,
            "step_ms_profiled": step_ms, "self_cpu_ms_per_step": total,
            "families": dict(sorted(fams.items(), key=lambda kv: -kv[1])), "ops": ops}


def print_report(r: dict, top: int) -> None:
    total = r["self_cpu_ms_per_step"]
    print(f"\n## {r['model']}: {r['step_ms_profiled']:.0f} ms per step under the profiler "
          f"(batch {r['batch_size']}, {r['dtype']}, "
          f"{'channels_last' if r['channels_last'] else 'NCHW'}, {r['threads']} threads)\n")
    print("| op family | ms / step | share |\n| --- | ---: | ---: |")
    for fam, ms in r["families"].items():
        print(f"| {fam} | {ms:.1f} | {100 * ms / total:.0f}% |")
    print(f"\n| op | calls / step | self ms / step | share |\n| --- | ---: | ---: | ---: |")
    for o in r["ops"][:top]:
        print(f"| `{o['op']}` | {o['calls_per_step']:.0f} | {o['self_ms_per_step']:.1f} "
              f"| {100 * o['self_ms_per_step'] / total:.1f}% |")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet20,regnet20_lstm")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--amp", default="auto")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--images", type=int, default=2048, help="synthetic images to cycle over")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="0 = every core")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", default=None, help="JSON result file")
    args = p.parse_args(argv)
    ds, mean, std, desc = load_data(None, args.images, args.image_size)
    mach = machine_info()
    print(machine_line(mach))
    results = []
    for name in parse_models(args.models):
        results.append(profile_model(name, args, ds, mean, std))
        print_report(results[-1], args.top)
    result = {"machine": mach, "data": desc, "results": results}
    write_result(args.out, result, quiet=True)
    return result


if __name__ == "__main__":
    main()
