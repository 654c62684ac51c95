"""What one training step of the depth campaign's nets costs, as a multiple of ResNet-20's step
measured in the same process: the figure that turns a ResNet-20 epoch time on some machine into
the depth campaign's lane-hours (benchmarks/campaigns/depth.yaml).

    taskset -c 0 python benchmarks/experiments/depth_step_cost.py [--out FILE.json]

Batch 128 of 32x32 inputs, fp32, channels_last, 1 thread, forward + backward + SGD step on a
fixed synthetic batch (no data loading: the ratio is of the nets alone); the fastest of
`--steps` timed steps after one warm-up. ResNet-20 is timed first and last, and the ratio uses
their mean, so a machine whose speed drifts during the run shows it.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

import regnet

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import command_line, machine_info, write_result  # noqa: E402

NETS = [(arch, n) for arch in ("preact_resnet164", "iresnet164") for n in (6, 12, 18)]


def step_seconds(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, **kw) -> float:
    model = regnet.create_model(name, num_classes=10, **kw).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="JSON result file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))
    first = step_seconds("resnet20", x, y, args.steps)
    rows = [(arch, 9 * n + 2, step_seconds(arch, x, y, args.steps, depths=[n, n, n]))
            for arch, n in NETS]
    last = step_seconds("resnet20", x, y, args.steps)
    base = (first + last) / 2
    write_result(args.out, {
        "command": command_line(), "args": vars(args), "machine": machine_info(),
        "resnet20_step_s": [round(first, 3), round(last, 3)],
        "nets": [{"model": a, "depth": d, "step_s": round(t, 3), "x_resnet20": round(t / base, 2)}
                 for a, d, t in rows]})


if __name__ == "__main__":
    main()
