"""`regnet weights` (the known weights files) and `regnet convert` (any supported source's
weights file -> this library's checkpoint, safetensors export and JSON sidecar)."""
from __future__ import annotations

import os

from regnet.cli import CLIError
from regnet.models.convert import SOURCES

# What imported ImageNet weights expect, unless the tag says otherwise.
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def register(sub) -> None:
    p = sub.add_parser("weights", help="list the known weights files (tags for --init-from and "
                                       "create_model(pretrained=...))")
    p.add_argument("pattern", nargs="?", help="glob ('resnet*') or substring")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("convert", help="convert a pycls / torchvision / timm / iResNet-authors "
                                       "weights file to a regnet checkpoint")
    p.add_argument("src", help="the weights file (.pth, .pyth, .pt, .safetensors) or a tag")
    p.add_argument("dst", help="the checkpoint to write (.pt); DST's .safetensors and .json "
                               "are written beside it")
    p.add_argument("--model", required=True, help="the registered model the weights are for")
    p.add_argument("--from", dest="source", choices=SOURCES, default=None,
                   help="the weights' source (default: told from the keys)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the weights' classifier (default: read off the file)")
    p.add_argument("--model-arg", dest="model_args", action="append", default=[],
                   metavar="KEY=VALUE", help="override a model config field (repeatable)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="a checkpoint as ONNX, a torch.export program (.pt2) or "
                                      "safetensors, optionally checked against eager")
    p.add_argument("checkpoint", help="a checkpoint (.pt) or a safetensors export with its .json")
    p.add_argument("--format", choices=("onnx", "pt2", "safetensors"), required=True,
                   help="onnx (the export extra), pt2 (torch.export.save) or safetensors (+ a "
                        "JSON sidecar)")
    p.add_argument("--out", default=None, help="the file to write (default: the checkpoint's "
                                               "name with the format's suffix)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a batch dimension of any size (default: fixed at --batch)")
    p.add_argument("--batch", type=int, default=2, help="the example batch traced (default 2)")
    p.add_argument("--check", action="store_true",
                   help="compare the exported outputs with eager ones and print the max "
                        "absolute difference (onnxruntime for ONNX when installed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_export)


def cmd_weights(args) -> int:
    from regnet.pretrained import get_pretrained, list_pretrained

    names = list_pretrained(args.pattern)
    print(f"{'tag':<26} {'dataset':<12} {'top-1':>6}  source")
    for name in names:
        t = get_pretrained(name.split(".")[0], name)
        top1 = f"{t.top1:.2f}" if t.top1 is not None else "-"
        print(f"{name:<26} {t.dataset:<12} {top1:>6}  {t.evidence}")
    return 0


def cmd_convert(args) -> int:
    import yaml

    from regnet.models.convert import convert_state_dict, load_weights, read_state_dict
    from regnet.models.factory import create_model
    from regnet.pretrained import get_pretrained, resolve_pretrained
    from regnet.registry import get_entry
    from regnet.train.checkpoint import FORMAT, export_safetensors, save_checkpoint

    if not args.dst.endswith(".pt"):
        raise CLIError(f"{args.dst}: the checkpoint's name must end in .pt")
    overrides = {}
    for item in args.model_args:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--model-arg wants KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    entry = get_entry(args.model)
    path, source = resolve_pretrained(entry.name, args.src)
    source = args.source or source
    state = convert_state_dict(read_state_dict(path), source)
    classes = args.num_classes
    if classes is None:
        fc = state.get("head.fc.weight")
        classes = int(fc.shape[0]) if fc is not None else entry.num_classes
    model = create_model(entry.name, num_classes=classes, **overrides)
    load_weights(model, path, source)
    tag = None if os.path.exists(args.src) else get_pretrained(entry.name, args.src)
    size = list(tag.input_size if tag else entry.input_size)
    meta = {"format": FORMAT, "model": entry.name, "model_args": overrides, "num_classes": classes,
            "dataset": tag.dataset if tag else "unknown", "classes": [],
            "mean": list(tag.mean) if tag else IMAGENET_MEAN,
            "std": list(tag.std) if tag else IMAGENET_STD, "image_size": size[-1],
            "augment": "imagenet" if size[-1] > 64 else "cifar", "epoch": None,
            "val_top1": tag.top1 if tag else None, "recipe": None,
            "config": {"converted_from": os.path.abspath(path), "source": args.source or source}}
    ckpt = {**meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    save_checkpoint(args.dst, ckpt)
    side = export_safetensors(ckpt, os.path.splitext(args.dst)[0] + ".safetensors")
    print(f"{entry.name} ({classes} classes) from {path}: wrote {args.dst}, "
          f"{os.path.splitext(args.dst)[0]}.safetensors and {side}")
    return 0


def cmd_export(args) -> int:
    import json

    from regnet.export import default_out, export_checkpoint

    out = args.out or default_out(args.checkpoint, args.format)
    result = export_checkpoint(args.checkpoint, out, args.format,
                               dynamic_batch=args.dynamic_batch, check=args.check,
                               batch=args.batch)
    if args.json:
        print(json.dumps(result))
        return 0
    shape = "x".join(map(str, result["input"][1:]))
    print(f"wrote {out} ({args.format}, {result['model']}, input N x {shape}, batch "
          f"{'dynamic' if args.dynamic_batch else result['input'][0]})")
    if "max_abs_diff" in result:
        print(f"check: max |exported - eager| = {result['max_abs_diff']:.3g} "
              f"({result['checked_with']})")
    return 0
