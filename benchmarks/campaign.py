#!/usr/bin/env python
"""Run a campaign: a YAML list of `regnet train` runs, in lanes, each resumable, each finished
run's record kept under `benchmarks/results/<campaign>/<run>/` so that a campaign spreads over
several working sessions and machines: a later invocation runs only what is missing.

    python benchmarks/campaign.py benchmarks/campaigns/table3.yaml --lanes 2
    python benchmarks/campaign.py benchmarks/campaigns/table3.yaml --list     # + time left
    python benchmarks/campaign.py benchmarks/campaigns/table3.yaml --report docs/table3

The YAML file:

    name: table3                       # results go to benchmarks/results/table3/
    defaults: {recipe: cifar10_fast, data_dir: ../shared/data/cifar10-jpg/train, ...}
    runs:
      - {model: resnet20, seed: 0}     # name defaults to <model>_s<seed>
      - {model: regnet20_lstm, seed: 0, batch_size: 64, name: lstm_b64}
    paper: {resnet20: "91.62", ...}    # optional: the paper's figure per group, for the report
    compare: [[iresnet56, preact56]]   # optional: pairs the report tests besides the baseline

Every key of a run (and of `defaults`) is a `TrainConfig` key, passed as a flag. A run is done
when its results folder holds `summary.json`. While a run trains, its latest `last.pt` is copied
beside its results (`partial/last.pt`, atomically, after every epoch); a later invocation on
another machine copies it back and the run resumes from that epoch (`regnet train` refuses to
resume with a changed config). `--stop-after MIN` ends a session cleanly: past MIN minutes
each run stops once its next epoch's checkpoint is kept, and no new run starts. A finished
run's folder holds `summary.json`, `metrics.jsonl`, `config.yaml`, `best.safetensors` +
`best.json` and `run.json` (command, commit, machine, times).

Lanes: `--lanes N` runs N trainings side by side, each pinned to its own cores (`os.
sched_setaffinity`) with `--threads` = its cores. On a 2-core CPU two 1-thread lanes train more
images per second in total than one 2-thread run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from campaign_figure import draw  # noqa: E402
from common import machine_info, mean_std, train_flags  # noqa: E402

from regnet.atomic import atomic_write, atomic_write_text  # noqa: E402
from regnet.design.study import read_jsonl  # noqa: E402
from regnet.extras import MissingExtraError  # noqa: E402
from regnet.stats import verdict, welch  # noqa: E402
from regnet.train import TrainConfig  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_FILES = ("summary.json", "metrics.jsonl", "config.yaml", "best.safetensors", "best.json")
POLL_SECONDS = 5.0


class CampaignError(ValueError):
    pass


def load_campaign(path: str) -> dict:
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    if not isinstance(spec, dict) or not spec.get("name") or not spec.get("runs"):
        raise CampaignError(f"{path}: a campaign needs `name` and a list of `runs`")
    defaults = dict(spec.get("defaults") or {})
    runs, names = [], set()
    for i, run in enumerate(spec["runs"], 1):
        run = {**defaults, **run}
        name = run.pop("name", None) or f"{run.get('model', '?')}_s{run.get('seed', 0)}"
        if "model" not in run:
            raise CampaignError(f"{path}: run {i} ({name}) names no model")
        if name in names:
            raise CampaignError(f"{path}: two runs are named {name!r}; give one a `name`")
        names.add(name)
        for key in ("out", "threads"):
            if key in run:
                raise CampaignError(f"{path}: run {name} sets {key!r}; the campaign sets it")
        TrainConfig.check_keys(run, f"{path}: run {name}: ")
        runs.append({"name": name, "config": run})
    paper = spec.get("paper") or {}
    if not isinstance(paper, dict):
        raise CampaignError(f"{path}: `paper` maps a model (or run group label) to its figure")
    compare = spec.get("compare") or []
    if not isinstance(compare, list) or not all(
            isinstance(pair, list) and len(pair) == 2 for pair in compare):
        raise CampaignError(f"{path}: `compare` is a list of [group, against] pairs of group "
                            "labels, e.g. [[iresnet56, preact56]]")
    return {"name": str(spec["name"]), "description": spec.get("description", ""),
            "runs": runs, "paper": {str(k): str(v) for k, v in paper.items()},
            "paper_note": str(spec.get("paper_note", "")),
            "compare": [[str(a), str(b)] for a, b in compare]}


def command(run: dict, out: str, threads: int) -> list[str]:
    cfg = dict(run["config"])
    model = cfg.pop("model")
    return [sys.executable, "-m", "regnet", "train", model,
            *train_flags({**cfg, "threads": threads, "progress": "line", "out": out})]


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def copy_atomic(src: str, dst: str) -> None:
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


class Campaign:
    def __init__(self, spec: dict, results: str, runs_dir: str):
        self.spec, self.results, self.runs_dir = spec, results, runs_dir
        self.lock = threading.Lock()

    def result_dir(self, name: str) -> str:
        return os.path.join(self.results, name)

    def run_dir(self, name: str) -> str:
        return os.path.join(self.runs_dir, name)

    def done(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.result_dir(name), "summary.json"))

    def missing(self) -> list[dict]:
        return [r for r in self.spec["runs"] if not self.done(r["name"])]

    def _last(self, name: str) -> dict | None:
        """The checkpoint a run would resume from (its run folder's last.pt, else the kept one)."""
        for path in (os.path.join(self.run_dir(name), "last.pt"),
                     os.path.join(self.result_dir(name), "partial", "last.pt")):
            if os.path.exists(path):
                import torch
                return torch.load(path, map_location="cpu", weights_only=True)
        return None

    def partial_epoch(self, name: str) -> int | None:
        """The epoch a run would resume from."""
        ckpt = self._last(name)
        return None if ckpt is None else int(ckpt["epoch"])

    def progress(self) -> list[dict]:
        """Per run: its state, epochs done of how many, and an estimate of the minutes left at
        the pace its own last epochs (a partial) or the finished runs of its model (a missing
        run) were trained at; the pace is one lane's on the machines that ran them."""
        paces: dict[str, list[float]] = {}
        for r in self.spec["runs"]:
            if self.done(r["name"]):
                rows = read_jsonl(os.path.join(self.result_dir(r["name"]), "metrics.jsonl"))
                paces.setdefault(r["config"]["model"], []).extend(
                    row["seconds"] for row in rows if "seconds" in row)
        rows = []
        for r in self.spec["runs"]:
            row = {"name": r["name"], "state": "done", "epoch": None, "epochs": None,
                   "minutes_left": None}
            if not self.done(r["name"]):
                ckpt = self._last(r["name"])
                if ckpt is None:
                    row.update(state="missing", epoch=0, epochs=planned_epochs(r["config"]))
                    seen = sorted(paces.get(r["config"]["model"], []))
                    pace = seen[len(seen) // 2] if seen else None
                else:
                    history = (ckpt.get("train_state") or {}).get("history") or []
                    recent = [h["seconds"] for h in history[-3:] if "seconds" in h]
                    # The campaign's epochs, not the checkpoint's: a resumed run may extend it.
                    row.update(state="partial", epoch=int(ckpt["epoch"]),
                               epochs=planned_epochs(r["config"]))
                    pace = sum(recent) / len(recent) if recent else None
                if pace is not None:
                    row["minutes_left"] = pace * (row["epochs"] - row["epoch"]) / 60
            rows.append(row)
        return rows

    def restore_partial(self, name: str) -> int | None:
        """Copy a kept `partial/last.pt` back into the run folder when that folder has none (a
        fresh machine); returns the epoch it resumes from."""
        kept = os.path.join(self.result_dir(name), "partial", "last.pt")
        here = os.path.join(self.run_dir(name), "last.pt")
        if not os.path.exists(kept) or os.path.exists(here):
            return None
        copy_atomic(kept, here)
        return self.partial_epoch(name)

    def keep_partial(self, name: str, seen: list) -> None:
        """Copy the run's last.pt beside its results whenever it changes."""
        src = os.path.join(self.run_dir(name), "last.pt")
        try:
            stamp = os.stat(src).st_mtime_ns
        except FileNotFoundError:
            return
        if seen and seen[0] == stamp:
            return
        copy_atomic(src, os.path.join(self.result_dir(name), "partial", "last.pt"))
        seen[:] = [stamp]

    def finish(self, run: dict, cmd: list[str], started: str, seconds: float) -> None:
        name, src = run["name"], self.run_dir(run["name"])
        dst = self.result_dir(name)
        os.makedirs(dst, exist_ok=True)
        for fname in RESULT_FILES:
            if os.path.exists(os.path.join(src, fname)) and fname != "summary.json":
                copy_atomic(os.path.join(src, fname), os.path.join(dst, fname))
        record = {"run": name, "campaign": self.spec["name"], "config": run["config"],
                  "command": " ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd),
                  "commit": git_commit(), "started": started, "seconds": round(seconds, 1),
                  "machine": machine_info()}
        atomic_write_text(os.path.join(dst, "run.json"), json.dumps(record, indent=2) + "\n")
        # summary.json last: its presence is what marks the run done.
        copy_atomic(os.path.join(src, "summary.json"), os.path.join(dst, "summary.json"))
        shutil.rmtree(os.path.join(dst, "partial"), ignore_errors=True)

    def train(self, run: dict, cores: list[int], log, stop_at: float | None = None) -> str:
        """Train one run: "done", "failed", or "stopped" (past `stop_at`, a time.monotonic(),
        at the first epoch boundary: the run is ended once the checkpoint of the epoch it was
        in is kept beside the results, so a later invocation resumes it from there)."""
        name = run["name"]
        os.makedirs(self.run_dir(name), exist_ok=True)
        resumed = self.restore_partial(name)
        cmd = command(run, self.run_dir(name), len(cores))
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        log(f"start {name} on cores {cores}" + (f" (resuming epoch {resumed})" if resumed
                                                 else "") + f": {' '.join(cmd[2:])}")
        t0 = time.perf_counter()
        with open(os.path.join(self.run_dir(name), "campaign.log"), "a") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=(lambda: os.sched_setaffinity(0, cores))
                                    if hasattr(os, "sched_setaffinity") else None)
            seen: list = []
            kept_at_deadline = None
            while True:
                try:
                    proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self.keep_partial(name, seen)
                if stop_at is None or time.monotonic() < stop_at:
                    continue
                if kept_at_deadline is None:
                    kept_at_deadline = list(seen)
                elif seen != kept_at_deadline:
                    proc.terminate()
                    proc.wait()
                    log(f"stopped {name} after epoch {self.partial_epoch(name)} (its "
                        f"checkpoint kept; run the campaign again to resume)")
                    return "stopped"
        if proc.returncode != 0 or not os.path.exists(os.path.join(self.run_dir(name),
                                                                    "summary.json")):
            log(f"FAILED {name} (exit {proc.returncode}); see "
                f"{os.path.join(self.run_dir(name), 'campaign.log')}")
            return "failed"
        self.finish(run, cmd, started, time.perf_counter() - t0)
        log(f"done {name} in {(time.perf_counter() - t0) / 60:.1f} min")
        return "done"


def planned_epochs(config: dict) -> int:
    if "epochs" in config:
        return int(config["epochs"])
    if config.get("recipe"):
        from regnet.train.recipes import load_recipe
        epochs = load_recipe(config["recipe"]).get("epochs")
        if epochs is not None:
            return int(epochs)
    return int(TrainConfig().epochs)


def print_progress(rows: list[dict]) -> None:
    for row in rows:
        line = f"{row['name']:<28} {row['state']}"
        if row["state"] == "partial":
            line += f" (epoch {row['epoch']} of {row['epochs']})"
        if row["minutes_left"] is not None:
            line += f"  ~{row['minutes_left']:.0f} min left"
        print(line)
    todo = [r for r in rows if r["state"] != "done"]
    known = [r["minutes_left"] for r in todo if r["minutes_left"] is not None]
    line = f"{len(rows) - len(todo)} of {len(rows)} done"
    if todo:
        line += (f"; {len(todo)} to train, ~{sum(known) / 60:.1f} lane-hours for the "
                 f"{len(known)} with a pace (their own last epochs, or their model's "
                 "finished runs)")
    print(line)


def paper_gap(paper: dict, label: str, base: dict | None) -> float | None:
    """The paper's own gap of a group to the baseline's, where both figures are numbers."""
    try:
        return float(paper.get(label, "")) - float(paper.get(base["label"], "")) if base else None
    except ValueError:
        return None


def paper_cell(paper: dict, label: str, base: dict | None) -> str:
    """The paper's figure for a group and, where both are numbers, its gap to the baseline's."""
    gap = paper_gap(paper, label, base) if base and label != base["label"] else None
    mine = paper.get(label, "")
    return mine if gap is None else f"{mine} ({gap:+.2f})"


def against_paper(w: dict, gap: float | None) -> str:
    """Where the paper's own gap lies outside our 95% interval, the effect at this budget
    differs from the paper's: say so, because "no difference detected" alone reads as if the
    paper's gap were still possible."""
    if gap is None:
        return ""
    lo, hi = w["ci95"]
    if lo <= gap <= hi:
        return ""
    return f"; the paper's gap ({gap:+.2f}) lies {'above' if gap > hi else 'below'} the interval"


def compare_pairs(rows: list[dict], pairs: list[list[str]], paper: dict) -> list[str]:
    """The campaign's own `compare` pairs, where one baseline does not fit the question (a depth
    study compares two families at each depth): each pair's difference of final top-1, its 95%
    interval, Welch's p and the verdict, kept on the first group's row as `pairs`."""
    if not pairs:
        return []
    by_label = {g["label"]: g for g in rows}
    lines = ["", "Pairs (the campaign's `compare`): the first group's final top-1 minus the "
             "second's; the paper column gives the paper's own gap where it has both figures.",
             "", "| group | against | n | difference [95% CI] | p | verdict | paper |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for a, b in pairs:
        ga, gb = by_label.get(a), by_label.get(b)
        n = f"{len(ga['final']) if ga else 0} / {len(gb['final']) if gb else 0}"
        gap = paper_gap(paper, a, {"label": b})
        paper_text = "" if gap is None else f"{gap:+.2f}"
        if ga is None or gb is None or len(ga["final"]) < 2 or len(gb["final"]) < 2:
            lines.append(f"| {a} | {b} | {n} | - | - | needs n >= 2 finished on both sides | "
                         f"{paper_text} |")
            continue
        w = welch(ga["final"], gb["final"])
        ga.setdefault("pairs", {})[b] = w
        lines.append(f"| {a} | {b} | {n} | {w['diff']:+.2f} [{w['ci95'][0]:+.2f}, "
                     f"{w['ci95'][1]:+.2f}] | {w['p']:.3f} | {verdict(w)}"
                     f"{against_paper(w, gap)} | {paper_text} |")
    return lines


def report(camp: Campaign, baseline: str | None, out: str) -> dict:
    """Per group of runs that differ only in their seed: n, mean +- sd of the final and best
    validation top-1, and against the baseline group: the difference of final top-1 with its
    95% interval and Welch's two-sided p-value, in words. Writes OUT.md, OUT.json and, with the
    `plots` extra, OUT.png (benchmarks/campaign_figure.py)."""
    groups: dict[str, dict] = {}
    for run in camp.spec["runs"]:
        if not camp.done(run["name"]):
            continue
        with open(os.path.join(camp.result_dir(run["name"]), "summary.json")) as f:
            summary = json.load(f)
        key = json.dumps({k: v for k, v in run["config"].items() if k != "seed"},
                         sort_keys=True)
        g = groups.setdefault(key, {"label": run["config"]["model"], "runs": [], "final": [],
                                    "best": [], "minutes": [], "params": summary["params"]})
        g["runs"].append(run["name"])
        g["final"].append(summary["final_val_top1"])
        g["best"].append(summary["best_val_top1"])
        g["minutes"].append(summary["wall_seconds"] / 60)
    rows = list(groups.values())
    # Groups of one model with other arguments (a design study's `anynet` nets) are named by
    # their runs' common name, less the seed suffix: `regnetx_m0055_s0` -> `regnetx_m0055`.
    shared = {g["label"] for g in rows if sum(h["label"] == g["label"] for h in rows) > 1}
    for g in rows:
        if g["label"] in shared:
            g["label"] = re.sub(r"_s\d+$", "", g["runs"][0])
    base = next((g for g in rows if g["label"] == baseline), rows[0] if rows else None)
    paper = camp.spec.get("paper", {})
    lines = [f"# {camp.spec['name']}: {camp.spec.get('description', '')}", "",
             f"Validation top-1 (%) of finished runs, mean ± sd over seeds (one run: its "
             "value); the difference is final top-1 against "
             f"{base['label'] if base else '-'}, with its 95% interval and Welch's two-sided "
             "p-value; the paper column gives the paper's figure and its own gap to the "
             "baseline.", "",
             "| model | n | params | final top-1 | best top-1 | minutes | vs baseline | p | "
             "verdict | paper |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for g in rows:
        cmp = ""
        if g is not base and base and len(g["final"]) > 1 and len(base["final"]) > 1:
            g["welch"] = welch(g["final"], base["final"])
            w = g["welch"]
            cmp = (f"{w['diff']:+.2f} [{w['ci95'][0]:+.2f}, {w['ci95'][1]:+.2f}] | "
                   f"{w['p']:.3f} | {verdict(w)}"
                   f"{against_paper(w, paper_gap(paper, g['label'], base))}")
        else:
            cmp = "- | - | " + ("baseline" if g is base else "needs n >= 2 on both sides")
        lines.append(f"| {g['label']} | {len(g['final'])} | {g['params']:,} | "
                     f"{mean_std(g['final'])} | {mean_std(g['best'])} | "
                     f"{sum(g['minutes']) / len(g['minutes']):.0f} | {cmp} | "
                     f"{paper_cell(paper, g['label'], base)} |")
    lines += compare_pairs(rows, camp.spec.get("compare", []), paper)
    if camp.spec.get("paper_note"):
        lines += ["", f"Paper column: {camp.spec['paper_note']}"]
    lines += ["", f"Runs: {', '.join(r for g in rows for r in g['runs'])}. Each run's command, "
              f"commit and machine: {os.path.relpath(camp.results, ROOT)}/<run>/run.json.", ""]
    try:
        png = draw(rows, base, {g["label"]: paper_gap(paper, g["label"], base) for g in rows},
                   camp.results, out + ".png", f"{camp.spec['name']}: "
                   f"{camp.spec.get('description', '')}")
        lines += [f"![{camp.spec['name']}]({os.path.basename(png)})", ""]
    except MissingExtraError as err:
        print(f"no figure: {err}", file=sys.stderr)
    atomic_write_text(out + ".md", "\n".join(lines))
    atomic_write_text(out + ".json", json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))
    return {"groups": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("campaign", help="the campaign's YAML file")
    p.add_argument("--lanes", type=int, default=1, help="trainings side by side")
    p.add_argument("--cores", default=None,
                   help="cores to use, e.g. 0-1 or 0,1 (default: this process's affinity)")
    p.add_argument("--results", default=None,
                   help="results folder (default benchmarks/results/<campaign name>)")
    p.add_argument("--runs-dir", default=None, help="run folders (default runs/<campaign>)")
    p.add_argument("--only", nargs="+", default=None, help="run only these names")
    p.add_argument("--max-runs", type=int, default=None, help="start at most N runs")
    p.add_argument("--stop-starting-after", type=float, default=None, metavar="MIN",
                   help="start no run after MIN minutes (a session's budget)")
    p.add_argument("--stop-after", type=float, default=None, metavar="MIN",
                   help="after MIN minutes, end each run at its next epoch boundary, once "
                   "that epoch's checkpoint is kept, and start no run (a session's end)")
    p.add_argument("--list", action="store_true", help="show which runs are done and stop")
    p.add_argument("--report", metavar="OUT", default=None,
                   help="write OUT.md / OUT.json / OUT.png: the statistics of the finished "
                   "runs and their figure, and stop")
    p.add_argument("--baseline", default=None,
                   help="the model the report compares with (default: the first group's)")
    args = p.parse_args(argv)

    try:
        spec = load_campaign(args.campaign)
    except (OSError, CampaignError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    results = args.results or os.path.join(ROOT, "benchmarks", "results", spec["name"])
    runs_dir = args.runs_dir or os.path.join("runs", spec["name"])
    camp = Campaign(spec, results, runs_dir)
    if args.report:
        report(camp, args.baseline, args.report)
        return 0
    if args.list:
        print_progress(camp.progress())
        return 0
    todo = camp.missing()
    if args.only:
        unknown = set(args.only) - {r["name"] for r in spec["runs"]}
        if unknown:
            raise SystemExit(f"error: no run named {', '.join(sorted(unknown))} in "
                             f"{args.campaign}")
        todo = [r for r in todo if r["name"] in args.only]
    # Started runs first, the furthest along first: a session then finishes whole runs rather
    # than leaving more of them part-trained. Otherwise the YAML's order.
    epochs = {r["name"]: camp.partial_epoch(r["name"]) for r in todo}
    todo.sort(key=lambda r: (epochs[r["name"]] is None, -(epochs[r["name"]] or 0)))
    if args.max_runs is not None:
        todo = todo[:args.max_runs]
    cores = _parse_cores(args.cores) if args.cores else sorted(os.sched_getaffinity(0))
    lanes = max(1, min(args.lanes, len(cores)))
    per_lane = len(cores) // lanes
    lane_cores = [cores[i * per_lane:(i + 1) * per_lane] for i in range(lanes)]
    start = time.monotonic()
    stop_at = None if args.stop_after is None else start + 60 * args.stop_after
    # Past either limit a lane starts nothing: --stop-after also ends the runs under way.
    limits = [start + 60 * m for m in (args.stop_starting_after, args.stop_after) if m is not None]
    last_start = min(limits, default=None)
    queue, failed, stopped = list(todo), [], []
    print(f"{spec['name']}: {len(spec['runs']) - len(camp.missing())} of {len(spec['runs'])} "
          f"runs done, {len(todo)} to run in {lanes} lane(s)", flush=True)

    def log(msg: str) -> None:
        with camp.lock:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def lane(my_cores: list[int]) -> None:
        while True:
            with camp.lock:
                if not queue or (last_start is not None and time.monotonic() >= last_start):
                    return
                run = queue.pop(0)
            status = camp.train(run, my_cores, log, stop_at)
            if status == "failed":
                failed.append(run["name"])
            elif status == "stopped":
                stopped.append(run["name"])

    threads = [threading.Thread(target=lane, args=(c,)) for c in lane_cores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    left = len(camp.missing())
    print(f"{spec['name']}: {len(spec['runs']) - left} of {len(spec['runs'])} runs done"
          + (f"; stopped part-way: {', '.join(stopped)}" if stopped else "")
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


def _parse_cores(text: str) -> list[int]:
    cores = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cores += list(range(int(lo), int(hi or lo) + 1))
    return cores


if __name__ == "__main__":
    sys.exit(main())
