"""Population studies: sample a design space into a folder, train every model, resumably.

A study folder holds
    study.json      what was sampled: space, band, bounds, seed, preset, the shared recipe
    configs.jsonl   one sampled model per line (id, space parameters, AnyNet config, counts)
    results.jsonl   one line per finished model, appended as each finishes
    runs/<id>/      each model's training run (checkpoints, history, summary.json)

A model with a line in results.jsonl is finished and never retrained; a killed study re-run
with the same command trains only the rest, and a model killed mid-training resumes from its
last checkpoint (`regnet.train.train` resumes from its `out`). Only the parent process writes
results.jsonl, one complete line per model (flushed and fsynced), so a kill can at worst leave a
torn last line, which is ignored on reading.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from multiprocessing import get_context

from regnet.atomic import atomic_write_text

from .presets import get_preset
from .spaces import Constraints, ModelBase, get_space, sample_space

__all__ = ["create_study", "load_study", "draw_key", "study_jobs", "run_study", "run_jobs",
           "train_job", "worker_threads", "StudyError"]

FORMAT = "regnet-study-1"


class StudyError(ValueError):
    """A study folder that is missing, malformed or would be overwritten."""


def read_jsonl(path: str) -> list[dict]:
    """Records of a JSON-lines file; a torn (unparseable) line, e.g. from a kill, is skipped."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def study_train(preset, base: ModelBase, train: dict | None) -> dict:
    """The training keys a new study records, so `study run` knows what data its models are
    for: the preset's recipe, else the paper's regime when the models are the paper's
    224x224 ImageNet ones; `train` (the caller's keys, e.g. a dataset) goes on top."""
    own = dict(preset.train) if preset else (
        dict(get_preset("paper").train) if base == ModelBase() else {})
    return {**own, **(train or {})}


def check_train_data(train: dict, path: str) -> None:
    """Refuse a study run that has no dataset, or a dataset without its folder, before any of
    its models is trained (rather than failing each of them)."""
    dataset = train.get("dataset")
    if not dataset:
        raise StudyError(f"study {path} records no dataset: give one with `--set dataset=NAME "
                         f"--data-dir DIR` (or sample with --dataset / a --preset)")
    if dataset != "digits" and not train.get("data_dir"):
        raise StudyError(f"study {path} trains on {dataset}: give its folder with --data-dir")


def create_study(out: str, space: str, n: int | None = None, flops=None, seed: int = 0,
                 preset: str | None = None, base: ModelBase | None = None,
                 constraints: Constraints | None = None, train: dict | None = None) -> dict:
    """Sample `n` models of `space` into a new study folder; returns study.json's content.

    `preset` supplies the defaults (band, input, stem, n, recipe); explicit arguments win.
    """
    if os.path.exists(os.path.join(out, "study.json")):
        raise StudyError(f"{out} already holds a study; choose another --out")
    p = get_preset(preset) if preset else None
    base = base or (p.base if p else ModelBase())
    if constraints is None:
        if flops is None and p is None:
            raise StudyError("give a FLOP band (e.g. --flops 360M:400M) or a --preset")
        constraints = p.constraints(flops) if p else Constraints.paper_bounds(tuple(flops))
    n = n or (p.n if p else None)
    if not n:
        raise StudyError("give the number of models (-n)")
    space_obj = get_space(space)
    records, report = sample_space(space_obj, n, constraints, base, seed)
    meta = {"format": FORMAT, "space": space_obj.name, "description": space_obj.description,
            "n": n, "seed": seed, "preset": preset, "constraints": asdict(constraints),
            "base": asdict(base), "train": study_train(p, base, train),
            "sampling": {"tried": report.tried, "seconds": round(report.seconds, 3),
                         "rejected": report.rejected},
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_study(out, records, meta)
    return meta


def read_record(path: str, fmt: str, missing: str) -> dict:
    """A folder's JSON record (study.json, chain.json), refused with `missing` when absent and
    when its format is not `fmt`."""
    if not os.path.exists(path):
        raise StudyError(missing)
    with open(path) as f:
        record = json.load(f)
    if record.get("format") != fmt:
        raise StudyError(f"{path}: unknown format {record.get('format')!r}")
    return record


def write_study(out: str, records: list[dict], meta: dict) -> None:
    """configs.jsonl, then study.json (whose presence marks a complete study folder)."""
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "configs.jsonl"),
                      "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_text(os.path.join(out, "study.json"), json.dumps(meta, indent=2) + "\n")


