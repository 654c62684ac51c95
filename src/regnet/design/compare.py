"""Two populations' errors compared, the design-space paper's way: does one space's error EDF
lie left of (better than), on, or right of another's? Used by the refinement chain (each step
against its parent) and by `regnet study analyze` (each study against the first)."""
from __future__ import annotations

import statistics

from regnet.stats import ks_2samp, welch

__all__ = ["edf_direction", "step_verdict"]


def edf_direction(ks: dict, alpha: float = 0.05) -> str:
    """Where a's EDF lies against b's, from ks_2samp(a, b)'s one-sided tests: "better" (left
    somewhere, never right), "worse", "cross" (both) or "same" (neither, at this n)."""
    worse, better = ks["p_a_lower"] < alpha, ks["p_a_higher"] < alpha
    return "cross" if worse and better else "worse" if worse else "better" if better else "same"


STEP_VERDICTS = {
    "cross": "mixed: the EDFs cross (better in one range of error, worse in another)",
    "worse": "contradicted: the refined space's EDF is worse",
    "better": "confirmed: the refined space's EDF improves",
    "same": "confirmed: the EDF is kept (no difference detected at this n)"}


def step_verdict(parent: list[float], child: list[float], alpha: float = 0.05) -> dict:
    """Compare a refined space's errors (child) with its parent's: Welch on the mean error, and
    the one-sided Kolmogorov-Smirnov tests of "child's EDF lies right of (worse than) the
    parent's somewhere" and the converse. The claim under test is keeps-or-improves."""
    ks = ks_2samp(child, parent)
    out = {"ks": ks, "mean_diff": statistics.fmean(child) - statistics.fmean(parent),
           "min_diff": min(child) - min(parent)}
    if len(parent) > 1 and len(child) > 1:
        out["welch"] = welch(child, parent)
    out["direction"] = edf_direction(ks, alpha)
    out["verdict"] = STEP_VERDICTS[out["direction"]]
    return out
