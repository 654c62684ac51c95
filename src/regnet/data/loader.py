"""An in-memory batch loader: index a uint8 tensor, augment the whole batch, normalise.

Randomness is a pure function of (seed, epoch, rank), so a resumed run sees the same batches as
an uninterrupted one. Under distributed training each rank takes every `world_size`-th index of
one shared permutation (padded by wrapping, as `DistributedSampler` does), so ranks see
disjoint shards of equal length; evaluation shards without padding so every image counts once.
"""
from __future__ import annotations

import math

import torch

from .arrays import ArrayDataset
from .augment import CropFlip, augment_batch, normalise
from .errors import DatasetError


def epoch_generator(seed: int, epoch: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    # Distinct, reproducible streams; the large odd multipliers keep (seed, epoch, rank) apart.
    return torch.Generator().manual_seed(
        (int(seed) * 1_000_003 + epoch * 10_007 + rank * 101 + stream) % (2 ** 63))


def shard_indices(n: int, train: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1
                  ) -> torch.Tensor:
    """This rank's image indices for one epoch. Training: one seeded permutation shared by all
    ranks, padded by wrapping to a multiple of `world_size`, every `world_size`-th entry.
    Evaluation: in order, no padding, so every image counts once."""
    if not train:
        return torch.arange(rank, n, world_size)
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch))
    total = math.ceil(n / world_size) * world_size
    if total > n:
        perm = torch.cat([perm, perm[: total - n]])
    return perm[rank::world_size]


class ShardedLoader:
    """The epoch, sharding and batch-count rules the fast loaders share: subclasses set `ds`,
    `batch_size`, `train`, `seed`, `rank`, `world_size` and `epoch`, and iterate batches."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def shard_size(self) -> int:
        n = len(self.ds)
        if self.train:
            return math.ceil(n / self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        if self.train:  # the last partial batch is dropped, keeping BN statistics sound
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def indices(self) -> torch.Tensor:
        return shard_indices(len(self.ds), self.train, self.seed, self.epoch, self.rank,
                             self.world_size)

    def _check_batch_fits(self) -> None:
        if self.train and len(self) == 0:
            raise DatasetError(f"batch size {self.batch_size * self.world_size} is larger than "
                               f"the training set ({len(self.ds)} images); use a smaller "
                               f"--batch-size")


class InMemoryLoader(ShardedLoader):
    def __init__(self, ds: ArrayDataset, batch_size: int, *, train: bool, augment: str,
                 image_size: int, mean, std, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = True, device: str | torch.device = "cpu",
                 crop: CropFlip = CropFlip()):
        self.ds = ds
        self.batch_size = int(batch_size)
        self.train, self.augment, self.image_size = train, augment, image_size
        self.crop = crop
        self.mean, self.std = list(mean), list(std)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.epoch = 0
        # Small datasets live on the accelerator too, so augmentation runs there.
        self.images = ds.images.to(self.device)
        self.labels = ds.labels.to(self.device)
        self._check_batch_fits()

    def __iter__(self):
        index = self.indices().to(self.device)
        gen = epoch_generator(self.seed, self.epoch, self.rank, stream=1)
        for b in range(len(self)):
            idx = index[b * self.batch_size:(b + 1) * self.batch_size]
            x = augment_batch(self.images[idx], self.augment, self.image_size, self.train, gen,
                              self.crop, self.crop.flips(idx, self.seed, self.epoch))
            yield normalise(x, self.mean, self.std, self.channels_last), self.labels[idx]
