"""Fit the quantized linear width rule (w0, wa, wm) to any network's per-block widths.

The paper's test of how "RegNet-like" a model is: find the (w0, wa, wm) whose quantized widths
(regnet_gen's rule, q = 8) best match the model's per-block widths w_j, measured by
e_fit = mean_j |log(w_fit_j / w_j)| (0 for a model the rule generates exactly). A coarse grid
over (w0, wa, wm), vectorised over wa, wm and the blocks, is refined once around its best point.
"""
from __future__ import annotations

import numpy as np
import torch.nn as nn

__all__ = ["fit_width_rule", "block_widths"]


def block_widths(model: nn.Module) -> list[int]:
    """Per-block output widths of a built network (stage width repeated over its blocks)."""
    return [info["num_chs"] for info in model.feature_info[1:]  # [0] is the stem
            for _ in getattr(model, info["module"]).blocks()]


def _rule(w0: float, wa: np.ndarray, wm: np.ndarray, depth: int, q: int) -> np.ndarray:
    """Quantized widths for every (wa, wm) pair: shape (len(wa), len(wm), depth)."""
    u = w0 + wa[:, None, None] * np.arange(depth)[None, None, :]
    s = np.round(np.log(u / w0) / np.log(wm)[None, :, None])
    return np.round(w0 * np.power(wm[None, :, None], s) / q) * q


def _search(widths: np.ndarray, w0s, was, wms, q: int):
    logw = np.log(widths)
    best = (np.inf, None)
    for w0 in w0s:
        fit = _rule(float(w0), was, wms, len(widths), q)
        err = np.abs(np.log(np.maximum(fit, 1)) - logw).mean(-1)
        i, j = np.unravel_index(np.argmin(err), err.shape)
        if err[i, j] < best[0]:
            best = (float(err[i, j]), (float(w0), float(was[i]), float(wms[j])))
    return best


def fit_width_rule(widths, q: int = 8) -> dict:
    """{"w0", "wa", "wm", "error" (e_fit), "widths" (the fitted per-block widths)}."""
    w = np.asarray(list(widths), dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or (w <= 0).any():
        raise ValueError("per-block widths must be a non-empty list of positive numbers")
    first = w[0]
    lo, hi = max(q, q * np.floor(first / 2 / q)), max(q, q * np.ceil(first * 2 / q))
    w0s = np.arange(lo, hi + q, q)
    was = np.concatenate([[0.0], np.geomspace(0.5, max(8.0, 4 * w.max() / len(w)), 80)])
    wms = np.linspace(1.05, 4.0, 119)
    err, (w0, wa, wm) = _search(w, w0s, was, wms, q)
    if err > 0:  # refine around the coarse optimum
        w0s = np.arange(max(q, w0 - 2 * q), w0 + 3 * q, q)
        was = np.unique(np.clip(np.linspace(wa * 0.8, wa * 1.25 + 0.1, 61), 0, None))
        wms = np.linspace(max(1.01, wm - 0.05), wm + 0.05, 51)
        err2, params2 = _search(w, w0s, was, wms, q)
        if err2 < err:
            err, (w0, wa, wm) = err2, params2
    fitted = _rule(w0, np.array([wa]), np.array([wm]), len(w), q)[0, 0]
    return {"w0": int(w0), "wa": round(wa, 3), "wm": round(wm, 4), "error": err,
            "widths": [int(v) for v in fitted]}
