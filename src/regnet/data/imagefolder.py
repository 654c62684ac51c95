"""ImageNet-style folders, `DIR/<class>/<image>.jpg|png` (and `DIR/train`, `DIR/val` when both
exist), decoded once into memory and cached as uint8 .npy files.

Decoding 50,000 JPEGs costs tens of seconds; the cache (keyed by the folder's path and every
file's name, size and mtime) makes the second run start in about a second.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from .arrays import ArrayDataset
from .errors import DatasetError

EXTENSIONS = (".jpg", ".jpeg", ".png")


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


def _decode(path: str, size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = _resize_centre_crop(img, size)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None


def _resize_centre_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, then the central `size` x `size` square."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _cache_key(root: str, paths: list[str], size: int | None) -> str:
    # Relative names: '../data/x' and '/abs/data/x' are the same folder and share one entry.
    digest = hashlib.sha1(f"{os.path.realpath(root)}|{size}".encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _save_atomic(path: str, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def read_folder(root: str, size: int | None = None, cache_dir: str | None = None,
                threads: int | None = None) -> ArrayDataset:
    """All images under `root` in memory. Images of one common size are kept as they are;
    otherwise pass `size` (shorter side resized, centre square kept) or get an error."""
    paths, labels, classes = list_images(root)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    cached = None
    if cache_dir:
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
        decoded = list(pool.map(lambda p: _decode(p, size), paths, chunksize=256))
    shapes = {a.shape for a in decoded}
    if len(shapes) > 1:
        raise DatasetError(f"images under {root} have {len(shapes)} different sizes (e.g. "
                           f"{sorted(shapes)[:2]}); set image_size to resize them on load")
    images = np.stack(decoded)
    if cached:
        os.makedirs(cache_dir, exist_ok=True)
        _save_atomic(cached, images)
    return ArrayDataset(torch.from_numpy(images), torch.tensor(labels), classes)


def load_imagefolder(data_dir: str, size: int | None = None, cache_dir: str | None = None
                     ) -> tuple[ArrayDataset, ArrayDataset | None]:
    """(train, val): `DIR/train` and `DIR/val` when both exist, else (all of DIR, None)."""
    train_dir, val_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "val")
    if os.path.isdir(train_dir) and os.path.isdir(val_dir):
        train = read_folder(train_dir, size, cache_dir)
        val = read_folder(val_dir, size or train.image_size[0], cache_dir)
        if val.classes != train.classes:
            raise DatasetError(f"{val_dir} and {train_dir} have different class folders")
        return train, val
    return read_folder(data_dir, size, cache_dir), None


