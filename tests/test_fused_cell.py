"""The fused native regulator cell (regnet/kernels/regcell.cpp) against the cells' literal
per-gate form (`forward_reference`): outputs and every gradient (input, state, weights).

Both backward forms are checked: with the gate activations kept by forward (the default) and
recomputed. Tolerances: float64 1e-10 (the kernel uses libm's exp/tanh there, so this checks the algebra);
float32 2e-5 relative to the largest value (its exp is a polynomial with ~2e-7 relative
error, and the sums run in another order); bfloat16 inputs 2e-2 (one bf16 rounding of each
output against a float32 reference on the same bf16 values)."""
import pytest
import torch

from regnet import create_model, kernels
from regnet.kernels import regcell
from regnet.models.cells import CELLS, create_cell

pytestmark = pytest.mark.skipif(
    not regcell.available(), reason=f"fused cell not built here: {kernels.build_error('regcell')}")


def _cell(name, n, dtype, seed=0):
    torch.manual_seed(seed)
    cell = create_cell(name, n)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.5)
    return cell.to(dtype)


def _run(cell, x, state, weights, *, fused):
    """New state and the gradients of sum(w * new) w.r.t. x, the state and every weight."""
    cell.fused, cell.reference = fused, not fused
    x = x.detach().clone().requires_grad_()
    state = None if state is None else tuple(s.detach().clone().requires_grad_() for s in state)
    cell.zero_grad()
    new = cell(x, state)
    sum((a * w).sum() for a, w in zip(new, weights)).backward()
    grads = [x.grad] + ([s.grad for s in state] if state else [])
    grads += [p.grad for p in cell.parameters()]
    cell.fused, cell.reference = True, False
    return [t.detach() for t in new], [g.detach() for g in grads]


