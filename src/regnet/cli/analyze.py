r"""`regnet analyze features` and `regnet analyze probe`: the self-regulated paper's Fig. 1.

    regnet analyze features runs/resnet20/best.pt --compare runs/regnet20_lstm/best.pt \
        --image cat.jpg --out fig1a.png
    regnet analyze probe runs/resnet20/best.pt --compare runs/regnet20_lstm/best.pt \
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg/train --val-split 5000 \
        --out fig1b/
"""
from __future__ import annotations

import argparse
import json
import os

from regnet.cli import CLIError


def register(sub) -> None:
    p = sub.add_parser("analyze", help="feature maps and linear probes of trained checkpoints "
                                       "(the self-regulated paper's Fig. 1)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    cmds.required = True

    f = cmds.add_parser("features", help="feature maps O^t (and memory H^t) of consecutive blocks")
    f.add_argument("checkpoint", help="a trained checkpoint (.pt)")
    f.add_argument("--compare", metavar="CHECKPOINT2", help="a second model shown below the first")
    f.add_argument("--image", required=True, help="an image file (resized + centre-cropped)")
    f.add_argument("--stage", type=int, default=1, help="stage whose blocks are shown (1-based)")
    f.add_argument("--start", type=int, default=1, help="first block shown (1-based)")
    f.add_argument("--count", type=int, default=3, help="consecutive blocks shown")
    f.add_argument("--out", required=True, help="PNG to write")
    f.set_defaults(func=cmd_features)

    q = cmds.add_parser("probe", help="linear classifiers on the pooled outputs of the last blocks")
    q.add_argument("checkpoint", help="a trained checkpoint (.pt)")
    q.add_argument("--compare", metavar="CHECKPOINT2", help="a second model, bars side by side")
    q.add_argument("--dataset", required=True, help="cifar10, cifar100, imagefolder or digits")
    q.add_argument("--data-dir", default=None, help="default: the checkpoint's")
    q.add_argument("--val-split", type=int, default=0,
                   help="carve N validation images from train (as the training run did)")
    q.add_argument("--split", default=None, help="evaluation split: val or test (default: val "
                                                  "when there is one)")
    q.add_argument("--last", type=int, default=3, help="probe the last K blocks")
    q.add_argument("--train-images", type=int, default=5000,
                   help="training images the probes are fitted on (0 = all)")
    q.add_argument("--eval-images", type=int, default=0, help="evaluation images (0 = all)")
    q.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    q.add_argument("--seed", type=int, default=0, help="the probe's seed (default 0)")
    q.add_argument("--out", required=True, help="folder for probe.json, probe.md, probe.png")
    q.set_defaults(func=cmd_probe)


def _load(path: str):
    from regnet.train.checkpoint import load_model
    model, meta = load_model(path)
    size = int(meta.get("image_size") or model.default_input_size[-1])
    mean = meta.get("mean") or [0.5, 0.5, 0.5]
    std = meta.get("std") or [0.25, 0.25, 0.25]
    return model, meta, size, mean, std


def _label(meta: dict, path: str) -> str:
    return meta.get("model") or os.path.basename(path)


def _check_out(path: str, folder: bool = False) -> None:
    parent = path if folder else (os.path.dirname(os.path.abspath(path)) or ".")
    if folder:
        os.makedirs(parent, exist_ok=True)
    elif not os.path.isdir(parent):
        raise CLIError(f"--out: folder {parent} does not exist")


def cmd_features(args) -> int:
    from regnet.analysis import block_outputs, image_tensor, plot_features
    from regnet.analysis.blocks import named_blocks
    from regnet.analysis.features import consecutive_blocks

    if not args.out.lower().endswith(".png"):
        raise CLIError("--out must name a .png file")
    _check_out(args.out)
    runs, first = [], None
    for path in [args.checkpoint] + ([args.compare] if args.compare else []):
        model, meta, size, mean, std = _load(path)
        if first is None:
            first = (size, mean, std)
        # Each model sees the image normalised as it was trained.
        x = image_tensor(args.image, size, mean, std)
        names = consecutive_blocks([n for n, _ in named_blocks(model)], args.stage, args.start,
                                   args.count)
        runs.append((_label(meta, path), block_outputs(model, x, names)))
    size, mean, std = first
    sims = plot_features(image_tensor(args.image, size, mean, std), runs, args.out, mean, std)
    for label, values in sims.items():
        print(f"{label}: cosine(O^t-1, O^t) = {', '.join(f'{v:.3f}' for v in values) or '-'}")
    print(f"wrote {args.out}")
    return 0


def cmd_probe(args) -> int:
    import torch

    from regnet.analysis import last_blocks, plot_probe, probe_blocks
    from regnet.analysis.probe import markdown_table
    from regnet.data import build_datasets

    if args.last < 1 or args.train_images < 0 or args.eval_images < 0:
        raise CLIError("--last must be >= 1 and image counts >= 0")
    _check_out(args.out, folder=True)
    runs, records = [], []
    for path in [args.checkpoint] + ([args.compare] if args.compare else []):
        model, meta, size, mean, std = _load(path)
        splits = build_datasets(args.dataset, args.data_dir, args.val_split, args.seed,
                                image_size=size)
        evaluated = splits.split(args.split or splits.eval_split or "test")
        gen = torch.Generator().manual_seed(args.seed)
        train = splits.train
        if args.train_images and args.train_images < len(train):
            train = train.subset(torch.randperm(len(train), generator=gen)[:args.train_images])
        if args.eval_images and args.eval_images < len(evaluated):
            evaluated = evaluated.subset(torch.arange(args.eval_images))
        if meta.get("classes") and list(meta["classes"]) != list(splits.classes):
            # The net's own classifier is meaningless on other classes; the probes are not.
            model.reset_classifier(0)
        names = last_blocks(model, args.last)
        results = probe_blocks(model, (train.images, train.labels),
                               (evaluated.images, evaluated.labels), names, mean, std,
                               args.batch_size, args.seed)
        label = _label(meta, path)
        runs.append((label, results))
        records.append({"model": label, "checkpoint": os.path.abspath(path),
                        "train_images": len(train), "eval_images": len(evaluated),
                        "blocks": [r.as_dict() for r in results]})
    table = markdown_table(runs)
    png = os.path.join(args.out, "probe.png")
    plot_probe(runs, png, f"Linear probes on the last {args.last} blocks ({args.dataset}, "
                          f"{records[0]['eval_images']} images)")
    with open(os.path.join(args.out, "probe.json"), "w") as f:
        json.dump({"dataset": args.dataset, "seed": args.seed, "runs": records}, f, indent=2)
    with open(os.path.join(args.out, "probe.md"), "w") as f:
        f.write(table)
    print(table, end="")
    print(f"wrote {png}")
    return 0
