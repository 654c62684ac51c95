"""Optional dependencies: the core install is torch, numpy, Pillow, PyYAML and safetensors;
plots, TensorBoard, the linear probes and Ray come with extras. `need` imports one or says, in
one line, which extra brings it."""
from __future__ import annotations

import importlib

DIST = "regnet-lab"  # the distribution name (the import name is `regnet`)
EXTRAS = {"matplotlib": "plots", "sklearn": "analysis", "tensorboard": "tensorboard",
          "ray": "ray", "onnx": "export", "onnxscript": "export", "onnxruntime": "export",
          "tqdm": "bar"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def need(module: str, what: str):
    """`importlib.import_module(module)`, or a MissingExtraError naming the extra for `what`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install '{DIST}[{extra}]'") from None