def _close(a, b, rel, what):
    scale = max(b.abs().max().item(), 1e-12)
    err = (a.double() - b.double()).abs().max().item() / scale
    assert err <= rel, f"{what}: max |fused - reference| = {err:.3g} of max |reference|"


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("save_gates", [True, False])  # backward reads the gates / recomputes
def test_fused_cell_equals_the_reference(name, dtype, rel, channels_last, save_gates,
                                         monkeypatch):
    monkeypatch.setattr(regcell, "save_gates", save_gates)
    n, shape = 8, (3, 8, 7, 5)  # odd, non-square maps: the padding on every side
    cell = _cell(name, n, dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(memory_format=fmt)
    state = tuple(torch.randn(shape, generator=gen, dtype=dtype)
                  for _ in range(cell.state_size))
    weights = [torch.randn(shape, generator=gen, dtype=dtype) for _ in range(cell.state_size)]
    fo, fg = _run(cell, x, state, weights, fused=True)
    ro, rg = _run(cell, x, state, weights, fused=False)
    for i, (a, b) in enumerate(zip(fo, ro)):
        _close(a, b, rel, f"output {i}")
    names = ["x"] + [f"state {i}" for i in range(len(state))] + [k for k, _ in
                                                                  cell.named_parameters()]
    for what, a, b in zip(names, fg, rg):
        _close(a, b, rel, f"grad {what}")


@pytest.mark.parametrize("name", list(CELLS))
def test_fused_cell_in_bfloat16(name):
    cell = _cell(name, 16, torch.float32)
    gen = torch.Generator().manual_seed(2)
    shape = (2, 16, 6, 6)
    x = torch.randn(shape, generator=gen).bfloat16()
    state = tuple(torch.randn(shape, generator=gen).bfloat16() for _ in range(cell.state_size))
    weights = [torch.randn(shape, generator=gen) for _ in range(cell.state_size)]
    fo, fg = _run(cell, x, state, weights, fused=True)
    assert all(t.dtype == torch.bfloat16 for t in fo)
    # reference: float32 on the same (bf16-exact) values
    ro, rg = _run(cell, x.float(), tuple(s.float() for s in state), weights, fused=False)
    for i, (a, b) in enumerate(zip(fo, ro)):
        _close(a, b, 2e-2, f"output {i}")
    for i, (a, b) in enumerate(zip(fg, rg)):
        _close(a, b, 2e-2, f"grad {i}")


def test_fused_cell_from_a_zero_state_and_with_two_threads():
    cell = _cell("lstm", 8, torch.float64)
    x = torch.randn(4, 8, 5, 5, dtype=torch.float64)
    weights = [torch.randn(4, 8, 5, 5, dtype=torch.float64) for _ in range(2)]
    fo, fg = _run(cell, x, None, weights, fused=True)
    ro, rg = _run(cell, x, None, weights, fused=False)
    for a, b in zip(fo + fg, ro + rg):
        _close(a, b, 1e-10, "zero state")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        to, tg = _run(cell, x, None, weights, fused=True)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(to + tg, fo + fg):
        _close(a, b, 1e-12, "two threads")


def test_widths_the_kernel_does_not_take_run_the_eager_form():
    cell = _cell("gru", 6, torch.float32)  # 6 channels: not a whole vector of 8
    x = torch.randn(2, 6, 4, 4)
    assert regcell.fused_update(cell, x, None) is None
    assert regcell.fused_update(_cell("gru", 8, torch.float32), torch.randn(2, 8, 4, 4),
                                None) is not None
    dense = create_cell("lstm", 8, kind="dense")
    assert dense._fused(torch.randn(2, 8, 4, 4), None) is None
    fused_layout = create_cell("lstm", 8, layout="fused")
    assert fused_layout._fused(torch.randn(2, 8, 4, 4), None) is None
    assert create_cell("lstm", 8)._fused(torch.randn(2, 8, 4, 4), None) is not None
    with regcell.disabled():
        assert regcell.fused_update(_cell("gru", 8, torch.float32), torch.randn(2, 8, 4, 4),
                                    None) is None


@pytest.mark.parametrize("name", ["regnet20_lstm", "regnet20_gru", "se_regnet20_lstm"])
def test_whole_network_fused_equals_eager(name):
    """A training step's loss and every gradient of the whole net, fused cells vs eager."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).double().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64).to(memory_format=torch.channels_last)
    y = torch.tensor([0, 3, 5, 9])
    results = []
    for fused in (True, False):
        for m in model.modules():
            if hasattr(m, "fused"):
                m.fused = fused
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (lf, gf), (le, ge) = results
    torch.testing.assert_close(lf, le, rtol=1e-10, atol=1e-12)
    for a, b in zip(gf, ge):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_a_missing_compiler_falls_back_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("REGNET_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(kernels, "_compiler", lambda: None)
    kernels.load.cache_clear()
    try:
        assert kernels.load("regcell") is None
        assert "no C++ compiler" in kernels.build_error("regcell")
        assert not regcell.available()
        cell = _cell("lstm", 8, torch.float32)
        x = torch.randn(2, 8, 4, 4)
        out = cell(x, None)  # the eager form
        cell.reference = True
        for a, b in zip(out, cell(x, None)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    finally:
        monkeypatch.undo()
        kernels.load.cache_clear()
        kernels._errors.pop("regcell", None)
    assert regcell.available()


def test_a_failing_build_falls_back_with_the_compilers_message(tmp_path, monkeypatch):
    bad = tmp_path / "bad-cxx"
    bad.write_text("#!/bin/sh\necho 'error: this compiler refuses' >&2\nexit 1\n")
    bad.chmod(0o755)
    monkeypatch.setenv("REGNET_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_compiler", lambda: str(bad))
    kernels.load.cache_clear()
    try:
        assert kernels.load("regcell") is None
        assert "this compiler refuses" in kernels.build_error("regcell")
        assert not list((tmp_path / "cache").glob("*.tmp"))  # no half-written object left
    finally:
        monkeypatch.undo()
        kernels.load.cache_clear()
        kernels._errors.pop("regcell", None)


def test_gate_activations_are_kept_only_where_a_backward_follows(monkeypatch):
    kept = []
    real_empty = torch.empty

    def spy(*shape, **kw):  # the saved planes are the only 5-dim tensor the cell allocates
        if len(shape) == 1 and isinstance(shape[0], tuple) and len(shape[0]) == 5:
            kept.append(shape[0])
        return real_empty(*shape, **kw)
    monkeypatch.setattr(regcell.torch, "empty", spy)
    cell = _cell("lstm", 8, torch.float32)
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        cell(x, None)
    assert kept == []
    cell(x, None)[0].sum().backward()
    assert kept == [(2, 5, 4, 4, 8)]
