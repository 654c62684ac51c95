"""Shared pieces of the benchmark scripts: machine facts, result files, and the plain reference
training loop every speed figure is compared against.

The reference loop is what the popular CIFAR reference repositories do: the model in NCHW fp32,
eager mode, a standard `torch.utils.data.DataLoader` over a dataset that augments one sample at a
time in Python (pad-4 random crop, horizontal flip, to float, normalise), SGD with momentum.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_result(path: str | None, result: dict) -> None:
    """Print the result and, if asked, write it as one JSON file (atomically)."""
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)


class PerSampleAugmented(Dataset):
    """uint8 NHWC images -> per-sample pad-4 crop, flip, float, normalise (the reference way)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i].permute(2, 0, 1).float().div_(255)
        img = F.pad(img, (4, 4, 4, 4))
        y0, x0 = torch.randint(0, 9, (2,)).tolist()
        img = img[:, y0:y0 + 32, x0:x0 + 32]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return (img - self.mean) / self.std, self.labels[i]


def reference_train_throughput(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                               batch_size: int, steps: int, warmup: int = 3,
                               num_workers: int = 0) -> dict:
    """images/s of the plain loop, data loading included. `num_workers=0` is the fair setting on
    a 2-core machine: worker processes compete with the model's own threads for the cores."""
    loader = DataLoader(PerSampleAugmented(images, labels), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=num_workers)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    done, seen, t0 = 0, 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                t0, seen = time.perf_counter(), 0
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            seen += len(y)
            if done >= warmup + steps:
                break
    seconds = time.perf_counter() - t0
    return {"images_per_s": seen / seconds, "ms_per_step": 1000 * seconds / steps,
            "steps": steps, "batch_size": batch_size}
