"""torchrun integration: process group from the environment (gloo on CPU, nccl on GPU),
and sums of metrics across ranks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; a single process when
    it is not set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")),
                    int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return info


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum over ranks (float64 so counts and loss sums stay exact)."""
    if not info.enabled:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's BN running statistics to every rank, so all ranks evaluate the model rank 0
    saves (DDP syncs buffers only at the start of each forward, one step behind)."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
