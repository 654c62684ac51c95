#!/usr/bin/env python
"""Depth study: pre-activation ResNet vs iResNet on the cifar10-jpg split at increasing depth,
with one short budget shared by every run, several seeds. Does iResNet keep improving with
depth where the baseline stalls (the paper's Table VI, here at a CPU-sized budget)?

Both families are the CIFAR bottleneck nets of 3 stages (16/32/64 planes, depth = 9n + 2):
`preact_resnet164` and `iresnet164` with `depths=(n, n, n)` overridden, so the only difference
between two runs of one depth is the architecture. Every run uses the same recipe below,
seed-matched data split and subset; the lead runs it serially on a quiet machine:

    .venv/bin/python benchmarks/depth_study.py            # train everything, then report
    .venv/bin/python benchmarks/depth_study.py --dry-run  # print the `regnet train` commands
    .venv/bin/python benchmarks/depth_study.py --report-only

Runs are resumable (`regnet.train.train` resumes from its out folder), so an interrupted study
continues where it stopped. The report (curves PNG + Markdown table with mean and spread over
seeds, the hardware, torch version and commands) goes to --report-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import mean_std, parse_set, read_history, train_flags  # noqa: E402

from regnet.atomic import atomic_write_text  # noqa: E402

# -- the budget (matched across every run) -----------------------------------------------------
DEPTHS = (56, 110, 164)                 # 9n + 2 layers; 272 (n = 30) if time allows
ARCHS = {"preact": "preact_resnet164", "iresnet": "iresnet164"}  # depth set by depths=(n,n,n)
SEEDS = (0, 1)
DATA_DIR = "../shared/data/cifar10-jpg/train"   # relative to the repository root
RECIPE = {
    "dataset": "imagefolder",
    "val_split": 1000,          # images, class-balanced, seeded: "validation on the cifar10-jpg split"
    "train_subset": 10000,      # of the remaining 49,000 training images
    "augment": "cifar",         # pad-4 random crop + flip
    "epochs": 15,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,       # short schedules want stronger decay than He et al.'s 1e-4
    "schedule": "cosine",
    "warmup_epochs": 1,         # 0.1x lr for the first epoch: deep pre-act nets need it
    "warmup_factor": 0.1,
    "label_smoothing": 0.0,
    "tensorboard": False,
    "progress": "line",
}
OUT = "runs/depth_study"
REPORT_DIR = "docs/depth_study"


def blocks_per_stage(depth: int) -> int:
    if (depth - 2) % 9 or depth < 20:
        raise SystemExit(f"depth {depth} is not 9n + 2 with n >= 2")
    return (depth - 2) // 9


def run_config(arch: str, depth: int, seed: int, args) -> dict:
    n = blocks_per_stage(depth)
    return {**RECIPE, **args.overrides, "model": ARCHS[arch], "model_args": {"depths": [n, n, n]},
            "data_dir": args.data_dir, "seed": seed,
            "out": os.path.join(args.out, f"{arch}{depth}_seed{seed}")}


def cli_command(cfg: dict) -> str:
    """The same run as a `regnet train` command line."""
    rest = {k: v for k, v in cfg.items() if k != "model"}
    return shlex.join(["regnet", "train", cfg["model"], *train_flags(rest)])


def report(configs: list[dict], args) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    os.makedirs(args.report_dir, exist_ok=True)
    runs = {}
    for cfg in configs:
        arch = "iresnet" if cfg["model"].startswith("iresnet") else "preact"
        depth = 9 * cfg["model_args"]["depths"][0] + 2
        runs.setdefault((arch, depth), []).append(read_history(cfg["out"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = ["| depth | architecture | best val top-1 (%) | final val top-1 (%) | "
            "final train loss |", "|---|---|---|---|---|"]
    for (arch, depth), histories in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        done = [h for h in histories if h]
        if not done:
            continue
        style = "-" if arch == "iresnet" else "--"
        epochs = min(len(h) for h in done)
        for key, ax in (("train_loss", axes[0]), ("val_top1", axes[1])):
            curve = [statistics.mean(h[e][key] for h in done) for e in range(epochs)]
            ax.plot(range(1, epochs + 1), curve, style, label=f"{arch}-{depth}")
        best = [max(r["val_top1"] for r in h) for h in done]
        final = [h[-1]["val_top1"] for h in done]
        loss = [h[-1]["train_loss"] for h in done]
        rows.append(f"| {depth} | {arch} | {mean_std(best, True)} | {mean_std(final, True)} | "
                    f"{mean_std(loss, True)} |")
    for ax, title in zip(axes, ("train loss (mean over seeds)", "val top-1 % (mean over seeds)")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    png = os.path.join(args.report_dir, "depth_study.png")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    text = "\n".join([
        "# Depth study: pre-activation ResNet vs iResNet (cifar10-jpg split)", "",
        f"Budget per run: {json.dumps({**RECIPE, **args.overrides})}; seeds {list(args.seeds)}.",
        "Validation accuracy on the cifar10-jpg split (not CIFAR-10 test accuracy).", "",
        f"Hardware: {platform.node()} ({os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}.", "", f"![curves]({os.path.basename(png)})", "",
        *rows, "", "Commands (one per run):", "", "```",
        *[cli_command(c) for c in configs], "```", ""])
    path = os.path.join(args.report_dir, "depth_study.md")
    atomic_write_text(path, text)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    p.add_argument("--archs", nargs="+", choices=sorted(ARCHS), default=sorted(ARCHS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--out", default=OUT)
    p.add_argument("--report-dir", default=REPORT_DIR)
    p.add_argument("--set", dest="overrides", type=parse_set, action="append", default=[],
                   metavar="KEY=VALUE", help="change the budget for every run (smoke tests)")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    args.overrides = dict(args.overrides)
    configs = [run_config(arch, depth, seed, args) for depth in args.depths
               for arch in args.archs for seed in args.seeds]
    if args.dry_run:
        print("\n".join(cli_command(c) for c in configs))
        return 0
    if not args.report_only:
        from regnet.train import TrainConfig, train
        for cfg in configs:  # serially: the machine has 2 cores
            print(f"== {cfg['out']}", flush=True)
            summary = train(TrainConfig.from_dict(cfg))
            print(json.dumps({k: summary.get(k) for k in ("best_val_top1", "final_val_top1",
                                                          "wall_seconds")}), flush=True)
    print(report(configs, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
