"""The design-space paper's refinement chain as one resumable job: AnyNetX_A -> B -> C -> D -> E ->
RegNetX, a population of each at one budget, a check that the budget ranks models, and a test of
the paper's claim that each refinement keeps or improves the error EDF.

    regnet study chain OUT --preset cifar_chain -n 100 --data-dir DIR --workers 2
    regnet study chain OUT --report DIR          # figures and verdicts of what has finished

A chain folder holds
    chain.json      the spaces, n, preset, sampling seed, the rank subset and its second seed
    <space>/        one study per space (the `regnet study` format), trained at training seed 0
    rank_seed<k>/   a study holding the rank subset's models again, trained at training seed k

The rank subset is trained first, at seed 0 inside its spaces' studies and again at seed k, so a
budget too short to rank models shows after 2 x 20 trainings rather than after 600: with
`min_rank_corr` above -1 the chain stops there when Spearman's rho of the two seeds' errors is
below it. The populations follow, next always from the space with the fewest finished models.
Every model's result is appended to its study's results.jsonl as it finishes, so a killed chain
re-run with the same command trains only what is missing (see `regnet.design.study`).
"""
from __future__ import annotations

import json
import os
import statistics
import time

from regnet.atomic import atomic_write_text
from regnet.stats import spearman

from .compare import step_verdict
from .study import (FORMAT, StudyError, check_train_data, create_study, load_study,
                    read_record, run_jobs, study_jobs, worker_threads, write_study)

__all__ = ["CHAIN", "PAPER_CLAIMS", "create_chain", "load_chain", "run_chain", "rank_check",
           "chain_report", "step_verdict"]

CHAIN_FORMAT = "regnet-chain-1"
# Training keys a later run of a chain may set: where the data is and how fast to train, never
# what is trained (a population trained half at one budget and half at another ranks nothing).
RUN_ONLY_KEYS = frozenset({"threads", "num_workers", "progress", "tensorboard", "log_every",
                           "data_dir", "cache_dir", "compile", "compile_mode", "device"})
# The rank correlation below which the report does not judge the claim: errors that do not
# rank models do not rank design spaces either (the issue's bar).
MIN_RANK_CORR = 0.7
# Models a side before a refinement step is judged: the KS p-values are asymptotic, and below
# ~20 a side they are too small (two 4-model samples that do not overlap give p = 0.03).
MIN_STEP_MODELS = 20
CHAIN = ("anynetx_a", "anynetx_b", "anynetx_c", "anynetx_d", "anynetx_e", "regnetx")
# What the paper reports for each refinement (its Figs. 5, 7, 9 and Sec. 3.3): the claim under
# test is the weaker "keeps or improves" for every step.
PAPER_CLAIMS = {
    ("anynetx_a", "anynetx_b"): "EDF virtually unchanged (shared bottleneck ratio)",
    ("anynetx_b", "anynetx_c"): "EDF virtually unchanged (shared group width)",
    ("anynetx_c", "anynetx_d"): "EDF improves substantially (non-decreasing widths)",
    ("anynetx_d", "anynetx_e"): "EDF improves (non-decreasing depths)",
    ("anynetx_e", "regnetx"): "better average error, best models kept (linear width rule)",
}


def rank_subset(spaces, n: int, size: int) -> list[list[str]]:
    """[space, model id] pairs taken round-robin over the spaces in sampled order: each space's
    first models are a random draw from it, so the subset spans all spaces."""
    if size > n * len(spaces):
        raise StudyError(f"a rank subset of {size} needs at least {size} models in all")
    out = []
    for i in range(n):
        for space in spaces:
            if len(out) == size:
                return out
            out.append([space, f"m{i:04d}"])
    return out


