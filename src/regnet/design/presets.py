"""Named study regimes: the paper's, and scaled-down ones that fit a 2-core CPU machine.

A preset fixes what every model of a study shares (input size, stem, classes), the FLOP band
and complexity bounds, how many models to sample by default, and the short training recipe
(TrainConfig keys). `regnet study sample --preset NAME` records the preset in the study;
`regnet study run` trains with its recipe unless `--recipe` / `--set` say otherwise.

On CIFAR-sized inputs the 3x3/1 stem keeps stage 1 at 16x16 instead of ImageNet's 56x56, so
FLOPs shrink about 12x: the paper's 360-400MF band corresponds to roughly 30-33MF here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .spaces import Constraints, ModelBase

__all__ = ["Preset", "PRESETS", "get_preset"]

# The paper's population-study schedule: 10 epochs, lr 0.1, batch 128, wd 5e-5, cosine, no
# warm-up (regnet_design_space.md).
_PAPER_SCHEDULE = dict(epochs=10, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                       weight_decay=5e-5, schedule="cosine", warmup_epochs=0.0)
# Study runs keep the disk and the terminal quiet: the summary is what a study records.
_QUIET = dict(tensorboard=False, progress="none")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    flops: tuple[float, float]
    base: ModelBase
    n: int
    train: dict = field(default_factory=dict)
    paper_bounds: bool = False   # params < 3 + 5.5F M, acts < 6.5 sqrt(F) M

    def constraints(self, flops: tuple[float, float] | None = None) -> Constraints:
        band = tuple(flops or self.flops)
        return Constraints.paper_bounds(band) if self.paper_bounds else Constraints(band)


_CIFAR = ModelBase(input_size=(3, 32, 32), stem="cifar", num_classes=10)
_CIFAR_ZERO_INIT = ModelBase(input_size=(3, 32, 32), stem="cifar", num_classes=10,
                             zero_init_last=True)
# amp stays "auto" (bf16 autocast where the CPU has bf16 units): on this project's 2-core
# AVX512-BF16 machine it trains RegNetX/Y-200MF-class CIFAR nets 1.25-1.3x faster than fp32
# (benchmarks/train_throughput.py --amp auto,off; docs/PERFORMANCE.md).
_CIFAR_TRAIN = dict(_PAPER_SCHEDULE, dataset="imagefolder", image_size=32, augment="cifar",
                    **_QUIET)

PRESETS = {
    "paper": Preset(
        "paper", "the paper's regime: ImageNet 224x224, 360-400MF, 500 models, 10 epochs",
        (360e6, 400e6), ModelBase(), 500,
        dict(_PAPER_SCHEDULE, dataset="imagefolder", image_size=224, augment="imagenet",
             **_QUIET),
        paper_bounds=True),
    "cifar_small": Preset(
        "cifar_small", "32x32, CIFAR stem, 24-32MF (~ the paper's band), 5 epochs on 5,000 "
        "images, 1,000 held out: hours per 32 models on 2 cores",
        (24e6, 32e6), _CIFAR, 64,
        dict(_CIFAR_TRAIN, epochs=5, batch_size=64, train_subset=5000, val_split=1000)),
    "cifar_tiny": Preset(
        "cifar_tiny", "32x32, CIFAR stem, 3-4MF, 4 epochs on 3,000 images (batch 32), 500 "
        "held out: about 14k images per model, 32 models per space on 2 cores",
        (3e6, 4e6), _CIFAR, 32,
        dict(_CIFAR_TRAIN, epochs=4, batch_size=32, lr=0.05, train_subset=3000, val_split=500)),
    "cifar_chain": Preset(
        "cifar_chain", "32x32, CIFAR stem, 3-4MF, zero-init last BN, 3 epochs on 15,000 "
        "images of the 45k/5k cifar10-jpg split (0.3 warm-up epochs), scored once at the end "
        "on its 5,000 val images, fp32: the refinement chain's budget (`regnet study chain`), "
        "~2 min a model at 1 thread",
        (3e6, 4e6), _CIFAR_ZERO_INIT, 100,
        # 5,000 val images: with 500, the error's own sampling noise (~2 points) swamps the
        # differences that rank models. fp32 on every machine so a chain can move between them.
        # Without the zero-init and the warm-up, many sampled models (deep and narrow) stay
        # near chance in 3 epochs: anynetx_a m0001 89.2% error -> 57.4% with both
        # (docs/RESULTS.md section 7).
        dict(_CIFAR_TRAIN, epochs=3, batch_size=64, lr=0.1, train_subset=15000, val_split=5000,
             split_seed=0, amp="off", eval_every=3, warmup_epochs=0.3, warmup_factor=0.1)),
    "smoke": Preset(
        "smoke", "32x32, CIFAR stem, 2-4MF, 1 epoch on 256 images: checks the pipeline",
        (2e6, 4e6), _CIFAR, 4,
        dict(_CIFAR_TRAIN, epochs=1, batch_size=64, lr=0.05, train_subset=256, val_split=128)),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
