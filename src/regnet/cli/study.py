"""`regnet study`: sample a design space, train the population, analyse it.

    regnet study sample --space anynetx_a --flops 360M:400M -n 500 --seed 0 --out S
    regnet study sample --space regnetx --preset cifar_tiny --out S
    regnet study run S [--recipe R] [--workers N] [--backend local|ray] [--set epochs=2 ...]
    regnet study analyze S [S2 ...] --out DIR
    regnet study chain OUT --preset cifar_chain -n 100 --data-dir D [--workers 2]
    regnet study fit MODEL            (or --widths 24,56,56,152,...)
    regnet study presets
"""
from __future__ import annotations

import json

import yaml

from regnet.cli import CLIError


def register(sub) -> None:
    p = sub.add_parser("study", help="design-space population studies (sample, run, analyze)")
    ss = p.add_subparsers(dest="study_command", metavar="STEP")
    ss.required = True

    q = ss.add_parser("sample", help="sample models of a design space into a study folder")
    q.add_argument("--space", required=True, help="anynetx_a..anynetx_e, regnet(x), regnety")
    q.add_argument("--flops", help="FLOP band LOW:HIGH, e.g. 360M:400M (default: the preset's)")
    q.add_argument("-n", type=int, default=None, help="models to sample (default: the preset's)")
    q.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    q.add_argument("--out", required=True, help="new study folder")
    q.add_argument("--preset", default=None,
                   help="regime: input size, stem, band, recipe (`regnet study presets`)")
    q.add_argument("--dataset", default=None,
                   help="the data the models are for (default: the preset's; without a preset "
                        "imagefolder, the paper's ImageNet regime)")
    q.add_argument("--data-dir", default=None, help="the dataset's folder, recorded in the study "
                                                    "(`study run --data-dir` may give it later)")
    q.set_defaults(func=cmd_sample)

    r = ss.add_parser("run", help="train every model of a study that has no result yet")
    r.add_argument("study", help="the study folder written by `regnet study sample`")
    r.add_argument("--recipe", default=None, help="recipe name or YAML path (over the preset's)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training option over the recipe (repeatable), e.g. --set epochs=2")
    r.add_argument("--data-dir", default=None, help="dataset folder (same as --set data_dir=)")
    r.add_argument("--workers", type=int, default=1, help="models trained at once")
    r.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local worker processes, or a Ray cluster (the ray extra)")
    r.add_argument("--ray-address", default=None,
                   help="Ray cluster address (default: start a local cluster)")
    r.add_argument("--limit", type=int, default=None, help="train at most this many models")
    r.set_defaults(func=cmd_run)

    a = ss.add_parser("analyze", help="EDFs, trends, best models; PNGs and a report")
    a.add_argument("studies", nargs="+", help="study folders to compare")
    a.add_argument("--out", required=True, help="folder for the PNGs and report.md/.html")
    a.add_argument("--label", action="append", default=None, help="legend label per study")
    a.add_argument("--top", type=int, default=10, help="best models listed per study")
    a.set_defaults(func=cmd_analyze)

    c = ss.add_parser("chain", help="the refinement chain AnyNetX_A..E -> RegNetX: sample, "
                                    "rank check, train, EDFs and verdicts (resumable)")
    c.add_argument("chain", help="chain folder (created on first use)")
    c.add_argument("--preset", default=None, help="regime for a new chain (`regnet study presets`)")
    c.add_argument("-n", type=int, default=None, help="models per space (default: the preset's)")
    c.add_argument("--flops", help="FLOP band LOW:HIGH (default: the preset's)")
    c.add_argument("--seed", type=int, default=None, help="the sampler's seed (default 0)")
    c.add_argument("--dataset", default=None, help="the data (default: the preset's)")
    c.add_argument("--data-dir", default=None, help="the dataset's folder")
    c.add_argument("--rank-models", type=int, default=20,
                   help="models trained at a second seed to check the budget ranks (default 20)")
    c.add_argument("--rank-seed", type=int, default=1, help="that second training seed")
    c.add_argument("--min-rank-corr", type=float, default=0.7,
                   help="stop after the rank subset when Spearman's rho is below this "
                        "(default 0.7; -1 trains the populations whatever it is)")
    c.add_argument("--rank-only", action="store_true",
                   help="train only the rank subset (a pilot: does this budget rank models?)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training option (repeatable): recorded when the chain is created; a "
                        "later run may set only threads, data_dir and other speed keys")
    c.add_argument("--workers", type=int, default=1, help="models trained at once")
    c.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local worker processes, or a Ray cluster (the ray extra)")
    c.add_argument("--ray-address", default=None, help="Ray cluster address")
    c.add_argument("--report", default=None, metavar="DIR",
                   help="where edf.png and report.md/.json go (default CHAIN/report)")
    c.add_argument("--report-only", action="store_true", help="train nothing; write the report")
    c.set_defaults(func=cmd_chain)

    f = ss.add_parser("fit", help="fit the linear width rule (w0, wa, wm) to a model's widths")
    f.add_argument("model", nargs="?", help="registered model name")
    f.add_argument("--widths", help="per-block widths, comma-separated, instead of a model")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=cmd_fit)

    ps = ss.add_parser("presets", help="list the study presets and design spaces")
    ps.set_defaults(func=cmd_presets)


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_sample(args) -> int:
    from regnet.design.spaces import parse_band
    from regnet.design.study import create_study
    band = parse_band(args.flops) if args.flops else None
    train = {k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir)) if v}
    meta = create_study(args.out, args.space, n=args.n, flops=band, seed=args.seed,
                        preset=args.preset, train=train)
    s, c = meta["sampling"], meta["constraints"]
    print(f"{args.out}: {meta['n']} {meta['space']} models in {c['flops'][0] / 1e6:g}-"
          f"{c['flops'][1] / 1e6:g}MF (input {'x'.join(map(str, meta['base']['input_size']))}, "
          f"stem {meta['base']['stem']}), {s['tried']} candidates in {s['seconds']:.2f} s")
    return 0


