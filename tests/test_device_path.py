"""The accelerator path, checked on the CPU: what a GPU run depends on that a CPU can show.

A training epoch must not synchronise the host with the device on every step: the finite-loss
flag is read every `check_every` steps (25 on a GPU), the loss and accuracy sums stay on the
device until the epoch ends. Here every host read of a tensor (`item`, `bool`, `float`, `int`,
`tolist`) is counted while an epoch runs with the GPU's setting."""
import pytest
import torch
import torch.nn as nn

from regnet.train import TrainConfig
from regnet.train.config import COMPILE_MODES
from regnet.train.distributed import DistInfo
from regnet.train.engine import DEVICE_CHECK_EVERY, StepState, train_one_epoch


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _batches(n):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, 6, 6, generator=g), torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]


def _host_reads(monkeypatch, run):
    reads = []
    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            reads.append(_name)
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        result = run()
    finally:
        monkeypatch.undo()
    return result, reads


@pytest.mark.parametrize("every,steps", [(DEVICE_CHECK_EVERY, 30), (1, 6)])
def test_an_epoch_reads_the_device_only_at_its_checks(monkeypatch, every, steps):
    net = _net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    cfg = TrainConfig(epochs=1, lr=0.1)
    row, reads = _host_reads(monkeypatch, lambda: train_one_epoch(
        net, _batches(steps), optimizer, cfg, StepState(), device=torch.device("cpu"),
        amp_dtype=None, dist=DistInfo(), check_every=every))
    checks = steps // every + (1 if steps % every else 0)   # every `every` steps and the last
    assert len(reads) == checks + 2, reads                  # + the epoch's loss and top-1 sums
    assert row["train_loss"] > 0 and 0 <= row["train_top1"] <= 100


def test_a_non_finite_loss_is_caught_at_the_next_check():
    from regnet.train.engine import NonFiniteLossError
    net = _net()
    with torch.no_grad():
        net[-1].bias.fill_(float("nan"))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="within steps 1-5"):
        train_one_epoch(net, _batches(12), optimizer, TrainConfig(epochs=1), StepState(),
                        device=torch.device("cpu"), amp_dtype=None, dist=DistInfo(),
                        check_every=5)


def test_compile_modes_are_validated_and_reach_the_cli():
    assert TrainConfig(compile=True, compile_mode="reduce-overhead").compile_mode in COMPILE_MODES
    with pytest.raises(ValueError, match="compile_mode"):
        TrainConfig(compile_mode="fastest")
    import argparse

    from regnet.cli.train import _add_config_flags
    p = argparse.ArgumentParser()
    _add_config_flags(p)
    args = p.parse_args(["--compile", "--compile-mode", "reduce-overhead"])
    assert args.compile and args.compile_mode == "reduce-overhead"
