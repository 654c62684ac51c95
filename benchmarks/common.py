"""Shared pieces of the benchmark scripts: machine facts, result files, data, peak memory, and
the two training loops every speed figure compares.

The REFERENCE loop is what the popular CIFAR reference repositories do: the model in NCHW fp32,
eager mode, a standard `torch.utils.data.DataLoader` over a dataset that augments one sample at a
time (pad-4 random crop, horizontal flip, to float, normalise; the library's own
`regnet.data.ReferenceLoader`, which is also `regnet train --no-fast-data`), plain SGD with
momentum.

The FAST path is what `regnet train` does by default, called through the library's own code:
`regnet.data.InMemoryLoader` (uint8 images in memory, batched augmentation) feeding
`regnet.train.engine.train_one_epoch` (autocast, channels_last, the optimiser step), with the
model, optimiser and precision set up from a `TrainConfig` the way the trainer does.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from regnet.atomic import atomic_write_text
from regnet.data import ArrayDataset, DataSplits, InMemoryLoader, ReferenceLoader, build_datasets
from regnet.data.arrays import channel_stats
from regnet.models.factory import create_model
from regnet.train import TrainConfig
from regnet.train.engine import cpu_supports_bf16, train_one_epoch
from regnet.train.trainer import setup_run


# ---------------------------------------------------------------------------------------------
# Machine facts and result files

def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:  # other jobs on a shared machine change every figure; the load says how much
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
        # one CPU model name covers AVX2-only and AVX-512 + bf16 parts; the kernels (and what
        # --amp auto picks) differ between them
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": cpu_supports_bf16(),
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_1_5_15": load,
    }


def machine_line(mach: dict) -> str:
    """One line of the facts a reader needs to weigh a figure."""
    isa = mach.get("cpu_capability")
    isa = f" ({isa}{', bf16' if mach.get('bf16_native') else ''})" if isa else ""
    return (f"{mach['cpu']}{isa}, {mach['cores']} cores, torch {mach['torch']}, "
            f"{mach['threads']} threads, load {mach['load_avg_1_5_15']}, {mach['date']}")


def command_line() -> str:
    return " ".join([os.path.relpath(sys.argv[0]) if sys.argv[0] else "python", *sys.argv[1:]])


def write_result(path: str | None, result: dict, quiet: bool = False) -> None:
    """Print the result and, if asked, write it as one JSON file (atomically)."""
    text = json.dumps(result, indent=2, sort_keys=True)
    if not quiet:
        print(text)
    if path:
        atomic_write_text(path, text + "\n")


def parse_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise SystemExit("error: --models names no model")
    return models


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------------------------------------
# Sweeps of `regnet train` runs (seed_sweep.py, depth_study.py)

def parse_set(text: str) -> tuple[str, object]:
    """`--set KEY=VALUE` for a TrainConfig key; VALUE is read as YAML, as a recipe's would be
    (5 -> int, true -> bool, [80, 120] -> list)."""
    import yaml
    key, eq, value = text.partition("=")
    if not key.strip() or not eq:
        raise argparse.ArgumentTypeError(f"--set needs KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def train_flags(config: dict) -> list[str]:
    """TrainConfig keys as `regnet train` flags: booleans as --key / --no-key, lists as the
    values after one flag, `model_args` as --model-arg KEY=VALUE; None is left out."""
    flags = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key == "model_args":
            for k, v in value.items():
                flags += ["--model-arg", f"{k}={json.dumps(v, separators=(',', ':'))}"
                          if not isinstance(v, str) else f"{k}={v}"]
        elif isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def read_history(out: str) -> list[dict]:
    """A run folder's metrics.jsonl rows (none if it has not finished an epoch)."""
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_std(values: list[float], with_n: bool = False) -> str:
    if not values:
        return "-"
    n = f" (n={len(values)})" if with_n else ""
    if len(values) == 1:  # one run has no spread: "± 0.00" would claim one
        return f"{values[0]:.2f}{n}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}{n}"


# ---------------------------------------------------------------------------------------------
# Peak memory of one phase

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field))
    except (OSError, StopIteration):
        return None