def load_study(path: str) -> tuple[dict, list[dict], dict[str, dict]]:
    """(study.json, sampled configs, results by model id)."""
    meta = read_record(os.path.join(path, "study.json"), FORMAT,
                       f"{path} is not a study folder (no study.json); create one with "
                       f"`regnet study sample ... --out {path}`")
    configs = read_jsonl(os.path.join(path, "configs.jsonl"))
    results = {r["id"]: r for r in read_jsonl(os.path.join(path, "results.jsonl"))}
    return meta, configs, results


def draw_key(params: dict) -> str:
    """A model's sampled parameters as a key: two populations sampled with one seed from spaces
    that differ in one fixed choice (RegNetX / RegNetY: SE or not) share most draws."""
    return json.dumps(params, sort_keys=True)


def study_jobs(path: str, recipe: dict | None = None, overrides: dict | None = None,
               threads: int | None = None, ids=None) -> list[dict]:
    """The training jobs of the models without a result yet (only those in `ids` if given).

    Recipe resolution: the study's recipe (from its preset) < `recipe` < `overrides`; the model
    and its output folder always come from the study.
    """
    meta, configs, results = load_study(path)
    train = {**meta.get("train", {}), **(recipe or {}), **(overrides or {})}
    if threads:
        train["threads"] = threads
    train.setdefault("seed", meta.get("seed", 0))
    wanted = None if ids is None else set(ids)
    jobs = []
    for rec in configs:
        if rec["id"] in results or (wanted is not None and rec["id"] not in wanted):
            continue
        cfg = dict(train, model=rec["model"], model_args=rec["model_args"],
                   out=os.path.join(path, "runs", rec["id"]))
        jobs.append({"id": rec["id"], "study": path, "train": cfg})
    return jobs


def train_job(job: dict) -> dict:
    """Train one sampled model (runs in a worker process or a Ray task)."""
    from regnet.train import NonFiniteLossError, TrainConfig, train
    cfg = TrainConfig.from_dict(job["train"])
    start = time.time()
    try:
        summary = train(cfg)
    except NonFiniteLossError as err:
        # A diverged model is a result of the study (the paper keeps such models out of
        # the error EDF but counts them); it is recorded, not retried.
        return {"id": job["id"], "status": "diverged", "reason": str(err),
                "seconds": round(time.time() - start, 1)}
    top1 = summary.get("best_val_top1")
    if top1 is None:
        raise ValueError(f"{job['id']}: training reported no validation accuracy; the study "
                         f"needs a validation split (set val_split)")
    return {"id": job["id"], "status": "ok", "error": round(100.0 - top1, 4),
            "best_val_top1": top1, "final_val_top1": summary.get("final_val_top1"),
            "epochs": summary.get("epochs"), "params": summary.get("params"),
            "flops": summary.get("flops"), "seconds": round(time.time() - start, 1)}


