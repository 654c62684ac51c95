"""How much test-time view averaging adds to a trained checkpoint's validation top-1: the image,
its mirror, and `s`-pixel translations (zero padded, as the training crops are), in uint8 space.

    python benchmarks/experiments/tta_views.py runs/X/best.pt [--shifts 1,2,3]

Prints top-1 for: one view, + mirror (what `--eval-flip` does), and mirror x {centre, 4 shifts of
s pixels} for each s. The views' logits are averaged, as `regnet eval --flip` averages them, so
"flip" is the figure `regnet eval` prints for a run that evaluated with its mirror; each figure
is repeated under "softmax" with the views' probabilities averaged instead (the two can differ
by a few images). The split is the checkpoint's own (its config's val_split and split_seed).
"""
import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from regnet.data import build_datasets
from regnet.data.augment import augment_batch, normalise
from regnet.train import load_model
from regnet.train.checkpoint import run_amp, run_eval_augment
from regnet.train.engine import autocast, resolve_amp


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """uint8 N x H x W x C translated by (dy, dx) with zeros coming in."""
    if dy == dx == 0:
        return x
    n, h, w, c = x.shape
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (0, 0, p, p, p, p))
    return padded[:, p - dy:p - dy + h, p - dx:p - dx + w]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--shifts", default="1,2,3")
    p.add_argument("--batch-size", type=int, default=500)
    args = p.parse_args(argv)
    model, meta = load_model(args.checkpoint)
    model = model.to(memory_format=torch.channels_last)
    cfg = meta["config"]
    splits = build_datasets(cfg["dataset"], cfg["data_dir"], cfg["val_split"], cfg["split_seed"],
                            image_size=cfg.get("image_size"), cache_dir=cfg.get("cache_dir"),
                            stats=False)  # mean / std come from the checkpoint
    val = splits.split("val")
    cpu = torch.device("cpu")
    amp = resolve_amp(run_amp(meta), cpu)  # the run's own precision, as `regnet eval` scores
    augment = run_eval_augment(meta)  # e.g. a resize where the stored images are not the net's size
    views = {(dy, dx, f) for dy, dx in [(0, 0)] for f in (False, True)}
    shifts = [int(s) for s in args.shifts.split(",")]
    for s in shifts:
        views |= {(dy, dx, f) for dy, dx in [(s, 0), (-s, 0), (0, s), (0, -s)] for f in (0, 1)}
    logits = {v: [] for v in views}
    with torch.inference_mode():
        for b in range(0, len(val), args.batch_size):
            x = val.images[b:b + args.batch_size]
            for dy, dx, f in views:
                xv = augment_batch(shifted(x, dy, dx), augment, meta["image_size"], False, None)
                if f:
                    xv = xv.flip(3)
                with autocast(cpu, amp):
                    out = model(normalise(xv, meta["mean"], meta["std"], True)).float()
                logits[(dy, dx, f)].append(out)
    logits = {v: torch.cat(t) for v, t in logits.items()}
    probs = {v: t.softmax(1) for v, t in logits.items()}
    y = val.labels

    def top1(vs, of):
        return round(100.0 * (sum(of[v] for v in vs).argmax(1) == y).float().mean().item(), 2)

    sets = {"single": [(0, 0, False)], "flip": [(0, 0, False), (0, 0, True)]}
    for s in shifts:
        sets[f"flip_x_shift{s}"] = [(dy, dx, f) for (dy, dx), f in itertools.product(
            [(0, 0), (s, 0), (-s, 0), (0, s), (0, -s)], (False, True))]
    result = {"checkpoint": args.checkpoint, "images": len(val),
              **{k: top1(vs, logits) for k, vs in sets.items()},
              "softmax": {k: top1(vs, probs) for k, vs in sets.items() if k != "single"}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
