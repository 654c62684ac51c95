"""Batched augmentation on uint8 images: one gather or one `grid_sample` per batch, no Python
loop over samples (the per-sample PIL pipeline of the reference repositories is what makes a
2-core machine data-bound).

Inputs are N x H x W x C uint8; outputs of `to_model_input` are float N x C x H x W, normalised,
and channels_last in memory when asked (the permuted view of NHWC storage already is).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KINDS = ("cifar", "crop", "imagenet", "none")
PAD_MODES = ("zeros", "reflect")
FLIP_MODES = ("random", "alternate")


@dataclass(frozen=True)
class CropFlip:
    """How the training views are translated and mirrored (the error messages name the
    `TrainConfig` keys these come from).

    pad: pixels of pad-and-crop translation of the `cifar` / `crop` kinds; None: He et al.'s
      4 per 32 px. pad_mode: the padded border, zeros (He et al.) or the mirrored image.
    flip_mode: `random`, a coin per image and epoch, or `alternate` (Jordan, "94% on CIFAR-10
      in 3.29 seconds", 2024): a coin per image in epoch 0, then the opposite of the previous
      epoch, so every image is seen both ways in every two epochs."""
    pad: int | None = None
    pad_mode: str = "zeros"
    flip_mode: str = "random"

    def __post_init__(self):
        if self.pad is not None and self.pad < 0:
            raise ValueError(f"crop_pad must be >= 0, got {self.pad}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"unknown crop_pad_mode {self.pad_mode!r}; valid: "
                             f"{', '.join(PAD_MODES)}")
        if self.flip_mode not in FLIP_MODES:
            raise ValueError(f"unknown flip_mode {self.flip_mode!r}; valid: "
                             f"{', '.join(FLIP_MODES)}")

    def pad_for(self, size: int) -> int:
        return (4 * size // 32 or 1) if self.pad is None else int(self.pad)

    def flips(self, index, seed: int, epoch: int):
        """Which of the images `index` (a tensor, or one int) are mirrored this epoch under
        `alternate`; None under `random` (the augmentation draws its own coins).

        The epoch-0 coin is the top bit of a multiplicative hash of (image, seed): a pure
        function that the batched and the per-file loaders compute alike."""
        if self.flip_mode == "random":
            return None
        coin = ((index + seed * 7919) * 2654435769) % 2 ** 32 >= 2 ** 31
        return coin ^ bool(epoch % 2)


def reflect_index(size: int, pad: int) -> torch.Tensor:
    """Source rows of a `pad`-pixel mirror border without repeating the edge (numpy's and
    `F.pad`'s "reflect"): for size 4, pad 2: 2 1 | 0 1 2 3 | 2 1."""
    if pad >= size:
        raise ValueError(f"reflect padding of {pad} px needs images larger than {size} px")
    i = torch.arange(-pad, size + pad).abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def pad_images(x: torch.Tensor, pad: int, mode: str = "zeros") -> torch.Tensor:
    """N x H x W x C images with a `pad`-pixel border of zeros or of their mirror image."""
    if mode == "zeros":
        return F.pad(x, (0, 0, pad, pad, pad, pad))
    if mode == "reflect":
        n, h, w, c = x.shape
        rows = reflect_index(h, pad).to(x.device)
        cols = reflect_index(w, pad).to(x.device)
        return x[:, rows[:, None], cols[None, :]]
    raise ValueError(f"unknown crop pad mode {mode!r}; valid: {', '.join(PAD_MODES)}")


def crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator,
              mode: str = "zeros", flips: torch.Tensor | None = None) -> torch.Tensor:
    """Random `pad`-pixel translation and optional horizontal flip. The border is zeros (He et
    al.) or the mirrored image (`mode="reflect"`, which keeps edge statistics natural).
    `flips`: which samples to mirror (`CropFlip.flips`); None: a coin each.

    The padded batch is viewed (no copy) as every sample's (2*pad+1)^2 candidate windows, so
    one advanced index per sample picks its window: the index arithmetic is per sample, not
    per pixel, which is what makes this several times faster than a per-pixel gather."""
    n, h, w, c = x.shape
    padded = pad_images(x, pad, mode)
    sn, sh, sw, sc = padded.stride()
    k = 2 * pad + 1
    windows = padded.as_strided((n, k, k, h, w, c), (sn, sh, sw, sh, sw, sc))
    dy = torch.randint(0, k, (n,), generator=gen)
    dx = torch.randint(0, k, (n,), generator=gen)
    out = windows[torch.arange(n), dy, dx]
    if flip:
        mirrored = torch.rand(n, generator=gen) < 0.5 if flips is None else flips
        out = torch.where(mirrored[:, None, None, None], out.flip(2), out)
    return out


def random_resized_crop(x: torch.Tensor, size: int, gen: torch.Generator,
                        scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True,
                        flips: torch.Tensor | None = None) -> torch.Tensor:
    """Inception-style crop (area fraction in `scale`, aspect in `ratio`), resized bilinearly to
    `size`, flipped at random. Returns float N x C x size x size on the 0..255 scale.

    Sampling follows torchvision's rule (10 tries, then the whole image) for all samples at
    once; each sample's crop becomes one affine map and a single `grid_sample` resamples all."""
    n, h, w, _ = x.shape
    tries = 10
    area = h * w * torch.empty(n, tries).uniform_(*scale, generator=gen)
    log_r = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp_min(0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), float(w)))
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), float(h)))
    top = torch.floor(torch.rand(n, generator=gen) * (h - ch + 1))
    left = torch.floor(torch.rand(n, generator=gen) * (w - cw + 1))
    sign = torch.ones(n)
    if flip:
        mirrored = torch.rand(n, generator=gen) < 0.5 if flips is None else flips.cpu()
        sign = torch.where(mirrored, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sign * cw / w
    theta[:, 0, 2] = (2 * left + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * top + ch) / h - 1
    src = x.permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta.to(src.device), (n, x.shape[3], size, size), align_corners=False)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize_centre_crop(x: torch.Tensor, size: int, crop_pct: float = 0.875) -> torch.Tensor:
    """Evaluation view: shorter side to size / crop_pct, then the central size x size.
    Float N x C x size x size, 0..255 scale."""
    _, h, w, _ = x.shape
    src = x.permute(0, 3, 1, 2).float()
    short = int(round(size / crop_pct))
    if (h, w) == (size, size):
        return src
    nh, nw = (short, max(short, round(w * short / h))) if h <= w else \
        (max(short, round(h * short / w)), short)
    src = F.interpolate(src, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return src[:, :, top:top + size, left:left + size]


def augment_batch(x: torch.Tensor, kind: str, size: int, train: bool, gen: torch.Generator,
                  crop: CropFlip = CropFlip(), flips: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """uint8 NHWC batch -> float NCHW (0..255) ready for normalisation. `crop`: translation
    and border of the `cifar` / `crop` kinds; `flips`: `crop.flips` for these images."""
    if kind not in KINDS:
        raise ValueError(f"unknown augment {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "imagenet":
        return random_resized_crop(x, size, gen, flips=flips) if train else \
            resize_centre_crop(x, size)
    if train and kind in ("cifar", "crop"):
        x = crop_flip(x, pad=crop.pad_for(x.shape[1]), flip=kind == "cifar", gen=gen,
                      mode=crop.pad_mode, flips=flips)
    out = x.permute(0, 3, 1, 2).float()
    if out.shape[-1] != size or out.shape[-2] != size:
        out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)
    return out


def normalise(x: torch.Tensor, mean, std, channels_last: bool) -> torch.Tensor:
    """(x / 255 - mean) / std in one fused multiply-add, in the requested memory format."""
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    scale = 1.0 / (255.0 * std_t)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    return torch.addcmul(-mean_t / std_t, x, scale)