def reset_peak_memory(device: torch.device) -> dict:
    """Start a fresh peak. The CPU high-water mark (VmHWM) can be reset only down to the
    current resident set, so memory the allocator kept from earlier phases still counts; the
    resident set at the start is returned with it so the phase's own growth can be read off.
    Where the reset is refused the figure is the whole process's peak (ru_maxrss)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:  # Linux >= 4.0: writing 5 resets the resident-set high-water mark of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        scoped = True
    except OSError:
        scoped = False
    return {"scoped": scoped, "start_kib": _status_kib("VmRSS:")}


def peak_memory(device: torch.device, start: dict) -> dict:
    rss_kib = _status_kib("VmHWM:") if start["scoped"] else None
    scoped = rss_kib is not None
    if rss_kib is None:
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = {"peak_rss_mib": round(rss_kib / 1024, 1),
           "peak_rss_scope": "phase" if scoped else "process"}
    if start["start_kib"] is not None:
        out["rss_at_start_mib"] = round(start["start_kib"] / 1024, 1)
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# Data

def synthetic_dataset(n: int, size: int = 32, num_classes: int = 10, seed: int = 0
                      ) -> ArrayDataset:
    """Random uint8 images shaped like CIFAR (N x size x size x 3) with random labels: the
    speed of a step does not depend on what the pixels show."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return ArrayDataset(images, labels, tuple(f"class{i}" for i in range(num_classes)))


def load_data(data_dir: str | None, n: int, size: int, seed: int = 0
              ) -> tuple[ArrayDataset, list, list, str]:
    """(dataset, mean, std, description): synthetic when `data_dir` is None, else the image
    folder read by the library's imagefolder reader (decoded once, then cached), `n` images of
    it (seeded subset; 0 = all)."""
    if data_dir is None:
        ds = synthetic_dataset(n, size, seed=seed)
        desc = f"synthetic uint8 {n}x{size}x{size}x3"
    else:
        splits = build_datasets("imagefolder", data_dir, 0, seed, train_subset=n or None,
                                image_size=size)
        ds = splits.train
        desc = f"imagefolder {data_dir} ({len(ds)} images, {size}x{size})"
    mean, std = channel_stats(ds.images)
    return ds, list(mean), list(std), desc


class FirstBatches:
    """The first `n` batches of a loader (moving on to further epochs if one is too short),
    with the loader interface `train_one_epoch` expects (`len`, iteration)."""

    def __init__(self, loader, n: int, first_epoch: int = 1):
        self.loader, self.n, self.epoch = loader, n, first_epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        done = 0
        while done < self.n:
            self.loader.set_epoch(self.epoch)
            self.epoch += 1
            for batch in self.loader:
                yield batch
                done += 1
                if done == self.n:
                    return


# ---------------------------------------------------------------------------------------------
# The two training loops

def fast_config(model: str, batch_size: int, amp: str = "auto", channels_last: bool = True,
                compile: bool = False, threads: int = 0, device: str = "auto") -> TrainConfig:
    """`regnet train`'s defaults with the knobs a benchmark varies."""
    return TrainConfig(model=model, batch_size=batch_size, amp=amp, channels_last=channels_last,
                       compile=compile, threads=threads, device=device, lr=0.05,
                       tensorboard=False, progress="none")


def reference_loader(ds: ArrayDataset, mean, std, batch_size: int, num_workers: int = 0,
                     device: str | torch.device = "cpu") -> ReferenceLoader:
    """The per-sample DataLoader, NCHW (what `regnet train --no-fast-data` uses)."""
    return ReferenceLoader(ds, batch_size, train=True, augment="cifar",
                           image_size=ds.image_size[0], mean=mean, std=std, channels_last=False,
                           device=device, num_workers=num_workers)


def fast_loader(ds: ArrayDataset, mean, std, batch_size: int, channels_last: bool = True,
                device: str | torch.device = "cpu", seed: int = 0) -> InMemoryLoader:
    """The in-memory batched loader (what `regnet train` uses by default)."""
    return InMemoryLoader(ds, batch_size, train=True, augment="cifar",
                          image_size=ds.image_size[0], mean=mean, std=std, seed=seed,
                          channels_last=channels_last, device=device)


