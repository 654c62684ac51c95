"""A trained checkpoint as a deployable file: an ONNX graph, a `torch.export` program (.pt2)
or bare safetensors weights with their JSON sidecar, written atomically, and optionally checked
against the eager model on the same input.

    regnet export runs/x/best.pt --format onnx --dynamic-batch --check

ONNX goes through `torch.onnx.export(dynamo=True)` (onnx + onnxscript, the `export` extra);
`--check` runs it in onnxruntime when that is installed, else through the exported program
that ONNX was made from. The check input is a fixed-seed normal batch at the model's input
size, in eval mode, fp32.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

import torch

from regnet.atomic import atomic_write
from regnet.extras import need

FORMATS = ("onnx", "pt2", "safetensors")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors"}


def example_input(meta: dict, batch: int = 2, seed: int = 0) -> torch.Tensor:
    size = int(meta["image_size"])
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=gen)


def _program(model: torch.nn.Module, x: torch.Tensor, dynamic_batch: bool):
    dynamic = ({"x": {0: torch.export.Dim("batch", min=1, max=65536)}}
               if dynamic_batch else None)
    # The fused native cell is opaque to export: trace the regulator's eager form, which
    # computes the same map (tests/test_fused_cell.py) and lowers to ONNX / ATen ops.
    from regnet.kernels.regcell import disabled
    with disabled():
        return torch.export.export(model, (x,), dynamic_shapes=dynamic, strict=False)


def export_checkpoint(checkpoint: str, out: str, fmt: str, *, dynamic_batch: bool = False,
                      check: bool = False, batch: int = 2) -> dict:
    """Write `checkpoint`'s evaluated weights to `out` as `fmt`; with `check`, the max
    absolute difference of the exported outputs from eager ones (at `batch`, and at another
    batch size when the batch is dynamic). Returns what was done, for printing."""
    from regnet.train.checkpoint import export_safetensors, load_checkpoint, load_model

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    model, meta = load_model(checkpoint)
    x = example_input(meta, batch)
    with torch.no_grad():
        eager = model(x)
    result = {"checkpoint": checkpoint, "out": out, "format": fmt, "model": meta["model"],
              "input": list(x.shape), "dynamic_batch": dynamic_batch,
              "max_abs_eager": float(eager.abs().max())}
    if fmt == "safetensors":
        result["sidecar"] = export_safetensors(load_checkpoint(checkpoint), out)
        if check:
            again, _ = load_model(out)
            with torch.no_grad():
                result["max_abs_diff"] = float((again(x) - eager).abs().max())
            result["checked_with"] = "eager, reloaded"
        return result

    program = _program(model, x, dynamic_batch)
    if fmt == "pt2":
        buf = io.BytesIO()
        torch.export.save(program, buf)
        atomic_write(out, lambda f: f.write(buf.getbuffer()))
        if check:
            loaded = torch.export.load(out).module()
            result.update(_compare(lambda t: loaded(t), model, x, eager, dynamic_batch),
                          checked_with="torch.export.load")
        return result

    need("onnxscript", "ONNX export")
    with _quiet_exporter():
        onnx_program = torch.onnx.export(program, (x,), dynamo=True, input_names=["x"],
                                         output_names=["logits"], verbose=False)
    # Weights inline (a CIFAR or ImageNet classifier is far below ONNX's 2 GB protobuf limit).
    data = onnx_program.model_proto.SerializeToString()
    atomic_write(out, lambda f: f.write(data))
    if check:
        try:
            ort = need("onnxruntime", "checking an ONNX export")
        except ImportError:
            ort = None
        if ort is not None:
            session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])

            def run(t):
                return torch.from_numpy(session.run(None, {"x": t.numpy()})[0])
            result.update(_compare(run, model, x, eager, dynamic_batch),
                          checked_with=f"onnxruntime {ort.__version__}")
        else:
            result.update(_compare(program.module(), model, x, eager, dynamic_batch),
                          checked_with="the exported program (onnxruntime not installed)")
    return result


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's notes about torchvision ops we never use, and pytree deprecations, are
    not the user's business."""
    noisy = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        noisy.setLevel(level)


def _compare(run, model, x, eager, dynamic_batch: bool) -> dict:
    with torch.no_grad():
        diff = float((run(x) - eager).abs().max())
        if dynamic_batch:  # another batch size through the same graph
            y = torch.cat([x, x[:1]])
            diff = max(diff, float((run(y) - model(y)).abs().max()))
    return {"max_abs_diff": diff}


def default_out(checkpoint: str, fmt: str) -> str:
    base = os.path.splitext(checkpoint)[0]
    if fmt == "safetensors" and checkpoint.endswith(".safetensors"):
        raise ValueError("the checkpoint is already a safetensors export; give --out")
    return base + SUFFIX[fmt]
