#!/usr/bin/env python
"""Inference speed: images/s at a batch and batch-1 latency, for registry models, in several
precision / memory-format settings, against the plain NCHW fp32 eager model in the same process.

Settings (each a fresh copy of the same weights, eval mode, `torch.inference_mode`):
  reference:        NCHW, fp32, eager (what a user gets from `model.eval()(x)`);
  channels_last:    fp32, channels_last weights and inputs;
  bf16_channels_last: channels_last under bf16 autocast (`regnet eval --amp auto` on a CPU with
                    native bf16), the library's own autocast helper.
Throughput: `--steps` timed batches after `--warmup`, images/s = batch * steps / seconds.
Latency: batch 1, median (and 10th / 90th percentile) of `--latency-runs` single forwards.
Inputs are random float images (the model's cost does not depend on the pixels; decoding and
augmentation are a training-path matter measured by train_throughput.py).

Usage (copy-paste from the repository root):
    .venv/bin/python benchmarks/inference.py --models resnet20,regnet20_lstm \
        --out benchmarks/results/inference_resnet20_regnet20_lstm.json
    .venv/bin/python benchmarks/inference.py --models resnet50 --image-size 224 --batch-size 32
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch

from regnet.models.factory import create_model
from regnet.registry import get_entry
from regnet.train.engine import autocast, resolve_amp, resolve_device

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (command_line, machine_info, machine_line, median,  # noqa: E402
                    parse_models, sync, write_result)

MODELS = "resnet20"     # comma-separated registry names
BATCH = 256             # images per throughput batch
STEPS = 10              # timed batches per setting
WARMUP = 3              # untimed batches (and untimed batch-1 forwards) per setting
LATENCY_RUNS = 50       # batch-1 forwards for the latency median
REPEATS = 2             # alternating rounds over the settings; throughput is the median
SETTINGS = ("reference", "channels_last", "bf16_channels_last")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=MODELS)
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--latency-runs", type=int, default=LATENCY_RUNS)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--image-size", type=int, default=None,
                   help="default: the model's registered input size")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma list from {', '.join(SETTINGS)} (reference always included)")
    p.add_argument("--threads", type=int, default=0, help="0: every core")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", help="JSON result file")
    p.add_argument("--quiet", action="store_true", help="do not print the JSON")
    args = p.parse_args(argv)
    if min(args.steps, args.repeats, args.batch_size, args.latency_runs) < 1 or args.warmup < 0:
        p.error("--steps, --repeats, --batch-size, --latency-runs must be >= 1, --warmup >= 0")
    wanted = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in wanted if s not in SETTINGS]
    if bad:
        p.error(f"--settings: unknown {bad}; valid: {', '.join(SETTINGS)}")
    args.settings = ["reference"] + [s for s in wanted if s != "reference"]
    return args


def prepared(base: torch.nn.Module, setting: str, device: torch.device):
    """(model, memory format, autocast dtype) of one setting, on a copy of `base`."""
    model = copy.deepcopy(base).to(device).eval()
    if setting == "reference":
        return model, torch.contiguous_format, None
    model = model.to(memory_format=torch.channels_last)
    dtype = resolve_amp("bf16", device) if setting.startswith("bf16") else None
    return model, torch.channels_last, dtype


@torch.inference_mode()
def measure(model, fmt, dtype, device, size: int, args) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, size, size, generator=gen).to(device)
    x = x.contiguous(memory_format=fmt)
    x1 = x[:1].contiguous(memory_format=fmt)
    with autocast(device, dtype):
        for _ in range(args.warmup):
            model(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        sync(device)
        seconds = time.perf_counter() - t0
        for _ in range(args.warmup):
            model(x1)
        times = []
        for _ in range(args.latency_runs):
            sync(device)
            t = time.perf_counter()
            model(x1)
            sync(device)
            times.append(1000 * (time.perf_counter() - t))
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
    return {"images_per_s": args.batch_size * args.steps / seconds,
            "latency_ms_median": median(times), "latency_ms_p10": q[0], "latency_ms_p90": q[-1],
            "dtype": str(dtype).replace("torch.", "") if dtype else "float32",
            "memory_format": "channels_last" if fmt == torch.channels_last else "contiguous"}


def main(argv=None) -> dict:
    args = parse_args(argv)
    models = parse_models(args.models)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = resolve_device(args.device)
    runs: dict = {}
    for r in range(args.repeats):
        for name in models:
            size = args.image_size or get_entry(name).input_size[-1]
            torch.manual_seed(0)
            base = create_model(name)
            for setting in args.settings:
                model, fmt, dtype = prepared(base, setting, device)
                res = measure(model, fmt, dtype, device, size, args)
                runs.setdefault(name, {}).setdefault(setting, []).append({**res,
                                                                          "image_size": size})
                print(f"[{r + 1}/{args.repeats}] {name} {setting}: "
                      f"{res['images_per_s']:.0f} img/s, batch-1 {res['latency_ms_median']:.2f} ms",
                      file=sys.stderr, flush=True)
    results = {}
    for name, settings in runs.items():
        entry = {}
        for setting, rows in settings.items():
            lat = [row["latency_ms_median"] for row in rows]
            entry[setting] = {**rows[-1], "images_per_s": median([r["images_per_s"] for r in rows]),
                              "images_per_s_runs": [r["images_per_s"] for r in rows],
                              "latency_ms_median": median(lat)}
        ref = entry["reference"]
        for setting in args.settings[1:]:
            e = entry[setting]
            e["throughput_over_reference"] = e["images_per_s"] / ref["images_per_s"]
            e["latency_speedup_over_reference"] = ref["latency_ms_median"] / e["latency_ms_median"]
        results[name] = entry
    result = {"benchmark": "inference", "command": command_line(), "machine": machine_info(),
              "settings": {"batch_size": args.batch_size, "steps": args.steps,
                           "warmup": args.warmup, "latency_runs": args.latency_runs,
                           "repeats": args.repeats, "device": str(device),
                           "threads": torch.get_num_threads()},
              "models": results}
    write_result(args.out, result, quiet=args.quiet)
    print_summary(result)
    return result


def print_summary(result: dict) -> None:
    print(f"\n{machine_line(result['machine'])}; batch {result['settings']['batch_size']}")
    print(f"{'model':<20}{'setting':<20}{'img/s':>10}{'x ref':>8}{'b1 ms':>9}{'x ref':>8}")
    for name, entry in result["models"].items():
        for setting, e in entry.items():
            print(f"{name:<20}{setting:<20}{e['images_per_s']:>10.0f}"
                  f"{e.get('throughput_over_reference', 1.0):>8.2f}"
                  f"{e['latency_ms_median']:>9.2f}"
                  f"{e.get('latency_speedup_over_reference', 1.0):>8.2f}")


if __name__ == "__main__":
    main()
