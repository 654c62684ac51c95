"""Per-block outputs O^t (and, for regulated blocks, the memory H^t they pass on), read by
forward hooks on the blocks.

Blocks are named `s<i>.b<j>` as in the model; `Net.stages()` / `Stage.blocks()` give them in
order, so this works for every family, regulated or not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class BlockRecord:
    name: str                            # "s1.b2"
    output: torch.Tensor                 # O^t, (B, C, H, W)
    hidden: torch.Tensor | None = None   # H^t after BN_h + ReLU: the memory passed on


def named_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name in model.stage_names:
        for i, block in enumerate(getattr(model, name).blocks(), 1):
            out.append((f"{name}.b{i}", block))
    return out


def last_blocks(model: nn.Module, k: int) -> list[str]:
    names = [n for n, _ in named_blocks(model)]
    if not 1 <= k <= len(names):
        raise ValueError(f"--last {k}: the model has {len(names)} blocks")
    return names[-k:]


@torch.no_grad()
def block_outputs(model: nn.Module, x: torch.Tensor, names: list[str] | None = None,
                  pool: bool = False) -> list[BlockRecord]:
    """Run `model` on x and return the records of the blocks in `names` (None = all), in
    network order. `pool=True` keeps only the global average of each map (B, C): what a linear
    probe reads, without holding every full map in memory."""
    blocks = named_blocks(model)
    wanted = set(n for n, _ in blocks) if names is None else set(names)
    unknown = wanted - {n for n, _ in blocks}
    if unknown:
        raise ValueError(f"unknown blocks {sorted(unknown)}; the model has "
                         f"{blocks[0][0]} .. {blocks[-1][0]}")
    reduce = (lambda t: t.float().mean((2, 3))) if pool else (lambda t: t.float().clone())
    records: dict[str, BlockRecord] = {}
    handles = []
    for name, block in blocks:
        if name not in wanted:
            continue
        records[name] = BlockRecord(name, torch.empty(0))
        handles.append(block.register_forward_hook(
            lambda m, a, out, r=records[name]: _record(r, out, reduce)))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return [records[n] for n, _ in blocks if n in records]


def _record(record: BlockRecord, out, reduce) -> None:
    # A regulated block returns (O^t, (H^t[, C^t])): H^t after BN_h + ReLU, the memory it fused
    # and passes on.
    if isinstance(out, tuple):
        out, state = out
        record.hidden = reduce(state[0])
    record.output = reduce(out)


def image_tensor(path: str, size: int, mean, std) -> torch.Tensor:
    """An image file as a normalised (1, 3, size, size) batch: shorter side resized to `size`,
    centre crop (the evaluation transform)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    scale = size / min(im.size)
    im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                   Image.BILINEAR)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    im = im.crop((left, top, left + size, top + size))
    x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return normalise(x.unsqueeze(0), mean, std)


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W), (x / 255 - mean) / std."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean_t) / std_t
