"""RNN-regulated ResNets: the state flows block to block, the regulator attaches to any family."""
import pytest
import torch
import torch.nn as nn

import regnet
from regnet.complexity import count_params
from regnet.models.regulated import RegulatedStage, RegulatorCfg, regulate, regulated_stages
from regnet.models.blocks import BasicBlock


def _record_cell_calls(stage):
    """Every (state argument, new state) the stage's cell sees, in call order."""
    calls = []
    stage.cell.register_forward_hook(lambda m, args, out: calls.append((args[1], out)))
    return calls


@pytest.mark.parametrize("name", ["regnet20_lstm", "regnet20_gru", "regnet20_rnn"])
def test_every_stage_starts_from_zero_and_state_flows(name):
    model = regnet.create_model(name).eval()
    stages = regulated_stages(model)
    assert len(stages) == 3
    calls = [_record_cell_calls(s) for s in stages]
    with torch.no_grad():
        model(torch.randn(2, 3, 16, 16))
    for stage, seen in zip(stages, calls):
        assert len(seen) == len(stage.blocks())
        # Block 1 of every stage gets no state: the cell makes H = C = 0.
        assert seen[0][0] is None
        for (state_in, _), (_, prev_out) in zip(seen[1:], seen[:-1]):
            # Block t gets block t-1's state after BN_h + ReLU (H) and ReLU (C).
            assert len(state_in) == len(prev_out)
            assert (state_in[0] >= 0).all()
            assert not torch.equal(state_in[0], prev_out[0])  # normalised, not the raw H


def test_state_of_block_t_is_the_post_relu_state_of_block_t_minus_1():
    model = regnet.create_model("regnet20_lstm").eval()
    stage = model.s2
    calls = _record_cell_calls(stage)
    passed = []
    for b in stage.blocks():
        b.regulator.state_norm.register_forward_hook(lambda m, a, out: passed.append(out))
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    for t in range(1, len(calls)):
        h_in, c_in = calls[t][0]
        assert h_in is passed[t - 1]
        torch.testing.assert_close(c_in, torch.relu(calls[t - 1][1][1]))


def test_zero_state_is_what_the_first_block_sees():
    model = regnet.create_model("regnet20_lstm").eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        # Hand every stage's first block an explicit zero state instead of None: same output.
        for stage in regulated_stages(model):
            cell = stage.cell
            cell.register_forward_pre_hook(
                lambda m, args: (args[0], args[1] if args[1] is not None
                                 else m.zero_state(args[0])))
        torch.testing.assert_close(model(x), ref)


@pytest.mark.parametrize("t", [1, 2])
def test_perturbing_the_state_handed_to_block_t_changes_block_t(t):
    torch.manual_seed(0)
    model = regnet.create_model("regnet20_gru").eval()
    stage = model.s1
    x = torch.randn(1, 3, 16, 16)
    outs = {}

    def run(delta):
        count = {"n": 0}

        def pre(m, args):
            count["n"] += 1
            if count["n"] == t + 1 and delta:  # the call made by block t+1 (0-based t)
                return (args[0], tuple(s + delta for s in args[1]))
        handles = [stage.cell.register_forward_pre_hook(pre)]
        got = []
        for b in stage.blocks():
            # a regulated block returns (output, new state)
            handles.append(b.register_forward_hook(lambda m, a, out: got.append(out[0].clone())))
        with torch.no_grad():
            model(x)
        for h in handles:
            h.remove()
        return got

    base, pert = run(0.0), run(0.5)
    for i, (a, b) in enumerate(zip(base, pert)):
        if i < t:
            torch.testing.assert_close(a, b)  # blocks before t do not see the perturbation
        else:
            assert not torch.allclose(a, b), f"block {i + 1} ignored the state"


def test_no_state_crosses_stages_and_grad_checkpointing_matches():
    x = torch.randn(2, 3, 16, 16)
    grads = []
    for every in (0, 1, 2, None):
        torch.manual_seed(3)
        model = regnet.create_model("regnet20_lstm").eval()
        if every is not None:
            model.set_grad_checkpointing(True, every)
        model(x).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    for g in grads[:-1]:
        torch.testing.assert_close(g, grads[-1])


def test_regnet_reuses_resnet_blocks_and_names():
    res = regnet.create_model("resnet20")
    reg = regnet.create_model("regnet20_gru")
    assert set(res.state_dict()) < set(reg.state_dict())  # every ResNet key is kept as it is
    assert type(reg.s1.b2) is BasicBlock
    new = {k.split(".")[1] if k.split(".")[1] == "cell" else k.split(".")[2]
           for k in reg.state_dict() if k not in res.state_dict()}
    assert new == {"cell", "regulator"}


def test_table_v_single_stage_and_options():
    model = regnet.create_model("regnet20_gru_s2")
    assert [isinstance(s, RegulatedStage) for s in model.stages()] == [False, True, False]
    # option A shortcut: the ResNet-20 difference (2 projection shortcuts) carries over
    a = count_params(regnet.create_model("regnet20_lstm", shortcut="A"))
    assert a == 311994 - (272570 - 269722)
    # fused gates: the 3x3 of the LSTM's 4 stacked gates takes N groups: +108N per stage
    fused = count_params(regnet.create_model("regnet20_lstm", gates="fused"))
    assert fused == 311994 + 108 * (16 + 32 + 64)
    # no BN on H: 2N per block fewer
    assert count_params(regnet.create_model("regnet20_lstm", state_bn=False)) == \
        311994 - 2 * 3 * (16 + 32 + 64)
    with pytest.raises(ValueError, match="out of range"):
        regnet.create_model("regnet20_gru", regulated=(4,))
    with pytest.raises(ValueError, match="expected one of rnn, gru, lstm"):
        regnet.create_model("regnet20_gru", cell="tcn")


