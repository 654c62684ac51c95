"""Fig. 1a: the output feature maps O^t of consecutive blocks (and the memory H^t of regulated
blocks), one row per map kind and model, side by side.

Each panel is the channel-mean of a map, min-max scaled on its own. Above each O^t panel is the
cosine similarity to the previous block's output (same stage, same shape): the paper's point is
that a plain ResNet's consecutive outputs are near copies of each other, which the numbers show
without relying on the eye.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from regnet.extras import need

from .blocks import BlockRecord


def consecutive_blocks(names: list[str], stage: int, start: int, count: int) -> list[str]:
    """`count` block names of stage `stage` from block `start` (1-based)."""
    in_stage = [n for n in names if n.split(".")[0] == f"s{stage}"]
    if not in_stage:
        raise ValueError(f"--stage {stage}: the model has stages "
                         f"{sorted({n.split('.')[0] for n in names})}")
    if not 1 <= start <= len(in_stage):
        raise ValueError(f"--start {start}: stage {stage} has {len(in_stage)} blocks")
    return in_stage[start - 1:start - 1 + count]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def _panel(ax, fmap: torch.Tensor, title: str) -> None:
    m = fmap[0].float().mean(0)
    lo, hi = float(m.min()), float(m.max())
    ax.imshow(((m - lo) / (hi - lo + 1e-12)).numpy(), cmap="viridis", interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def feature_rows(label: str, records: list[BlockRecord]) -> list[tuple[str, list]]:
    """[(row label, [(panel title, map), ...]), ...]: the outputs, then the memory if any."""
    outs, prev = [], None
    for r in records:
        sim = f"\ncos(prev)={cosine(prev, r.output):.3f}" if prev is not None and \
            prev.shape == r.output.shape else ""
        outs.append((f"O {r.name}{sim}", r.output))
        prev = r.output
    rows = [(f"{label}\noutputs O^t", outs)]
    if any(r.hidden is not None for r in records):
        rows.append((f"{label}\nmemory H^t", [(f"H {r.name}", r.hidden) for r in records
                                              if r.hidden is not None]))
    return rows


def plot_features(image: torch.Tensor, runs: list[tuple[str, list[BlockRecord]]], out: str,
                  mean=None, std=None) -> dict:
    """Write the figure to `out` (PNG); returns the cosine similarities per run for the caller
    to print or store."""
    need("matplotlib", "the feature figure").use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for label, recs in runs for row in feature_rows(label, recs)]
    cols = 1 + max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.0 * cols, 2.2 * len(rows)),
                             squeeze=False)
    shown = image[0].permute(1, 2, 0).float()
    if mean is not None and std is not None:
        shown = shown * torch.tensor(std) + torch.tensor(mean)
    shown = shown.clamp(0, 1) if mean is not None else (shown - shown.min()) / \
        (shown.max() - shown.min() + 1e-12)
    for i, (row_label, panels) in enumerate(rows):
        axes[i, 0].imshow(shown.numpy(), interpolation="nearest")
        axes[i, 0].set_title("input", fontsize=8)
        axes[i, 0].set_ylabel(row_label, fontsize=8)
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        for j in range(1, cols):
            if j - 1 < len(panels):
                _panel(axes[i, j], panels[j - 1][1], panels[j - 1][0])
            else:
                axes[i, j].axis("off")
    fig.suptitle("Feature maps of consecutive blocks (channel mean, each panel scaled alone)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {label: [round(cosine(a.output, b.output), 4) for a, b in zip(recs, recs[1:])
                    if a.output.shape == b.output.shape] for label, recs in runs}
