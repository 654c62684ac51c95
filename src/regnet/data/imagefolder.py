"""ImageNet-style folders, `DIR/<class>/<image>.jpg|png` (and `DIR/train`, `DIR/val` when both
exist), in one of two modes:

- `memory`: decoded once into one uint8 tensor and cached as a .npy file. Decoding 50,000 JPEGs
  costs tens of seconds; the cache (keyed by the folder's path and every file's name, size and
  mtime) makes the second run start in about a second.
- `stream`: a list of files, decoded per image by `StreamingLoader`'s workers (ImageNet).

`auto` holds a folder in memory when its decoded images fit in `memory_budget()`.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from regnet.atomic import WriteError, atomic_write, sweep_stale
from regnet.log import warn_once

from .arrays import ArrayDataset
from .errors import DatasetError
from .streaming import (FileDataset, centre_square, conversion_of, decode_rgb, open_image,
                        report_conversions)

EXTENSIONS = (".jpg", ".jpeg", ".png")
MODES = ("auto", "memory", "stream")


def memory_budget() -> int:
    """Bytes of decoded images `auto` mode will hold: a quarter of RAM, at most 8 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return min(8 << 30, ram // 4)


def default_cache_dir() -> str:
    return os.environ.get("REGNET_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "regnet")


def list_images(root: str) -> tuple[list[str], list[int], tuple[str, ...]]:
    """(paths, labels, classes) with classes sorted by folder name."""
    if not os.path.isdir(root):
        raise DatasetError(f"image folder {root} not found")
    classes = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir()
                           and not e.name.startswith(".")))
    if not classes:
        raise DatasetError(f"no class folders in {root} (expected {root}/<class>/<image>.jpg)")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        files = sorted(e.name for e in os.scandir(folder)
                       if e.is_file() and e.name.lower().endswith(EXTENSIONS))
        if not files:
            raise DatasetError(f"class folder {folder} holds no .jpg/.jpeg/.png images")
        paths += [os.path.join(folder, f) for f in files]
        labels += [label] * len(files)
    return paths, labels, classes


def _decode(path: str, size: int | None) -> tuple[np.ndarray, str | None]:
    """(RGB pixels, how its mode was converted); with `size`, shorter side to `size` and the
    central square kept."""
    with open_image(path) as img:
        note = conversion_of(img)
        rgb = decode_rgb(img, path)
    return (np.asarray(rgb if size is None else centre_square(rgb, size, size), dtype=np.uint8),
            note)


def _cache_key(root: str, paths: list[str], size: int | None) -> str:
    # Relative names: '../data/x' and '/abs/data/x' are the same folder and share one entry.
    digest = hashlib.sha1(f"{os.path.realpath(root)}|{size}".encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _save_atomic(path: str, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def read_folder(root: str, size: int | None = None, cache_dir: str | None = None,
                threads: int | None = None, listing=None) -> ArrayDataset:
    """All images under `root` in memory. Images of one common size are kept as they are;
    otherwise pass `size` (shorter side resized, centre square kept) or get an error.
    `listing`: `list_images(root)` if the caller already has it."""
    paths, labels, classes = listing or list_images(root)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    cached = None
    if cache_dir:
        sweep_stale(cache_dir)  # partial caches of writers that died (a full disk, kill -9)
        key = _cache_key(root, paths, size)
        cached = os.path.join(cache_dir, f"imagefolder-{key}.npy")
        if os.path.exists(cached):
            try:
                images = np.load(cached)
                if len(images) == len(paths):
                    return ArrayDataset(torch.from_numpy(images), torch.tensor(labels), classes)
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt below
    workers = threads or len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        decoded, notes = zip(*pool.map(lambda p: _decode(p, size), paths, chunksize=256))
    report_conversions(Counter(notes), root)
    shapes = {a.shape for a in decoded}
    if len(shapes) > 1:
        raise DatasetError(f"images under {root} have {len(shapes)} different sizes (e.g. "
                           f"{sorted(shapes)[:2]}); set image_size to resize them on load")
    images = np.stack(decoded)
    if cached:
        try:
            _save_atomic(cached, images)
        except WriteError as err:  # the cache only saves time: train on without it
            warn_once(f"{err}; continuing without the decode cache (set --cache-dir)")
    return ArrayDataset(torch.from_numpy(images), torch.tensor(labels), classes)


def _first_size(path: str) -> tuple[int, int]:
    with open_image(path) as img:
        return img.size


def scan_folder(root: str, size: int | None = None, listing=None) -> FileDataset:
    """The images under `root` as files, to be brought to `size` x `size` when read. Without
    `size`, the first image's side, if it is square (a folder of CIFAR-like images)."""
    paths, labels, classes = listing or list_images(root)
    if size is None:
        w, h = _first_size(paths[0])
        if w != h:
            raise DatasetError(f"images under {root} are not square ({paths[0]} is {w}x{h}); "
                               f"set image_size (--image-size) for streamed folders")
        size = w
    return FileDataset(tuple(paths), torch.tensor(labels), classes, int(size))


def decoded_bytes(paths: list[str], size: int | None) -> int:
    """What `read_folder` would hold in memory for these images (from the first image's size
    when `size` is None)."""
    w, h = (size, size) if size else _first_size(paths[0])
    return len(paths) * w * h * 3


def load_imagefolder(data_dir: str, size: int | None = None, cache_dir: str | None = None,
                     mode: str = "memory", out_size: int | None = None
                     ) -> tuple[ArrayDataset | FileDataset, ArrayDataset | FileDataset | None]:
    """(train, val): `DIR/train` and `DIR/val` when both exist, else (all of DIR, None).

    `size` is the side images are stored at in memory; `out_size` the side streamed images are
    brought to (the model's input)."""
    if mode not in MODES:
        raise DatasetError(f"unknown data_mode {mode!r}; valid: {', '.join(MODES)}")
    train_dir, val_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "val")
    split = os.path.isdir(train_dir) and os.path.isdir(val_dir)
    train_root = train_dir if split else data_dir
    listing = list_images(train_root)  # once: ImageNet's 1.28M files take seconds to list
    if mode == "auto":
        mode = "memory" if decoded_bytes(listing[0], size) <= memory_budget() else "stream"
    if mode == "stream":
        def read(root, s, listing=None):
            return scan_folder(root, s, listing)
        size = out_size
    else:
        def read(root, s, listing=None):
            return read_folder(root, s, cache_dir, listing=listing)
    train = read(train_root, size, listing)
    if not split:
        return train, None
    val = read(val_dir, size or train.image_size[0])
    if val.classes != train.classes:
        raise DatasetError(f"{val_dir} and {train_dir} have different class folders")
    return train, val


