"""Image folders too large to hold in memory (ImageNet's 1.28M JPEGs are ~250 GB decoded at
256 px): each image is read, decoded and augmented on its own, in DataLoader worker processes,
and only uint8 batches cross to the training process, which normalises them in one batched op.

The augmentations are the in-memory path's (`augment.py`), done per image with PIL so they act
on the full-resolution file: Inception crops decode JPEGs at the smallest DCT scale
(`Image.draft`) that still covers the crop at the output size, which is what makes per-image
decoding affordable. Each image's randomness is a pure function of (seed, epoch, image index),
so batches do not depend on the worker count and a resumed run sees the crops an uninterrupted
one would.
"""
from __future__ import annotations

import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .arrays import LabelledImages
from .augment import KINDS, CropFlip, normalise
from .errors import DatasetError
from .loader import ShardedLoader

EVAL_CROP_PCT = 0.875  # shorter side to size / 0.875, then the central square (as resize_centre_crop)


@dataclass(frozen=True)
class FileDataset(LabelledImages):
    """`ArrayDataset`'s interface over image files: paths, labels, classes, and the side length
    `size` every image is brought to."""
    paths: tuple[str, ...]
    labels: torch.Tensor          # N, int64
    classes: tuple[str, ...]
    size: int

    def __post_init__(self):
        if len(self.paths) != len(self.labels):
            raise DatasetError(f"{len(self.paths)} images but {len(self.labels)} labels")

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.size, self.size)

    def subset(self, index: torch.Tensor) -> "FileDataset":
        return FileDataset(tuple(self.paths[i] for i in index.tolist()), self.labels[index],
                           self.classes, self.size)


def open_image(path: str) -> Image.Image:
    """The file opened lazily (header read, pixels not yet decoded)."""
    try:
        return Image.open(path)
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None


# How each Pillow mode becomes 8-bit RGB, said once per dataset (None: nothing to say).
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
CONVERSIONS = {
    "RGB": None,
    "L": "grayscale, copied to 3 channels",
    "1": "1-bit, copied to 3 channels",
    "P": "palette, expanded",
    "RGBA": "RGBA, alpha dropped (colour kept as stored)",
    "LA": "grayscale + alpha, alpha dropped",
    "PA": "palette + alpha, alpha dropped",
    "P+transparency": "palette with a transparent colour, transparency dropped",
    "CMYK": "CMYK, converted without a colour profile",
    "I;16": "16-bit, scaled to 8 bits (v / 257)",
    "F": "32-bit float, clipped to 0-255",
}


def conversion_of(img: Image.Image) -> str | None:
    """What `decode_rgb` does to an image of this mode, in words (None for RGB)."""
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        return CONVERSIONS["I;16"]
    if mode == "P" and "transparency" in img.info:
        return CONVERSIONS["P+transparency"]
    return CONVERSIONS.get(mode, f"{mode}, converted by Pillow")


def decode_rgb(img: Image.Image, path: str, at_least: tuple[int, int] | None = None
               ) -> Image.Image:
    """8-bit RGB pixels, every mode converted explicitly (see `CONVERSIONS`): Pillow's own
    convert("RGB") clips 16-bit values, so a 16-bit PNG would decode to solid white. JPEGs are
    decoded at the smallest 1/2^k scale no smaller than `at_least`."""
    try:
        if at_least is not None:
            img.draft("RGB", at_least)
        mode = img.mode
        if mode == "RGB":
            return img.convert("RGB")  # decodes (the lazy image becomes pixels)
        if mode in _SIXTEEN_BIT or mode == "F":
            values = np.asarray(img, dtype=np.float32)
            if mode != "F":
                values = values / 257.0  # 65535 -> 255 exactly
            gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
            return Image.fromarray(gray, "L").convert("RGB")
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            return img.convert("RGBA").convert("RGB")
        return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None


def report_conversions(counts: dict[str, int], where: str) -> None:
    """One line per dataset: how many images of each non-RGB kind were converted, and how."""
    notes = {k: v for k, v in counts.items() if k}
    if notes:
        from regnet.log import get_logger

        total = sum(notes.values())
        get_logger("data").warning(
            f"{where}: {total} image(s) converted to 8-bit RGB: "
            + "; ".join(f"{n} {note}" for note, n in sorted(notes.items())))


def inception_box(w: int, h: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
                  ) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a random crop: area fraction in `scale`, aspect in
    `ratio`; torchvision's rule of 10 tries, then the whole image (as `random_resized_crop`)."""
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    return 0, 0, w, h


