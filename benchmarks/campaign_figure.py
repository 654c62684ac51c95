"""The figure of a campaign report: what the table's numbers look like, seed by seed.

Left: each finished run's final validation top-1, one dot a seed, a bar at the group's mean, the
baseline's mean as a dashed line, and where the paper's own gap to its baseline would put the
group (a hollow diamond at baseline mean + paper gap). A reader sees at once whether the seeds
of two nets overlap and how far the paper's gain lies from ours. Right: the mean validation
top-1 by epoch of each group over its last epochs, from the runs' metrics.jsonl, so that one
also sees whether the order of the nets is settled or still moving when training stops.
"""
from __future__ import annotations

import os

from regnet.design.study import read_jsonl
from regnet.extras import need

# Epochs shown on the right: the last ones, where the nets separate (the first epochs span
# 50-85% and would flatten the part that matters).
LAST_EPOCHS = 15


def mean_curve(result_dirs: list[str]) -> tuple[list[int], list[float]]:
    """Mean val top-1 by epoch over the runs that reached that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for d in result_dirs:
        for row in read_jsonl(os.path.join(d, "metrics.jsonl")):
            if "val_top1" in row and "epoch" in row:
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row["val_top1"]))
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]


def draw(groups: list[dict], base: dict | None, paper_gaps: dict[str, float | None],
         results: str, out_png: str, title: str = "") -> str:
    """groups: the report's rows (label, runs, final); paper_gaps: label -> the paper's gap to
    its baseline (None where it gives none). Writes OUT_PNG and returns its path."""
    need("matplotlib", "the campaign report's figure").use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6),
                                      gridspec_kw={"width_ratios": [1.1, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    base_mean = sum(base["final"]) / len(base["final"]) if base else None
    for i, g in enumerate(groups):
        color = colors[i % len(colors)]
        n = len(g["final"])
        xs = [i + (k - (n - 1) / 2) * 0.08 for k in range(n)]
        left.scatter(xs, g["final"], color=color, s=28, zorder=3)
        mean = sum(g["final"]) / n
        left.hlines(mean, i - 0.28, i + 0.28, color=color, lw=2)
        gap = paper_gaps.get(g["label"])
        if base_mean is not None and gap is not None and g is not base:
            left.scatter([i], [base_mean + gap], marker="D", s=40, facecolors="none",
                         edgecolors=color, zorder=3)
        epochs, curve = mean_curve([os.path.join(results, r) for r in g["runs"]])
        keep = [k for k, e in enumerate(epochs) if e > epochs[-1] - LAST_EPOCHS] if epochs else []
        right.plot([epochs[k] for k in keep], [curve[k] for k in keep], color=color,
                   label=f"{g['label']} (n={n})")
    if base_mean is not None:
        left.axhline(base_mean, color="grey", ls="--", lw=1,
                     label=f"{base['label']} mean")
        left.scatter([], [], marker="D", facecolors="none", edgecolors="grey",
                     label="baseline mean + the paper's gap")
        left.legend(loc="lower left", fontsize=8)
    left.set_xticks(range(len(groups)), [g["label"] for g in groups], rotation=20, ha="right")
    left.set_ylabel("final val top-1 (%)")
    left.set_title("final val top-1, one dot a seed", fontsize=10)
    left.grid(axis="y", alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("val top-1 (%), mean over seeds")
    right.set_title(f"the last {LAST_EPOCHS} epochs", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
