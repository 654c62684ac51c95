"""`create_model`: a registered variant built with config overrides, as a classifier or a
backbone (`features_only`), and the iResNet paper's SSD trunk built on that backbone."""
from __future__ import annotations

import dataclasses
import logging

import torch.nn as nn

from regnet.pretrained import resolve_pretrained
from regnet.registry import UnknownOptionError, get_entry

from .convert import load_weights
from .net import FeatureNet

log = logging.getLogger("regnet")

__all__ = ["create_model", "ssd_trunk"]


def create_model(name: str, num_classes: int | None = None, *, pretrained: bool | str = False,
                 features_only: bool = False, out_indices=None, grad_checkpointing: bool = False,
                 **overrides) -> nn.Module:
    """Build a registered network.

    `overrides` replace fields of the variant's frozen config with `dataclasses.replace`
    (e.g. `shortcut="A"`, `drop_rate=0.2`), so every architecture knob is reachable by name and
    a misspelt one is an error listing the valid ones. `pretrained`: True (the model's first
    registered tag), a tag (`regnet.pretrained`), or a weights file of any source
    `regnet.models.convert` reads (ours, pycls, torchvision, timm, the iResNet authors'),
    loaded strictly; a classifier of another class count is re-initialised, and said so.
    `features_only=True` returns a backbone giving the feature maps at `out_indices` (timm's
    convention: 0 is the stem, i is stage s<i>; default all).
    """
    entry = get_entry(name)
    cfg = entry.cfg
    if overrides:
        fields = {f.name for f in dataclasses.fields(cfg)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise UnknownOptionError(f"{entry.name}: unknown option(s) {', '.join(bad)}; "
                                     f"valid options: {', '.join(sorted(fields))}")
        cfg = dataclasses.replace(cfg, **overrides)
    classes = entry.num_classes if num_classes is None else int(num_classes)
    if classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {classes}")
    model = entry.build(cfg, classes)
    model.model_name = entry.name
    model.cfg = cfg
    if pretrained:
        path, source = resolve_pretrained(entry.name, pretrained)
        fresh = load_weights(model, path, source)
        if fresh:
            log.warning("%s: the weights' classifier predicts another number of classes; "
                        "re-initialised %s for %d classes", entry.name, ", ".join(fresh),
                        classes)
    if grad_checkpointing:
        model.set_grad_checkpointing(True)
    if features_only:
        model = FeatureNet(model, out_indices)
        model.cfg = cfg
    return model


def ssd_trunk(name: str = "iresnet50", **overrides) -> nn.Module:
    """The iResNet paper's SSD backbone: stem + stages 1-3 with stride 1 in stage 3 (1024 x 38 x
    38 for a 300x300 image from iResNet-50). A `FeatureNet`, so classifier checkpoints load with
    strict=False. Works for any registered net whose config has `strides`."""
    strides = list(overrides.pop("strides", get_entry(name).cfg.strides))
    strides[2] = 1
    return create_model(name, features_only=True, out_indices=(3,), strides=tuple(strides),
                        **overrides)
