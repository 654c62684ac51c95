"""`regnet export --check` for the four models the docs list, each format, one table.

    python benchmarks/export_check.py [--models resnet20 regnet20_lstm regnetx_400mf iresnet50]
        [--formats onnx pt2 safetensors] [--out /tmp/export_check] [--json F]

Each model is initialised with seed 0, its BN statistics estimated on 4 random batches (so the
eval graph normalises real activation scales, not the identity defaults), written as a regnet
checkpoint, then exported with a dynamic batch and checked by the code `regnet export` runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from regnet.export import FORMATS, export_checkpoint  # noqa: E402
from regnet.models.factory import create_model  # noqa: E402
from regnet.train.checkpoint import FORMAT, save_checkpoint  # noqa: E402


def make_checkpoint(name: str, folder: str) -> str:
    torch.manual_seed(0)
    model = create_model(name)
    size = model.default_input_size[-1]
    # BN statistics estimated on inputs (as training leaves them), not the identity defaults:
    # the eval-mode graph then normalises real activation scales.
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    for m in norms:
        m.momentum = 0.1
    model.eval()
    path = os.path.join(folder, f"{name}.pt")
    save_checkpoint(path, {"format": FORMAT, "model": name, "model_args": {},
                           "num_classes": model.num_classes, "state_dict": model.state_dict(),
                           "dataset": "none", "classes": [], "mean": [0.5] * 3,
                           "std": [0.25] * 3, "image_size": size, "augment": "none",
                           "epoch": 0, "val_top1": None, "recipe": None, "config": {}})
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+",
                   default=["resnet20", "regnet20_lstm", "regnetx_400mf", "iresnet50"])
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    p.add_argument("--out", default="/tmp/export_check")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    print(f"{'model':<16} {'format':<12} {'max |diff|':>11} {'max |logit|':>11} {'seconds':>8}"
          f"  checked with")
    for name in args.models:
        ckpt = make_checkpoint(name, args.out)
        for fmt in args.formats:
            start = time.perf_counter()
            r = export_checkpoint(ckpt, os.path.join(args.out, f"{name}.{fmt}"), fmt,
                                  dynamic_batch=True, check=True)
            r["seconds"] = time.perf_counter() - start
            rows.append(r)
            print(f"{name:<16} {fmt:<12} {r['max_abs_diff']:>11.3g} {r['max_abs_eager']:>11.3g} "
                  f"{r['seconds']:>8.1f}  {r['checked_with']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
