"""Design spaces as data: samplers of AnyNet configurations, filtered by complexity constraints.

A space draws its free parameters, turns them into an `AnyNetCfg` (group widths made compatible
with the bottleneck), and a candidate is kept only inside the constraints: a FLOP band, params
and acts bounds, exactly `num_stages` non-empty stages. Complexity is analytic
(`regnet.design.complexity`), so no model is built while sampling.

Spaces (regnet_design_space.md):
- anynetx_a: per stage d_i in 1..16, w_i in 8..1024 step 8, bottleneck ratio b_i in {1, 2, 4},
  group width g_i in {1, 2, 4, 8, 16, 32}: 16 degrees of freedom.
- anynetx_b: one b for all stages; anynetx_c: also one g; anynetx_d: widths non-decreasing;
  anynetx_e: depths non-decreasing too.
- regnet / regnetx: d in 12..28, w0 in 8..256 step 8, wa in 8..256 step 0.1, wm in 2..3 step
  0.001 (the last three log-uniform), g in {1, 2, 4} or a multiple of 8 up to 128, b = 1;
  regnety: the same with SE (ratio 0.25). A RegNet candidate must fill every quantisation level
  it generates (no stage skipped by the rounding), as the reference sampler requires.

The paper's b is a bottleneck *ratio* (inner width w / b); configs store the multiplier
bot_mul = 1 / b that the X block takes (inner width w * bot_mul), and the samples' `b` is the
paper's ratio.
"""
from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict, dataclass, field

from regnet.models.anynet import AnyNetCfg
from regnet.models.regnet_gen import adjust_compatibility, generate_regnet

from .complexity import anynet_complexity

__all__ = ["Constraints", "ModelBase", "DesignSpace", "AnyNetSpace", "RegNetSpace", "SPACES",
           "get_space", "sample_space", "parse_band"]


@dataclass(frozen=True)
class Constraints:
    """What a sampled model must satisfy; counts are absolute (flops in multiply-adds)."""

    flops: tuple[float, float]
    params_max: float | None = None
    acts_max: float | None = None
    num_stages: int = 4

    def __post_init__(self):
        lo, hi = self.flops
        if not 0 <= lo < hi:
            raise ValueError(f"FLOP band must satisfy 0 <= low < high, got {lo:g}:{hi:g}")

    @classmethod
    def paper_bounds(cls, flops: tuple[float, float], num_stages: int = 4) -> "Constraints":
        """The reference sampler's bounds for a band whose top is F GFLOPs:
        params < (3 + 5.5 F) M and acts < 6.5 sqrt(F) M."""
        f = flops[1] / 1e9
        return cls(tuple(flops), (3 + 5.5 * f) * 1e6, 6.5 * math.sqrt(f) * 1e6, num_stages)

    def admits(self, counts: dict) -> bool:
        lo, hi = self.flops
        return (lo <= counts["flops"] <= hi
                and (self.params_max is None or counts["params"] < self.params_max)
                and (self.acts_max is None or counts["acts"] < self.acts_max))


@dataclass(frozen=True)
class ModelBase:
    """What every model of a study shares: input, stem, classes, and whether each block's last
    BN starts at zero (pycls's ZERO_INIT_FINAL_GAMMA, off by default there and here)."""

    input_size: tuple[int, ...] = (3, 224, 224)
    stem: str = "anynet"
    num_classes: int = 1000
    zero_init_last: bool = False


def parse_band(text: str) -> tuple[float, float]:
    """'360M:400M' -> (360e6, 400e6); suffixes K, M, G (case-insensitive) or plain numbers."""
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}

    def one(v: str) -> float:
        v = v.strip().lower().removesuffix("f")
        try:
            return float(v[:-1]) * scale[v[-1]] if v and v[-1] in scale else float(v)
        except ValueError:
            raise ValueError(f"bad FLOP value {v!r} in {text!r}; use e.g. 360M:400M") from None

    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"FLOP band {text!r} must be LOW:HIGH, e.g. 360M:400M")
    return one(parts[0]), one(parts[1])


# -- random draws (the reference sampler's distributions, on a seeded random.Random) -----------
def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    return rng.randint(low, high)


