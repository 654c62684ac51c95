#!/usr/bin/env python
"""Train several models x several seeds with one recipe, then report mean +- std.

The self-regulated paper's Table III shape (ResNet-20 vs RegNet-20 GRU / LSTM vs SE variants,
same recipe, several seeds), at whatever budget the machine affords. Each run is a plain
`regnet train` subprocess, so runs resume from their out folder when the sweep is re-run. On a
2-core CPU, `--lanes 2 --threads 1` (two 1-thread runs side by side) trains more images per
second in total than one 2-thread run at a time.

    python benchmarks/seed_sweep.py --models resnet20,regnet20_lstm --seeds 0,1,2 \
        --recipe cifar10_fast --data-dir ../shared/data/cifar10-jpg/train \
        --set epochs=5 --set train_subset=10000 --out runs/table3 --report docs/table3

Writes `<report>.md` (table + the exact commands + machine) and `<report>.png` (validation
top-1 per epoch, mean over seeds, one line per model).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (machine_info, mean_std, parse_set, read_history,  # noqa: E402
                    train_flags)

REGNET = [sys.executable, "-m", "regnet"]


def run_command(model: str, seed: int, args) -> list[str]:
    return ["train", model, *train_flags({
        "recipe": args.recipe, "seed": seed, "threads": args.threads, "progress": "line",
        "out": os.path.join(args.out, f"{model}_s{seed}"), "data_dir": args.data_dir,
        **dict(args.set)})]


def train_one(cmd: list[str], log: str) -> int:
    with open(log, "a") as f:
        return subprocess.call(REGNET + cmd, stdout=f, stderr=subprocess.STDOUT)


def read_run(out: str) -> tuple[dict | None, list[dict]]:
    summary_path = os.path.join(out, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
    return summary, read_history(out)


def report(args, commands: list[str], wall: float) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, fig = [], plt.figure(figsize=(7, 4.5))
    for model in args.models:
        best, final, secs, curves, summary = [], [], [], [], None
        for seed in args.seeds:
            s, hist = read_run(os.path.join(args.out, f"{model}_s{seed}"))
            if s is None:
                continue
            summary = s
            best.append(s["best_val_top1"])
            final.append(s["final_val_top1"])
            secs.append(s["wall_seconds"])
            curves.append([h["val_top1"] for h in hist if h.get("val_top1") is not None])
        if summary is None:
            rows.append(f"| {model} | 0 | - | - | - | - | - |")
            continue
        rows.append(f"| {model} | {len(best)} | {summary['params']:,} | "
                    f"{summary['flops'] / 1e6:.1f} | {mean_std(best)} | {mean_std(final)} | "
                    f"{statistics.mean(secs):.0f} |")
        n = min(len(c) for c in curves)
        if n:
            mean_curve = [statistics.mean(c[i] for c in curves) for i in range(n)]
            plt.plot(range(1, n + 1), mean_curve, marker="o", label=f"{model} (n={len(curves)})")
    plt.xlabel("epoch")
    plt.ylabel("validation top-1 (%), mean over seeds")
    plt.grid(alpha=0.3)
    plt.legend()
    plt.tight_layout()
    fig.savefig(args.report + ".png", dpi=120)
    info = machine_info()
    lines = [
        f"# {os.path.basename(args.report)}", "",
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; {info['date']}; "
        f"sweep wall time {wall / 60:.1f} min ({args.lanes} lanes x {args.threads} threads).", "",
        "| model | seeds | params | MFLOPs | best val top-1 (%) | final val top-1 (%) | s / run |",
        "| --- | --- | --- | --- | --- | --- | --- |", *rows, "",
        f"![validation top-1]({os.path.basename(args.report)}.png)", "",
        "Sweep command:", "", "    " + " ".join(shlex.quote(a) for a in sys.argv), "",
        "Each run:", "", *("    regnet " + c for c in commands[:1]),
        f"    ... ({len(commands)} runs: every model x seed)", ""]
    text = "\n".join(lines)
    with open(args.report + ".md", "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=lambda s: s.split(","), required=True)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--recipe", default="cifar10_fast")
    p.add_argument("--data-dir")
    p.add_argument("--set", type=parse_set, action="append", default=[],
                   help="a TrainConfig key for every run, e.g. epochs=5")
    p.add_argument("--lanes", type=int, default=2, help="runs side by side")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--out", default="runs/seed_sweep")
    p.add_argument("--report", default="docs/seed_sweep")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    # Seed-major order: a sweep cut short still has every model at the first seeds.
    jobs = [(m, s) for s in args.seeds for m in args.models]
    commands = [" ".join(shlex.quote(a) for a in run_command(m, s, args)) for m, s in jobs]
    t0 = time.time()
    if not args.report_only:
        with ThreadPoolExecutor(args.lanes) as pool:
            codes = list(pool.map(lambda job: train_one(
                run_command(*job, args), os.path.join(args.out, f"{job[0]}_s{job[1]}.log")), jobs))
        failed = [f"{m} seed {s}" for (m, s), c in zip(jobs, codes) if c]
        if failed:
            print("failed: " + ", ".join(failed), file=sys.stderr)
    print(report(args, commands, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
