"""`train(cfg)` = `fit(setup_run(cfg))`: build data and model once, resume from `cfg.out` when a
run is there, then train, evaluate, checkpoint, log; returns the summary (also summary.json).

Resumption is exact at epoch boundaries: every random stream (shuffling, augmentation, dropout)
is re-seeded from (seed, epoch, rank) at the start of each epoch, and the checkpoint holds the
raw weights, optimiser, EMA, step and history; an epoch interrupted half-way is simply re-run.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field

import torch

from regnet.atomic import sweep_stale
from regnet.complexity import complexity
from regnet.data import DataSplits, build_datasets, default_augment, make_loader
from regnet.models.convert import load_weights
from regnet.models.factory import create_model
from regnet.pretrained import resolve_pretrained
from regnet.log import ensure_console, get_logger, log_to_file
from regnet.registry import ModelEntry, get_entry

from . import records
from .checkpoint import FORMAT, export_safetensors, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import DistInfo, barrier, init_distributed, shutdown, sync_buffers
from .ema import ModelEma
from .engine import (NonFiniteLossError, Progress, StepState, evaluate, resolve_amp,
                     resolve_device, train_one_epoch)
from .optim import build_optimizer, freeze


log = get_logger("train")


class RunDirError(ValueError):
    """The output folder holds a different run."""


# Config keys a resumed run may change: where and how it reports, how many threads / workers
# compute the same numbers, and how long it runs (`epochs`, to extend a finished run). Any other
# difference would mix two configurations in one run folder, so resuming refuses it.
RESUME_MAY_CHANGE = frozenset({"out", "tensorboard", "progress", "log_every", "epochs",
                               "threads", "num_workers", "cache_dir", "compile",
                               "compile_mode"})


def config_changes(saved: dict, new: dict) -> dict[str, tuple]:
    """{key: (saved value, new value)} for the keys a resumed run may not change. A key missing
    from an older checkpoint's config counts as its default; data folders compare by real
    path, so a relative and an absolute spelling of one folder are the same."""
    saved = {**TrainConfig().to_dict(), **saved}

    def norm(key, value):
        if key == "data_dir" and value:
            return os.path.realpath(value)
        return list(value) if isinstance(value, tuple) else value

    return {k: (saved.get(k), v) for k, v in new.items()
            if k not in RESUME_MAY_CHANGE and norm(k, saved.get(k)) != norm(k, v)}


def free_cores() -> tuple[int, int, float]:
    """(cores this process may use, of them the ones other work leaves free, 1-min load).

    The load average counts runnable threads of every process; a core another job keeps busy
    makes a second compute thread here wait on it at each parallel region (measured: 2 threads
    beside a busy core ran a demo epoch 3.4x slower than 1 thread)."""
    cores = len(os.sched_getaffinity(0))
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores, cores, 0.0
    return cores, max(1, min(cores, cores - int(load + 0.25))), load


def configure_runtime(cfg: TrainConfig, dist: DistInfo) -> int:
    """Threads (the free cores, shared among this machine's ranks; or `cfg.threads`) and
    deterministic mode."""
    threads = cfg.threads
    if not threads:
        cores, free, load = free_cores()
        threads = max(1, free // dist.local_world_size)
        if free < cores and dist.is_main:
            log.info(f"using {threads} thread(s) per process: {cores - free} of {cores} cores "
                     f"are busy with other work (1-min load {load:.1f}); --threads N overrides")
    torch.set_num_threads(threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:  # fixed input shapes: let cuDNN time its algorithms once and keep the fastest
        torch.backends.cudnn.benchmark = True
    return threads


def check_run_dir(cfg: TrainConfig, entry: ModelEntry) -> dict | None:
    """The previous run's checkpoint to resume from, if `cfg.out` holds one of this model
    (`entry`) on this dataset; an error if it holds another's."""
    previous = records.read_config(cfg.out)
    last = os.path.join(cfg.out, "last.pt")
    ckpt = load_checkpoint(last) if os.path.exists(last) else None
    if ckpt is not None:
        previous = ckpt["config"]
    if previous is None:
        return None
    theirs = (get_entry(previous.get("model", "?")).name if previous.get("model") else "?",
              previous.get("dataset"))
    ours = (entry.name, cfg.dataset)
    if theirs != ours:
        raise RunDirError(f"output folder {cfg.out} holds a run of {theirs[0]} on {theirs[1]}, "
                          f"not {ours[0]} on {ours[1]}; choose another --out")
    if ckpt is not None:
        changed = config_changes(ckpt["config"], cfg.to_dict())
        if changed:
            diff = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise RunDirError(f"output folder {cfg.out} holds a run of epoch {ckpt['epoch']} "
                              f"with other settings ({diff}); resume it with its own settings "
                              f"(only {', '.join(sorted(RESUME_MAY_CHANGE - {'out'}))} may "
                              f"change) or choose another --out")
    return ckpt


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed((cfg.seed * 1_000_003 + epoch * 10_007 + rank * 101 + 7) % (2 ** 63))


def _summary(cfg, history, extra) -> dict:
    vals = [r for r in history if r.get("val_top1") is not None]
    best = max(vals, key=lambda r: r["val_top1"]) if vals else None
    last = history[-1] if history else {}
    return {"model": cfg.model, "dataset": cfg.dataset, "recipe": cfg.recipe,
            "epochs": len(history),
            "best_val_top1": best["val_top1"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            "final_val_top1": last.get("val_top1"), "final_val_top5": last.get("val_top5"),
            "final_val_loss": last.get("val_loss"), "final_train_loss": last.get("train_loss"),
            "wall_seconds": last.get("wall_seconds", 0.0),
            "mean_images_per_sec": (sum(r["images_per_sec"] for r in history) / len(history)
                                    if history else None),
            **extra}


@dataclass
class Run:
    """Everything a training run is made of, built once by `setup_run` and driven by `fit`."""

    cfg: TrainConfig
    dist: DistInfo
    device: torch.device
    threads: int
    splits: DataSplits
    train_loader: object
    eval_loader: object | None
    net: torch.nn.Module                # the raw network (its weights are what is saved)
    model: torch.nn.Module              # what steps: net, wrapped in DDP / torch.compile
    eval_model: torch.nn.Module         # what is evaluated and exported: the EMA, else net
    optimizer: torch.optim.Optimizer
    ema: ModelEma | None
    amp_dtype: torch.dtype | None
    scaler: object | None
    state: StepState
    meta: dict                          # what every checkpoint records besides its tensors
    extra: dict                         # the run's facts for summary.json
    history: list = field(default_factory=list)
    wall_before: float = 0.0            # seconds spent by the run before this resumption


def setup_run(cfg: TrainConfig, dist: DistInfo | None = None, device: torch.device | None = None,
              *, splits: DataSplits | None = None, resume: bool = True) -> Run:
    """Data, model, optimiser, EMA, precision and the resumed state, each built once.

    `splits` replaces `build_datasets(cfg...)` (benchmarks hand in synthetic data);
    `resume=False` ignores a run already in `cfg.out`. Nothing is written to disk here.
    """
    dist = dist or DistInfo()
    device = device or resolve_device(cfg.device)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    threads = configure_runtime(cfg, dist)
    entry = get_entry(cfg.model)
    ckpt = check_run_dir(cfg, entry) if resume else None
    torch.manual_seed(cfg.seed)

    # Data: every rank builds the same splits (the split depends on the seed only).
    if splits is None:
        splits = build_datasets(cfg.dataset, cfg.data_dir, cfg.val_split, cfg.split_seed,
                                train_subset=cfg.train_subset, image_size=cfg.image_size,
                                cache_dir=cfg.cache_dir, data_mode=cfg.data_mode)
    size = cfg.image_size or splits.train.image_size[0]
    augment = default_augment(cfg.dataset, size) if cfg.augment == "auto" else cfg.augment
    mean, std = splits.info["mean"], splits.info["std"]
    if cfg.batch_size % dist.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the "
                         f"{dist.world_size} processes")
    workers = cfg.num_workers
    if workers is None and dist.local_world_size > 1:  # decoding cores shared among ranks
        workers = max(1, len(os.sched_getaffinity(0)) // dist.local_world_size)
    common = dict(image_size=size, mean=mean, std=std, seed=cfg.seed, rank=dist.rank,
                  world_size=dist.world_size, channels_last=cfg.channels_last, device=device,
                  fast=cfg.fast_data, num_workers=workers)
    train_loader = make_loader(splits.train, cfg.batch_size // dist.world_size, train=True,
                               augment=augment, crop=cfg.crop_flip, **common)
    eval_name = splits.eval_split
    eval_loader = (make_loader(splits.split(eval_name), max(cfg.batch_size // dist.world_size, 64),
                               train=False, augment=augment, **common)
                   if eval_name else None)

    # Model, optimiser, EMA, precision.
    num_classes = splits.train.num_classes
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ValueError(f"--num-classes {cfg.num_classes}: the {cfg.dataset} data has "
                         f"{num_classes} classes")
    net = create_model(entry.name, num_classes=num_classes, **cfg.model_args)
    counts = complexity(net, (3, size, size))
    if cfg.init_from and ckpt is None:  # a resumed run has its own weights already
        path, source = resolve_pretrained(entry.name, cfg.init_from)
        fresh = load_weights(net, path, source)
        if dist.is_main:
            log.info(f"initialised from {path}" + (f"; re-initialised {', '.join(fresh)} for "
                                                   f"{num_classes} classes" if fresh else ""))
    frozen = freeze(net, cfg.freeze)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = net.to(device).to(memory_format=memory_format)
    optimizer = build_optimizer(net, cfg)
    ema = ModelEma(net, cfg.ema_decay) if cfg.ema_decay > 0 else None
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = (torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None)

    state, history, wall_before = StepState(), [], 0.0
    if ckpt is not None:
        ts = ckpt["train_state"]
        net.load_state_dict(ts["model"])
        optimizer.load_state_dict(ts["optimizer"])
        if ema is not None and ts.get("ema") is not None:
            ema.load_state_dict(ts["ema"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        state = StepState(int(ts["epoch"]), int(ts["step"]))
        history = list(ts["history"])
        wall_before = float(ts["wall_seconds"])

    model = net
    if dist.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model, mode=None if cfg.compile_mode == "default"
                              else cfg.compile_mode)

    extra = {"params": counts["params"], "flops": counts["flops"], "num_classes": num_classes,
             "frozen_params": sum(net.get_parameter(n).numel() for n in frozen),
             "train_images": len(splits.train),
             "data_mode": splits.info.get("data_mode", "memory"), "eval_split": eval_name,
             "eval_images": len(eval_loader.ds) if eval_loader else 0,
             "fast_data": cfg.fast_data, "device": str(device),
             "cpu": platform.processor() or platform.machine(), "threads": threads,
             "world_size": dist.world_size,
             "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
             "channels_last": cfg.channels_last, "torch": torch.__version__, "out": cfg.out}
    meta = {"format": FORMAT, "model": entry.name, "model_args": cfg.model_args,
            "num_classes": num_classes, "dataset": cfg.dataset, "classes": list(splits.classes),
            "mean": mean, "std": std, "image_size": size, "augment": augment,
            "recipe": cfg.recipe, "config": cfg.to_dict(),
            # Where the data was, absolute: `regnet eval` finds it from any working directory.
            "data_root": os.path.realpath(cfg.data_dir) if cfg.data_dir else None}
    return Run(cfg, dist, device, threads, splits, train_loader, eval_loader, net, model,
               ema.module if ema is not None else net, optimizer, ema, amp_dtype, scaler, state,
               meta, extra, history, wall_before)


def train(cfg: TrainConfig) -> dict:
    """Set up and fit one run; its messages also go to OUT/train.log (rank 0)."""
    ensure_console()
    device = resolve_device(cfg.device)
    dist = init_distributed(device.type)
    try:
        with log_to_file(os.path.join(cfg.out, "train.log") if dist.is_main else None):
            return fit(setup_run(cfg, dist, device))
    finally:
        shutdown(dist)


def fit(run: Run) -> dict:
    """Train `run` to `cfg.epochs`, validating, checkpointing and logging every epoch."""
    cfg, dist, device, state, history = run.cfg, run.dist, run.device, run.state, run.history
    net, eval_model, meta = run.net, run.eval_model, run.meta
    main = dist.is_main
    if main:
        os.makedirs(cfg.out, exist_ok=True)
        for stale in sweep_stale(cfg.out):  # a save interrupted by kill -9 in an earlier run
            log.info(f"removed {stale}, left by an interrupted save")
        if not state.epoch:  # a resumed run's config.yaml is rewritten with its next checkpoint
            records.write_config(cfg.out, cfg.to_dict())
        records.write_history(cfg.out, history)
        if state.epoch:
            log.info(f"resuming {cfg.out} from epoch {state.epoch} (step {state.step})")
    tb = records.TensorBoardLog(cfg.out, cfg.tensorboard and main, state.epoch)
    best_top1 = max((r["val_top1"] for r in history if r.get("val_top1") is not None),
                    default=None)
    last_path, best_path = os.path.join(cfg.out, "last.pt"), os.path.join(cfg.out, "best.pt")
    run_start = time.perf_counter()
    if cfg.init_from and not state.epoch and run.eval_loader is not None:
        # Where fine-tuning starts: the loaded weights' accuracy on this run's split.
        ev = evaluate(eval_model, run.eval_loader, device=device, amp_dtype=run.amp_dtype,
                      dist=dist, flip=cfg.eval_flip)
        run.extra["init_val_top1"] = ev["top1"]
        if main:
            log.info(f"epoch 0 (initial weights)  val loss {ev['loss']:.4f} top1 "
                     f"{ev['top1']:.2f}")
    try:
        while state.epoch < cfg.epochs:
            epoch = state.epoch + 1
            epoch_start = time.perf_counter()
            _seed_epoch(cfg, epoch, dist.rank)
            run.train_loader.set_epoch(epoch)
            progress = Progress(cfg.progress, len(run.train_loader), epoch, cfg.epochs, main,
                                log_every=cfg.log_every, world_size=dist.world_size)
            try:
                row = train_one_epoch(run.model, run.train_loader, run.optimizer, cfg, state,
                                      device=device, amp_dtype=run.amp_dtype, scaler=run.scaler,
                                      ema=run.ema, dist=dist, progress=progress, net=net)
            except NonFiniteLossError as err:
                kept = (f"the last good checkpoint is {last_path} (epoch {state.epoch})"
                        if os.path.exists(last_path) else "no epoch finished, so none was saved")
                raise NonFiniteLossError(f"{err}; {kept}") from None
            state.epoch = epoch
            row = {"epoch": epoch, **row}
            sync_buffers(eval_model, dist)
            if run.eval_loader is not None and (epoch % cfg.eval_every == 0
                                                or epoch == cfg.epochs):
                ev = evaluate(eval_model, run.eval_loader, device=device,
                              amp_dtype=run.amp_dtype, dist=dist, flip=cfg.eval_flip)
                row.update(val_loss=ev["loss"], val_top1=ev["top1"], val_top5=ev["top5"])
            row["seconds"] = time.perf_counter() - epoch_start
            row["wall_seconds"] = run.wall_before + time.perf_counter() - run_start
            history.append(row)
            if not main:
                continue
            weights = {k: v.detach().cpu() for k, v in eval_model.state_dict().items()}
            ckpt_meta = {**meta, "epoch": epoch, "val_top1": row.get("val_top1")}
            improved = row.get("val_top1") is not None and (best_top1 is None
                                                            or row["val_top1"] > best_top1)
            if improved or (best_top1 is None and epoch == cfg.epochs):
                best_top1 = row.get("val_top1")
                save_checkpoint(best_path, {**ckpt_meta, "state_dict": weights})
            train_state = {"model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                           "optimizer": run.optimizer.state_dict(),
                           "ema": run.ema.state_dict() if run.ema is not None else None,
                           "scaler": run.scaler.state_dict() if run.scaler is not None else None,
                           "epoch": state.epoch, "step": state.step, "history": history,
                           "wall_seconds": row["wall_seconds"]}
            save_checkpoint(last_path, {**ckpt_meta, "state_dict": weights,
                                        "train_state": train_state})
            records.write_config(cfg.out, cfg.to_dict())  # describes last.pt from now on
            records.write_history(cfg.out, history)
            tb.log(row)
            log.info(records.epoch_line(row, cfg.epochs))
            records.plot_curves(os.path.join(cfg.out, "curves.png"), history,
                                f"{meta['model']} on {cfg.dataset}")
    finally:
        tb.close()
    barrier(dist)
    summary = _summary(cfg, history, run.extra)
    if main:
        if os.path.exists(best_path):
            export_safetensors(load_checkpoint(best_path), os.path.join(cfg.out, "best.safetensors"))
        if history and not os.path.exists(os.path.join(cfg.out, "curves.png")):
            records.plot_curves(os.path.join(cfg.out, "curves.png"), history, meta["model"])
        records.write_json(os.path.join(cfg.out, "summary.json"), summary)
    return summary
