"""Analysis of finished studies: error EDFs, error against each parameter, best models, width-rule
fits; PNGs plus a Markdown report and a self-contained HTML report (images inlined).

Error EDF (the paper's comparison of design spaces): F(e) = (1/n) sum_i 1[e_i < e], the fraction
of a population's models with error below e; a space whose curve lies to the left is better.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import statistics

from regnet.extras import need
from regnet.stats import paired_t

from .compare import step_verdict
from .fit import fit_width_rule
from .study import draw_key, load_study

need("matplotlib", "regnet study analyze").use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

__all__ = ["study_rows", "edf", "plot_edfs", "plot_trends", "best_models", "compare_studies",
           "analyze"]

# Matched networks needed before the paired test is reported: two populations sampled with
# the same seed from spaces that differ in one fixed choice (RegNetX / RegNetY: SE or not) share
# most draws, and the paired test on those is far stronger than comparing two EDFs.
MIN_PAIRS = 10
STUDY_VERDICTS = {"cross": "the EDFs cross", "worse": "EDF worse", "better": "EDF better",
                  "same": "no EDF difference detected at this n"}

# Parameters error is plotted against; w0, wa, wm of an AnyNet model come from the width fit.
TREND_PARAMS = ("d", "w0", "wa", "wm", "g", "b", "flops", "params", "acts", "e_fit")
LOG_X = {"w0", "wa", "flops", "params", "acts", "g"}


def _block_widths(model_args: dict) -> list[int]:
    return [w for d, w in zip(model_args["depths"], model_args["widths"]) for _ in range(d)]


def study_rows(path: str) -> tuple[dict, list[dict], dict]:
    """(study.json, one row per model with an error, {"diverged": k, "pending": m})."""
    meta, configs, results = load_study(path)
    rows, diverged = [], 0
    for rec in configs:
        res = results.get(rec["id"])
        if res is None:
            continue
        if res.get("status") != "ok":
            diverged += 1
            continue
        fit = fit_width_rule(_block_widths(rec["model_args"]))
        stats = dict(rec["stats"])
        for k in ("w0", "wa", "wm"):
            stats.setdefault(k, fit[k])
        stats["e_fit"] = fit["error"]
        rows.append({"id": rec["id"], "error": res["error"], "stats": stats, "fit": fit,
                     "depths": rec["model_args"]["depths"], "widths": rec["model_args"]["widths"],
                     "group_widths": rec["model_args"]["group_widths"],
                     "bot_muls": rec["model_args"]["bot_muls"],
                     "sampled": rec.get("params", {})})
    pending = len(configs) - len(rows) - diverged
    return meta, rows, {"diverged": diverged, "pending": pending}


def edf(errors) -> tuple[list[float], list[float]]:
    """Sorted errors and F at each: after the i-th smallest error, i/n of the models lie below."""
    xs = sorted(errors)
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


def _summary(errors) -> str:
    return f"n={len(errors)}, min={min(errors):.2f}, mean={statistics.fmean(errors):.2f}"


def plot_edfs(studies: list[tuple[str, list[float]]], path: str, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, errors in studies:
        if not errors:
            continue
        xs, fs = edf(errors)
        # F jumps at each error (1[e_i < e] counts e_i once e passes it): a post-step curve.
        ax.step([xs[0]] + xs, [0.0] + fs, where="post", label=f"{label} ({_summary(errors)})")
    ax.set_xlabel("error (%)")
    ax.set_ylabel("cumulative prob.")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "error EDF")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def binned_trend(xs, ys, bins: int = 8, log: bool = False):
    """(bin centres, mean y) over equal-count bins of x; fewer bins when points are few."""
    pts = sorted(zip(xs, ys))
    k = max(1, min(bins, len(pts) // 3))
    centres, means = [], []
    for i in range(k):
        chunk = pts[i * len(pts) // k:(i + 1) * len(pts) // k]
        if not chunk:
            continue
        cx = [p[0] for p in chunk]
        centre = (math.exp(statistics.fmean(math.log(max(c, 1e-12)) for c in cx)) if log
                  else statistics.fmean(cx))
        centres.append(centre)
        means.append(statistics.fmean(p[1] for p in chunk))
    return centres, means


def plot_trends(rows: list[dict], path: str, title: str = "") -> None:
    cols = 5
    nrows = math.ceil(len(TREND_PARAMS) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.7 * nrows), squeeze=False)
    errors = [r["error"] for r in rows]
    for ax, name in zip(axes.flat, TREND_PARAMS):
        scale = 1e6 if name in ("flops", "params", "acts") else 1.0
        xs = [float(r["stats"][name]) / scale for r in rows]
        ax.scatter(xs, errors, s=8, alpha=0.5)
        # Log axes only where the values span a wide range (a decade tick is then in view).
        log = name in LOG_X and min(xs, default=0) > 0 and max(xs) / min(xs) > 8
        if len(xs) >= 2 and len(set(xs)) > 1:
            cx, cy = binned_trend(xs, errors, log=log)
            ax.plot(cx, cy, "-o", color="C3", ms=3, lw=1.5)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{name} (M)" if scale > 1 else name)
        ax.set_ylabel("error (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(TREND_PARAMS):]:
        ax.axis("off")
    fig.suptitle(title or "error vs parameters (red: binned mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def best_models(rows: list[dict], k: int = 10) -> list[dict]:
    return sorted(rows, key=lambda r: r["error"])[:k]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 100_000:
        return f"{v / 1e6:.2f}M"
    return str(v)


def _best_table(label: str, rows: list[dict], k: int) -> list[str]:
    head = ("| id | error (%) | d | w0 | wa | wm | g | b | flops | params | depths | widths "
            "| fit (w0, wa, wm) | e_fit |")
    lines = [f"### {label}: best {min(k, len(rows))} models", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in best_models(rows, k):
        s, f = r["stats"], r["fit"]
        cells = [r["id"], f"{r['error']:.2f}"] + [_fmt(s[n]) for n in
                                                   ("d", "w0", "wa", "wm", "g", "b", "flops",
                                                    "params")]
        cells += [",".join(map(str, r["depths"])), ",".join(map(str, r["widths"])),
                  f"{f['w0']}, {f['wa']:.2f}, {f['wm']:.3f}", f"{f['error']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def compare_studies(first: list[dict], other: list[dict], alpha: float = 0.05) -> dict:
    """`other`'s errors against `first`'s: Welch on the mean, the one-sided KS tests of the EDFs
    (compare.step_verdict), and, where at least MIN_PAIRS networks were sampled with the same
    parameters in both, the paired t-test of their errors (other minus first)."""
    out = step_verdict([r["error"] for r in first], [r["error"] for r in other], alpha)
    out["verdict"] = STUDY_VERDICTS[out["direction"]]   # no refinement claim here: plain words
    by_key = {draw_key(r["sampled"]): r for r in first if r["sampled"]}
    keys = [(r, draw_key(r["sampled"])) for r in other if r["sampled"]]
    pairs = [(r["error"], by_key[k]["error"]) for r, k in keys if k in by_key]
    if len(pairs) >= MIN_PAIRS:
        out["paired"] = paired_t([a for a, _ in pairs], [b for _, b in pairs])
    return out


def analyze(paths: list[str], out: str, labels: list[str] | None = None, top: int = 10) -> dict:
    """Write edf.png, trends_<label>.png, report.md and report.html into `out`."""
    os.makedirs(out, exist_ok=True)
    studies = []
    for i, path in enumerate(paths):
        meta, rows, left = study_rows(path)
        folder = os.path.basename(os.path.normpath(path))
        label = (labels[i] if labels and i < len(labels) else
                 meta["space"] if folder == meta["space"] else f"{meta['space']} ({folder})")
        run_json = os.path.join(path, "run.json")
        run = json.load(open(run_json)) if os.path.exists(run_json) else {}
        studies.append({"path": path, "label": label, "meta": meta, "rows": rows, "run": run,
                        **left})
    if not any(s["rows"] for s in studies):
        raise ValueError("no finished models in " + ", ".join(paths) +
                         "; run `regnet study run` first")
    plot_edfs([(s["label"], [r["error"] for r in s["rows"]]) for s in studies],
              os.path.join(out, "edf.png"))
    images = ["edf.png"]
    for i, s in enumerate(studies):
        if s["rows"]:
            name = f"trends_{i}_{s['meta']['space']}.png"
            plot_trends(s["rows"], os.path.join(out, name), f"{s['label']}: error vs parameters")
            images.append(name)
            s["trends"] = name
    for s in studies[1:]:
        if s["rows"] and studies[0]["rows"]:
            s["against_first"] = compare_studies(studies[0]["rows"], s["rows"])
    md = _report_md(studies, top)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write(_report_html(md, out))
    return {"out": out, "images": images,
            "studies": [{"label": s["label"], "n": len(s["rows"]),
                         "min": min((r["error"] for r in s["rows"]), default=None),
                         "mean": (statistics.fmean(r["error"] for r in s["rows"])
                                  if s["rows"] else None),
                         "against_first": s.get("against_first")} for s in studies]}


def _against_first_table(studies) -> list[str]:
    compared = [s for s in studies[1:] if s.get("against_first")]
    if not compared:
        return []
    lines = [f"Against {studies[0]['label']} (error differences: this study minus that one; "
             "negative is better): Welch's test of the mean error, the one-sided KS tests of "
             "the EDFs (better: this EDF lies left somewhere; worse: right), and, where the "
             "two populations share sampled networks, the paired t-test over those.", "",
             "| study | mean error diff [95% CI] | p | KS better p | KS worse p | "
             "paired diff [95% CI] | paired p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for s in compared:
        c = s["against_first"]
        w, ks, pt = c.get("welch"), c["ks"], c.get("paired")
        welch_cells = (f"{w['diff']:+.2f} [{w['ci95'][0]:+.2f}, {w['ci95'][1]:+.2f}] | "
                       f"{w['p']:.2g}" if w else "- | -")
        paired_cells = (f"{pt['diff']:+.2f} [{pt['ci95'][0]:+.2f}, {pt['ci95'][1]:+.2f}] "
                        f"(n={pt['n']}) | {pt['p']:.2g}" if pt else "- | -")
        lines.append(f"| {s['label']} | {welch_cells} | {ks['p_a_higher']:.2g} | "
                     f"{ks['p_a_lower']:.2g} | {paired_cells} | {c['verdict']} |")
    return lines + [""]


def _report_md(studies, top) -> str:
    lines = ["# Design-space study report", "",
             "Error EDF: F(e) = fraction of models with error below e (left is better).", "",
             "![error EDF](edf.png)", "",
             "| study | space | n | diverged | pending | min error | mean error | FLOP band | "
             "train |", "|---|---|---|---|---|---|---|---|---|"]
    for s in studies:
        errs = [r["error"] for r in s["rows"]]
        band = s["meta"]["constraints"]["flops"]
        train = s["run"].get("train") or s["meta"].get("train", {})
        recipe = ", ".join(f"{k}={train[k]}" for k in ("dataset", "epochs", "lr", "batch_size",
                                                         "train_subset") if k in train)
        lines.append(f"| {s['label']} | {s['meta']['space']} | {len(errs)} | {s['diverged']} | "
                     f"{s['pending']} | {min(errs, default=float('nan')):.2f} | "
                     f"{statistics.fmean(errs) if errs else float('nan'):.2f} | "
                     f"{band[0] / 1e6:g}-{band[1] / 1e6:g}MF | {recipe} |")
    lines.append("")
    lines += _against_first_table(studies)
    for s in studies:
        if not s["rows"]:
            continue
        lines += [f"## {s['label']}", "", f"Study folder `{s['path']}`; "
                  f"{s['meta'].get('description', '')}.", "",
                  f"![error vs parameters]({s['trends']})", ""]
        lines += _best_table(s["label"], s["rows"], top)
    lines += ["`d`: total blocks; `g`, `b` (AnyNet): per-block median group width and "
              "bottleneck ratio; AnyNet `w0, wa, wm`: the width-rule fit; `e_fit`: mean "
              "|log(fitted / actual width)| over blocks.", ""]
    return "\n".join(lines)


def _report_html(md: str, out: str) -> str:
    """The Markdown report as one HTML file with its images inlined (base64)."""
    body, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) +
                        "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):
            alt, src = line[2:].split("](")
            with open(os.path.join(out, src.rstrip(")")), "rb") as f:
                data = base64.b64encode(f.read()).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:"
             "collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:"
             "100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Design-space study"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
