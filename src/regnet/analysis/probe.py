"""Fig. 1b: how much of the class a linear classifier can read from each of the last k blocks.

For each block: global-average-pool its output O^t, fit a multinomial logistic regression on
the pooled features of training images, report top-1 on held-out images. Also reported, as in
the paper's own test ("add an average pooling layer and the last fully connected layer to the
outputs of the last three blocks"): the network's own classifier applied to the pooled output,
where the block is as wide as the classifier's input (no training).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from regnet.extras import need

from .blocks import block_outputs, normalise


@dataclass
class ProbeResult:
    block: str
    channels: int
    probe_top1: float            # linear classifier trained on this block's pooled output
    head_top1: float | None      # the net's own classifier on it (None: width differs)

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def pooled_features(model, images: torch.Tensor, names: list[str], mean, std,
                    batch_size: int = 256) -> dict[str, torch.Tensor]:
    """{block: (N, C)} pooled outputs of uint8 NHWC `images`."""
    feats: dict[str, list] = {n: [] for n in names}
    for start in range(0, len(images), batch_size):
        x = normalise(images[start:start + batch_size], mean, std)
        for r in block_outputs(model, x, names, pool=True):
            feats[r.name].append(r.output)
    return {n: torch.cat(v) for n, v in feats.items()}


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, seed: int = 0):
    need("sklearn", "the linear probe")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    return clf.fit(train_x, train_y)


def probe_blocks(model, train: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor], names: list[str], mean, std,
                 batch_size: int = 256, seed: int = 0) -> list[ProbeResult]:
    """`train` / `test` are (uint8 NHWC images, labels)."""
    model.eval()
    ftrain = pooled_features(model, train[0], names, mean, std, batch_size)
    ftest = pooled_features(model, test[0], names, mean, std, batch_size)
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    results = []
    for name in names:
        clf = fit_probe(ftrain[name].numpy(), train[1].numpy(), seed)
        acc = float((clf.predict(ftest[name].numpy()) == test[1].numpy()).mean())
        head = None
        if isinstance(fc, torch.nn.Linear) and fc.in_features == ftest[name].shape[1]:
            with torch.no_grad():
                head = float((fc(ftest[name]).argmax(1) == test[1]).float().mean())
        results.append(ProbeResult(name, int(ftest[name].shape[1]), acc, head))
    return results


def markdown_table(runs: list[tuple[str, list[ProbeResult]]]) -> str:
    lines = ["| model | block | channels | linear probe top-1 | own classifier top-1 |",
             "| --- | --- | ---: | ---: | ---: |"]
    for label, results in runs:
        for r in results:
            head = "-" if r.head_top1 is None else f"{100 * r.head_top1:.2f}"
            lines.append(f"| {label} | {r.block} | {r.channels} | {100 * r.probe_top1:.2f} | "
                         f"{head} |")
    return "\n".join(lines) + "\n"


def plot_probe(runs: list[tuple[str, list[ProbeResult]]], out: str, title: str = "") -> None:
    """Grouped bars: one group per block position (last k blocks), one bar per model."""
    need("matplotlib", "the probe figure").use("Agg")
    import matplotlib.pyplot as plt

    k = max(len(r) for _, r in runs)
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(3.2 + 1.4 * k, 3.4))
    for i, (label, results) in enumerate(runs):
        xs = np.arange(len(results)) + (i - (len(runs) - 1) / 2) * width
        accs = [100 * r.probe_top1 for r in results]
        bars = ax.bar(xs, accs, width, label=label)
        for bar, acc in zip(bars, accs):
            ax.annotate(f"{acc:.1f}", (bar.get_x() + bar.get_width() / 2, acc), ha="center",
                        va="bottom", fontsize=7)
    first = runs[0][1]
    ax.set_xticks(np.arange(k))
    steps = [f"t-{k - 1 - j}" if j < k - 1 else "t" for j in range(k)]
    ax.set_xticklabels([f"{s}\n({first[j].block})" if j < len(first) else s
                        for j, s in enumerate(steps)], fontsize=8)
    ax.set_ylabel("linear-probe top-1 (%)")
    lo = min(100 * r.probe_top1 for _, res in runs for r in res)
    ax.set_ylim(max(0.0, lo - 10), 100)
    ax.set_title(title or "Top-1 of a linear classifier on each of the last blocks", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
