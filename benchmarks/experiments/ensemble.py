"""Validation top-1 of an ensemble of trained checkpoints (softmax averaged over the nets; each
net's logits averaged over the image and its mirror first, as `regnet eval --flip` does, so a
net alone scores what `regnet eval` prints for it), against each net alone: a diagnostic of how
much of the error on a split is the single net's (variance, capacity) and how much is the
data's. Each net sees its run's own eval transform.

    python benchmarks/experiments/ensemble.py runs/r12/best.pt runs/r12s1/best.pt ...

Every checkpoint must come from the same split (dataset, data_dir, val_split, split_seed): the
script checks that. Prints one JSON object: each net's top-1, and for k = 1..n the mean top-1
of all k-net ensembles drawn from the list.
"""
import argparse
import itertools
import json
import statistics

import torch

from regnet.data import build_datasets
from regnet.data.augment import augment_batch, normalise
from regnet.train import load_model
from regnet.train.checkpoint import run_amp, run_eval_augment
from regnet.train.engine import autocast, resolve_amp

SPLIT_KEYS = ("dataset", "data_dir", "val_split", "split_seed", "image_size")


def mirrored_probs(model, meta, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    cpu = torch.device("cpu")
    amp = resolve_amp(run_amp(meta), cpu)  # the run's own precision, as `regnet eval` scores
    augment = run_eval_augment(meta)  # e.g. a resize where the stored images are not the net's size
    out = []
    with torch.inference_mode():
        for b in range(0, len(images), batch_size):
            x = augment_batch(images[b:b + batch_size], augment, meta["image_size"], False, None)
            x = normalise(x, meta["mean"], meta["std"], True)
            with autocast(cpu, amp):
                logits = 0.5 * (model(x).float() + model(x.flip(3)).float())
            out.append(logits.softmax(1))
    return torch.cat(out)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--batch-size", type=int, default=500)
    args = p.parse_args(argv)
    loaded = [load_model(c) for c in args.checkpoints]
    splits = {tuple(m["config"].get(k) for k in SPLIT_KEYS) for _, m in loaded}
    if len(splits) != 1:
        raise SystemExit(f"the checkpoints come from different splits: {sorted(map(str, splits))}")
    cfg = loaded[0][1]["config"]
    val = build_datasets(cfg["dataset"], cfg["data_dir"], cfg["val_split"], cfg["split_seed"],
                         image_size=cfg.get("image_size"), cache_dir=cfg.get("cache_dir"),
                         stats=False).split("val")  # mean / std come from each checkpoint
    probs = [mirrored_probs(model.to(memory_format=torch.channels_last), meta, val.images,
                            args.batch_size) for model, meta in loaded]

    def top1(members) -> float:
        return 100.0 * (sum(probs[i] for i in members).argmax(1) == val.labels).float().mean().item()

    n = len(probs)
    result = {"images": len(val), "checkpoints": args.checkpoints,
              "single": [round(top1([i]), 2) for i in range(n)],
              "ensemble_mean_top1": {k: round(statistics.mean(
                  top1(c) for c in itertools.combinations(range(n), k)), 2)
                  for k in range(1, n + 1)}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
