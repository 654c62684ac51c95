"""ConvRNN / ConvGRU / ConvLSTM cells: the light gate conv, the fast path, the equations."""
import pytest
import torch
import torch.nn.functional as F

from regnet.complexity import complexity, count_params
from regnet.models.cells import CELLS, LightGateConv, PairConv, create_cell, interleave

N = 8


def _randomise(module):
    # Non-trivial weights and biases everywhere (default init zeroes nothing, but be explicit).
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


def _state(cell, shape=(2, N, 6, 6)):
    return tuple(torch.randn(shape) for _ in range(cell.state_size))


# The dense gate conv has one layout ("fused" is a layout of the light conv's stacked gates).
@pytest.mark.parametrize("kind,layout", [("light", "separate"), ("light", "fused"),
                                         ("dense", "separate")])
@pytest.mark.parametrize("name", list(CELLS))
def test_fast_and_straightforward_cells_agree(name, kind, layout):
    cell = _randomise(create_cell(name, N, kind, layout))
    x = torch.randn(2, N, 6, 6)
    state = _state(cell)
    outs = []
    for reference in (False, True):
        cell.reference = reference
        cell.zero_grad()
        new = cell(x, state)
        sum((s * torch.linspace(-1, 1, s.numel()).view_as(s)).sum() for s in new).backward()
        outs.append((new, [p.grad.clone() for p in cell.parameters()]))
    (fast, gfast), (ref, gref) = outs
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(gfast, gref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fast_path_in_channels_last_and_bf16_autocast():
    cell = _randomise(create_cell("lstm", N))
    x = torch.randn(2, N, 6, 6).to(memory_format=torch.channels_last)
    state = tuple(s.to(memory_format=torch.channels_last) for s in _state(cell))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = cell(x, state)
        cell.reference = True
        ref = cell(x, state)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)


def test_light_conv_mixes_input_with_memory():
    conv = _randomise(LightGateConv(N, gates=1))
    x, h = torch.randn(1, N, 5, 5), torch.randn(1, N, 5, 5)
    first = conv.pw.forward_reference(x, h)              # the gate's first step (grouped 1x1)
    changed = conv.pw.forward_reference(x, h + 1.0)      # change only the memory
    per_channel = (first - changed).abs().flatten(2).amax(-1)[0]
    assert (per_channel > 1e-4).all(), per_channel      # every output channel sees H
    # The fast path's first step is the same map (gate-major order; one gate here).
    torch.testing.assert_close(conv.pw(x, h), first)
    # What the interleaving prevents: N groups over a plain concatenation pair X with X, so
    # half the output channels would never see H. (Shows the check above can fail.)
    naive = F.conv2d(torch.cat((x, h), 1), conv.pw.weight, conv.pw.bias, groups=N)
    naive_changed = F.conv2d(torch.cat((x, h + 1.0), 1), conv.pw.weight, conv.pw.bias, groups=N)
    blind = (naive - naive_changed).abs().flatten(2).amax(-1)[0] == 0
    assert blind.sum() == N // 2


def test_interleave_orders_pairs():
    x = torch.arange(3.0).view(1, 3, 1, 1)
    assert interleave(x, -x).flatten().tolist() == [0, 0, 1, -1, 2, -2]


@pytest.mark.parametrize("name,gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_gate_conv_counts(name, gates):
    # Light: 13N per gate (1x1: 2N weights + N biases; depthwise 3x3: 9N + N). Dense: 18N^2 + N.
    assert count_params(create_cell(name, N)) == 13 * N * gates
    assert count_params(create_cell(name, N, "dense")) == (18 * N * N + N) * gates
    # Fused: the 3x3 takes N groups of the g stacked maps (its own, larger, count).
    fused_dw = {1: 9 * N, 3: 9 * 4 * N + 9 * N, 4: 9 * 16 * N}[gates]  # GRU: zr (g=2) + cand
    # 1x1: 2gN weights + gN biases; 3x3: gN biases + the grouped weights.
    assert count_params(create_cell(name, N, layout="fused")) == 4 * N * gates + fused_dw


def test_pair_conv_is_counted_as_the_grouped_conv_it_is():
    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pw = PairConv(N, 4)
            self.default_input_size = (N, 4, 4)

        def forward(self, x):
            return self.pw(x, x)

    got = complexity(Wrap())
    # 4N outputs per position, each 2 multiply-adds + 1 bias add
    assert (got["macs"], got["flops"], got["acts"]) == (16 * 4 * N * 2, 16 * 4 * N * 3,
                                                       16 * 4 * N)


def test_lstm_equations():
    cell = _randomise(create_cell("lstm", N))
    x = torch.randn(1, N, 4, 4)
    h, c = _state(cell, (1, N, 4, 4))
    pre = cell.gates.forward_reference(x, h)  # gate order i, f, o, g
    i, f, o = (t.sigmoid() for t in pre[:, :3 * N].chunk(3, 1))
    g = pre[:, 3 * N:].tanh()
    c_new = f * c + i * g
    h_new, c_got = cell(x, (h, c))
    torch.testing.assert_close(c_got, c_new)
    torch.testing.assert_close(h_new, o * torch.tanh(c_new))


def test_gru_equations_and_zero_state():
    cell = _randomise(create_cell("gru", N))
    x = torch.randn(1, N, 4, 4)
    (h,) = _state(cell, (1, N, 4, 4))
    zr = cell.zr.forward_reference(x, h).sigmoid()
    z, r = zr[:, :N], zr[:, N:]
    cand = cell.cand.forward_reference(x, r * h).tanh()
    torch.testing.assert_close(cell(x, (h,))[0], (1 - z) * h + z * cand)
    # state None means H = 0
    torch.testing.assert_close(cell(x)[0], cell(x, (torch.zeros_like(x),))[0])


def test_unknown_cell_and_conv_names():
    with pytest.raises(ValueError, match="expected one of rnn, gru, lstm"):
        create_cell("transformer", N)
    with pytest.raises(ValueError, match="light, dense"):
        create_cell("gru", N, "sparse")


def test_the_dense_gate_conv_refuses_the_light_convs_fused_layout():
    with pytest.raises(ValueError, match="layout of the light gate conv"):
        create_cell("gru", N, "dense", "fused")


def test_counted_and_executed_multiply_adds_of_the_light_gate_conv():
    import regnet
    model = regnet.create_model("regnet20_lstm")
    counted, executed = complexity(model), complexity(model, executed=True)
    assert counted["macs"] == 49_316_480 and counted["params"] == executed["params"]
    # The 1x1 step runs dense over [X, H]: 2N multiply-adds per output instead of 2. Per stage
    # (width N, map S x S, 3 blocks, 4 gates): 3 * 4N * S^2 * (2N - 2).
    extra = sum(3 * 4 * n * s * s * (2 * n - 2) for n, s in ((16, 32), (32, 16), (64, 8)))
    assert executed["macs"] - counted["macs"] == extra
    # the fused layout runs the grouped 1x1 itself: counted and executed agree, and its outputs
    # are counted (activations as many as the separate layout's)
    fused = regnet.create_model("regnet20_lstm", gates="fused")
    assert complexity(fused)["macs"] == complexity(fused, executed=True)["macs"]
    assert complexity(fused)["acts"] == counted["acts"]
