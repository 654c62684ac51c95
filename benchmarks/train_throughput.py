#!/usr/bin/env python
"""Training throughput: the plain reference loop vs `regnet train`'s fast path, side by side in
one process, end to end INCLUDING DATA.

For each model in --models: images/s, ms/step and peak memory of
  reference: NCHW fp32 eager, a torch DataLoader augmenting one sample at a time, plain SGD;
  fast:      what `regnet train` does by default (in-memory uint8 data, batched augmentation,
             channels_last, bf16 autocast where the CPU runs it natively, every core), through
             the library's own loader and step code; --amp / --no-channels-last / --compile
             / --batch-size vary it.
It prints both figures, their ratio, and (with several models) each model's fast figure over
the first model's, so "RegNet-20-LSTM / ResNet-20 under the same fast settings" is one run.
Phases alternate (reference, fast, next model, ..., next repeat) so load drifting on a shared
machine hits both alike; each figure is the median over --repeats.

Usage (copy-paste from the repository root):
    .venv/bin/python benchmarks/train_throughput.py --models resnet20 \
        --out benchmarks/results/train_throughput_resnet20.json
    .venv/bin/python benchmarks/train_throughput.py --models resnet20,regnet20_lstm \
        --out benchmarks/results/train_throughput_resnet20_regnet20_lstm.json
    .venv/bin/python benchmarks/train_throughput.py --models resnet20 --amp off   # fp32 fast path
    .venv/bin/python benchmarks/train_throughput.py --models resnet20,regnet20_lstm --eager-cell
        # regulated nets also with the eager cell (fused native cell vs PyTorch ops)
    .venv/bin/python benchmarks/train_throughput.py --models resnet20 \
        --data-dir /work/shared/data/cifar10-jpg/train        # real JPEG-decoded images
Peak memory: the resident-set high-water mark of each timed phase (VmHWM reset before it, but
only down to the resident set at that moment, `rss_at_start_mib`: heap the allocator kept from
earlier phases still counts, so for one model's own figure run it alone with --no-reference;
`peak_rss_scope: process` where the kernel refuses the reset), plus
torch.cuda.max_memory_allocated on a GPU.

Threads: both loops use --threads (0 = every core, regnet train's rule). On a machine that other
jobs keep busy, every-core OpenMP is pathological: measured here while a 2-thread training job
ran (load ~5 on 2 cores), ResNet-20's fast path did 16 img/s at 2 threads and 444 img/s at 1
thread. Measure on a quiet machine, or pass --threads 1 and say so.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from regnet.kernels import regcell
from regnet.train.config import AMP_MODES
from regnet.train.engine import resolve_device

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (command_line, data_throughput, fast_config, fast_loader,  # noqa: E402
                    fast_train_throughput, load_data, machine_info, machine_line, median,
                    parse_models, reference_loader, reference_train_throughput, write_result)

MODELS = "resnet20"     # comma-separated registry names
BATCH = 128             # images per step (both loops)
STEPS = 10              # timed steps per phase
WARMUP = 3              # untimed steps before each phase
REPEATS = 3             # alternating reference/fast rounds; figures are medians
IMAGES = 4096           # synthetic images (or images taken from --data-dir; 0 = all)
SIZE = 32               # image side


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=MODELS, help=f"comma-separated (default {MODELS})")
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--data", choices=("synthetic", "folder"), default=None,
                   help="default: folder when --data-dir is given, else synthetic")
    p.add_argument("--data-dir", help="an image folder, e.g. /work/shared/data/cifar10-jpg/train")
    p.add_argument("--images", type=int, default=IMAGES)
    p.add_argument("--image-size", type=int, default=SIZE)
    p.add_argument("--amp", default="auto",
                   help="fast path autocast: auto (regnet train's default) | bf16 | fp16 | off; "
                        "a comma list (auto,off) measures each side by side, the first is "
                        "'fast', the others 'fast_amp_<mode>'")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    p.add_argument("--eager-cell", action="store_true",
                   help="also time each regulated model with its cells in the eager PyTorch "
                        "form (regcell.disabled()): 'fast_eager_cell', beside the fused one")
    p.add_argument("--threads", type=int, default=0, help="0: every core (regnet train's rule)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--num-workers", type=int, default=0, help="reference DataLoader workers")
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="measure the fast path only")
    p.add_argument("--data-only", action="store_true",
                   help="time the two data paths alone (no model): how much of a step is data")
    p.add_argument("--out", help="JSON result file")
    p.add_argument("--quiet", action="store_true", help="do not print the JSON")
    args = p.parse_args(argv)
    data = args.data or ("folder" if args.data_dir else "synthetic")
    if data == "folder" and not args.data_dir:
        p.error("--data folder needs --data-dir")
    args.data_dir = args.data_dir if data == "folder" else None
    args.amp = [a.strip() for a in args.amp.split(",") if a.strip()]
    bad = [a for a in args.amp if a not in AMP_MODES]
    if bad or not args.amp:
        p.error(f"--amp: unknown mode(s) {bad}; valid: {', '.join(AMP_MODES)}")
    if min(args.steps, args.repeats, args.batch_size) < 1 or args.warmup < 0:
        p.error("--steps, --repeats and --batch-size must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    models = parse_models(args.models)
    ds, mean, std, data_desc = load_data(args.data_dir, args.images, args.image_size)
    # One thread count for both loops (regnet train's rule: every core unless --threads).
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    variants = {("fast" if i == 0 else f"fast_amp_{a}"): a for i, a in enumerate(args.amp)}
    device = resolve_device(args.device)
    if args.data_only:
        return data_only(args, ds, mean, std, data_desc, device)
    runs = {m: {k: [] for k in ["reference", *variants]} for m in models}
    for r in range(args.repeats):
        for m in models:
            line = f"[{r + 1}/{args.repeats}] {m}:"
            if args.reference:
                ref = reference_train_throughput(m, ds, mean, std, args.batch_size, args.steps,
                                                 args.warmup, args.num_workers, device=device)
                runs[m]["reference"].append(ref)
                line += f" reference {ref['images_per_s']:.0f} img/s"
            for key, amp in variants.items():
                cfg = fast_config(m, args.batch_size, amp, args.channels_last, args.compile,
                                  args.threads, args.device)
                fast = fast_train_throughput(cfg, ds, mean, std, args.steps, args.warmup)
                runs[m][key].append(fast)
                line += f", {key} {fast['images_per_s']:.0f} img/s ({fast['dtype']})"
            if args.eager_cell and _regulated(m):
                cfg = fast_config(m, args.batch_size, args.amp[0], args.channels_last,
                                  args.compile, args.threads, args.device)
                with regcell.disabled():
                    fast = fast_train_throughput(cfg, ds, mean, std, args.steps, args.warmup)
                runs[m].setdefault("fast_eager_cell", []).append(fast)
                line += f", eager cell {fast['images_per_s']:.0f} img/s"
            print(line, file=sys.stderr, flush=True)

    results = {}
    for m in models:
        entry = {}
        for kind, phases in runs[m].items():
            if not phases:
                continue
            ips = [p["images_per_s"] for p in phases]
            entry[kind] = {**phases[-1], "images_per_s": median(ips),
                           "ms_per_step": median([p["ms_per_step"] for p in phases]),
                           "images_per_s_runs": ips,
                           "peak_rss_mib": max(p["peak_rss_mib"] for p in phases)}
        if args.reference:
            entry["fast_over_reference"] = (entry["fast"]["images_per_s"]
                                            / entry["reference"]["images_per_s"])
        for key in list(variants)[1:] + (["fast_eager_cell"] if "fast_eager_cell" in entry
                                         else []):
            entry[f"{key}_over_fast"] = (entry[key]["images_per_s"]
                                         / entry["fast"]["images_per_s"])
        results[m] = entry
    first = models[0]
    ratios = {f"{m}/{first}": results[m]["fast"]["images_per_s"]
              / results[first]["fast"]["images_per_s"] for m in models[1:]}
    result = {"benchmark": "train_throughput", "command": command_line(),
              "machine": machine_info(), "data": data_desc,
              "settings": {"batch_size": args.batch_size, "steps": args.steps,
                           "warmup": args.warmup, "repeats": args.repeats, "amp": args.amp,
                           "threads": torch.get_num_threads(),
                           "channels_last": args.channels_last, "compile": args.compile,
                           "fused_cell": _fused_cell_state(),
                           "image_size": args.image_size, "num_workers": args.num_workers},
              "models": results, "fast_ratio_vs_first_model": ratios}
    write_result(args.out, result, quiet=args.quiet)
    print_summary(result)
    return result


def _fused_cell_state() -> str:
    from regnet import kernels
    return "on" if regcell.available() else f"off: {kernels.build_error('regcell')}"


def _regulated(model: str) -> bool:
    from regnet import create_model
    from regnet.models.regulated import regulated_stages
    return bool(regulated_stages(create_model(model)))


def data_only(args, ds, mean, std, data_desc: str, device) -> dict:
    loaders = {"reference": reference_loader(ds, mean, std, args.batch_size, args.num_workers,
                                             device),
               "fast": fast_loader(ds, mean, std, args.batch_size, args.channels_last, device)}
    runs = {k: [] for k in loaders}
    for _ in range(args.repeats):
        for kind, loader in loaders.items():
            runs[kind].append(data_throughput(loader, args.steps, max(args.warmup, 1)))
    entry = {k: {**rows[-1], "images_per_s": median([r["images_per_s"] for r in rows]),
                 "images_per_s_runs": [r["images_per_s"] for r in rows]}
             for k, rows in runs.items()}
    entry["fast_over_reference"] = (entry["fast"]["images_per_s"]
                                    / entry["reference"]["images_per_s"])
    result = {"benchmark": "train_data_throughput", "command": command_line(),
              "machine": machine_info(), "data": data_desc,
              "settings": {"batch_size": args.batch_size, "steps": args.steps,
                           "repeats": args.repeats, "threads": torch.get_num_threads(),
                           "channels_last": args.channels_last,
                           "num_workers": args.num_workers},
              "data_only": entry}
    write_result(args.out, result, quiet=args.quiet)
    print(f"\n{machine_line(result['machine'])}")
    print(f"data only, batch {args.batch_size}: reference (per-sample DataLoader) "
          f"{entry['reference']['images_per_s']:.0f} img/s, fast (in-memory batched) "
          f"{entry['fast']['images_per_s']:.0f} img/s, {entry['fast_over_reference']:.1f}x")
    return result


def print_summary(result: dict) -> None:
    print(f"\n{machine_line(result['machine'])}")
    print(f"{'model':<22}{'reference img/s':>16}{'fast img/s':>12}{'fast/ref':>10}"
          f"{'fast ms/step':>14}{'fast peak MiB':>15}")
    for m, e in result["models"].items():
        ref = e.get("reference", {}).get("images_per_s")
        print(f"{m:<22}{ref or float('nan'):>16.0f}{e['fast']['images_per_s']:>12.0f}"
              f"{e.get('fast_over_reference', float('nan')):>10.2f}"
              f"{e['fast']['ms_per_step']:>14.1f}{e['fast']['peak_rss_mib']:>15.0f}")
        for key, value in e.items():
            if key.endswith("_over_fast"):
                print(f"  {key}: {value:.2f}x ({e[key[:-len('_over_fast')]]['images_per_s']:.0f}"
                      f" img/s)")
    for k, v in result["fast_ratio_vs_first_model"].items():
        print(f"fast path {k}: {v:.2f}x")


if __name__ == "__main__":
    main()
