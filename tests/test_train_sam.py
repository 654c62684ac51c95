"""Sharpness-aware minimisation: the step the trainer takes equals SAM's definition computed by
hand, on one process and across two DistributedDataParallel ranks."""
import copy
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
import yaml

from regnet.train import TrainConfig, train
from regnet.train.distributed import DistInfo
from regnet.train.engine import StepState, train_one_epoch
from regnet.train.sam import ascent
from train_helpers import tiny_cfg

RHO, LR = 0.05, 0.1


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def _grads_at(net, x, y):
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return [p.grad.clone() for p in net.parameters()]


def _sam_gradient(net, x, y):
    """SAM's gradient by its definition: the gradient at w + rho * g / ||g||."""
    probe = copy.deepcopy(net)
    g = _grads_at(probe, x, y)
    norm = torch.linalg.vector_norm(torch.stack([t.norm() for t in g]))
    with torch.no_grad():
        for p, t in zip(probe.parameters(), g):
            p.add_(t * RHO / norm)
    return _grads_at(probe, x, y)


def _cfg():
    return TrainConfig(lr=LR, momentum=0.0, weight_decay=0.0, schedule="constant", epochs=1,
                       sam_rho=RHO)


def test_ascent_moves_by_rho_along_the_gradient_and_restores_exactly():
    net = _net()
    x, y = _batch(0)
    g = _grads_at(net, x, y)
    before = copy.deepcopy(net.state_dict())
    norm = torch.linalg.vector_norm(torch.stack([t.norm() for t in g]))
    with ascent(net, RHO):
        moved = [p.detach() - before[k] for k, p in net.named_parameters()]
        assert float(torch.linalg.vector_norm(torch.stack([m.norm() for m in moved]))) == \
            pytest.approx(RHO, rel=1e-5)
        for m, t in zip(moved, g):
            torch.testing.assert_close(m, t * RHO / norm)
        net(x)  # a training-mode forward inside must not touch the running statistics
        bn = net[1]
        torch.testing.assert_close(bn.running_mean, before["1.running_mean"], rtol=0, atol=0)
        assert int(bn.num_batches_tracked) == int(before["1.num_batches_tracked"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit for bit, not (w + e) - e
    assert net[1].track_running_stats


def test_trainer_step_is_sam_by_definition():
    net = _net()
    x, y = _batch(0)
    want_grad = _sam_gradient(net, x, y)
    stats_ref = copy.deepcopy(net)
    stats_ref.train()
    stats_ref(x)  # the running statistics of one ordinary forward at w
    want = [p.detach() - LR * g for p, g in zip(net.parameters(), want_grad)]
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    row = train_one_epoch(net, [(x, y)], optimizer, _cfg(), StepState(),
                          device=torch.device("cpu"), amp_dtype=None, dist=DistInfo())
    for p, w in zip(net.parameters(), want):
        torch.testing.assert_close(p.detach(), w)
    torch.testing.assert_close(net[1].running_mean, stats_ref[1].running_mean)
    torch.testing.assert_close(net[1].running_var, stats_ref[1].running_var)
    # The logged loss is the unperturbed one.
    with torch.no_grad():
        assert row["train_loss"] == pytest.approx(float(F.cross_entropy(stats_ref(x), y)),
                                                  rel=1e-4)


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        net = _net()
        model = nn.parallel.DistributedDataParallel(net)
        optimizer = torch.optim.SGD(net.parameters(), lr=LR)
        train_one_epoch(model, [_batch(rank)], optimizer, _cfg(), StepState(),
                        device=torch.device("cpu"), amp_dtype=None,
                        dist=DistInfo(rank, world, rank, world), net=net)
        torch.save([p.detach() for p in net.parameters()], os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_ascends_on_each_ranks_gradient_and_averages_the_second(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    got = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    net = _net()
    per_rank = [_sam_gradient(net, *_batch(r)) for r in range(2)]
    for p, a, b, g0, g1 in zip(net.parameters(), got[0], got[1], *per_rank):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # ranks agree exactly
        torch.testing.assert_close(a, p.detach() - LR * (g0 + g1) / 2)


def test_sam_flag_trains_and_is_recorded(tmp_path):
    with pytest.raises(ValueError, match=r"--sam-rho must be >= 0 \(0: off\), got -0.1"):
        TrainConfig(sam_rho=-0.1)
    out = tmp_path / "sam"
    summary = train(tiny_cfg(out, epochs=1, sam_rho=0.05))
    assert summary["epochs"] == 1
    assert yaml.safe_load((out / "config.yaml").read_text())["sam_rho"] == 0.05