def create_chain(out: str, n: int, preset: str | None = None, flops=None, seed: int = 0,
                 train: dict | None = None, spaces=CHAIN, rank_models: int = 20,
                 rank_seed: int = 1) -> dict:
    """Write chain.json, one study per space (sampled with `seed`, trained at seed 0) and the
    rank-subset study (trained at `rank_seed`); returns chain.json's content."""
    if os.path.exists(os.path.join(out, "chain.json")):
        raise StudyError(f"{out} already holds a chain; run it, or choose another folder")
    if rank_seed == 0:
        raise StudyError("the rank subset's second seed must differ from the populations' 0")
    spaces = list(spaces)
    subset = rank_subset(spaces, n, rank_models) if rank_models else []
    train = {**(train or {}), "seed": 0}
    metas = {}
    for space in spaces:
        path = os.path.join(out, space)
        metas[space] = (load_study(path)[0] if os.path.exists(os.path.join(path, "study.json"))
                        else create_study(path, space, n=n, flops=flops, seed=seed,
                                          preset=preset, train=train))
    chain = {"format": CHAIN_FORMAT, "spaces": spaces, "n": n, "preset": preset, "seed": seed,
             "rank": {"models": subset, "seed": rank_seed, "study": f"rank_seed{rank_seed}"},
             "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    if subset:
        _create_rank_study(out, chain, metas)
    atomic_write_text(os.path.join(out, "chain.json"), json.dumps(chain, indent=2) + "\n")
    return chain


def _create_rank_study(out: str, chain: dict, metas: dict) -> None:
    configs = {space: {r["id"]: r for r in load_study(os.path.join(out, space))[1]}
               for space in chain["spaces"]}
    records = [dict(configs[space][mid], id=f"{space}-{mid}") for space, mid in
               chain["rank"]["models"]]
    first = metas[chain["spaces"][0]]
    meta = {"format": FORMAT, "space": "rank_subset",
            "description": f"{len(records)} models of the chain's spaces, trained again at "
                           f"seed {chain['rank']['seed']} to check that the budget ranks models",
            "n": len(records), "seed": chain["seed"], "preset": chain["preset"],
            "constraints": first["constraints"], "base": first["base"],
            "train": {**first["train"], "seed": chain["rank"]["seed"]},
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_study(os.path.join(out, chain["rank"]["study"]), records, meta)


def load_chain(out: str) -> dict:
    return read_record(os.path.join(out, "chain.json"), CHAIN_FORMAT,
                       f"{out} is not a chain folder (no chain.json); create one with "
                       f"`regnet study chain {out} --preset NAME -n 100 --data-dir DIR`")


def _errors(path: str) -> dict[str, float | None]:
    """Model id -> error (%) of a study's finished models; None for a diverged one."""
    return {k: (r["error"] if r.get("status") == "ok" else None)
            for k, r in load_study(path)[2].items()}


def rank_check(out: str, chain: dict | None = None) -> dict | None:
    """Spearman's rho between the rank subset's errors at seed 0 and at the second seed, over
    the models finished (and not diverged) at both; None when fewer than 3 are."""
    chain = chain or load_chain(out)
    if not chain["rank"]["models"]:
        return None
    second = _errors(os.path.join(out, chain["rank"]["study"]))
    firsts = {space: _errors(os.path.join(out, space)) for space in chain["spaces"]}
    key = f"seed{chain['rank']['seed']}"
    pairs = []
    for space, mid in chain["rank"]["models"]:
        a, b = firsts[space].get(mid), second.get(f"{space}-{mid}")
        if a is not None and b is not None:
            pairs.append({"space": space, "id": mid, "seed0": a, key: b})
    result = {"pairs": pairs, "wanted": len(chain["rank"]["models"]),
              "seed": chain["rank"]["seed"]}
    if len(pairs) >= 3:
        try:
            result.update(spearman([p["seed0"] for p in pairs], [p[key] for p in pairs]))
        except ValueError:
            pass
    return result


def run_chain(out: str, workers: int = 1, overrides: dict | None = None,
              min_rank_corr: float | None = None, rank_only: bool = False,
              backend: str = "local", ray_address: str | None = None, log=print) -> dict:
    """Train what the chain is missing: the rank subset (both seeds) first, then each space
    (unless `rank_only`: a pilot of the budget).

    Returns {"trained", "diverged", "failed", "rank": rank_check(...), "stopped": reason|None}.
    """
    chain = load_chain(out)
    bad = sorted(set(overrides or {}) - RUN_ONLY_KEYS)
    if bad:
        raise StudyError(f"{out}: {', '.join(bad)} would change what the chain trains; set "
                         f"training keys when the chain is created (a run may only set "
                         f"{', '.join(sorted(RUN_ONLY_KEYS))})")
    threads = worker_threads(workers, None, overrides)
    paths = [os.path.join(out, s) for s in chain["spaces"]]
    rank_path = os.path.join(out, chain["rank"]["study"])
    for path in paths + ([rank_path] if chain["rank"]["models"] else []):
        check_train_data({**load_study(path)[0].get("train", {}), **(overrides or {})}, path)
    totals = {"trained": 0, "diverged": 0, "failed": 0}

    def train(jobs, what):
        if not jobs:
            return
        log(f"{out}: {what}: training {len(jobs)} ({backend}, {workers} worker(s) x "
            f"{threads} thread(s))")
        for k, v in run_jobs(jobs, workers, backend, ray_address, threads, log).items():
            totals[k] += v

    # Phase 1: the rank subset, one model's two seeds next to each other.
    wanted: dict[str, list[str]] = {}
    for space, mid in chain["rank"]["models"]:
        wanted.setdefault(space, []).append(mid)
    firsts = {s: {j["id"]: j for j in study_jobs(os.path.join(out, s), None, overrides, threads,
                                                  ids=wanted.get(s, []))}
              for s in chain["spaces"]}
    seconds = {j["id"]: j for j in study_jobs(rank_path, None, overrides, threads)} \
        if chain["rank"]["models"] else {}
    phase1 = []
    for space, mid in chain["rank"]["models"]:
        phase1 += [j for j in (firsts[space].get(mid), seconds.get(f"{space}-{mid}")) if j]
    train(phase1, f"rank subset ({len(chain['rank']['models'])} models x seeds 0 and "
                  f"{chain['rank']['seed']})")
    rank = rank_check(out, chain)
    stopped = None
    check = min_rank_corr is not None and min_rank_corr > -1 and chain["rank"]["models"]
    if rank and "rho" in rank:
        log(f"{out}: rank check: Spearman rho {rank['rho']:.3f} over {rank['n']} models "
            f"(seed 0 vs seed {rank['seed']}, p {rank['p']:.2g})")
        if check and rank["rho"] < min_rank_corr:
            stopped = (f"rank correlation {rank['rho']:.3f} < {min_rank_corr}: this budget does "
                       f"not rank models; train longer (more epochs or images) before sampling "
                       f"the populations")
    elif check and rank and len(rank["pairs"]) < rank["wanted"]:
        stopped = "the rank subset did not finish; no rank correlation to check"
    elif check:
        stopped = ("every model of the rank subset has the same error at one seed: this budget "
                   "does not rank models")
    if rank_only and not stopped:
        stopped = "rank subset only (asked)"
    if stopped:
        log(f"{out}: stopped: {stopped}")
        return {**totals, "rank": rank, "stopped": stopped}
    # Phase 2: the populations, always next from the space that has the fewest finished models
    # (ties in the chain's order), so that a chain stopped at any point (a campaign spread over
    # sessions) holds populations within one model of each other's size and every step can be
    # looked at, rather than a full first space and nothing after it.
    phase2 = []
    for k, path in enumerate(paths):
        jobs = study_jobs(path, None, overrides, threads)
        done = len(load_study(path)[2])
        phase2 += [(done + i, k, job) for i, job in enumerate(jobs)]
    phase2 = [job for *_, job in sorted(phase2, key=lambda t: t[:2])]
    train(phase2, f"the populations of {', '.join(chain['spaces'])}, the smallest first")
    return {**totals, "rank": rank, "stopped": None}


def chain_report(out: str, report_dir: str | None = None, alpha: float = 0.05,
                 min_rank_corr: float = MIN_RANK_CORR,
                 min_models: int = MIN_STEP_MODELS) -> dict:
    """edf.png (all spaces), report.md and report.json in `report_dir` (default OUT/report):
    each space's errors, the rank check, and each refinement step's tests and verdict. A step
    is judged only when the rank check reached `min_rank_corr`; otherwise its tests are shown
    and its verdict says why it is not judged."""
    from .analysis import plot_edfs, study_rows
    chain = load_chain(out)
    report_dir = report_dir or os.path.join(out, "report")
    os.makedirs(report_dir, exist_ok=True)
    spaces = []
    for space in chain["spaces"]:
        meta, rows, left = study_rows(os.path.join(out, space))
        errs = [r["error"] for r in rows]
        spaces.append({"space": space, "n": len(errs), **left, "errors": errs,
                       "min": min(errs, default=None),
                       "median": statistics.median(errs) if errs else None,
                       "mean": statistics.fmean(errs) if errs else None, "meta": meta})
    if not any(s["n"] for s in spaces):
        raise StudyError(f"{out}: no finished models yet; run `regnet study chain {out}` first")
    plot_edfs([(s["space"], s["errors"]) for s in spaces], os.path.join(report_dir, "edf.png"),
              "error EDFs of the refinement chain")
    rank = rank_check(out, chain)
    ranks_ok = bool(rank and "rho" in rank and rank["rho"] >= min_rank_corr)
    steps = []
    for parent, child in zip(spaces, spaces[1:]):
        step = {"parent": parent["space"], "child": child["space"],
                "paper": PAPER_CLAIMS.get((parent["space"], child["space"]), "")}
        if parent["n"] >= 2 and child["n"] >= 2:
            step.update(step_verdict(parent["errors"], child["errors"], alpha))
            if not ranks_ok:
                rho = f"rho {rank['rho']:.2f}" if rank and "rho" in rank else "no rank check yet"
                step["verdict"] = (f"not judged: the budget does not rank models ({rho} < "
                                   f"{min_rank_corr}); tests shown for reference")
            elif min(parent["n"], child["n"]) < min_models:
                step["verdict"] = (f"not judged yet: {parent['n']} and {child['n']} models "
                                   f"finished (needs {min_models} a side)")
        steps.append(step)
    result = {"chain": chain, "spaces": [{k: v for k, v in s.items() if k != "meta"}
                                         for s in spaces],
              "rank": rank, "steps": steps, "alpha": alpha, "min_rank_corr": min_rank_corr,
              "train": _trained_with(os.path.join(out, chain["spaces"][0]))}
    atomic_write_text(os.path.join(report_dir, "report.json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(os.path.join(report_dir, "report.md"), _report_md(out, result, spaces))
    return result


def _trained_with(path: str) -> dict:
    """The training keys a study's models were trained with (its run.json, else its recipe)."""
    run = os.path.join(path, "run.json")
    if os.path.exists(run):
        with open(run) as f:
            return json.load(f)["train"]
    return load_study(path)[0].get("train", {})


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _report_md(out: str, result: dict, spaces: list[dict]) -> str:
    chain, rank = result["chain"], result["rank"]
    band = spaces[0]["meta"]["constraints"]["flops"]
    train = result["train"]
    recipe = ", ".join(f"{k}={train[k]}" for k in ("dataset", "epochs", "train_subset",
                                                     "val_split", "batch_size", "lr", "schedule",
                                                     "warmup_epochs", "amp") if k in train)
    if spaces[0]["meta"]["base"].get("zero_init_last"):
        recipe += ", each block's last BN initialised to zero"
    lines = ["# Design-space refinement chain", "",
             f"Chain folder `{out}`: {chain['n']} models per space sampled in "
             f"{band[0] / 1e6:g}-{band[1] / 1e6:g} MF (sampling seed {chain['seed']}, preset "
             f"{chain['preset']}), each trained once at training seed 0 ({recipe}).", "",
             "![error EDFs](edf.png)", "",
             "| space | n | diverged | pending | min error | median | mean error |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in spaces:
        lines.append(f"| {s['space']} | {s['n']} | {s['diverged']} | {s['pending']} | "
                     f"{_fmt(s['min'])} | {_fmt(s['median'])} | {_fmt(s['mean'])} |")
    lines += ["", "## Does the budget rank models?", ""]
    if rank and "rho" in rank:
        lines.append(f"Spearman's rho between the errors of the same {rank['n']} models (of "
                     f"{rank['wanted']}, taken round-robin over the spaces) trained at seed 0 and "
                     f"at seed {rank['seed']}: **{rank['rho']:.3f}** (p {rank['p']:.2g}). The "
                     f"subset spans all spaces, so differences between spaces count towards it. "
                     f"The refinement verdicts below are given only at rho >= "
                     f"{result['min_rank_corr']}.")
    else:
        lines.append("Not yet: fewer than 3 models of the rank subset have finished at both seeds.")
    lines += ["", "## Each refinement against its parent", "",
              f"Mean error difference (refined - parent, %) with its 95% interval and Welch's "
              f"p; Kolmogorov-Smirnov: D+ = how far the refined EDF lies right of (worse than) "
              f"its parent's at most, D- the converse, one-sided p-values; verdict at alpha "
              f"{result['alpha']} on the claim *each refinement keeps or improves the EDF*.", "",
              "| step | the paper | mean diff [95% CI] | p (Welch) | D+ (worse) | p | "
              "D- (better) | p | verdict |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for st in result["steps"]:
        if "verdict" not in st:
            lines.append(f"| {st['parent']} -> {st['child']} | {st['paper']} | - | - | - | - | "
                         f"- | - | needs >= 2 finished models on both sides |")
            continue
        w, ks = st.get("welch"), st["ks"]
        mean = (f"{w['diff']:+.2f} [{w['ci95'][0]:+.2f}, {w['ci95'][1]:+.2f}] | {w['p']:.2g}"
                if w else f"{st['mean_diff']:+.2f} | -")
        lines.append(f"| {st['parent']} -> {st['child']} | {st['paper']} | {mean} | "
                     f"{ks['d_a_lower']:.3f} | {ks['p_a_lower']:.2g} | {ks['d_a_higher']:.3f} | "
                     f"{ks['p_a_higher']:.2g} | {st['verdict']} |")
    return "\n".join(lines) + "\n"