def data_throughput(loader, steps: int, warmup: int = 1) -> dict:
    """images/s of producing augmented, normalised batches alone (no model)."""
    done, seen, t0 = 0, 0, time.perf_counter()
    for _, y in FirstBatches(loader, warmup + steps):
        if done == warmup:
            t0, seen = time.perf_counter(), 0
        done += 1
        seen += len(y)
    seconds = time.perf_counter() - t0
    return {"images_per_s": seen / seconds, "ms_per_batch": 1000 * seconds / steps,
            "steps": steps}


def reference_train_throughput(model_name: str, ds: ArrayDataset, mean, std, batch_size: int,
                               steps: int, warmup: int = 3, num_workers: int = 0,
                               device: str | torch.device = "cpu") -> dict:
    """images/s of the plain loop, data loading included. `num_workers=0` is the fair setting on
    a 2-core machine: worker processes compete with the model's own threads for the cores."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=ds.num_classes).to(device)
    loader = FirstBatches(reference_loader(ds, mean, std, batch_size, num_workers, device),
                          warmup + steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    mem = None
    done, seen, t0 = 0, 0, time.perf_counter()
    for x, y in loader:
        if done == warmup:
            sync(device)
            mem = reset_peak_memory(device)
            t0, seen = time.perf_counter(), 0
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += 1
        seen += len(y)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": seen / seconds, "ms_per_step": 1000 * seconds / steps,
            "steps": steps, "batch_size": batch_size, "dtype": "float32",
            "memory_format": "contiguous", "compile": False, "data": "per-sample DataLoader",
            **peak_memory(device, mem)}


class FastRun:
    """`regnet train`'s fast path, set up by the trainer's own `setup_run` (threads, device,
    memory format, optimiser, autocast dtype, compile, in-memory loader) on the benchmark's
    data; `epoch(n)` runs n steps of `train_one_epoch` on it. Shared by the throughput and
    profiling scripts."""

    def __init__(self, cfg: TrainConfig, ds: ArrayDataset, mean, std):
        splits = DataSplits("synthetic", ds, info={"mean": list(mean), "std": list(std)})
        self.run = setup_run(cfg, splits=splits, resume=False)
        self.cfg, self.net, self.device = cfg, self.run.net, self.run.device
        self.threads, self.amp_dtype = self.run.threads, self.run.amp_dtype

    @property
    def dtype(self) -> str:
        return str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32"

    def epoch(self, steps: int, first_epoch: int = 1) -> dict:
        run = self.run
        return train_one_epoch(run.model, FirstBatches(run.train_loader, steps, first_epoch),
                               run.optimizer, self.cfg, run.state, device=self.device,
                               amp_dtype=self.amp_dtype, dist=run.dist, net=self.net)


def fast_train_throughput(cfg: TrainConfig, ds: ArrayDataset, mean, std, steps: int,
                          warmup: int = 3) -> dict:
    """images/s of `regnet train`'s own loop (InMemoryLoader + train_one_epoch), data included."""
    run = FastRun(cfg, ds, mean, std)
    device = run.device
    warm_s = 0.0
    if warmup:  # first steps pay for allocation, oneDNN primitive creation, compilation
        warm_s = run.epoch(warmup)["train_seconds"]
    sync(device)
    mem = reset_peak_memory(device)
    row = run.epoch(steps, first_epoch=100)
    sync(device)
    seconds = row["train_seconds"]
    return {"images_per_s": steps * cfg.batch_size / seconds, "ms_per_step": 1000 * seconds / steps,
            "steps": steps, "batch_size": cfg.batch_size, "dtype": run.dtype,
            "memory_format": "channels_last" if cfg.channels_last else "contiguous",
            "compile": cfg.compile, "data": "InMemoryLoader (batched)", "threads": run.threads,
            "warmup_seconds": warm_s, **peak_memory(device, mem)}
