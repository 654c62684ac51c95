"""`TrainConfig`: every knob of a run, frozen, converted at the edges (YAML recipe, CLI flags).

Resolution order: these defaults < the recipe file < command-line flags. The resolved config is
written next to the run's outputs as `config.yaml`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from regnet.data.augment import KINDS as AUGMENTS
from regnet.data.augment import CropFlip

DATA_MODES = ("auto", "memory", "stream")
SCHEDULES = ("step", "multistep", "cosine", "linear", "constant")
OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "bf16", "fp16", "off")
PROGRESS_MODES = ("auto", "bar", "line", "none")
# torch.compile modes; reduce-overhead records CUDA graphs (on a GPU: one launch per step)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TrainConfig:
    # What to train, on what.
    model: str = "resnet20"            # the registered model (positional on the command line)
    model_args: dict = field(default_factory=dict)   # overrides for create_model
    dataset: str = "cifar10"           # cifar10 | cifar100 | imagefolder | digits (bundled)
    data_dir: str | None = None        # the dataset's folder (CIFAR is downloaded into it when
                                       # absent)
    val_split: int = 0                 # images carved from train (class-balanced, seeded)
    train_subset: int | None = None    # use only N training images
    image_size: int | None = None      # None: the dataset's own size
    augment: str = "auto"              # auto | cifar | crop | imagenet | none
    crop_pad: int | None = None        # cifar / crop translation in px; None: 4 per 32 px
    crop_pad_mode: str = "zeros"       # the crop's border: zeros (He et al.) | reflect
    flip_mode: str = "random"          # random | alternate (each image mirrored every 2nd epoch)
    cache_dir: str | None = None       # decoded image-folder cache; None: ~/.cache/regnet
    data_mode: str = "auto"            # image folders: memory | stream | auto (memory if it fits)
    num_classes: int | None = None     # the classifier's classes; None: the data's (a value
                                       # is checked against the data)
    # Fine-tuning.
    init_from: str | None = None       # start from these weights: a checkpoint, a weights file
                                       # of any source create_model reads, or a tag
    freeze: tuple = ()                 # glob patterns of parameter names kept fixed ("stem.*")
    # Schedule and optimiser.
    optimizer: str = "sgd"             # sgd (momentum, nesterov) | adamw
    lr_scale: tuple = ()               # "PATTERN=F": parameters matching PATTERN train at F x lr
    epochs: int = 10                   # epochs to train (a resumed run may extend it)
    batch_size: int = 128              # global batch, split across distributed ranks
    lr: float = 0.1                    # peak learning rate (after warm-up)
    lr_base_batch: int | None = None   # if set, lr is scaled by batch_size / lr_base_batch
    momentum: float = 0.9              # SGD momentum
    nesterov: bool = False             # Nesterov momentum
    weight_decay: float = 1e-4         # L2 weight decay
    wd_exempt_norm_bias: bool = True   # no weight decay on BN parameters and biases
    schedule: str = "multistep"        # step | multistep | cosine | linear | constant
    milestones: tuple = ()             # epochs (multistep)
    step_size: int = 30                # epochs (step)
    gamma: float = 0.1                 # lr factor at each step / milestone
    min_lr: float = 0.0                # floor of cosine / linear decay
    warmup_epochs: float = 0.0         # linear warm-up from warmup_factor * lr
    warmup_factor: float = 0.1         # warm-up starts at this fraction of lr
    label_smoothing: float = 0.0       # cross-entropy label smoothing
    ema_decay: float = 0.0             # 0: off; e.g. 0.999 evaluates an EMA of the weights
    grad_clip: float = 0.0             # max global grad norm; 0: off
    sam_rho: float = 0.0               # SAM's ascent radius (Foret et al. 2021); 0: plain SGD.
                                       # > 0 costs a second forward + backward per step
    eval_flip: bool = False            # also average the mirrored view at evaluation
    # Speed. The defaults are the fast path; each switch turns one piece off.
    amp: str = "auto"                  # auto (bf16 where supported) | bf16 | fp16 | off
    channels_last: bool = True         # NHWC memory format (faster convolutions on CPU and GPU)
    compile: bool = False              # torch.compile the model (first steps pay the compilation)
    compile_mode: str = "default"      # with compile: default | reduce-overhead (CUDA graphs) |
                                       # max-autotune | max-autotune-no-cudagraphs
    threads: int = 0                   # 0: the cores other processes leave free (1-min load
                                       # average), divided among local ranks
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    fast_data: bool = True             # batched in-memory augmentation; off: per-sample DataLoader
    num_workers: int | None = None     # DataLoader workers of the per-sample loaders (streamed
                                       # folders: default one per core; --no-fast-data: 0)
    # Reproducibility and output.
    seed: int = 0                      # initialisation, augmentation and batch order
    split_seed: int = 0                # which images form val_split / train_subset: kept apart
                                       # from `seed` so runs of several seeds share one split
    deterministic: bool = False        # deterministic kernels (bit-exact reruns; slower)
    out: str = "runs/train"            # the run folder: checkpoints, metrics, config.yaml
                                       # (re-running into it resumes)
    eval_every: int = 1                # epochs
    tensorboard: bool = True           # TensorBoard events in OUT/tb (needs the tensorboard extra)
    progress: str = "auto"             # auto (a bar on a terminal, step lines off one) | bar |
                                       # line | none (epoch lines only)
    log_every: int = 0                 # a step line (loss, lr, img/s, ETA) every N steps; 0:
                                       # one every 10 s where no bar is drawn
    recipe: str | None = None          # the recipe this config came from (for the record)

    def __post_init__(self):
        # Normalise YAML/CLI spellings so equal configs compare equal.
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        for name, (ok, wants) in _NUMERIC_RULES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or not ok(value):
                raise ValueError(f"--{name.replace('_', '-')} must be {wants}, got {value!r}")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(
                set(self.milestones)):
            raise ValueError(f"--milestones must be increasing epochs >= 1, got "
                             f"{list(self.milestones)}")
        _check_device(self.device)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: "
                             f"{', '.join(OPTIMIZERS)}")
        object.__setattr__(self, "freeze", tuple(str(p) for p in self.freeze))
        object.__setattr__(self, "lr_scale", tuple(str(p) for p in self.lr_scale))
        _ = self.lr_scales  # raises on a malformed PATTERN=F
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.data_mode not in DATA_MODES:
            raise ValueError(f"unknown data_mode {self.data_mode!r}; valid: "
                             f"{', '.join(DATA_MODES)}")
        if self.augment != "auto" and self.augment not in AUGMENTS:
            raise ValueError(f"unknown augment {self.augment!r}; valid: auto, "
                             f"{', '.join(AUGMENTS)}")
        if self.progress not in PROGRESS_MODES:
            raise ValueError(f"unknown progress {self.progress!r}; valid: "
                             f"{', '.join(PROGRESS_MODES)}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"unknown amp {self.amp!r}; valid: {', '.join(AMP_MODES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile_mode {self.compile_mode!r}; valid: "
                             f"{', '.join(COMPILE_MODES)}")
        _ = self.crop_flip  # building it raises on a bad crop_pad / crop_pad_mode / flip_mode
        object.__setattr__(self, "model_args", dict(self.model_args or {}))

    @property
    def crop_flip(self) -> CropFlip:
        return CropFlip(self.crop_pad, self.crop_pad_mode, self.flip_mode)

    @property
    def lr_scales(self) -> list[tuple[str, float]]:
        """`lr_scale` as (pattern, factor) pairs; the first pattern a parameter matches wins."""
        pairs = []
        for item in self.lr_scale:
            pattern, sep, factor = item.rpartition("=")
            try:
                value = float(factor)
            except ValueError:
                value = -1.0
            if not sep or not pattern or value < 0:
                raise ValueError(f"lr_scale wants PATTERN=F with F >= 0, got {item!r}")
            pairs.append((pattern, value))
        return pairs

    @property
    def effective_lr(self) -> float:
        return self.lr * self.batch_size / self.lr_base_batch if self.lr_base_batch else self.lr

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's comment in this file (with the comment lines under it): the one source
        of the `regnet train` flags' help."""
        return _field_comments(cls)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_keys(cls, d: dict[str, Any], where: str = "") -> None:
        """Raise on keys that are not fields, naming them, where they came from, and the valid
        ones."""
        unknown = sorted(set(d) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{where}unknown config key(s) {', '.join(unknown)}; valid keys: "
                             f"{', '.join(cls.field_names())}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        cls.check_keys(d)
        d = dict(d)
        if isinstance(d.get("amp"), bool):  # YAML `amp: true/false`
            d["amp"] = "auto" if d["amp"] else "off"
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("milestones", "freeze", "lr_scale"):
            d[key] = list(d[key])
        return d

    def replace(self, **changes) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})


