"""AnyNet / RegNet: the generator, the zoo's stage tables, the X / Y blocks, the CIFAR stem."""
import json

import pytest
import torch

import regnet
from regnet.cli import main as cli_main
from regnet.models.anynet import REGNET_ZOO, AnyNetCfg, RegNetCfg
from regnet.models.regnet_gen import adjust_compatibility, generate_regnet, quantized_widths
from regnet.registry import get_entry

from reference_tables import read

REGNET_ROWS = [r for r in read("regnet_model_zoo.tsv") if r["w0"] != "NA"]


def _ints(text):
    return tuple(int(v) for v in text.split(","))


@pytest.mark.parametrize("row", REGNET_ROWS, ids=lambda r: r["name"])
def test_generator_reproduces_every_zoo_stage_table(row):
    s = generate_regnet(int(row["depth"]), int(row["w0"]), float(row["wa"]), float(row["wm"]),
                        int(row["group_w"]))
    assert s.depths == _ints(row["stage_depths"])
    assert s.widths == _ints(row["stage_widths"])
    assert s.group_widths == _ints(row["stage_group_widths"])
    assert s.complete and sum(s.depths) == int(row["depth"])


@pytest.mark.parametrize("row", REGNET_ROWS, ids=lambda r: r["name"])
def test_zoo_names_resolve_and_carry_the_table_config(row):
    entry = get_entry(row["name"])  # 'RegNetX-1.6GF' -> regnetx_1_6gf, automatically
    assert entry.name == regnet.registry.normalize_name(row["name"])
    cfg = entry.cfg.to_anynet()
    assert cfg.group_widths == _ints(row["stage_group_widths"])
    assert cfg.se_ratio == float(row["se_ratio"])


def test_built_blocks_have_the_zoo_group_widths():
    # RegNetX-8.0GF is the one whose first stage shrinks g (80 < 120).
    model = regnet.create_model("RegNetX-8.0GF")
    got = []
    for stage in model.stages():
        convs = {(b.conv2.out_channels // b.conv2.groups) for b in stage.blocks()}
        assert len(convs) == 1
        got.append(convs.pop())
    assert got == [80, 120, 120, 120]


def test_rounding_is_half_to_even():
    # w0 * wm^1 / 8 = 8 * 2.5 / 8 = 2.5 exactly: half-to-even gives 2 * 8 = 16, half-up 24.
    _, levels, widths = quantized_widths(2, 8, 12, 2.5)
    assert levels == [0, 1] and widths == [8, 16]


def test_generator_rejects_bad_parameters():
    for args in [(0, 24, 36, 2.5), (10, 20, 36, 2.5), (10, 24, -1, 2.5), (10, 24, 36, 1.0)]:
        with pytest.raises(ValueError):
            generate_regnet(*args, group_w=8)
    with pytest.raises(ValueError, match="multiple of 8"):
        create = regnet.create_model
        create("regnet", w0=20)


def test_compatibility_step():
    # g capped at the inner width, inner width rounded to a multiple of g (lcm(g, b) if b > 1).
    assert adjust_compatibility([80, 240], [1, 1], [120, 120]) == ((80, 240), (1.0, 1.0), (80, 120))
    assert adjust_compatibility([100], [1], [24]) == ((96,), (1.0,), (24,))
    assert adjust_compatibility([56], [2], [48]) == ((48,), (2.0,), (48,))
    # A bottleneck ratio of 4 (multiplier 1/4): inner 16 -> multiple of 8 -> width 64.
    assert adjust_compatibility([72], [0.25], [8]) == ((64,), (0.25,), (8,))


def test_y_block_squeezes_the_block_input_width_after_the_3x3():
    model = regnet.create_model("regnety_200mf")
    b1, b2 = model.s3.b1, model.s3.b2  # s3: 56 -> 152 channels
    assert b1.se_after == "conv2"
    assert b1.se.fc1.in_channels == b1.conv2.out_channels == 152
    assert b1.se.fc1.out_channels == round(0.25 * 56) == 14  # input width, not output
    assert b2.se.fc1.out_channels == 38 and b1.se.fc1.bias is not None
    x_block = regnet.create_model("regnetx_200mf").s3.b1
    assert isinstance(x_block.se, torch.nn.Identity)


def test_generic_entries_build_any_config():
    a = regnet.create_model("regnet", num_classes=10, depth=13, w0=24, wa=36.44, wm=2.49,
                            group_w=8)
    b = regnet.create_model("regnetx_200mf", num_classes=10)
    assert [x.shape for x in a.state_dict().values()] == [x.shape for x in b.state_dict().values()]
    # JSON-style lists and scalar broadcast both work through create_model overrides
    net = regnet.create_model("anynet", num_classes=3, depths=[1, 2, 1, 1],
                              widths=[16, 32, 48, 64], bot_muls=0.5, group_widths=8,
                              stem="cifar", input_size=[3, 16, 16])
    assert net.cfg.bot_muls == (0.5,) * 4 and net.cfg.input_size == (3, 16, 16)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    assert net.s1.b1.conv2.out_channels == 8 and net.s1.b1.conv2.groups == 1
    basic = regnet.create_model("anynet", block="basic", depths=(1, 1), widths=(8, 16),
                                strides=(1, 2), stem="cifar", input_size=(3, 8, 8))
    assert basic(torch.randn(1, 3, 8, 8)).shape == (1, 1000)


def test_anynet_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="not a multiple of the group width"):
        AnyNetCfg(depths=(1,), widths=(24,), bot_muls=(1.0,), group_widths=(16,), strides=(2,))
    with pytest.raises(ValueError, match="widths has 2 entries for 1 stages"):
        AnyNetCfg(depths=(1,), widths=(24, 48))
    with pytest.raises(ValueError, match="unknown AnyNet block"):
        AnyNetCfg(block="vanilla")


def test_cifar_versions_keep_full_resolution_in_the_stem():
    model = regnet.create_model("RegNetY-200MF-CIFAR")
    assert model.model_name == "regnety_200mf_cifar" and model.num_classes == 10
    assert model.default_input_size == (3, 32, 32)
    assert [i["reduction"] for i in model.feature_info[1:]] == [2, 4, 8, 16]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    same = regnet.create_model("regnety_200mf", stem="cifar", input_size=(3, 32, 32),
                               num_classes=10)
    assert regnet.complexity(same) == regnet.complexity(model)


def test_zoo_table_is_the_generator_input():
    assert len(REGNET_ZOO["x"]) == len(REGNET_ZOO["y"]) == 12
    assert isinstance(get_entry("regnety_32gf").cfg, RegNetCfg)


def test_info_json_reports_the_stage_table(capsys):
    assert cli_main(["info", "RegNetX-200MF", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    row = next(r for r in REGNET_ROWS if r["name"] == "RegNetX-200MF")
    assert (info["params"], info["flops"], info["acts"]) == \
        (int(row["params"]), int(row["flops"]), int(row["acts"]))
    assert [s["depth"] for s in info["stages"]] == list(_ints(row["stage_depths"]))
    assert [s["width"] for s in info["stages"]] == list(_ints(row["stage_widths"]))
    # groups of each stage's 3x3 = width / group width
    assert [s["groups"] for s in info["stages"]] == [[3], [7], [19], [46]]
