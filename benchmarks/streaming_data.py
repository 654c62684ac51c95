#!/usr/bin/env python
"""Streamed image-folder loading (`regnet.data.StreamingLoader`, what `regnet train` uses for
folders too large for memory) against the plain per-sample pipeline, in the same process.

Both sides read the same JPEG files with the same number of DataLoader workers and produce the
same thing: normalised float batches of Inception crops (random area 8-100%, aspect 3/4-4/3),
flipped at random, at `--image-size`.
  reference: what torchvision's ImageFolder + RandomResizedCrop + RandomHorizontalFlip + ToTensor
             + Normalize does, written with PIL and torch alone: open, decode the whole JPEG,
             crop + bilinear resize, flip, float CHW, normalise, per sample, default collate.
  streaming: the library's loader: JPEG decoded at the smallest DCT scale that still covers the
             crop at the output size (`Image.draft`), uint8 samples, one batched normalise.
Images/s counts `--batches` batches after one untimed batch (worker start-up excluded).

Without `--data-dir`, `--synthetic N` ImageNet-sized JPEGs (500x375, quality 90: smooth colour
fields, shapes and mild noise; ImageNet's mean size is about 400x350) are written to a temporary
folder first (`--synthetic-size` changes the size). With `--data-dir`, any ImageNet-style folder (`DIR/<class>/<image>.jpg`).

Usage (copy-paste from the repository root):
    .venv/bin/python benchmarks/streaming_data.py --workers 1,2 \
        --out benchmarks/results/streaming_data_synthetic.json
    .venv/bin/python benchmarks/streaming_data.py --synthetic-size 1600x1200 --workers 1,2 \
        --out benchmarks/results/streaming_data_synthetic_1600.json
    .venv/bin/python benchmarks/streaming_data.py --data-dir /path/to/imagenet/train --workers 8
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset

from regnet.data import StreamingLoader
from regnet.data.imagefolder import scan_folder
from regnet.data.streaming import inception_box

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, machine_info, machine_line, median, write_result  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's, for both sides


def write_synthetic(root: str, n: int, size=(500, 375), classes: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        folder = os.path.join(root, f"class{i % classes}")
        os.makedirs(folder, exist_ok=True)
        a, b, c = rng.uniform(0, 6.28, 3)
        base = np.stack([np.sin(xx / w * 3 + a), np.cos(yy / h * 2 + b), np.sin((xx + yy) / w + c)],
                        -1) * 90 + 128
        img = Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            draw.ellipse((x0, y0, x0 + rng.integers(10, 150), y0 + rng.integers(10, 150)),
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.save(os.path.join(folder, f"{i}.jpg"), quality=90)


class ReferenceImages(Dataset):
    """The per-sample torchvision-style pipeline, without torchvision."""

    def __init__(self, paths, labels, size: int, seed: int = 0):
        self.paths, self.labels, self.size, self.seed = paths, labels, size, seed
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        rng = random.Random(f"{self.seed}/{i}")
        with Image.open(self.paths[i]) as img:
            img = img.convert("RGB")
        left, top, cw, ch = inception_box(*img.size, rng)
        img = img.resize((self.size, self.size), Image.BILINEAR,
                         box=(left, top, left + cw, top + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255)
        return (x - self.mean) / self.std, int(self.labels[i])


def images_per_sec(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # workers started and the first batch decoded: not timed
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        x, _ = next(it)
        n += len(x)
    return n / (time.perf_counter() - start)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None, help="an image folder; default: synthetic JPEGs")
    p.add_argument("--synthetic", type=int, default=512, help="synthetic images to write")
    p.add_argument("--synthetic-size", default="500x375", help="their width x height")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    p.add_argument("--workers", default="1,2", help="comma list of DataLoader worker counts")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def run(args) -> dict:
    tmp = None
    root = args.data_dir
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="regnet-stream-bench-")
        root = tmp.name
        write_synthetic(root, args.synthetic, tuple(int(v) for v in
                                                    args.synthetic_size.split("x")))
    ds = scan_folder(root, args.image_size)
    need = (args.batches + 1) * args.batch_size
    if len(ds) < need:
        raise SystemExit(f"error: {len(ds)} images; --batches {args.batches} at --batch-size "
                         f"{args.batch_size} needs {need}")
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        ref, fast = [], []
        for _ in range(args.repeats):
            ref_loader = DataLoader(ReferenceImages(ds.paths, ds.labels, args.image_size),
                                    batch_size=args.batch_size, shuffle=True,
                                    num_workers=workers, drop_last=True)
            ref.append(images_per_sec(ref_loader, args.batches))
            fast_loader = StreamingLoader(ds, args.batch_size, train=True, augment="imagenet",
                                          image_size=args.image_size, mean=MEAN, std=STD,
                                          num_workers=workers)
            fast_loader.set_epoch(1)
            fast.append(images_per_sec(fast_loader, args.batches))
        r, f = median(ref), median(fast)
        rows.append({"workers": workers, "reference_images_per_sec": r,
                     "streaming_images_per_sec": f, "ratio": f / r,
                     "reference_repeats": ref, "streaming_repeats": fast})
        print(f"workers {workers}: reference {r:7.1f} img/s  streaming {f:7.1f} img/s  "
              f"ratio {f / r:.2f}x", flush=True)
    if tmp is not None:
        tmp.cleanup()
    return {"benchmark": "streaming_data", "command": command_line(), "machine": machine_info(),
            "settings": {"data": args.data_dir or
                         f"synthetic {args.synthetic} x {args.synthetic_size} JPEG q90",
                         "images": len(ds), "image_size": args.image_size,
                         "batch_size": args.batch_size, "batches": args.batches,
                         "repeats": args.repeats, "figure": "median of repeats"},
            "rows": rows}


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(machine_line(result["machine"]))
    write_result(args.out, result, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