# Every numeric field's valid range, checked when the config is built (before any data is read
# or any epoch is trained), so a bad flag costs nothing. NaN and infinities are refused too.
_NUMERIC_RULES = {
    "val_split": (lambda v: v >= 0, "an image count >= 0"),
    "train_subset": (lambda v: v >= 1, "an image count >= 1"),
    "image_size": (lambda v: v >= 8, "a side >= 8 px"),
    "num_classes": (lambda v: v >= 1, ">= 1"),
    "epochs": (lambda v: v >= 0, ">= 0"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: v >= 0, "a finite number >= 0"),
    "lr_base_batch": (lambda v: v >= 1, ">= 1"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "step_size": (lambda v: v >= 1, "an epoch count >= 1"),
    "gamma": (lambda v: v > 0, "> 0"),
    "min_lr": (lambda v: v >= 0, ">= 0"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "warmup_factor": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "grad_clip": (lambda v: v >= 0, ">= 0 (0: off)"),
    "sam_rho": (lambda v: v >= 0, ">= 0 (0: off)"),
    "threads": (lambda v: v >= 0, ">= 0 (0: fit to the free cores)"),
    "num_workers": (lambda v: v >= 0, ">= 0"),
    "seed": (lambda v: v >= 0, ">= 0"),
    "split_seed": (lambda v: v >= 0, ">= 0"),
    "eval_every": (lambda v: v >= 1, "an epoch count >= 1"),
    "log_every": (lambda v: v >= 0, "a step count >= 0 (0: every 10 s off a terminal)"),
}


def _check_device(name: str) -> None:
    """`auto`, `cpu`, `cuda` or `cuda:N`, and a CUDA device only where this PyTorch has one."""
    import re

    if name in ("auto", "cpu"):
        return
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    import torch

    if not torch.cuda.is_available():
        why = ("this PyTorch is a CPU build" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise ValueError(f"--device {name}: {why} (torch {torch.__version__}); use --device cpu "
                         f"or auto, or install a CUDA build (make TORCH_INDEX=...)")
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")


def _field_comments(cls) -> dict[str, str]:
    import inspect
    import re
    out, current = {}, None
    for line in inspect.getsource(cls).splitlines():
        field_line = re.match(r"^    (\w+): [^=]+=.*?#\s?(.*)$", line)
        if field_line:
            current = field_line.group(1)
            out[current] = field_line.group(2).strip()
        elif current and re.match(r"^\s{8,}#", line):  # a continuation under the comment
            out[current] += " " + line.strip().lstrip("#").strip()
        else:
            current = None
    return out
