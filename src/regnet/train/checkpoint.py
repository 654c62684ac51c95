"""Checkpoints: plain containers of tensors (loadable with `weights_only=True`), written
atomically (temporary file, fsync, rename), and safetensors exports with a JSON sidecar.

Format "regnet-ckpt-1":
    {"format", "model", "model_args", "num_classes", "state_dict", "dataset", "classes",
     "mean", "std", "image_size", "augment", "epoch", "val_top1", "config",
     "train_state": {...} (only in `last`: raw weights, optimiser, EMA, step, history)}
`state_dict` holds the weights that were evaluated (the EMA when one is kept).
"""
from __future__ import annotations

import io
import json
import os

import torch

from regnet.atomic import atomic_write

FORMAT = "regnet-ckpt-1"


def save_checkpoint(path: str, ckpt: dict) -> None:
    # Serialised in memory first: a full disk then fails in a plain write (ENOSPC, named by
    # atomic_write) rather than deep inside torch's zip writer, and the old file stays.
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: str) -> dict:
    """A checkpoint, or a safetensors export read with its JSON sidecar (the same keys, less
    the training state)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.endswith(".safetensors"):
        return _load_export(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot load checkpoint {path}: {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a regnet checkpoint (format {FORMAT!r})")
    return ckpt


def _load_export(path: str) -> dict:
    side = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(side):
        raise ValueError(f"{path} has no sidecar {side} (model name, classes, normalisation); "
                         "export it with its .json, or load the weights with "
                         "create_model(name, pretrained=path)")
    try:
        with open(side) as f:
            meta = json.load(f)
        from safetensors.torch import load_file
        state = load_file(path)
    except Exception as err:
        raise ValueError(f"cannot load {path}: {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{side} is not a regnet export sidecar (format {FORMAT!r})")
    return {**meta, "state_dict": state}


def load_model(path: str, device: str | torch.device = "cpu"):
    """(model, meta): the registered model rebuilt from the checkpoint, weights loaded, in eval
    mode; `meta` is the checkpoint without its tensors."""
    from regnet.models.factory import create_model

    from regnet.models.convert import load_strict

    ckpt = load_checkpoint(path)
    model = create_model(ckpt["model"], num_classes=ckpt["num_classes"], **ckpt["model_args"])
    try:
        load_strict(model, ckpt["state_dict"], f"checkpoint {path}'s")
    except ValueError as err:
        raise ValueError(f"{err}; the file's weights are not those of the model it names "
                         f"({ckpt['model']}): it was edited or written by other code") from None
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "train_state")}
    return model.to(device).eval(), meta


def run_amp(meta: dict) -> str:
    """The autocast setting the checkpoint's run evaluated with (`auto` where it recorded none).
    Score a checkpoint at it: an fp32 run scored under bf16 autocast (what `auto` picks on a
    bf16-native CPU) gains or loses a few borderline images and misses the run's own figure."""
    return (meta.get("config") or {}).get("amp", "auto")


def run_eval_augment(meta: dict) -> str:
    """The eval transform of the checkpoint's run (an `augment` kind, applied with train=False).
    Sidecars of exports made before 2026-12-02 carry no augment: it follows from the dataset and
    size as it did at training time."""
    from regnet.data import default_augment

    return meta.get("augment") or default_augment(meta["dataset"], meta["image_size"])


def export_safetensors(ckpt: dict, path: str) -> str:
    """Weights to `path` (.safetensors) and metadata to the same name with .json; returns the
    sidecar's path. The sidecar carries what a user needs to rebuild and trust the model."""
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().contiguous() for k, v in ckpt["state_dict"].items()}
    sidecar = {k: ckpt.get(k) for k in ("format", "model", "model_args", "num_classes", "dataset",
                                       "classes", "mean", "std", "image_size", "augment",
                                       "epoch", "val_top1", "recipe", "config",
                                       "data_root")}
    blob = st_save(tensors, metadata={"model": ckpt["model"], "format": FORMAT})
    atomic_write(path, lambda f: f.write(blob))
    side_path = os.path.splitext(path)[0] + ".json"
    atomic_write(side_path, lambda f: f.write(json.dumps(sidecar, indent=2).encode()))
    return side_path
