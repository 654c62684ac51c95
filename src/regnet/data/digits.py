"""The UCI handwritten digits (1,797 real 8x8 scans, pixels 0..16), as 32x32 RGB: the dataset
that ships with the library (`digits.npz`, written by scripts/make_digits.py), so the demo and
the tests need no download."""
from __future__ import annotations

import io
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from .arrays import ArrayDataset


def load_digits(size: int = 32) -> ArrayDataset:
    with np.load(io.BytesIO((resources.files("regnet.data") / "digits.npz").read_bytes())) as z:
        images, labels = z["images"], z["labels"]
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    # Bilinear upsampling keeps the strokes smooth; 8x8 -> 32x32 matches the CIFAR input size.
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).expand(-1, -1, -1, 3)
    return ArrayDataset(x.contiguous(), torch.tensor(labels, dtype=torch.int64),
                        tuple(str(d) for d in range(10)))
