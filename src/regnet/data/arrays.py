"""Datasets held in memory as one uint8 tensor: the shape every reader produces.

Images are N x H x W x C uint8 (the layout files decode to). `permute(0, 3, 1, 2)` of that is
an NCHW view that is already channels_last in memory, so the fast path never copies to convert.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import DatasetError


class LabelledImages:
    """What both dataset kinds share: `labels` (N, int64) and `classes` (names, sorted)."""
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class ArrayDataset(LabelledImages):
    images: torch.Tensor          # N x H x W x C, uint8
    labels: torch.Tensor          # N, int64
    classes: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DatasetError(f"images must be N x H x W x C uint8, got {tuple(self.images.shape)} "
                               f"{self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise DatasetError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def subset(self, index: torch.Tensor) -> "ArrayDataset":
        return ArrayDataset(self.images[index], self.labels[index], self.classes)


@dataclass(frozen=True)
class DataSplits:
    """What `build_datasets` returns: `train`, and `val` / `test` where the data has them."""
    name: str
    train: LabelledImages          # ArrayDataset, or a streamed FileDataset
    val: LabelledImages | None = None
    test: LabelledImages | None = None
    info: dict = field(default_factory=dict)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def split(self, name: str) -> LabelledImages:
        ds = getattr(self, name, None) if name in ("train", "val", "test") else None
        if ds is None:
            have = [n for n in ("train", "val", "test") if getattr(self, n) is not None]
            hint = " (carve one with --val-split N)" if name == "val" else ""
            raise DatasetError(f"dataset {self.name!r} has no {name!r} split{hint}; "
                               f"it has: {', '.join(have)}")
        return ds

    @property
    def eval_split(self) -> str | None:
        """The split a training run validates on: the carved/shipped val split, else test."""
        return "val" if self.val is not None else ("test" if self.test is not None else None)


def balanced_split(labels: torch.Tensor, num_classes: int, n_val: int, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_index, val_index): `n_val` images, an equal share per class, chosen by `seed`.

    When `n_val` is not a multiple of the class count, the remainder goes to the classes with
    the smallest indices, so the split stays a pure function of (labels, n_val, seed).
    """
    if n_val < 0:
        raise DatasetError(f"--val-split must be >= 0, got {n_val}")
    if n_val >= len(labels):
        raise DatasetError(f"--val-split {n_val} leaves no training images "
                           f"(the training set has {len(labels)})")
    if 0 < n_val < num_classes:
        raise DatasetError(f"--val-split {n_val} is smaller than the {num_classes} classes: a "
                           f"class-balanced split needs at least one image of each; use "
                           f"--val-split {num_classes} or more (or 0 for none)")
    gen = torch.Generator().manual_seed(int(seed))
    per_class, extra = divmod(n_val, num_classes)
    val_parts = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        want = per_class + (1 if c < extra else 0)
        if want > len(members):
            raise DatasetError(f"--val-split {n_val} wants {want} images of class {c} but it has "
                               f"only {len(members)}")
        val_parts.append(members[torch.randperm(len(members), generator=gen)[:want]])
    val = torch.sort(torch.cat(val_parts)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    return torch.nonzero(keep).flatten(), val


def random_subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of `n` of `n_total` items chosen by `seed` (for quick studies)."""
    if not 0 < n <= n_total:
        raise DatasetError(f"train_subset must be in 1..{n_total}, got {n}")
    gen = torch.Generator().manual_seed(int(seed) + 1)
    return torch.sort(torch.randperm(n_total, generator=gen)[:n]).values


def channel_stats(images: torch.Tensor, max_images: int = 10000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 scale) of up to `max_images` evenly spaced images."""
    step = max(1, len(images) // max_images)
    x = images[::step].to(torch.float32).div_(255).flatten(0, 2)
    return x.mean(0).tolist(), x.std(0).clamp_min(1e-3).tolist()
