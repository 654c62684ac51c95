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


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Where an epoch stands, in one of two forms:

    - a tqdm bar with its ETA on a terminal (`progress` auto or bar; tqdm is the `bar` extra);
    - step lines through the `regnet` logger, which also reach `train.log` and cluster job logs:
      every `log_every` steps, or every `interval` seconds when `log_every` is 0 (and `progress`
      is auto or line). Each names the step, the loss so far this epoch, lr, img/s and the ETA
      of the epoch and of the run.

    The loss is read from the device only when something is printed, so a GPU is not
    synchronised on every step.
    """

    def __init__(self, mode: str, total: int, epoch: int, epochs: int, enabled: bool, *,
                 log_every: int = 0, interval: float = 10.0, world_size: int = 1):
        from regnet.log import get_logger, warn_once

        self.log = get_logger("train")
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.world_size = world_size
        self.start = self.last = time.monotonic()
        self.bar = None
        want_bar = enabled and (mode == "bar" or (mode == "auto" and sys.stdout.isatty()))
        if want_bar:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="step",
                                leave=False, dynamic_ncols=True, file=sys.stdout)
            except ImportError:
                if mode == "bar":
                    warn_once("--progress bar needs tqdm (pip install 'regnet-lab[bar]'); "
                              "printing step lines instead")
        self.every = log_every if enabled and mode != "none" else 0
        self.interval = (interval if enabled and not log_every and self.bar is None
                         and mode in ("auto", "line") else 0.0)

    def update(self, i: int, loss_sum: torch.Tensor, seen: int, lr: float) -> None:
        """After step `i` of the epoch; `loss_sum` is the epoch's summed loss over `seen`
        images of this rank (a device tensor)."""
        now = time.monotonic()
        if self.bar is not None:
            if now - self.last >= 0.5 or i == self.total:
                self.last = now
                self.bar.set_postfix_str(f"loss {loss_sum.item() / max(seen, 1):.4f}  "
                                         f"{self._ips(seen, now):,.0f} img/s", refresh=False)
                self.bar.update(i - self.bar.n)
            return
        due = (self.every and i % self.every == 0) or (
            self.interval and now - self.last >= self.interval)
        if not due or i == self.total:
            return  # the epoch line follows the last step
        self.last = now
        per_step = (now - self.start) / i
        epoch_eta = per_step * (self.total - i)
        run_eta = epoch_eta + per_step * self.total * (self.epochs - self.epoch)
        self.log.info(f"epoch {self.epoch}/{self.epochs} step {i}/{self.total}  loss "
                      f"{loss_sum.item() / max(seen, 1):.4f}  lr {lr:.4g}  "
                      f"{self._ips(seen, now):,.0f} img/s  eta {_clock(epoch_eta)} epoch, "
                      f"{_clock(run_eta)} run")

    def _ips(self, seen: int, now: float) -> float:
        return seen * self.world_size / max(now - self.start, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


DEVICE_CHECK_EVERY = 25  # steps between host synchronisations on a GPU


def train_one_epoch(model: nn.Module, loader, optimizer, cfg: TrainConfig, state: StepState, *,
                    device: torch.device, amp_dtype, scaler=None, ema=None, dist: DistInfo,
                    progress: Progress | None = None, net: nn.Module | None = None,
                    check_every: int | None = None) -> dict:
    """`model` may be wrapped (DDP, torch.compile); `net` is the plain module the EMA tracks
    and SAM perturbs. The logged loss and train top-1 are those of the unperturbed weights.
    `check_every`: steps between host reads of the finite-loss flag (default 1 on a CPU,
    `DEVICE_CHECK_EVERY` on an accelerator); no other value is read from the device before
    the epoch ends, unless a progress line is printed."""
    model.train()
    net = model if net is None else net
    steps = len(loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, lr, start = 0, 0.0, time.perf_counter()
    sam = cfg.sam_rho > 0
    # Reading the loss synchronises a GPU with the host: there the check runs every 25 steps
    # (on a device flag), on a CPU at every step. A loss that went bad stops training within
    # those steps; nothing is checkpointed mid-epoch, so the last good checkpoint is intact.
    if check_every is None:
        check_every = 1 if device.type == "cpu" else DEVICE_CHECK_EVERY
    bad = torch.zeros((), dtype=torch.bool, device=device)
    for i, (x, y) in enumerate(loader, 1):
        lr = lr_at(cfg, state.step, steps)
        set_lr(optimizer, lr)
        # Under SAM the first pass only finds the ascent direction, from this rank's own data.
        with local_gradients(model) if sam else contextlib.nullcontext():
            with autocast(device, amp_dtype):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            bad = bad | ~torch.isfinite(loss.detach())
            if i % check_every == 0 or i == steps:
                _check_finite(bad, loss, i, check_every, steps, state, dist)
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
            progress.update(i, loss_sum, seen, lr)
    if progress is not None:
        progress.close()
    seconds = time.perf_counter() - start
    total_loss, total_correct, total_seen = all_sum([loss_sum.item(), float(correct.item()),
                                                     float(seen)], dist)
    return {"lr": lr, "train_loss": total_loss / max(total_seen, 1),
            "train_top1": 100.0 * total_correct / max(total_seen, 1),
            "images_per_sec": total_seen / seconds if seconds > 0 else 0.0,
            "train_seconds": seconds}


def _check_finite(bad: torch.Tensor, loss: torch.Tensor, i: int, every: int, steps: int,
                  state: StepState, dist: DistInfo) -> None:
    """Raise if a loss since the last check (`bad`, a device flag) was NaN or infinite."""
    flag = float(bad.item())
    if dist.enabled:  # every rank must stop together, or the others wait forever
        flag = all_sum([flag], dist)[0]
    if not flag:
        return
    since = i - every * ((i - 1) // every)   # steps covered by this check
    now = state.step + 1
    where = f"at step {now}" if since == 1 else f"within steps {now - since + 1}-{now}"
    value = loss.item() if not torch.isfinite(loss).item() else "non-finite"
    raise NonFiniteLossError(f"loss became {value} {where} (epoch {state.epoch + 1}, batch "
                             f"{i}/{steps}); training stopped")


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
