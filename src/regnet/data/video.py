"""Clips from folders of frames: `ROOT/<class>/<video>/<frame>.jpg` (the layout Kinetics and
Something-Something frame dumps use), read lazily, one clip per `__getitem__`.

Temporal sampling follows TSN (Wang et al.): a video of n frames is cut into T equal segments
and one frame is taken from each, the middle one (`sampling="uniform"`, evaluation) or a random
one (`"random"`, training), so a clip always spans the whole video whatever its length (short
videos repeat frames). Frames are ordered by the numbers in their names ("img_10" after
"img_9"). Clips come out as float (C, T, H, W), normalised, ready for `iresnet3d50`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .errors import DatasetError

__all__ = ["ClipConfig", "VideoFolder", "segment_indices", "FRAME_EXTENSIONS"]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
SAMPLING = ("uniform", "random")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the inflated nets start from ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipConfig:
    frames: int = 16                 # T, frames per clip
    sampling: str = "uniform"        # uniform (middle of each segment) | random (training)
    size: int | None = None          # resize every frame to size x size; None keeps it
    flip: bool = False               # random horizontal flip of the whole clip
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self):
        if self.frames < 1:
            raise DatasetError(f"frames must be >= 1, got {self.frames}")
        if self.sampling not in SAMPLING:
            raise DatasetError(f"unknown sampling {self.sampling!r}; expected "
                               f"{' or '.join(SAMPLING)}")


def segment_indices(num_frames: int, frames: int, sampling: str = "uniform",
                    generator: torch.Generator | None = None) -> list[int]:
    """One frame index per each of `frames` equal segments of [0, num_frames)."""
    if num_frames < 1:
        raise DatasetError("a video needs at least one frame")
    seg = num_frames / frames
    if sampling == "uniform":
        offsets = [0.5] * frames
    elif sampling == "random":
        offsets = torch.rand(frames, generator=generator).tolist()
    else:
        raise DatasetError(f"unknown sampling {sampling!r}; expected {' or '.join(SAMPLING)}")
    return [min(num_frames - 1, int((k + u) * seg)) for k, u in enumerate(offsets)]


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _list_dirs(path: str) -> list[str]:
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))
                  and not d.startswith("."))


class VideoFolder(torch.utils.data.Dataset):
    """`ROOT/<class>/<video>/<frame>` -> (clip (C, T, H, W) float, label int).

    Classes are the sorted folder names (`classes`, `class_to_idx`); videos without frames are
    left out and counted in `skipped`.
    """

    def __init__(self, root: str, config: ClipConfig = ClipConfig()):
        if not os.path.isdir(root):
            raise DatasetError(f"video folder {root!r} does not exist; expected "
                               f"ROOT/<class>/<video>/<frame>.jpg")
        self.root, self.config = root, config
        self.classes = _list_dirs(root)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.videos: list[tuple[list[str], int]] = []
        self.skipped = 0
        for cls in self.classes:
            for video in _list_dirs(os.path.join(root, cls)):
                vdir = os.path.join(root, cls, video)
                frames = sorted((f for f in os.listdir(vdir)
                                 if f.lower().endswith(FRAME_EXTENSIONS)), key=_natural_key)
                if frames:
                    self.videos.append(([os.path.join(vdir, f) for f in frames],
                                        self.class_to_idx[cls]))
                else:
                    self.skipped += 1
        if not self.videos:
            raise DatasetError(f"no videos with frames ({', '.join(FRAME_EXTENSIONS)}) under "
                               f"{root!r}; expected ROOT/<class>/<video>/<frame>.jpg")
        self._mean = torch.tensor(config.mean).view(-1, 1, 1, 1)
        self._std = torch.tensor(config.std).view(-1, 1, 1, 1)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.videos]

    def __len__(self) -> int:
        return len(self.videos)

    def _load(self, path: str) -> np.ndarray:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if self.config.size:
                    img = img.resize((self.config.size,) * 2, Image.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except OSError as err:
            raise DatasetError(f"cannot read frame {path!r}: {err}") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        paths, label = self.videos[index]
        picks = segment_indices(len(paths), self.config.frames, self.config.sampling)
        decoded: dict[int, np.ndarray] = {}  # short videos repeat frames: decode each once
        for i in picks:
            if i not in decoded:
                decoded[i] = self._load(paths[i])
        frames = [decoded[i] for i in picks]
        if len({f.shape for f in frames}) > 1:
            raise DatasetError(f"frames of {os.path.dirname(paths[0])!r} differ in size; "
                               f"set ClipConfig(size=...) to resize them")
        clip = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float().div_(255)
        if self.config.flip and torch.rand(()) < 0.5:
            clip = clip.flip(-1)
        return (clip - self._mean) / self._std, label
