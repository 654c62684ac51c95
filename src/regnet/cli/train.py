"""`regnet train`, `regnet eval` and `regnet demo`.

Every `TrainConfig` key is a flag (`--weight-decay 5e-5`, `--no-nesterov`, `--milestones 80 120`,
`--model-arg drop_rate=0.2`); flags override the recipe, the recipe overrides the defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import yaml

from regnet.cli import CLIError

# Flags that are positional or spelled differently from their config key.
_SPECIAL = {"model", "model_args", "milestones", "out", "recipe", "freeze", "lr_scale"}


def _parse_optional(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    from regnet.train import TrainConfig

    helps, defaults = TrainConfig.field_help(), TrainConfig().to_dict()
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SPECIAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        # The help is the field's comment in train/config.py (argparse's % needs escaping).
        text = f"{helps[f.name]} (default: {defaults[f.name]})".replace("%", "%%")
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=text)
            continue
        base = {"int": int, "float": float}.get(kind.split(" ")[0], str)
        p.add_argument(flag, dest=f.name, default=argparse.SUPPRESS,
                       type=_parse_optional(base) if "None" in kind else base,
                       metavar=f.name.upper(), help=text)
    p.add_argument("--milestones", type=int, nargs="*", default=argparse.SUPPRESS,
                   help="epochs at which a multistep schedule multiplies lr by gamma")
    p.add_argument("--freeze", action="append", default=argparse.SUPPRESS, metavar="PATTERN",
                   help="keep parameters whose names match this glob fixed (repeatable), "
                        "e.g. 'stem.*' 's1.*'")
    p.add_argument("--lr-scale", dest="lr_scale", action="append", default=argparse.SUPPRESS,
                   metavar="PATTERN=F", help="train parameters matching PATTERN at F x lr "
                                             "(repeatable; the first match wins)")
    p.add_argument("--model-arg", dest="model_args", action="append", default=argparse.SUPPRESS,
                   metavar="KEY=VALUE", help="override a model config field (repeatable)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a registered model (resumes when --out holds its run)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a registered model (`regnet list`)")
    p.add_argument("--recipe", help="a shipped recipe name or a YAML path (`regnet recipes` "
                                    "lists them)")
    p.add_argument("--out", help="output folder (default runs/MODEL_DATASET)")
    p.add_argument("--resume", action="store_true",
                   help="require a run in --out to continue (re-running resumes anyway)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1 / top-5 / loss of a checkpoint on a dataset split")
    p.add_argument("checkpoint", help="a checkpoint (.pt) or a safetensors export with its .json")
    p.add_argument("--dataset", help="default: the checkpoint's")
    p.add_argument("--data-dir", help="default: the checkpoint's")
    p.add_argument("--split", choices=("val", "test", "train"), default=None,
                   help="default: the split the run validated on; on another folder, its val "
                        "split if it has one, else every image in it")
    p.add_argument("--val-split", type=int,
                   help="images to carve off for validation (default: the checkpoint's own carve "
                        "on its own data, same seed; none on other data)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default=None,
                   help="autocast dtype (default: as the run evaluated, its own --amp; auto "
                        "picks bf16 where the CPU runs it natively)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored view (default: as the run evaluated)")
    p.add_argument("--json", action="store_true", help="one JSON object: top1, top5, loss, images")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("recipes", help="the shipped training recipes and what each is for")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("demo", help="train resnet20 and a regulated net on digits (1-3 minutes "
                                    "on 2 cores)")
    p.add_argument("--out", default=os.path.join("runs", "demo"),
                   help="folder of the demo's runs (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="default: the demo recipe's")
    p.add_argument("--models", nargs="+", default=None, help="default: resnet20 and regnet20_lstm")
    p.set_defaults(func=cmd_demo)


def resolve_config(args) -> "TrainConfig":
    """Defaults < recipe < flags, validated (unknown keys and bad values are errors)."""
    from regnet.train import TrainConfig, load_recipe

    d = load_recipe(args.recipe) if args.recipe else {}
    d["model"] = args.model
    skip = {"func", "command", "model", "recipe", "out", "resume", "json", "model_args"}
    d.update({k: v for k, v in vars(args).items() if k not in skip})
    if getattr(args, "model_args", None):
        extra = dict(d.get("model_args") or {})
        for item in args.model_args:
            key, sep, value = item.partition("=")
            if not sep:
                raise CLIError(f"--model-arg wants KEY=VALUE, got {item!r}")
            extra[key.strip()] = yaml.safe_load(value)
        d["model_args"] = extra
    d["out"] = args.out or os.path.join(
        "runs", f"{args.model}_{d.get('dataset', TrainConfig.dataset)}")
    return TrainConfig.from_dict(d)


def cmd_train(args) -> int:
    from regnet.train import train

    cfg = resolve_config(args)
    if args.resume and not os.path.exists(os.path.join(cfg.out, "last.pt")):
        raise CLIError(f"--resume: no checkpoint {os.path.join(cfg.out, 'last.pt')} to resume")
    summary = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        best = summary["best_val_top1"]
        print(f"done: {summary['model']} {summary['epochs']} epochs, best val top-1 "
              f"{'n/a' if best is None else f'{best:.2f}'}, {summary['wall_seconds']:.0f}s; "
              f"outputs in {cfg.out}")
    return 0


def cmd_eval(args) -> int:
    import torch

    from regnet.data import build_datasets, make_loader
    from regnet.train import evaluate, load_model
    from regnet.train.checkpoint import run_amp, run_eval_augment
    from regnet.train.distributed import DistInfo
    from regnet.train.engine import resolve_amp

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, meta = load_model(args.checkpoint)
    saved = meta.get("config") or {}
    dataset = args.dataset or meta["dataset"]
    own_dir = saved.get("data_dir")
    if own_dir and not os.path.isabs(own_dir) and meta.get("data_root"):
        # A relative --data-dir was relative to where training ran; the absolute path is kept.
        own_dir = own_dir if os.path.exists(own_dir) else meta["data_root"]
    # The checkpoint's own data gets its own validation carve; any other folder is scored whole.
    own_data = dataset == meta["dataset"] and (
        args.data_dir is None or (own_dir is not None
                                  and os.path.realpath(args.data_dir) == os.path.realpath(own_dir)))
    val_split = args.val_split if args.val_split is not None else (
        saved.get("val_split", 0) if own_data else 0)
    data_dir = args.data_dir or own_dir
    splits = build_datasets(dataset, data_dir, val_split,
                            saved.get("split_seed", saved.get("seed", 0)),
                            image_size=saved.get("image_size"),
                            cache_dir=saved.get("cache_dir"),
                            data_mode=saved.get("data_mode", "auto"), stats=False)
    split = args.split or (splits.eval_split if own_data else None) or (
        "val" if splits.val is not None else "train")
    flip = saved.get("eval_flip", False) if args.flip is None else args.flip
    amp = args.amp or run_amp(meta)
    ds = splits.split(split)
    if ds.num_classes != meta["num_classes"]:
        raise CLIError(f"{dataset} has {ds.num_classes} classes but the checkpoint's model "
                       f"predicts {meta['num_classes']}")
    model = model.to(memory_format=torch.channels_last)
    loader = make_loader(ds, args.batch_size, train=False, augment=run_eval_augment(meta),
                         image_size=meta["image_size"], mean=meta["mean"], std=meta["std"],
                         num_workers=saved.get("num_workers"))
    start = time.perf_counter()
    result = evaluate(model, loader, device=torch.device("cpu"),
                      amp_dtype=resolve_amp(amp, torch.device("cpu")), dist=DistInfo(),
                      flip=flip)
    result["seconds"] = time.perf_counter() - start
    where = f"{dataset}" + (f" {data_dir}" if data_dir else "")
    settings = {"split": split, "val_split": val_split, "flip": flip, "amp": amp,
                "images": len(ds), "source": where, "own_data": own_data}
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "model": meta["model"],
                          "dataset": dataset, **settings, **result}))
    else:
        scope = (f"its own {split} split" if own_data else
                 f"{'the val split' if split == 'val' else 'every image'} of other data")
        print(f"{meta['model']} on {where}: {result['images']} images ({scope}; mirrored view "
              f"{'averaged' if flip else 'off'}): top-1 {result['top1']:.2f}%  "
              f"top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}")
    return 0


def cmd_recipes(args) -> int:
    from regnet.train.recipes import list_recipes, recipe_dir

    for name in list_recipes():
        first = next((line.lstrip("# ").strip() for line in
                      (recipe_dir() / f"{name}.yaml").read_text().splitlines()
                      if line.startswith("#")), "")
        print(f"{name:<24} {first}")
    return 0


def demo_models() -> list[str]:
    from regnet.registry import list_models

    return ["resnet20", "regnet20_lstm" if "regnet20_lstm" in list_models() else "se_resnet20"]


def cmd_demo(args) -> int:
    from regnet.train import TrainConfig, load_recipe, train

    rows = []
    for name in args.models or demo_models():
        d = {**load_recipe("demo"), "model": name, "out": os.path.join(args.out, name)}
        if args.epochs is not None:
            d["epochs"] = args.epochs
        print(f"== {name}", flush=True)
        rows.append(train(TrainConfig.from_dict(d)))
    print()
    print(f"{'model':<16} {'params':>10} {'MFLOPs':>8} {'val top-1':>9} {'seconds':>8}")
    for s in rows:
        top1 = "n/a" if s["best_val_top1"] is None else f"{s['final_val_top1']:.2f}"
        print(f"{s['model']:<16} {s['params']:>10,} {s['flops'] / 1e6:>8.1f} {top1:>9} "
              f"{s['wall_seconds']:>8.1f}")
    print(f"\ncurves and checkpoints: {', '.join(os.path.join(args.out, s['model']) for s in rows)}"
          f" (curves.png, metrics.csv, best.pt, best.safetensors)")
    return 0
