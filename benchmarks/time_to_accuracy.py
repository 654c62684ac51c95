#!/usr/bin/env python
"""Time to accuracy: wall time until `regnet train` first reaches a validation top-1 target on
the cifar10-jpg split (recipe cifar10_fast: 45,000 train / 5,000 seeded class-balanced
validation images), and optionally the same recipe on the plain reference path.

Each run is a real `regnet train` subprocess (`python -m regnet train ...`) in a fresh output
folder; this script reads the run's metrics.jsonl as it grows and records the first epoch whose
val_top1 >= --target: the run's own wall_seconds at that epoch (training + evaluation, from the
first step) and the seconds since the process started (adds start-up and data loading). The
run is stopped there unless --full.

  fast:       `regnet train` defaults (in-memory uint8 data + batched augmentation,
              channels_last, bf16 autocast where native, every core);
  reference:  (--reference) the same recipe, schedule and step with the fast path switched off:
              `--amp off --no-channels-last --no-fast-data` (NCHW fp32 eager, a torch DataLoader
              augmenting one sample at a time). Doubles the time, hence optional.

Usage (copy-paste from the repository root; ~25 min for fast alone on a quiet 2-core machine):
    .venv/bin/python benchmarks/time_to_accuracy.py --target 91 \
        --out benchmarks/results/time_to_accuracy_resnet20.json
    .venv/bin/python benchmarks/time_to_accuracy.py --target 91 --reference \
        --out benchmarks/results/time_to_accuracy_resnet20_vs_reference.json
Flags after `--` go to `regnet train` unchanged (e.g. `-- --epochs 20 --batch-size 128`).
A run made without this script (same recipe, fresh --out) can be read afterwards, no training:
    .venv/bin/python benchmarks/time_to_accuracy.py --target 91 \
        --from-run runs/resnet20_cifar10jpg_fast --out benchmarks/results/tta_from_run.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, machine_info, write_result  # noqa: E402

MODEL = "resnet20"
RECIPE = "cifar10_fast"
DATA_DIR = "/work/shared/data/cifar10-jpg/train"
TARGET = 91.0           # validation top-1, percent
POLL = 2.0              # seconds between reads of metrics.jsonl
REFERENCE_FLAGS = ["--amp", "off", "--no-channels-last", "--no-fast-data"]


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, train_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                usage="%(prog)s [options] [-- regnet train flags]")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--recipe", default=RECIPE)
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--target", type=float, default=TARGET, help="validation top-1 (percent)")
    p.add_argument("--reference", action="store_true",
                   help="also run the plain reference path (same recipe) and report the ratio")
    p.add_argument("--full", action="store_true", help="let each run finish its epochs")
    p.add_argument("--runs-dir", default=None,
                   help="parent of the run folders (default runs/tta/MODEL_<UTC time>)")
    p.add_argument("--from-run", metavar="DIR",
                   help="report the first epoch at the target from an existing run's "
                        "metrics.jsonl instead of training (its own wall_seconds)")
    p.add_argument("--poll", type=float, default=POLL)
    p.add_argument("--out", help="JSON result file")
    p.add_argument("--quiet", action="store_true", help="do not print the JSON")
    args = p.parse_args(argv)
    args.train_args = train_args
    if args.runs_dir is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        args.runs_dir = os.path.join("runs", "tta", f"{args.model}_{stamp}")
    return args


def read_rows(path: str) -> list[dict]:
    """metrics.jsonl is rewritten atomically once per epoch, so a read sees whole rows."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def first_hit(rows: list[dict], target: float) -> dict | None:
    for row in rows:
        top1 = row.get("val_top1")
        if top1 is not None and top1 >= target:
            return {"epoch": row["epoch"], "val_top1": top1,
                    "run_wall_seconds": row["wall_seconds"]}
    return None


def describe(rows: list[dict], hit: dict | None, **extra) -> dict:
    return {**extra, "reached": hit is not None, **(hit or {}), "epochs_run": len(rows),
            "best_val_top1": max((r["val_top1"] for r in rows if r.get("val_top1") is not None),
                                 default=None),
            "mean_images_per_s": (sum(r["images_per_sec"] for r in rows) / len(rows)
                                  if rows else None),
            "history": [{k: r.get(k) for k in ("epoch", "val_top1", "wall_seconds",
                                                 "images_per_sec")} for r in rows]}


