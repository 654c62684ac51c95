"""The plain per-sample pipeline (a `torch.utils.data.DataLoader` that augments one image at a
time, as the popular CIFAR reference repositories do): the fast path's off switch
(`--no-fast-data`) and the baseline it is measured against. Same augmentations, same
normalisation, same sharding rule, so either path trains the same model."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .arrays import ArrayDataset
from .augment import CropFlip, augment_batch, normalise
from .errors import DatasetError


class PerSampleDataset(Dataset):
    def __init__(self, ds: ArrayDataset, *, train: bool, augment: str, image_size: int, mean,
                 std, seed: int, crop: CropFlip = CropFlip()):
        self.ds, self.train, self.augment, self.size = ds, train, augment, image_size
        self.crop = crop
        self.mean, self.std, self.seed = mean, std, seed
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        flip = self.crop.flips(i, self.seed, self.epoch)  # None (random) costs nothing per sample
        x = augment_batch(self.ds.images[i:i + 1], self.augment, self.size, self.train, self.gen,
                          self.crop, None if flip is None else torch.tensor([flip]))
        return normalise(x, self.mean, self.std, channels_last=False)[0], self.ds.labels[i]


class ReferenceLoader:
    """`InMemoryLoader`'s interface (`set_epoch`, `len`, iteration) over a DataLoader."""

    def __init__(self, ds: ArrayDataset, batch_size: int, *, train: bool, augment: str,
                 image_size: int, mean, std, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, device="cpu", num_workers: int = 0,
                 crop: CropFlip = CropFlip()):
        self.ds, self.channels_last, self.device = ds, channels_last, torch.device(device)
        self.sampler = DistributedSampler(ds, world_size, rank, shuffle=train, seed=seed,
                                          drop_last=False)
        self.loader = DataLoader(PerSampleDataset(ds, train=train, augment=augment,
                                                  image_size=image_size, mean=mean, std=std,
                                                  seed=seed, crop=crop),
                                 batch_size=batch_size,
                                 sampler=self.sampler, num_workers=num_workers, drop_last=train)
        if train and len(self) == 0:
            raise DatasetError(f"batch size {batch_size * world_size} is larger than the "
                               f"training set ({len(ds)} images); use a smaller --batch-size")

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.loader.dataset.epoch = epoch  # workers start per epoch, so they copy it
        self.loader.dataset.gen.manual_seed(self.loader.dataset.seed * 7919 + epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for x, y in self.loader:
            yield x.to(self.device).contiguous(memory_format=fmt), y.to(self.device)
