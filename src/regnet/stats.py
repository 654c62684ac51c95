"""Small-sample statistics for comparing trained networks, without scipy.

- `welch`: the two-sample t-test with unequal variances, its 95% interval (Student's t from the
  regularised incomplete beta function, Lentz's continued fraction);
- `spearman`: the rank correlation (average ranks for ties), with its t-approximation p-value;
- `ks_2samp`: the two-sample Kolmogorov-Smirnov statistics of two error EDFs, two-sided and
  one-sided, with asymptotic p-values (the design-space paper compares spaces by their EDFs).
"""
from __future__ import annotations

import math
import statistics

__all__ = ["betainc", "t_sf2", "t_quantile", "welch", "paired_t", "verdict", "ranks", "spearman",
           "ks_2samp", "kolmogorov_sf"]


def _betacf(a: float, b: float, x: float, iters: int = 300, eps: float = 1e-15) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iters + 1):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| >= |t|) of Student's t with `df` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (p > 0.5), by bisection on the two-sided tail."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf2(mid, df) / 2 > 1 - p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _t_result(diff: float, se: float, df: float) -> dict:
    """A difference with its standard error and degrees of freedom: its 95% interval, t and
    two-sided p (with se = 0, a nonzero difference is certain and a zero one is no evidence)."""
    if se == 0:
        return {"diff": diff, "ci95": [diff, diff], "t": math.inf if diff else 0.0, "df": df,
                "p": 0.0 if diff else 1.0}
    t = diff / se
    half = t_quantile(0.975, df) * se
    return {"diff": diff, "ci95": [diff - half, diff + half], "t": t, "df": df,
            "p": t_sf2(t, df)}


def welch(a: list[float], b: list[float]) -> dict:
    """mean(a) - mean(b), its 95% interval, t, Welch-Satterthwaite df and two-sided p."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values on each side")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    # Welch-Satterthwaite; with no spread at all there is nothing to weigh, so the pooled df
    df = ((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se
          else float(len(a) + len(b) - 2))
    return _t_result(statistics.mean(a) - statistics.mean(b), se, df)


def paired_t(a: list[float], b: list[float]) -> dict:
    """mean(a - b) over matched pairs, its 95% interval, t, df = n - 1 and two-sided p: the test
    for two measurements of the same units (one sampled network built with and without SE)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("the paired t-test needs two equally long lists of at least 2 values")
    diffs = [x - y for x, y in zip(a, b)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {**_t_result(statistics.mean(diffs), se, float(len(diffs) - 1)), "n": len(diffs)}


def verdict(result: dict, alpha: float = 0.05) -> str:
    if result["p"] >= alpha:
        return "not confirmed at this budget (no difference detected)"
    return "confirmed at this budget" if result["diff"] > 0 else "contradicted at this budget"


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> dict:
    """Spearman's rho of paired values (Pearson's r of their ranks) and the two-sided p-value
    of rho = 0 from t = rho sqrt((n-2) / (1-rho^2)) with n-2 degrees of freedom."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs paired values, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 3:
        raise ValueError("spearman needs at least three pairs")
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    if saa == 0 or sbb == 0:
        raise ValueError("spearman is undefined when one side has a single value")
    rho = sab / math.sqrt(saa * sbb)
    if abs(rho) >= 1.0:
        return {"rho": rho, "n": n, "p": 0.0}
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return {"rho": rho, "n": n, "p": t_sf2(t, n - 2)}


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) of the Kolmogorov distribution: 2 sum_k (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam <= 0.0:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 200):
        term = math.exp(-2.0 * k * k * lam * lam)
        total += sign * term
        if term < 1e-16:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def ks_2samp(a: list[float], b: list[float]) -> dict:
    """Two-sample Kolmogorov-Smirnov statistics of the EDFs F_a, F_b (F(e) = share of values
    below or at e):

    - d = max |F_a - F_b| with the two-sided p-value (Kolmogorov's distribution, Stephens's
      small-sample correction of the argument);
    - d_a_lower = max (F_b - F_a): how far a's EDF lies below (to the right of, i.e. worse
      errors than) b's somewhere, with the one-sided p-value exp(-2 m n / (m + n) d^2) of
      "a is not stochastically larger than b";
    - d_a_higher = max (F_a - F_b), the same the other way.
    """
    if not a or not b:
        raise ValueError("ks_2samp needs values on both sides")
    xs, ys = sorted(a), sorted(b)
    m, n = len(xs), len(ys)
    i = j = 0
    lower = higher = 0.0
    while i < m or j < n:
        v = min(xs[i] if i < m else math.inf, ys[j] if j < n else math.inf)
        while i < m and xs[i] == v:
            i += 1
        while j < n and ys[j] == v:
            j += 1
        fa, fb = i / m, j / n
        lower, higher = max(lower, fb - fa), max(higher, fa - fb)
    ne = m * n / (m + n)
    d = max(lower, higher)
    root = math.sqrt(ne)
    return {"d": d, "p": kolmogorov_sf((root + 0.12 + 0.11 / root) * d),
            "d_a_lower": lower, "p_a_lower": min(1.0, math.exp(-2.0 * ne * lower * lower)),
            "d_a_higher": higher, "p_a_higher": min(1.0, math.exp(-2.0 * ne * higher * higher)),
            "m": m, "n": n}