def _append_result(path: str, result: dict) -> None:
    result = dict(result, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    file = os.path.join(path, "results.jsonl")
    # A kill mid-append leaves a torn last line: start on a fresh line so this record is whole.
    torn = False
    if os.path.exists(file) and os.path.getsize(file):
        with open(file, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(file, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(result) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _local(jobs, workers: int, on_result, on_error) -> None:
    if workers <= 1:
        for job in jobs:
            try:
                on_result(job, train_job(job))
            except Exception as err:  # noqa: BLE001  (one model's failure must not stop a study)
                on_error(job, err)
        return
    # spawn: workers start clean (no inherited torch thread pools or open files).
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(train_job, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    on_result(job, fut.result())
                except Exception as err:  # noqa: BLE001
                    on_error(job, err)


def _ray(jobs, workers: int, threads: int, address: str | None, on_result, on_error) -> None:
    try:
        import ray
    except ImportError:
        raise StudyError("--backend ray needs ray: pip install 'regnet[ray]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": max(workers * threads, 1)}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        task = ray.remote(num_cpus=threads)(train_job)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    on_result(job, ray.get(ref))
                except Exception as err:  # noqa: BLE001
                    on_error(job, err)
    finally:
        if started:
            ray.shutdown()


def worker_threads(workers: int, recipe: dict | None = None,
                   overrides: dict | None = None) -> int:
    """Threads per worker: the recipe's `threads`, else this process's cores shared out."""
    if workers < 1:
        raise StudyError(f"workers must be >= 1, got {workers}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int((overrides or {}).get("threads") or (recipe or {}).get("threads") or
               max(1, (cores or 1) // workers))


def run_jobs(jobs: list[dict], workers: int = 1, backend: str = "local",
             ray_address: str | None = None, threads: int = 1, log=print) -> dict:
    """Train `jobs` (from `study_jobs`, possibly of several studies), `workers` at a time; each
    result goes to its own study's results.jsonl as it finishes. Returns counts."""
    if backend not in ("local", "ray"):
        raise StudyError(f"unknown backend {backend!r}; expected local or ray")
    # what each study trains with, for its report (the latest run's settings)
    first: dict[str, dict] = {}
    for job in jobs:
        first.setdefault(job["study"], job)
    for path, job in first.items():
        record_run(path, job, backend, workers)
    counts = {"trained": 0, "diverged": 0, "failed": 0}

    def on_result(job, result):
        _append_result(job["study"], result)
        counts["trained" if result["status"] == "ok" else "diverged"] += 1
        err = f"error {result['error']:.2f}%" if result["status"] == "ok" else result["status"]
        where = os.path.basename(os.path.normpath(job["study"]))
        log(f"  {where}/{result['id']}: {err} ({result['seconds']} s) "
            f"[{counts['trained'] + counts['diverged']}/{len(jobs)}]")

    def on_error(job, err):
        # Not recorded: a crash (bad data path, out of memory) is retried on the next run.
        counts["failed"] += 1
        log(f"  {job['id']}: FAILED: {type(err).__name__}: {err}")

    if jobs and backend == "local":
        _local(jobs, workers, on_result, on_error)
    elif jobs:
        _ray(jobs, workers, threads, ray_address, on_result, on_error)
    sys.stdout.flush()
    return counts


def run_study(path: str, recipe: dict | None = None, overrides: dict | None = None,
              workers: int = 1, backend: str = "local", ray_address: str | None = None,
              limit: int | None = None, log=print) -> dict:
    """Train every model of the study that has no result; returns counts of what happened."""
    threads = worker_threads(workers, recipe, overrides)
    meta, configs, done_before = load_study(path)
    check_train_data({**meta.get("train", {}), **(recipe or {}), **(overrides or {})}, path)
    jobs = study_jobs(path, recipe, overrides, threads)
    if limit is not None:
        jobs = jobs[:limit]
    log(f"{path}: {len(configs)} models, {len(done_before)} done, training {len(jobs)} "
        f"({backend}, {workers} worker(s) x {threads} thread(s))")
    counts = run_jobs(jobs, workers, backend, ray_address, threads, log)
    return {"models": len(configs), "already_done": len(done_before), **counts}


def record_run(path: str, job: dict, backend: str, workers: int) -> None:
    """run.json: the shared training keys of the study's latest run."""
    shared = {k: v for k, v in job["train"].items() if k not in ("model", "model_args", "out")}
    atomic_write_text(os.path.join(path, "run.json"),
                      json.dumps({"train": shared, "backend": backend, "workers": workers},
                                 indent=2) + "\n")
