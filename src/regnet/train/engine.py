"""One training epoch and one evaluation pass; sums (not means) are kept so that ranks and
partial batches combine exactly."""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TrainConfig
from .distributed import DistInfo, all_sum
from .optim import lr_at, set_lr
from .sam import ascent, local_gradients


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; the message names the step."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    try:  # oneDNN's own check: AVX512-BF16 / AMX, where bf16 matmuls run at full speed
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. `auto` picks bf16 on CPUs that run it
    natively (elsewhere emulated bf16 is slower than fp32) and bf16/fp16 on GPUs."""
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    kmax = min(max(ks), logits.shape[1])
    pred = logits.topk(kmax, dim=1).indices
    hit = pred.eq(target[:, None])
    return [hit[:, :min(k, kmax)].any(1).sum() for k in ks]


@dataclass
class StepState:
    """Counters the training loop advances; saved in checkpoints."""
    epoch: int = 0   # epochs completed
    step: int = 0    # optimiser steps completed


class Progress:
    """A one-line bar redrawn in place on a terminal; silent otherwise (the caller prints one
    line per epoch)."""

    def __init__(self, mode: str, total: int, epoch: int, epochs: int, enabled: bool):
        tty = sys.stdout.isatty()
        self.on = enabled and (mode == "bar" or (mode == "auto" and tty))
        self.total, self.prefix = total, f"epoch {epoch}/{epochs}"
        self.last = 0.0

    def update(self, i: int, loss: float, ips: float) -> None:
        now = time.monotonic()
        if not self.on or (now - self.last < 0.2 and i < self.total):
            return
        self.last = now
        width = 24
        fill = int(width * i / self.total)
        sys.stdout.write(f"\r{self.prefix} [{'#' * fill}{'.' * (width - fill)}] {i}/{self.total}"
                         f" loss {loss:.4f} {ips:,.0f} img/s ")
        sys.stdout.flush()

    def close(self) -> None:
        if self.on:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


def train_one_epoch(model: nn.Module, loader, optimizer, cfg: TrainConfig, state: StepState, *,
                    device: torch.device, amp_dtype, scaler=None, ema=None, dist: DistInfo,
                    progress: Progress | None = None, net: nn.Module | None = None) -> dict:
    """`model` may be wrapped (DDP, torch.compile); `net` is the plain module the EMA tracks
    and SAM perturbs. The logged loss and train top-1 are those of the unperturbed weights."""
    model.train()
    net = model if net is None else net
    steps = len(loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, lr, start = 0, 0.0, time.perf_counter()
    sam = cfg.sam_rho > 0
    for i, (x, y) in enumerate(loader, 1):
        lr = lr_at(cfg, state.step, steps)
        set_lr(optimizer, lr)
        # Under SAM the first pass only finds the ascent direction, from this rank's own data.
        with local_gradients(model) if sam else contextlib.nullcontext():
            with autocast(device, amp_dtype):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            finite = bool(torch.isfinite(loss.detach()))
            if dist.enabled:  # every rank must stop together, or the others wait forever
                finite = all_sum([0.0 if finite else 1.0], dist)[0] == 0.0
            if not finite:
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {state.step + 1} (epoch "
                    f"{state.epoch + 1}, batch {i}/{steps}); training stopped")
            optimizer.zero_grad(set_to_none=True)
            _backward(loss, scaler)
        if sam:
            with ascent(net, cfg.sam_rho):
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, amp_dtype):
                    sharp = F.cross_entropy(model(x).float(), y,
                                            label_smoothing=cfg.label_smoothing)
                _backward(sharp, scaler)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if ema is not None:
            ema.update(net)
        state.step += 1
        n = y.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        correct += logits.detach().argmax(1).eq(y).sum()
        if progress is not None:
            progress.update(i, loss.item(), seen * dist.world_size / (time.perf_counter() - start))
    if progress is not None:
        progress.close()
    seconds = time.perf_counter() - start
    total_loss, total_correct, total_seen = all_sum([loss_sum.item(), float(correct.item()),
                                                     float(seen)], dist)
    return {"lr": lr, "train_loss": total_loss / max(total_seen, 1),
            "train_top1": 100.0 * total_correct / max(total_seen, 1),
            "images_per_sec": total_seen / seconds if seconds > 0 else 0.0,
            "train_seconds": seconds}


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, device: torch.device, amp_dtype, dist: DistInfo,
             flip: bool = False) -> dict:
    """top1 / top5 (percent), mean cross-entropy and image count over the whole split."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    for x, y in loader:
        with autocast(device, amp_dtype):
            logits = model(x).float()
            if flip:  # the mirrored view is as likely a photograph; average the two
                logits = 0.5 * (logits + model(x.flip(3)).float())
        loss = F.cross_entropy(logits, y, reduction="sum")
        c1, c5 = topk_correct(logits, y)
        sums += torch.stack([loss.double(), c1.double(), c5.double(),
                             torch.tensor(float(y.shape[0]), device=device, dtype=torch.float64)])
    loss, c1, c5, n = all_sum(sums.tolist(), dist)
    n_safe = max(n, 1)
    return {"loss": loss / n_safe, "top1": 100.0 * c1 / n_safe, "top5": 100.0 * c5 / n_safe,
            "images": int(n)}