def _log_uniform(rng: random.Random, low: float, high: float, q: float) -> float:
    """Log-uniform on (low - q', high], rounded up to a multiple of q (q' = min(q, low / 2)),
    so that every multiple of q in [low, high] is reachable with its log-uniform share."""
    f = math.exp(rng.uniform(math.log(low - min(q, low / 2)), math.log(high)))
    k = math.ceil(f / q - 1e-9)
    return round(max(low, k * q), 6)


def _power2_or_multiple(rng: random.Random, high: int, q: int) -> int:
    """1, 2, 4, ... (a power of two) or, from q on, a log-uniform multiple of q up to high."""
    f = 2 ** rng.randint(0, int(math.log2(high)))
    return int(_log_uniform(rng, q, high, q)) if f >= q else f


# -- the spaces ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DesignSpace:
    name: str
    description: str

    def sample(self, rng: random.Random) -> dict:
        raise NotImplementedError

    def to_cfg(self, params: dict, base: ModelBase) -> AnyNetCfg | None:
        """The AnyNet of these parameters, or None if they give no valid network."""
        raise NotImplementedError

    def stats(self, params: dict, cfg: AnyNetCfg) -> dict:
        """The scalar parameters analysis plots error against (d, w0, wa, wm, g, b)."""
        raise NotImplementedError


def _per_block(values, depths):
    return [v for v, d in zip(values, depths) for _ in range(d)]


@dataclass(frozen=True)
class AnyNetSpace(DesignSpace):
    shared_b: bool = False
    shared_g: bool = False
    increasing_w: bool = False
    increasing_d: bool = False
    stages: int = 4
    max_depth: int = 16
    max_width: int = 1024
    ratios: tuple[int, ...] = (1, 2, 4)
    group_widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32)

    def sample(self, rng):
        n = self.stages
        ds = [_uniform_int(rng, 1, self.max_depth) for _ in range(n)]
        ws = [int(_log_uniform(rng, 8, self.max_width, 8)) for _ in range(n)]
        bs = [rng.choice(self.ratios)] * n if self.shared_b else \
            [rng.choice(self.ratios) for _ in range(n)]
        gs = [rng.choice(self.group_widths)] * n if self.shared_g else \
            [rng.choice(self.group_widths) for _ in range(n)]
        # Sorting i.i.d. draws is distributed as conditioning them on being sorted, without the
        # 1-in-24 (1-in-576 for D and E together) rejection rate.
        if self.increasing_w:
            ws.sort()
        if self.increasing_d:
            ds.sort()
        return {"ds": ds, "ws": ws, "bs": bs, "gs": gs}

    def to_cfg(self, params, base):
        mults = [1.0 / b for b in params["bs"]]
        ws, mults, gs = adjust_compatibility(params["ws"], mults, params["gs"])
        return AnyNetCfg(depths=tuple(params["ds"]), widths=ws, bot_muls=mults, group_widths=gs,
                         strides=(2,) * len(ws), stem=base.stem, input_size=base.input_size,
                         zero_init_last=base.zero_init_last)

    def stats(self, params, cfg):
        # Stage-wise g and b are summarised by their per-block median; w0, wa, wm of an AnyNet
        # come from fitting the linear rule (regnet.design.fit), done at analysis time.
        return {"d": sum(cfg.depths),
                "g": statistics.median(_per_block(cfg.group_widths, cfg.depths)),
                "b": statistics.median(_per_block(params["bs"], cfg.depths))}


@dataclass(frozen=True)
class RegNetSpace(DesignSpace):
    se_ratio: float = 0.0
    depth: tuple[int, int] = (12, 28)
    w0: tuple[int, int] = (8, 256)
    wa: tuple[float, float] = (8.0, 256.0)
    wm: tuple[float, float] = (2.0, 3.0)
    max_group_w: int = 128
    stages: int = 4

    def sample(self, rng):
        return {"d": _uniform_int(rng, *self.depth), "w0": int(_log_uniform(rng, *self.w0, 8)),
                "wa": _log_uniform(rng, *self.wa, 0.1), "wm": _log_uniform(rng, *self.wm, 0.001),
                "g": _power2_or_multiple(rng, self.max_group_w, 8), "b": 1}

    def to_cfg(self, params, base):
        s = generate_regnet(params["d"], params["w0"], params["wa"], params["wm"], params["g"],
                            1.0 / params["b"])
        if not s.complete or s.num_stages != self.stages:
            return None
        return AnyNetCfg(depths=s.depths, widths=s.widths, bot_muls=s.bot_muls,
                         group_widths=s.group_widths, strides=(2,) * s.num_stages,
                         se_ratio=self.se_ratio, stem=base.stem, input_size=base.input_size,
                         zero_init_last=base.zero_init_last)

    def stats(self, params, cfg):
        return {k: params[k] for k in ("d", "w0", "wa", "wm", "g", "b")}