def centre_square(img: Image.Image, short: int, size: int) -> Image.Image:
    """Shorter side to `short`, then the central `size` x `size`."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = short / min(w, h)
    nw, nh = max(short, round(w * scale)), max(short, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _mirror(rng: random.Random, flip: bool | None) -> bool:
    return rng.random() < 0.5 if flip is None else bool(flip)


def load_image(path: str, size: int, augment: str, train: bool, rng: random.Random,
               crop: CropFlip = CropFlip(), flip: bool | None = None) -> np.ndarray:
    """One image as uint8 size x size x 3, augmented as `augment_batch` would augment it.
    `flip`: whether to mirror it (`crop.flips`); None: a coin from `rng`."""
    img = open_image(path)
    with img:
        w, h = img.size
        note = conversion_of(img)
        if note:  # a streamed dataset is never read whole: say each kind once per worker
            from regnet.log import warn_once
            warn_once(f"images converted to 8-bit RGB: {note} (first: {path})")
        if augment == "imagenet" and train:
            left, top, cw, ch = inception_box(w, h, rng)
            img = decode_rgb(img, path, (math.ceil(w * size / cw), math.ceil(h * size / ch)))
            sx, sy = img.size[0] / w, img.size[1] / h
            out = img.resize((size, size), Image.BILINEAR,
                             box=(left * sx, top * sy, (left + cw) * sx, (top + ch) * sy))
            if _mirror(rng, flip):
                out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            return np.array(out, dtype=np.uint8)
        if augment == "imagenet":
            short = round(size / EVAL_CROP_PCT)
            img = decode_rgb(img, path, (math.ceil(w * short / min(w, h)),
                                         math.ceil(h * short / min(w, h))))
            return np.array(centre_square(img, short, size), dtype=np.uint8)
        arr = np.array(centre_square(decode_rgb(img, path), size, size), dtype=np.uint8)
    if train and augment in ("cifar", "crop"):
        # He et al.'s pad-and-crop: a random window of the padded image (zeros, or the
        # mirror image: numpy's "reflect" is torch's, the edge pixel not repeated).
        pad = crop.pad_for(size)
        dy, dx = rng.randrange(2 * pad + 1), rng.randrange(2 * pad + 1)
        padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)),
                        mode="constant" if crop.pad_mode == "zeros" else "reflect")
        arr = padded[dy:dy + size, dx:dx + size]
        if augment == "cifar" and _mirror(rng, flip):
            arr = arr[:, ::-1]
        arr = np.ascontiguousarray(arr)
    return arr


class _Images(Dataset):
    """Keyed by (image index, epoch), so each image's random stream is fixed by the key alone."""

    def __init__(self, ds: FileDataset, train: bool, augment: str, seed: int,
                 crop: CropFlip):
        self.ds, self.train, self.augment, self.seed, self.crop = ds, train, augment, seed, crop

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        i, epoch = key
        rng = random.Random(f"{self.seed}/{epoch}/{i}")
        try:
            arr = load_image(self.ds.paths[i], self.ds.size, self.augment, self.train, rng,
                             self.crop, self.crop.flips(i, self.seed, epoch))
        except DatasetError as err:
            # Passed back as data, not raised: a worker's exception reaches the training
            # process wrapped in a multi-line traceback, and the user should get one line.
            return None, int(self.ds.labels[i]), str(err)
        return torch.from_numpy(arr), int(self.ds.labels[i]), None


def _collate(samples):
    errors = [err for _, _, err in samples if err]
    if errors:
        return None, errors[0]
    return (torch.stack([x for x, _, _ in samples]),
            torch.tensor([y for _, y, _ in samples], dtype=torch.int64))


class StreamingLoader(ShardedLoader):
    """`InMemoryLoader`'s interface (`set_epoch`, `len`, iteration; the same sharding rule and
    dropped last training batch) over a `FileDataset`, decoding in `num_workers` processes."""

    def __init__(self, ds: FileDataset, batch_size: int, *, train: bool, augment: str,
                 image_size: int, mean, std, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = True, device: str | torch.device = "cpu",
                 num_workers: int = 0, prefetch: int = 4, crop: CropFlip = CropFlip()):
        if augment not in KINDS:
            raise ValueError(f"unknown augment {augment!r}; valid: {', '.join(KINDS)}")
        if image_size != ds.size:
            ds = FileDataset(ds.paths, ds.labels, ds.classes, image_size)
        self.ds, self.batch_size = ds, int(batch_size)
        self.train, self.augment, self.crop = train, augment, crop
        self.mean, self.std = list(mean), list(std)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last, self.device = channels_last, torch.device(device)
        self.num_workers, self.prefetch = int(num_workers), prefetch
        self.epoch = 0
        self._check_batch_fits()

    def batches(self) -> list[list[tuple[int, int]]]:
        index = self.indices().tolist()
        b = self.batch_size
        return [[(i, self.epoch) for i in index[k * b:(k + 1) * b]] for k in range(len(self))]

    def __iter__(self):
        loader = DataLoader(_Images(self.ds, self.train, self.augment, self.seed, self.crop),
                            batch_sampler=self.batches(), num_workers=self.num_workers,
                            collate_fn=_collate, pin_memory=self.device.type == "cuda",
                            prefetch_factor=self.prefetch if self.num_workers else None)
        for x, y in loader:
            if x is None:
                raise DatasetError(y)
            x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            yield normalise(x, self.mean, self.std, self.channels_last), \
                y.to(self.device, non_blocking=True)


def sample_channel_stats(ds: FileDataset, max_images: int = 512, threads: int | None = None
                         ) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 scale) of up to `max_images` evenly spaced images, seen as
    evaluation sees them: the streamed counterpart of `channel_stats`."""
    step = max(1, len(ds) // max_images)
    picks = range(0, len(ds), step)
    workers = threads or len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        arrays = list(pool.map(lambda i: load_image(ds.paths[i], ds.size, "none", False,
                                                    random.Random(0)), picks))
    x = torch.from_numpy(np.stack(arrays)).to(torch.float32).div_(255).flatten(0, 2)
    return x.mean(0).tolist(), x.std(0).clamp_min(1e-3).tolist()
