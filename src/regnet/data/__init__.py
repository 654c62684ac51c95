"""Datasets behind one call: `build_datasets(name, data_dir, val_split, seed, ...)`.

Every reader returns uint8 N x H x W x C tensors in memory (`ArrayDataset`); `InMemoryLoader`
batches, augments and normalises them without per-sample Python. Image folders too large for
memory are returned as lists of files (`FileDataset`) that `StreamingLoader` decodes in worker
processes; `make_loader` picks the loader that fits the data.
"""
from __future__ import annotations

import os

from .arrays import ArrayDataset, DataSplits, balanced_split, channel_stats, random_subset
from .augment import KINDS as AUGMENTS
from .errors import DatasetError
from .loader import InMemoryLoader
from .reference import ReferenceLoader
from .streaming import FileDataset, StreamingLoader, sample_channel_stats

__all__ = ["DATASETS", "AUGMENTS", "ArrayDataset", "DataSplits", "DatasetError", "FileDataset",
           "InMemoryLoader", "ReferenceLoader", "StreamingLoader", "build_datasets",
           "default_augment", "make_loader"]

DATASETS = ("cifar10", "cifar100", "imagefolder", "digits")


def default_augment(name: str, image_size: int) -> str:
    """He et al.'s pad-and-crop + flip for small images, Inception crops for large ones; digits
    are not mirror-symmetric, so they get the crop alone."""
    if name == "digits":
        return "crop"
    return "cifar" if image_size <= 64 else "imagenet"


def build_datasets(name: str, data_dir: str | None, val_split: int = 0, seed: int = 0, *,
                   train_subset: int | None = None, image_size: int | None = None,
                   download: bool = True, cache_dir: str | None = None,
                   data_mode: str = "auto", stats: bool = True) -> DataSplits:
    """Train / val / test splits of a named dataset.

    `val_split` N > 0 carves a fixed, class-balanced validation set of N images from the
    training images (chosen by `seed`); a shipped validation split then becomes `test`.
    `train_subset` keeps N of the remaining training images (seeded) for quick studies.
    `data_mode` (image folders only): `memory`, `stream`, or `auto` (memory when it fits).
    `stats=False` skips the training images' channel mean / std (`info` holds None): evaluation
    takes them from the checkpoint, and a streamed folder would decode 512 images for them.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if name != "digits" and not data_dir:
        raise DatasetError(f"dataset {name!r} needs --data-dir (the folder holding it"
                           f"{'; it is downloaded there when absent' if name != 'imagefolder' else ''})")
    if data_mode == "stream" and name != "imagefolder":
        raise DatasetError(f"data_mode {data_mode!r} applies to image folders only; {name} is "
                           f"held in memory")
    test = val = None
    if name in ("cifar10", "cifar100"):
        from .cifar import load_cifar
        train, test = load_cifar(name, data_dir, download)
    elif name == "imagefolder":
        from .imagefolder import load_imagefolder
        # Large images are stored at the eval resize (size / 0.875) so that random-resized
        # crops and the centre crop both sample from more pixels than they output.
        store = image_size if not image_size or image_size <= 64 else round(image_size / 0.875)
        train, val = load_imagefolder(data_dir, store, cache_dir, data_mode, image_size)
    else:
        from .digits import load_digits
        train = load_digits()
    if val_split:
        keep, carved = balanced_split(train.labels, train.num_classes, int(val_split), seed)
        test = test if test is not None else val
        train, val = train.subset(keep), train.subset(carved)
    if train_subset:
        train = train.subset(random_subset(len(train), int(train_subset), seed))
    streamed = isinstance(train, FileDataset)
    mean = std = None
    if stats:
        mean, std = sample_channel_stats(train) if streamed else channel_stats(train.images)
    return DataSplits(name, train, val, test, {"mean": mean, "std": std,
                                              "stored_size": list(train.image_size),
                                              "data_mode": "stream" if streamed else "memory"})


def make_loader(ds: ArrayDataset | FileDataset, batch_size: int, *, fast: bool = True,
                num_workers: int | None = None, **kw):
    """The loader for `ds`: `StreamingLoader` for files (workers default to one per core),
    else `InMemoryLoader` (`fast`) or the per-sample `ReferenceLoader` (workers default 0).
    `kw` are the loaders' shared keywords (train, augment, crop, image_size, mean, std,
    seed, rank, world_size, channels_last, device)."""
    if isinstance(ds, FileDataset):
        workers = len(os.sched_getaffinity(0)) if num_workers is None else num_workers
        return StreamingLoader(ds, batch_size, num_workers=workers, **kw)
    if fast:
        return InMemoryLoader(ds, batch_size, **kw)
    return ReferenceLoader(ds, batch_size, num_workers=num_workers or 0, **kw)