def test_regulated_block_without_its_cell_is_an_error():
    model = regnet.create_model("regnet20_rnn")
    with pytest.raises(RuntimeError, match="block\\(x, state, cell\\)"):
        model.s1.b1(torch.randn(1, 16, 8, 8))


@pytest.mark.parametrize("name", ["regnet20_lstm", "se_regnet20_gru", "regulated_iresnet50"])
def test_a_block_called_directly_with_a_state_gives_its_output_inside_the_stage(name):
    torch.manual_seed(0)
    model = regnet.create_model(name, num_classes=3).eval()
    stage = regulated_stages(model)[-1]
    seen = []  # (input, output, state after) of every block, recorded inside the stage
    for b in stage.blocks():
        b.register_forward_hook(lambda m, args, out: seen.append((args[0], out[0], out[1])))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
        state = None
        for block, (x, y, new) in zip(stage.blocks(), seen):
            got, state = block(x, state, stage.cell)
            torch.testing.assert_close(got, y, rtol=0, atol=0)
            for a, b in zip(state, new):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_models_register_no_forward_hooks():
    import pathlib
    models = pathlib.Path(regnet.__file__).parent / "models"
    assert not [p.name for p in models.glob("*.py") if "register_forward" in p.read_text()]
    net = regnet.create_model("regnet20_lstm")
    assert not [n for n, m in net.named_modules() if m._forward_hooks or m._forward_pre_hooks]


def test_a_block_that_cannot_be_regulated_is_a_clear_error():
    class Odd(nn.Module):
        def forward(self, x):
            return x
    from regnet.models.net import Net, Stage
    net = Net(nn.Identity(), [Stage([Odd()])], [3], [1], 2, stem_reduction=1,
              input_size=(3, 8, 8))
    with pytest.raises(ValueError, match="Odd cannot be regulated"):
        regulate(net, RegulatorCfg())


def test_regulator_on_the_resnet_bottleneck_trains():
    # The mechanism on a family block that is not a CIFAR basic block: ResNet's Bottleneck.
    net = regnet.create_model("resnet50", num_classes=4, depths=(1, 2, 1, 1))
    before = count_params(net)
    regulate(net, RegulatorCfg(cell="gru"), stages=(2,))
    mid = 128  # stage 2's bottleneck width: cell + 2 x (BN_h, fuse conv + BN)
    assert count_params(net) - before == 39 * mid + 2 * (2 * mid + 2 * mid * mid + 2 * mid)
    _train_one_step(net, torch.randn(2, 3, 64, 64))


def _train_one_step(net, x):
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    loss = nn.functional.cross_entropy(net(x), torch.zeros(x.shape[0], dtype=torch.long))
    loss.backward()
    assert torch.isfinite(loss)
    opt.step()
    cell_params = [p for s in regulated_stages(net) for p in s.cell.parameters()]
    assert cell_params and all(p.grad is not None and p.grad.abs().sum() > 0
                               for p in cell_params)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, net.parameters()))
    assert changed == len(before)


@pytest.mark.parametrize("name,base", [("regulated_regnetx_400mf", "regnetx_400mf"),
                                       ("regulated_iresnet50", "iresnet50")])
def test_regulator_attaches_to_other_families(name, base):
    net = regnet.create_model(name, num_classes=3)
    plain = regnet.create_model(base, num_classes=3)
    # the family's own block classes and parameter names, plus the regulator
    assert [type(b) for s in plain.stages() for b in s.blocks()] == \
        [type(b) for s in net.stages() for b in s.blocks()]
    assert set(plain.state_dict()) < set(net.state_dict())
    assert all(isinstance(s, RegulatedStage) for s in net.stages())
    got, ref = regnet.complexity(net, 64), regnet.complexity(plain, 64)
    assert got["params"] > ref["params"] and got["flops"] > ref["flops"]
    _train_one_step(net, torch.randn(2, 3, 64, 64))


def test_regulated_iresnet50_counts_equal_regnet50_lstm_params():
    # iResNet-50 and ResNet-50 share their parameter count and bottleneck widths, so the same
    # regulator adds the same parameters to both.
    assert regnet.complexity("regulated_iresnet50", 32)["params"] == 28137000


@pytest.mark.parametrize("name", ["regnet20_lstm", "se_regnet20_gru", "regnet20_gru_s2",
                                  "regnet20_rnn", "regulated_regnetx_400mf",
                                  "regulated_iresnet50", "regnet50_lstm"])
def test_checkpoints_of_the_hook_based_regulator_still_load_and_compute_the_same(name):
    # Recorded with commit 765d007 (the regulator ran as a forward hook): the state-dict keys
    # and shapes, and the logits of the seed-0 init on a seed-1 input, 5 classes.
    import gzip
    import json
    import pathlib
    path = pathlib.Path(__file__).parent / "fixtures" / "regulated_layout_765d007.json.gz"
    old = json.loads(gzip.decompress(path.read_bytes()))["models"][name]
    # 765d007 computed iResNet's blocks after each Start block as the paper's text reads them;
    # the default now follows the authors' code (docs/ARCHITECTURE.md), the old form is an option.
    old_form = {"base_args": {"stage_identity": "raw"}} if "iresnet" in name else {}
    torch.manual_seed(0)
    model = regnet.create_model(name, num_classes=5, **old_form).eval()
    # the same keys, shapes and order: an old state dict loads with strict=True
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == old["keys"]
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(logits, torch.tensor(old["logits_seed0_init_seed1_input"]),
                               rtol=0, atol=2e-5)
