#!/usr/bin/env python
"""Extreme-depth iResNets on a CPU: peak memory and time of a training step at batch 128, with
and without gradient checkpointing.

Each (depth, checkpointing) pair runs in a FRESH subprocess (ru_maxrss only ever grows, and a
failed allocation must not take the parent down): it builds `iresnet{depth}` (CIFAR, 10 classes),
runs STEPS SGD steps (momentum 0.9, wd 1e-4) on random 32x32 images in training mode, and reports
the process's peak resident memory (ru_maxrss: weights, gradients, momentum, activations and
allocator slack, i.e. what the machine must really have) and each step's wall time.

Guards, so that "without checkpointing" at 2000+ layers cannot swap or OOM-kill the machine:
1. without checkpointing, depths above MAX_PLAIN_DEPTH are skipped unless --force;
2. before the real step the child measures the bytes autograd saves for a BATCH_PROBE forward,
   scales them to the batch, adds weights / gradients / momentum, and skips the run when that
   exceeds MEM_FRACTION of MemAvailable (the estimate is reported either way; on this 24 GB
   machine: 3.1 GiB for iresnet164, 18.5 GiB for iresnet1001, so 1001 is skipped);
3. the child caps its own address space (RLIMIT_AS) at what is left, so an underestimate ends
   in a caught allocation error reported as "out_of_memory".

Usage (the lead runs the full table on a quiet machine; ~15-25 min on 2 cores):
    .venv/bin/python benchmarks/deep_checkpointing.py --out benchmarks/results/deep_checkpointing.json
    .venv/bin/python benchmarks/deep_checkpointing.py --depths 3002 --modes ckpt   # one config
Writes JSON (environment + one record per config) and prints a Markdown table.

Measured here (2 shared cores, load average 3-4 from other jobs, torch 2.13 CPU): iresnet3002 with
checkpointing, batch 128, one step (the first, warm-up included): 228 s, peak RSS 7.49 GiB
(benchmarks/results/iresnet3002_ckpt.json). With glibc's default malloc the same step had done
only its forward pass after 159 s (peak RSS 1.77 GiB by then).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

DEPTHS = (164, 1001, 2000, 3002)   # CIFAR iResNet depths (iresnet{depth} in the registry)
BATCH = 128                        # images per step
STEPS = 2                          # timed steps per config (the first includes warm-up)
BATCH_PROBE = 2                    # batch of the memory-estimate forward
MAX_PLAIN_DEPTH = 1001             # deepest net tried without checkpointing unless --force
MEM_FRACTION = 0.75                # of MemAvailable a run may use (estimate and RLIMIT_AS cap)
THREADS = 2                        # torch intra-op threads (this machine: 2 cores)
# glibc hands every allocation above its mmap threshold (32 MB at most) back to the kernel on
# free, so each 33 MB activation of a batch-128 step is re-faulted page by page: measured on
# iresnet164 (batch 128, checkpointing), 5.4M page faults and 43 s per step by default, 0.47M and
# 8.8 s with these (peak RSS 1.57 -> 1.89 GiB). The children run with them unless --default-malloc.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**34), "MALLOC_TRIM_THRESHOLD_": str(2**34)}


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def report_progress(args, step: int, phase: str, seconds: float) -> None:
    """Where the child got to, for a parent that has to stop it at --time-limit."""
    if args.progress:
        with open(args.progress + ".tmp", "w") as f:
            json.dump({"step": step, "phase": phase, "seconds": seconds,
                       "peak_rss_bytes": peak_rss()}, f)
        os.replace(args.progress + ".tmp", args.progress)


# -- the child: one config ----------------------------------------------------------------------
def estimate_bytes(model, torch, batch: int) -> int:
    """Bytes a training step at `batch` needs: autograd's saved tensors (measured at a probe
    batch, scaled linearly) + weights, gradients and momentum."""
    storages, saved = set(), 0

    def pack(t):
        nonlocal saved
        s = t.untyped_storage()
        if s.data_ptr() not in storages:
            storages.add(s.data_ptr())
            saved += s.nbytes()
        return t

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    x = torch.randn(BATCH_PROBE, 3, 32, 32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    activations = max(0, saved - params) * batch / BATCH_PROBE
    return int(activations + 3 * params)


def child(args) -> dict:
    import torch
    import regnet
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name = f"{args.model}{args.depth}"
    record = {"model": name, "depth": args.depth, "checkpointing": args.ckpt,
              "batch": args.batch, "threads": args.threads}
    model = regnet.create_model(name, grad_checkpointing=args.ckpt).train()
    record["params"] = sum(p.numel() for p in model.parameters())
    available = mem_available()
    if not args.ckpt:
        need = estimate_bytes(model, torch, args.batch)
        record["estimated_bytes"] = need
        if need > MEM_FRACTION * available and not args.force:
            return {**record, "status": "skipped",
                    "reason": f"estimated {need / 2**30:.1f} GiB > {MEM_FRACTION:.0%} of "
                              f"{available / 2**30:.1f} GiB available (--force to try)"}
    limit = vm_size() + int(MEM_FRACTION * available)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    times = []
    try:
        for step in range(args.steps):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            report_progress(args, step, "forward", time.perf_counter() - t0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            report_progress(args, step, "backward", time.perf_counter() - t0)
            opt.step()
            times.append(time.perf_counter() - t0)
    except (RuntimeError, MemoryError) as err:  # the RLIMIT_AS cap: an allocation failed
        return {**record, "status": "out_of_memory", "reason": str(err).splitlines()[0][:200],
                "peak_rss_bytes": peak_rss()}
    return {**record, "status": "ok", "loss": float(loss), "step_seconds": times,
            "peak_rss_bytes": peak_rss()}


# -- the parent: every config in its own process ------------------------------------------------
def run_config(args, depth: int, ckpt: bool) -> dict:
    if not ckpt and depth > MAX_PLAIN_DEPTH and not args.force:
        return {"model": f"{args.model}{depth}", "depth": depth, "checkpointing": False,
                "batch": args.batch, "status": "skipped",
                "reason": f"no checkpointing above {MAX_PLAIN_DEPTH} layers (--force to try)"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--depth", str(depth),
           "--batch", str(args.batch), "--steps", str(args.steps), "--threads",
           str(args.threads), "--model", args.model] + (["--ckpt"] if ckpt else []) \
        + (["--force"] if args.force else [])
    progress = os.path.join(tempfile.mkdtemp(prefix="deep_ckpt_"), "progress.json")
    cmd += ["--progress", progress]
    env = os.environ if args.default_malloc else {**os.environ, **MALLOC_ENV}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_limit,
                              env=env)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        last = json.load(open(progress)) if os.path.exists(progress) else {}
        return {"model": f"{args.model}{depth}", "depth": depth, "checkpointing": ckpt,
                "batch": args.batch, "status": "timeout", "progress": last,
                "peak_rss_bytes": last.get("peak_rss_bytes", 0),
                "reason": f"stopped after --time-limit {args.time_limit:g} s; reached step "
                          f"{last.get('step', '-')} {last.get('phase', 'build')} at "
                          f"{last.get('seconds', 0):.0f} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:  # killed (e.g. by the OOM killer) or crashed
        return {"model": f"{args.model}{depth}", "depth": depth, "checkpointing": ckpt,
                "batch": args.batch, "status": "failed", "returncode": proc.returncode,
                "reason": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300],
                "process_seconds": wall}
    return {**json.loads(lines[-1]), "process_seconds": wall}


def environment(args) -> dict:
    import torch
    return {"host": platform.node(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "python": platform.python_version(), "mem_available_bytes": mem_available(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
            "malloc_env": {} if args.default_malloc else MALLOC_ENV,
            "load_average": os.getloadavg()}


def table(records: list[dict]) -> str:
    rows = ["| model | checkpointing | status | peak RSS (GiB) | step (s) | note |",
            "|---|---|---|---|---|---|"]
    for r in records:
        peak = f"{r['peak_rss_bytes'] / 2**30:.2f}" if r.get("peak_rss_bytes") else "-"
        step = f"{r['step_seconds'][-1]:.1f}" if r.get("step_seconds") else "-"  # warm
        rows.append(f"| {r['model']} | {'on' if r['checkpointing'] else 'off'} | {r['status']} "
                    f"| {peak} | {step} | {r.get('reason', '')} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    p.add_argument("--modes", nargs="+", choices=("ckpt", "plain"), default=["ckpt", "plain"])
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--model", default="iresnet", help="registry name prefix (name = prefix+depth)")
    p.add_argument("--force", action="store_true", help="try runs the guards would skip")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's mmap / trim thresholds alone (see MALLOC_ENV)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds per config; the child is stopped and its progress reported")
    p.add_argument("--out", default="benchmarks/results/deep_checkpointing.json")
    p.add_argument("--progress", help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return 0
    records = []
    for depth in args.depths:
        for mode in args.modes:
            rec = run_config(args, depth, mode == "ckpt")
            records.append(rec)
            print(json.dumps(rec), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"environment": environment(args), "records": records}, f, indent=1)
    os.replace(tmp, args.out)  # atomic: a half-written result file never exists
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
