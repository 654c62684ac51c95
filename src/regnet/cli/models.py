"""`regnet list` and `regnet info`: what is registered, and what a model costs."""
from __future__ import annotations

import json

import torch

from regnet.cli import CLIError
from regnet.complexity import complexity
from regnet.models.factory import create_model
from regnet.registry import get_entry, list_models


def register(sub) -> None:
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", help="glob ('regnetx_*') or substring")
    p.add_argument("--family", help="only this family")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="parameters, FLOPs, activations and stage table of a model")
    p.add_argument("model", help="a registered model or alias (`regnet list`)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier classes (default: the variant's own)")
    p.add_argument("--input-size", type=int, nargs="+", default=None,
                   help="S (square), H W, or C H W; default: the model's own")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)


def cmd_list(args) -> int:
    for name in list_models(args.pattern, family=args.family):
        print(name)
    return 0


def stage_table(model, input_shape) -> list[dict]:
    """Per stage: blocks, output width, groups of its grouped convs, output size."""
    rows = []
    with torch.no_grad():
        stages = range(1, len(model.feature_info))  # feature 0 is the stem
        _, feats = model.forward_intermediates(torch.zeros((1,) + tuple(input_shape)),
                                               indices=list(stages))
    for info, feat in zip(model.feature_info[1:], feats):
        stage = getattr(model, info["module"])
        groups = sorted({m.groups for m in stage.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) and m.groups > 1
                         and m.groups != m.in_channels})
        rows.append({"stage": info["module"], "depth": len(stage.blocks()),
                     "width": info["num_chs"], "groups": groups,
                     "output_size": list(feat.shape[1:])})
    return rows


def check_input_size(model, name: str, sizes: list[int]) -> None:
    """Every side positive, and the spatial sides large enough that the last stage keeps a
    2x2 map (BatchNorm's statistics need more than one value per channel)."""
    from regnet.complexity import resolve_input_size
    resolve_input_size(model, sizes[0] if len(sizes) == 1 else sizes)  # the number of sides
    if any(s < 1 for s in sizes):
        raise CLIError(f"--input-size wants positive sizes, got {' '.join(map(str, sizes))}")
    reduction = max((f["reduction"] for f in model.feature_info), default=1)
    spatial = sizes if len(sizes) == 1 else sizes[-2:]
    if min(spatial) < 2 * reduction:
        raise CLIError(f"--input-size {' '.join(map(str, sizes))} is too small for {name}: it "
                       f"downsamples {reduction}x, so H and W must be at least {2 * reduction}")


def cmd_info(args) -> int:
    entry = get_entry(args.model)
    if args.num_classes is not None and args.num_classes < 1:
        raise CLIError(f"--num-classes must be >= 1, got {args.num_classes}")
    model = create_model(entry.name, num_classes=args.num_classes)
    size = args.input_size[0] if args.input_size and len(args.input_size) == 1 else args.input_size
    if args.input_size:
        check_input_size(model, entry.name, args.input_size)
    counts = complexity(model, size)
    executed = complexity(model, size, executed=True)
    result = {"model": entry.name, "family": entry.family, "params": counts["params"],
              "flops": counts["flops"], "macs": counts["macs"], "acts": counts["acts"],
              "input_size": counts["input_size"], "num_classes": model.num_classes,
              "executed_macs": executed["macs"],
              "stages": stage_table(model, counts["input_size"])}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{entry.name}  ({entry.family}; {entry.paper})" if entry.paper else entry.name)
    print(f"  input {tuple(result['input_size'])}, {result['num_classes']} classes")
    print(f"  params {result['params']:,}   flops {result['flops']:,} (multiply-adds incl. bias)"
          f"   macs {result['macs']:,}   acts {result['acts']:,}")
    if executed["macs"] != counts["macs"]:
        print(f"  executed macs {executed['macs']:,}: the light gate convs are counted as the "
              f"papers count them\n    (2 per output) and run as dense block-sparse 1x1s, "
              f"which are faster on CPUs")
    print(f"  {'stage':<6} {'depth':>5} {'width':>6} {'groups':>10}  output")
    for row in result["stages"]:
        groups = ",".join(map(str, row["groups"])) or "1"
        print(f"  {row['stage']:<6} {row['depth']:>5} {row['width']:>6} {groups:>10}  "
              f"{'x'.join(map(str, row['output_size']))}")
    return 0