def from_run(run_dir: str, target: float) -> dict:
    rows = read_rows(os.path.join(run_dir, "metrics.jsonl"))
    if not rows:
        raise SystemExit(f"error: {run_dir} has no metrics.jsonl rows")
    hit = first_hit(rows, target)
    summary_path = os.path.join(run_dir, "summary.json")
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    return describe(rows, hit, out=run_dir, command=None, amp=summary.get("amp"),
                    threads=summary.get("threads"))


def run_one(name: str, args, extra_flags: list[str]) -> dict:
    out = os.path.join(args.runs_dir, name)
    if os.path.exists(os.path.join(out, "config.yaml")):
        # regnet train would resume it, and a resumed run's time is not a time to accuracy.
        raise SystemExit(f"error: {out} already holds a run; choose another --runs-dir")
    cmd = [sys.executable, "-m", "regnet", "train", args.model, "--recipe", args.recipe,
           "--data-dir", args.data_dir, "--out", out, "--progress", "line", "--no-tensorboard",
           *extra_flags, *args.train_args]
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    log_path = os.path.join(args.runs_dir, f"{name}.log")
    os.makedirs(args.runs_dir, exist_ok=True)
    hit, rows = None, []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                finished = proc.poll() is not None
                rows = read_rows(os.path.join(out, "metrics.jsonl"))
                if hit is None and (hit := first_hit(rows, args.target)) is not None:
                    hit["process_seconds"] = time.perf_counter() - start
                    print(f"[{name}] target {args.target}% reached at epoch {hit['epoch']}: "
                          f"{hit['val_top1']:.2f}% after {hit['run_wall_seconds']:.0f} s",
                          file=sys.stderr, flush=True)
                if finished or (hit is not None and not args.full):
                    break
                time.sleep(args.poll)
        finally:
            if proc.poll() is None:  # stopped at the target (or interrupted): end the run
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if proc.returncode not in (0, -signal.SIGTERM) and hit is None:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        raise SystemExit(f"error: regnet train ({name}) exited with {proc.returncode}; "
                         f"log {log_path}:\n{tail}")
    summary = {}
    summary_path = os.path.join(out, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    return describe(rows, hit, command=" ".join(cmd), out=out, amp=summary.get("amp"),
                    threads=summary.get("threads"))


def main(argv=None) -> dict:
    args = parse_args(argv)
    machine_before = machine_info()
    if args.from_run:
        runs = {"from_run": from_run(args.from_run, args.target)}
    else:
        runs = {"fast": run_one("fast", args, [])}
    if args.reference and not args.from_run:
        runs["reference"] = run_one("reference", args, REFERENCE_FLAGS)
    result = {"benchmark": "time_to_accuracy", "command": command_line(),
              "machine": machine_info(), "load_avg_at_start": machine_before["load_avg_1_5_15"],
              "settings": {"model": args.model, "recipe": args.recipe, "data_dir": args.data_dir,
                           "target_val_top1": args.target, "train_args": args.train_args,
                           "runs_dir": args.runs_dir},
              "runs": runs}
    ref = runs.get("reference")
    if ref and ref["reached"] and runs["fast"]["reached"]:
        result["reference_over_fast_seconds"] = (ref["run_wall_seconds"]
                                                 / runs["fast"]["run_wall_seconds"])
    write_result(args.out, result, quiet=args.quiet)
    for name, r in runs.items():
        process = f" (process {r['process_seconds']:.0f} s)" if "process_seconds" in r else ""
        status = (f"{r['val_top1']:.2f}% at epoch {r['epoch']}, {r['run_wall_seconds']:.0f} s"
                  f"{process}" if r["reached"]
                  else f"not reached in {r['epochs_run']} epochs (best {r['best_val_top1']})")
        print(f"{name}: target {args.target}%: {status}")
    if "reference_over_fast_seconds" in result:
        print(f"reference / fast wall time: {result['reference_over_fast_seconds']:.2f}x")
    return result


if __name__ == "__main__":
    main()
