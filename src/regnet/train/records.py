"""What a run leaves behind besides checkpoints: metrics.jsonl (one object per epoch),
metrics.csv, summary.json, config.yaml, curves.png and TensorBoard events. Only rank 0 writes."""
from __future__ import annotations

import csv
import io
import json
import os

import yaml

from regnet.atomic import atomic_write, atomic_write_text
from regnet.extras import MissingExtraError, need
from regnet.log import warn_once

COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
           "images_per_sec", "seconds", "wall_seconds")


def write_config(out: str, cfg_dict: dict) -> None:
    atomic_write_text(os.path.join(out, "config.yaml"), yaml.safe_dump(cfg_dict, sort_keys=False))


def read_config(out: str) -> dict | None:
    path = os.path.join(out, "config.yaml")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return yaml.safe_load(f) or {}


def write_history(out: str, history: list[dict]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the full history (the checkpoint's copy is the
    truth, so epochs a killed run logged but never checkpointed disappear on resume)."""
    atomic_write_text(os.path.join(out, "metrics.jsonl"),
               "".join(json.dumps(row) + "\n" for row in history))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    atomic_write_text(os.path.join(out, "metrics.csv"), buf.getvalue())


def write_json(path: str, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def plot_curves(path: str, history: list[dict], title: str) -> None:
    """Loss and top-1 per epoch, train and validation, as a PNG (skipped, said once, without
    matplotlib)."""
    try:
        matplotlib = need("matplotlib", "curves.png")
    except MissingExtraError as err:
        warn_once(f"{err}; no curves.png is drawn (metrics.csv / .jsonl hold the numbers)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "top1", "top-1 (%)")):
        ax.plot(epochs, [r.get(f"train_{key}") for r in history], "o-", label="train", ms=3)
        val = [(r["epoch"], r[f"val_{key}"]) for r in history if r.get(f"val_{key}") is not None]
        if val:
            ax.plot(*zip(*val), "s-", label="validation", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        values = [v for line in ax.get_lines() for v in line.get_ydata() if v and v > 0]
        if key == "loss" and values and max(values) > 20 * min(values):
            ax.set_yscale("log")  # an early validation blow-up would flatten the rest
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


class TensorBoardLog:
    """Scalars per epoch when `tensorboard` is installed; a no-op otherwise."""

    def __init__(self, out: str, enabled: bool, start_epoch: int):
        self.writer = None
        if not enabled:
            return
        try:
            need("tensorboard", "TensorBoard logging")
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            warn_once(f"{err}; or turn it off with --no-tensorboard")
            return
        # purge_step drops events of epochs a killed run logged past its last checkpoint.
        self.writer = SummaryWriter(os.path.join(out, "tb"), purge_step=start_epoch + 1)

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key.replace("_", "/", 1), value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_line(row: dict, epochs: int) -> str:
    val = (f"val loss {row['val_loss']:.4f} top1 {row['val_top1']:.2f} top5 {row['val_top5']:.2f}"
           if row.get("val_top1") is not None else "no validation")
    return (f"epoch {row['epoch']}/{epochs}  lr {row['lr']:.4g}  train loss {row['train_loss']:.4f}"
            f" top1 {row['train_top1']:.2f}  {val}  {row['images_per_sec']:,.0f} img/s"
            f"  {row['seconds']:.1f}s")
