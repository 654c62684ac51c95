#!/usr/bin/env python
"""Write a campaign that retrains the best models of a design-space chain at a full recipe.

The design-space paper names its RegNetX / RegNetY models by the same procedure: sample a
population under a FLOP budget, train each briefly, then train the best few at the full schedule
and keep the best. This script does the middle step: from a chain folder (`regnet study chain`)
it takes the K models of lowest error in each asked space and writes a campaign YAML
(`benchmarks/campaign.py`) whose runs build exactly those networks (`model: anynet` with the
sampled `model_args`) under the `defaults` of another campaign, so that they train with the same
recipe as, e.g., Table III's nets:

    python benchmarks/chain_top.py benchmarks/results/design_chain/cifar_chain \
        --space regnetx --top 2 --like benchmarks/campaigns/table3.yaml \
        --name chain_best --out benchmarks/campaigns/chain_best.yaml
    python benchmarks/campaign.py benchmarks/campaigns/chain_best.yaml --lanes 2
"""
from __future__ import annotations

import argparse
import os
import sys

import yaml

from regnet.atomic import atomic_write_text
from regnet.design.chain import load_chain
from regnet.design.study import draw_key, load_study


def is_study(folder: str) -> bool:
    """One study (`regnet study sample`) rather than a chain of them."""
    return os.path.exists(os.path.join(folder, "study.json"))


def study_folder(folder: str, space: str) -> str:
    """The study of `space`: a chain's member, or FOLDER itself where it is one study (a space
    sampled beside the chain with the chain's preset, as the CIFAR RegNetY population is)."""
    if is_study(folder):
        sampled = load_study(folder)[0]["space"]
        if sampled != space:
            raise SystemExit(f"{folder}: a study of {sampled!r}, not of {space!r}")
        return folder
    chain = load_chain(folder)
    if space not in chain["spaces"]:
        raise SystemExit(f"{folder}: no space {space!r}; the chain has {chain['spaces']}")
    return os.path.join(folder, space)


def top_models(chain_dir: str, space: str, k: int) -> list[dict]:
    """The `k` finished (not diverged) models of `space` with the lowest error, best first, each
    as its sampled config record plus its `error`, ties broken by model id. Distinct networks
    only: two samples can quantise to the same stages (RegNetX's m0055 and m0083 of the CIFAR
    chain did, and trained to the same error); the later one is listed in `same_as` of the
    first rather than retrained."""
    _, configs, results = load_study(study_folder(chain_dir, space))
    done = [dict(rec, error=results[rec["id"]]["error"]) for rec in configs
            if results.get(rec["id"], {}).get("status") == "ok"]
    if not done:
        raise SystemExit(f"{chain_dir}/{space}: no finished model yet")
    picked: list[dict] = []
    for rec in sorted(done, key=lambda r: (r["error"], r["id"])):
        twin = next((p for p in picked if p["model_args"] == rec["model_args"]), None)
        if twin is not None:
            twin.setdefault("same_as", []).append(rec["id"])
        elif len(picked) < k:
            picked.append(dict(rec))
    return picked


def twins_by_draw(twins: str) -> dict[str, dict]:
    """The models of study folder `twins` by their sampled parameters (RegNetX and RegNetY
    populations drawn with one seed share most draws), each with its space and `error`."""
    meta, configs, results = load_study(twins)
    return {draw_key(rec["params"]): dict(rec, space=meta["space"],
                                          error=results.get(rec["id"], {}).get("error"))
            for rec in configs}


def campaign(chain_dir: str, spaces: list[str], k: int, defaults: dict, name: str,
             seeds: list[int], twins: str | None = None) -> tuple[dict, list[str]]:
    """(the campaign spec, comment lines naming where each run comes from). With `twins` (a
    study folder), each picked model's twin there (the same draw in the other space) trains
    too, after all picked models, and the report compares each pair."""
    runs, notes, twin_runs, compare = [], [], [], []
    kind = "study" if is_study(chain_dir) else "chain"
    twin_models = twins_by_draw(twins) if twins else {}
    for space in spaces:
        for rec in top_models(chain_dir, space, k):
            stats = rec.get("stats", {})
            notes.append(f"{space}/{rec['id']}: {kind} error {rec['error']:.2f}%, "
                         f"{stats.get('flops', 0) / 1e6:.2f} MF, "
                         f"{stats.get('params', 0) / 1e6:.3f} M params, params {rec['params']}"
                         + (f" (the same network as {', '.join(rec['same_as'])})"
                            if rec.get("same_as") else ""))
            for seed in seeds:
                runs.append({"model": rec["model"], "model_args": rec["model_args"],
                             "seed": seed, "name": f"{space}_{rec['id']}_s{seed}"})
            twin = twin_models.get(draw_key(rec["params"]))
            if twins and twin is None:
                notes.append(f"  no twin of {rec['id']} in {twins}")
            if twin is not None:
                error = "" if twin["error"] is None else f", study error {twin['error']:.2f}%"
                notes.append(f"  twin: {twin['space']}/{twin['id']} (the same draw){error}")
                label = f"{twin['space']}_{twin['id']}"
                compare.append([f"{space}_{rec['id']}", label])
                twin_runs += [{"model": twin["model"], "model_args": twin["model_args"],
                               "seed": seed, "name": f"{label}_s{seed}"} for seed in seeds]
    spec = {"name": name,
            "description": f"the best {k} of {', '.join(spaces)} in {kind} "
                           f"{os.path.normpath(chain_dir)}, retrained at the full recipe"
                           + (f", beside their twins in {os.path.normpath(twins)}"
                              if twins else ""),
            "defaults": defaults, "runs": runs + twin_runs}
    if compare:
        spec["compare"] = compare
    return spec, notes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("chain", help="chain folder written by `regnet study chain`, or one study "
                   "folder (`regnet study sample`)")
    p.add_argument("--space", action="append", required=True, help="space to take (repeatable)")
    p.add_argument("--top", type=int, default=1, help="models per space (default 1)")
    p.add_argument("--seeds", default="0", help="training seeds, comma-separated (default 0)")
    p.add_argument("--like", required=True,
                   help="campaign YAML whose `defaults` (the recipe) the new one copies")
    p.add_argument("--name", required=True, help="the new campaign's name")
    p.add_argument("--out", required=True, help="the YAML file to write")
    p.add_argument("--twins", default=None, metavar="STUDY",
                   help="also train each model's twin in this study folder (the same sampled "
                        "parameters in another space: RegNetY's draw without SE) and compare")
    a = p.parse_args(argv)
    if a.top < 1:
        p.error("--top must be >= 1")
    with open(a.like) as f:
        defaults = (yaml.safe_load(f) or {}).get("defaults", {})
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    spec, notes = campaign(a.chain, a.space, a.top, defaults, a.name, seeds, a.twins)
    args = sys.argv[1:] if argv is None else argv
    header = [f"Written by: python benchmarks/chain_top.py {' '.join(args)}",
              f"Recipe: the `defaults` of {a.like}.", "The models, best first:"]
    text = "".join(f"# {line}\n" for line in header + [f"  {n}" for n in notes])
    text += yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    atomic_write_text(a.out, text)
    print(f"wrote {a.out}: {len(spec['runs'])} runs")
    for n in notes:
        print(" ", n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
