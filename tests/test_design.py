"""Design spaces: analytic complexity equals the counted one, samplers honour their constraints,
the width-rule fit, the EDF."""
import random

import pytest

import regnet
from regnet.design.analysis import binned_trend, edf
from regnet.design.complexity import anynet_complexity, regnet_complexity
from regnet.design.fit import block_widths, fit_width_rule
from regnet.design.presets import PRESETS
from regnet.design.spaces import (SPACES, Constraints, ModelBase, _log_uniform, get_space,
                                  parse_band, sample_space)
from regnet.models.anynet import AnyNetCfg
from regnet.registry import get_entry

SMALL = ModelBase(input_size=(3, 32, 32), stem="cifar", num_classes=10)


def _counted(cfg: AnyNetCfg, num_classes: int):
    model = regnet.create_model("anynet", num_classes=num_classes,
                                **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
    got = regnet.complexity(model)
    return {k: got[k] for k in ("params", "flops", "acts")}


@pytest.mark.parametrize("space", sorted(SPACES))
def test_analytic_complexity_equals_counted_on_sampled_configs(space):
    # Three small models of each space, at two input sizes and both stems.
    recs, _ = sample_space(space, 3, Constraints((1e6, 6e6)), SMALL, seed=11)
    for rec in recs:
        cfg = AnyNetCfg(**rec["model_args"])
        assert rec["complexity"] == _counted(cfg, 10)
    big = ModelBase(input_size=(3, 40, 40), stem="anynet", num_classes=7)
    rec = sample_space(space, 1, Constraints((5e5, 3e6)), big, seed=3)[0][0]
    cfg = AnyNetCfg(**rec["model_args"])
    assert anynet_complexity(cfg, 7, (3, 40, 40)) == _counted(cfg, 7)


def test_analytic_complexity_on_random_anynets():
    rng = random.Random(0)
    for _ in range(12):
        n = rng.randint(1, 4)
        g = rng.choice([1, 2, 4])  # divides every inner width below (8k * 0.5 at least)
        cfg = AnyNetCfg(depths=tuple(rng.randint(1, 3) for _ in range(n)),
                        widths=tuple(8 * rng.randint(1, 8) for _ in range(n)),
                        bot_muls=rng.choice([0.5, 1.0, 2.0]), group_widths=g,
                        strides=tuple(rng.choice([1, 2]) for _ in range(n)),
                        se_ratio=rng.choice([0.0, 0.25]), block=rng.choice(["bottleneck", "basic"]),
                        stem=rng.choice(["cifar", "anynet", "imagenet"]),
                        stem_chs=rng.choice([16, 32]), input_size=(3, rng.choice([17, 32]),
                                                                  rng.choice([17, 32])))
        assert anynet_complexity(cfg, 5) == _counted(cfg, 5), cfg


def test_analytic_complexity_matches_every_regnet_row_of_the_zoo_table():
    from reference_tables import zoo_rows
    rows = [r for r in zoo_rows() if r[5]["w0"] != "NA"]
    assert len(rows) == 24
    for name, classes, params, flops, acts, _ in rows:
        got = regnet_complexity(get_entry(name).cfg, classes)
        assert (got["params"], got["flops"], got["acts"]) == (params, flops, acts), name


def test_regnet_samples_satisfy_every_constraint():
    band = (360e6, 400e6)
    c = Constraints.paper_bounds(band)
    recs, report = sample_space("regnetx", 40, c, seed=0)
    assert report.accepted == 40 and report.tried > 40
    for rec in recs:
        p, cx = rec["params"], rec["complexity"]
        assert band[0] <= cx["flops"] <= band[1]
        assert cx["params"] < (3 + 5.5 * 0.4) * 1e6 and cx["acts"] < 6.5 * 0.4 ** 0.5 * 1e6
        assert len(rec["model_args"]["depths"]) == 4 and sum(rec["model_args"]["depths"]) == p["d"]
        assert 12 <= p["d"] <= 28 and 8 <= p["w0"] <= 256 and p["w0"] % 8 == 0
        assert 8 <= p["wa"] <= 256 and 2 <= p["wm"] <= 3 and p["b"] == 1
        assert p["g"] in (1, 2, 4) or (p["g"] % 8 == 0 and p["g"] <= 128)
    # deterministic given the seed, different across seeds
    assert sample_space("regnetx", 5, c, seed=0)[0] == recs[:5]
    assert sample_space("regnetx", 5, c, seed=1)[0] != recs[:5]


@pytest.mark.parametrize("space", ["anynetx_a", "anynetx_b", "anynetx_c", "anynetx_d",
                                   "anynetx_e"])
def test_anynet_space_refinements(space):
    recs, _ = sample_space(space, 25, Constraints((360e6, 400e6)), seed=2)
    for rec in recs:
        p, a = rec["params"], rec["model_args"]
        assert len(a["depths"]) == 4 and all(1 <= d <= 16 for d in a["depths"])
        assert all(b in (1, 2, 4) for b in p["bs"]) and all(g <= 32 for g in p["gs"])
        assert all(w <= 1024 for w in p["ws"])
        # inner width w * (1 / b) is a whole multiple of the group width
        assert all((w * m) % g == 0 for w, m, g in zip(a["widths"], a["bot_muls"],
                                                      a["group_widths"]))
        shared_b, shared_g = len(set(p["bs"])) == 1, len(set(p["gs"])) == 1
        if space != "anynetx_a":
            assert shared_b
        if space in ("anynetx_c", "anynetx_d", "anynetx_e"):
            assert shared_g
        if space in ("anynetx_d", "anynetx_e"):
            assert a["widths"] == sorted(a["widths"])
        if space == "anynetx_e":
            assert a["depths"] == sorted(a["depths"])
    if space == "anynetx_a":  # free per-stage choices really vary
        assert any(len(set(r["params"]["bs"])) > 1 for r in recs)


def test_sampled_record_rebuilds_through_create_model():
    rec = sample_space("regnety", 1, PRESETS["smoke"].constraints(), SMALL, seed=5)[0][0]
    model = regnet.create_model(rec["model"], num_classes=10, **rec["model_args"])
    assert model.cfg.se_ratio == 0.25 and model.default_input_size == (3, 32, 32)
    got = regnet.complexity(model)
    assert {k: got[k] for k in ("params", "flops", "acts")} == rec["complexity"]


@pytest.mark.parametrize("space", ["anynetx_a", "regnetx"])
def test_a_zero_init_base_starts_every_block_at_its_shortcut(space):
    import dataclasses

    import torch
    base = dataclasses.replace(SMALL, zero_init_last=True)
    rec = sample_space(space, 1, PRESETS["smoke"].constraints(), base, seed=5)[0][0]
    assert rec["model_args"]["zero_init_last"] is True
    assert sample_space(space, 1, PRESETS["smoke"].constraints(), SMALL,
                        seed=5)[0][0]["model_args"]["zero_init_last"] is False
    model = regnet.create_model(rec["model"], num_classes=10, **rec["model_args"])
    last = [m.weight for name, m in model.named_modules()
            if isinstance(m, torch.nn.BatchNorm2d) and name.endswith(".bn3")]
    assert last and all(torch.count_nonzero(w) == 0 for w in last)
    assert PRESETS["cifar_chain"].base.zero_init_last


def test_log_uniform_draws_stay_on_the_grid():
    rng = random.Random(0)
    vals = [_log_uniform(rng, 8, 256, 8) for _ in range(2000)]
    assert min(vals) == 8 and max(vals) == 256 and all(v % 8 == 0 for v in vals)
    was = [_log_uniform(rng, 8.0, 256.0, 0.1) for _ in range(2000)]
    assert all(8 <= v <= 256 and abs(v * 10 - round(v * 10)) < 1e-6 for v in was)
    # log-uniform: about as many draws in [8, 16) as in [128, 256]
    lo, hi = sum(v < 16 for v in vals), sum(v >= 128 for v in vals)
    assert 0.6 < lo / hi < 1.6


def test_bad_inputs_are_clear_errors():
    assert parse_band("360M:400M") == (360e6, 400e6)
    assert parse_band("0.36G:0.4g") == (360e6, 400e6)
    assert parse_band("2e6:4MF") == (2e6, 4e6)
    for bad in ["360M", "a:b", "400M:360M"]:
        with pytest.raises(ValueError):
            Constraints(parse_band(bad))
    with pytest.raises(ValueError, match="unknown design space 'anynetx_z'; expected one of"):
        get_space("anynetx_z")
    with pytest.raises(ValueError, match="widen the FLOP band"):
        sample_space("regnetx", 2, Constraints((1e3, 2e3)), SMALL, max_tries=200)


def test_width_fit():
    fit = fit_width_rule(block_widths(regnet.create_model("regnetx_200mf")))
    assert fit["error"] == 0.0 and fit["w0"] == 24 and 2.3 < fit["wm"] < 2.7
    assert fit["widths"] == [24, 56] + [152] * 4 + [368] * 7
    flat = fit_width_rule([64] * 5)
    assert flat["error"] == 0.0 and flat["widths"] == [64] * 5
    resnet = fit_width_rule(block_widths(regnet.create_model("resnet50")))
    assert 0 < resnet["error"] < 0.2 and len(resnet["widths"]) == 16
    with pytest.raises(ValueError):
        fit_width_rule([])


def test_edf_and_binned_trend():
    xs, fs = edf([3.0, 1.0, 2.0, 2.0])
    assert xs == [1.0, 2.0, 2.0, 3.0] and fs == [0.25, 0.5, 0.75, 1.0]
    cx, cy = binned_trend(list(range(12)), [2 * v for v in range(12)], bins=4)
    assert len(cx) == 4 and cy == [2 * c for c in cx]
