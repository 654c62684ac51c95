"""Two populations' errors compared, the design-space paper's way: does one space's error EDF
lie left of (better than), on, or right of another's? Used by the refinement chain (each step
against its parent) and by `regnet study analyze` (each study against the first)."""
from __future__ import annotations

import statistics

from regnet.stats import ks_2samp, welch

__all__ = ["step_verdict"]


def step_verdict(parent: list[float], child: list[float], alpha: float = 0.05) -> dict:
    """Compare a refined space's errors (child) with its parent's: Welch on the mean error, and
    the one-sided Kolmogorov-Smirnov tests of "child's EDF lies right of (worse than) the
    parent's somewhere" and the converse. The claim under test is keeps-or-improves."""
    ks = ks_2samp(child, parent)
    out = {"ks": ks, "mean_diff": statistics.fmean(child) - statistics.fmean(parent),
           "min_diff": min(child) - min(parent)}
    if len(parent) > 1 and len(child) > 1:
        out["welch"] = welch(child, parent)
    worse, better = ks["p_a_lower"] < alpha, ks["p_a_higher"] < alpha
    if worse and better:
        out["verdict"] = "mixed: the EDFs cross (better in one range of error, worse in another)"
    elif worse:
        out["verdict"] = "contradicted: the refined space's EDF is worse"
    elif better:
        out["verdict"] = "confirmed: the refined space's EDF improves"
    else:
        out["verdict"] = "confirmed: the EDF is kept (no difference detected at this n)"
    return out