_REGNET_DOC = "RegNet: d, w0, wa, wm, g free, b = 1 (quantized linear widths)"
SPACES: dict[str, DesignSpace] = {
    "anynetx_a": AnyNetSpace("anynetx_a", "AnyNetX_A: d_i, w_i, b_i, g_i free per stage"),
    "anynetx_b": AnyNetSpace("anynetx_b", "AnyNetX_B: A with one shared b", shared_b=True),
    "anynetx_c": AnyNetSpace("anynetx_c", "AnyNetX_C: B with one shared g", shared_b=True,
                             shared_g=True),
    "anynetx_d": AnyNetSpace("anynetx_d", "AnyNetX_D: C with non-decreasing widths",
                             shared_b=True, shared_g=True, increasing_w=True),
    "anynetx_e": AnyNetSpace("anynetx_e", "AnyNetX_E: D with non-decreasing depths",
                             shared_b=True, shared_g=True, increasing_w=True, increasing_d=True),
    "regnet": RegNetSpace("regnet", _REGNET_DOC),
    "regnetx": RegNetSpace("regnetx", _REGNET_DOC),
    "regnety": RegNetSpace("regnety", "RegNetY: RegNet with SE (ratio 0.25)", se_ratio=0.25),
}


def get_space(name: str) -> DesignSpace:
    key = name.strip().lower().replace("-", "_")
    if key not in SPACES:
        raise ValueError(f"unknown design space {name!r}; expected one of {', '.join(SPACES)}")
    return SPACES[key]


@dataclass
class SampleReport:
    tried: int = 0
    accepted: int = 0
    seconds: float = 0.0
    rejected: dict = field(default_factory=lambda: {"invalid": 0, "stages": 0, "complexity": 0})


def sample_space(space: DesignSpace | str, n: int, constraints: Constraints,
                 base: ModelBase = ModelBase(), seed: int = 0,
                 max_tries: int | None = None) -> tuple[list[dict], SampleReport]:
    """n models of `space` inside `constraints`, one record each (JSON-ready).

    Deterministic given the seed. Raises ValueError if `max_tries` (default 2,000 per model)
    candidates yield fewer than n models: the band is then (nearly) empty for this space.
    """
    space = get_space(space) if isinstance(space, str) else space
    if n < 1:
        raise ValueError(f"number of models must be >= 1, got {n}")
    rng = random.Random(seed)
    limit = max_tries if max_tries is not None else 2000 * n
    report, records, start = SampleReport(), [], time.perf_counter()
    while len(records) < n:
        if report.tried >= limit:
            raise ValueError(
                f"{space.name}: only {len(records)} of {n} models found in {report.tried} "
                f"candidates; widen the FLOP band ({constraints.flops[0]:.3g}:"
                f"{constraints.flops[1]:.3g}) or the params/acts bounds")
        report.tried += 1
        params = space.sample(rng)
        try:
            cfg = space.to_cfg(params, base)
        except ValueError:
            report.rejected["invalid"] += 1
            continue
        if cfg is None or cfg.num_stages != constraints.num_stages:
            report.rejected["stages"] += 1
            continue
        counts = anynet_complexity(cfg, base.num_classes)
        if not constraints.admits(counts):
            report.rejected["complexity"] += 1
            continue
        records.append(make_record(len(records), space, params, cfg, counts))
    report.accepted = len(records)
    report.seconds = time.perf_counter() - start
    return records, report


def model_args(cfg: AnyNetCfg) -> dict:
    """create_model("anynet", **model_args) rebuilds the network (JSON-ready)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def make_record(index: int, space: DesignSpace, params: dict, cfg: AnyNetCfg,
                counts: dict) -> dict:
    return {"id": f"m{index:04d}", "space": space.name, "params": params, "model": "anynet",
            "model_args": model_args(cfg), "complexity": counts,
            "stats": {**space.stats(params, cfg), **counts}}