def cmd_run(args) -> int:
    from regnet.design.study import run_study
    recipe = None
    if args.recipe:
        from regnet.train import load_recipe
        recipe = load_recipe(args.recipe)
    overrides = _parse_overrides(args.overrides)
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    counts = run_study(args.study, recipe, overrides, workers=args.workers,
                       backend=args.backend, ray_address=args.ray_address, limit=args.limit)
    print(json.dumps(counts))
    return 1 if counts["failed"] else 0


def cmd_analyze(args) -> int:
    from regnet.design.analysis import analyze
    result = analyze(args.studies, args.out, args.label, args.top)
    for s in result["studies"]:
        if s["n"]:
            print(f"{s['label']}: n={s['n']}, min {s['min']:.2f}%, mean {s['mean']:.2f}%")
        else:
            print(f"{s['label']}: no finished models")
    print(f"wrote {args.out}/report.md, report.html, " + ", ".join(result["images"]))
    return 0


def cmd_chain(args) -> int:
    import os

    from regnet.design.chain import chain_report, create_chain, load_chain, run_chain
    from regnet.design.spaces import parse_band
    overrides = _parse_overrides(args.overrides)
    if not os.path.exists(os.path.join(args.chain, "chain.json")):
        if args.report_only:
            load_chain(args.chain)  # the error that says how to create one
        from regnet.design.presets import get_preset
        n = args.n or (get_preset(args.preset).n if args.preset else None)
        if not n:
            raise CLIError("a new chain needs -n (models per space) or a --preset")
        from regnet.design.chain import RUN_ONLY_KEYS
        # A new chain records its training keys; only the run-only ones stay per run.
        train = {k: v for k, v in overrides.items() if k not in RUN_ONLY_KEYS}
        overrides = {k: v for k, v in overrides.items() if k in RUN_ONLY_KEYS}
        train.update({k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir))
                      if v})
        chain = create_chain(args.chain, n, preset=args.preset,
                             flops=parse_band(args.flops) if args.flops else None,
                             seed=args.seed or 0, train=train, rank_models=args.rank_models,
                             rank_seed=args.rank_seed)
        print(f"{args.chain}: {n} models each of {', '.join(chain['spaces'])}; rank subset "
              f"{len(chain['rank']['models'])} models at seed {chain['rank']['seed']}")
    else:
        # The same command runs again to resume; a different regime needs a new folder.
        chain = load_chain(args.chain)
        for flag, given, recorded in (("--preset", args.preset, chain["preset"]),
                                      ("-n", args.n, chain["n"]),
                                      ("--seed", args.seed, chain["seed"])):
            if given is not None and given != recorded:
                raise CLIError(f"{args.chain} was created with {flag} {recorded}; {flag} "
                               f"{given} needs a new chain folder")
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
    failed = 0
    if not args.report_only:
        counts = run_chain(args.chain, workers=args.workers, overrides=overrides,
                           min_rank_corr=args.min_rank_corr, rank_only=args.rank_only,
                           backend=args.backend,
                           ray_address=args.ray_address)
        failed = counts["failed"]
        print(json.dumps({k: counts[k] for k in ("trained", "diverged", "failed", "stopped")}))
    report_dir = args.report or os.path.join(args.chain, "report")
    result = chain_report(args.chain, report_dir)
    for s in result["spaces"]:
        print(f"{s['space']:<10} n={s['n']:<4} " + (
            f"min {s['min']:.2f}%  mean {s['mean']:.2f}%" if s["n"] else "no finished models"))
    rank = result["rank"]
    if rank and "rho" in rank:
        print(f"rank check: Spearman rho {rank['rho']:.3f} over {rank['n']} models")
    for st in result["steps"]:
        print(f"{st['parent']} -> {st['child']}: {st.get('verdict', 'not enough models')}")
    print(f"wrote {report_dir}/edf.png, report.md, report.json")
    return 1 if failed else 0


def cmd_fit(args) -> int:
    from regnet.design.fit import block_widths, fit_width_rule
    if args.widths:
        try:
            widths = [int(w) for w in args.widths.split(",")]
        except ValueError:
            raise CLIError(f"--widths must be comma-separated integers, got {args.widths!r}")
        name = "widths"
    elif args.model:
        from regnet.models.factory import create_model
        from regnet.registry import get_entry
        name = get_entry(args.model).name
        widths = block_widths(create_model(name))
    else:
        raise CLIError("give a model name or --widths")
    fit = fit_width_rule(widths)
    if args.json:
        print(json.dumps({"model": name, "block_widths": widths, **fit}))
        return 0
    print(f"{name}: w0={fit['w0']} wa={fit['wa']:.2f} wm={fit['wm']:.3f}  "
          f"e_fit={fit['error']:.4f}")
    print(f"  widths {widths}")
    print(f"  fitted {fit['widths']}")
    return 0


def cmd_presets(args) -> int:
    from regnet.design.presets import PRESETS
    from regnet.design.spaces import SPACES
    print("presets:")
    for p in PRESETS.values():
        print(f"  {p.name:<12} {p.description}")
    print("spaces:")
    for s in SPACES.values():
        print(f"  {s.name:<12} {s.description}")
    return 0
