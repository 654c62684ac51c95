"""Load state dicts of the reference RegNet implementation (pycls) into our AnyNet / RegNet.

The networks have the same modules in the same order; only the names differ. The mapping, per
key of the reference (left) to ours (right); `s{i}.b{j}.` prefixes are the same on both sides:

    stem.conv.*              -> stem.conv.*
    stem.bn.*                -> stem.bn.*
    s{i}.b{j}.proj.*         -> s{i}.b{j}.shortcut.conv.*   (projection shortcut)
    s{i}.b{j}.bn.*           -> s{i}.b{j}.shortcut.bn.*
    s{i}.b{j}.f.a.*          -> s{i}.b{j}.conv1.*           (1x1)
    s{i}.b{j}.f.a_bn.*       -> s{i}.b{j}.bn1.*
    s{i}.b{j}.f.b.*          -> s{i}.b{j}.conv2.*           (grouped 3x3, carries the stride)
    s{i}.b{j}.f.b_bn.*       -> s{i}.b{j}.bn2.*
    s{i}.b{j}.f.se.f_ex.0.*  -> s{i}.b{j}.se.fc1.*          (SE squeeze, RegNetY)
    s{i}.b{j}.f.se.f_ex.2.*  -> s{i}.b{j}.se.fc2.*          (SE excite)
    s{i}.b{j}.f.c.*          -> s{i}.b{j}.conv3.*           (1x1)
    s{i}.b{j}.f.c_bn.*       -> s{i}.b{j}.bn3.*
    head.fc.*                -> head.fc.*

`*` is weight / bias / running_mean / running_var / num_batches_tracked. Reference checkpoints
often nest the weights under "model_state" and, with DataParallel, prefix keys with "module.";
both are stripped. The reference weights expect BGR input: `bgr_to_rgb=True` reverses the stem
conv's input channels so the model takes RGB like every other model here.
"""
from __future__ import annotations

import re

import torch

__all__ = ["PYCLS_KEY_MAP", "pycls_key_to_ours", "convert_pycls_state_dict", "load_pycls"]

# (reference pattern, our replacement), tried in order on the part after "s{i}.b{j}.".
PYCLS_KEY_MAP = (
    (r"proj\.", "shortcut.conv."),
    (r"bn\.", "shortcut.bn."),
    (r"f\.a\.", "conv1."),
    (r"f\.a_bn\.", "bn1."),
    (r"f\.b\.", "conv2."),
    (r"f\.b_bn\.", "bn2."),
    (r"f\.se\.f_ex\.0\.", "se.fc1."),
    (r"f\.se\.f_ex\.2\.", "se.fc2."),
    (r"f\.c\.", "conv3."),
    (r"f\.c_bn\.", "bn3."),
)
_BLOCK = re.compile(r"^(s\d+\.b\d+\.)(.*)$")
_KEEP = re.compile(r"^(stem\.(conv|bn)\.|head\.fc\.)")


def pycls_key_to_ours(key: str) -> str:
    """Our name for one reference key; raises KeyError for a key the mapping does not know."""
    key = key.removeprefix("module.")
    if _KEEP.match(key):
        return key
    m = _BLOCK.match(key)
    if m:
        prefix, rest = m.groups()
        for pattern, ours in PYCLS_KEY_MAP:
            hit = re.match(pattern, rest)
            if hit:
                return prefix + ours + rest[hit.end():]
    raise KeyError(f"no mapping for reference key {key!r} (see regnet.models.convert)")


def convert_pycls_state_dict(state: dict, bgr_to_rgb: bool = False) -> dict:
    """A reference (pycls) state dict -> ours, keys renamed, tensors shared (not copied)."""
    if "model_state" in state and isinstance(state["model_state"], dict):
        state = state["model_state"]
    out = {}
    for key, value in state.items():
        new = pycls_key_to_ours(key)
        if new in out:
            raise KeyError(f"two reference keys map to {new!r}")
        out[new] = value
    if bgr_to_rgb:
        out["stem.conv.weight"] = out["stem.conv.weight"].flip(1)
    return out


def load_pycls(model: torch.nn.Module, state: dict, bgr_to_rgb: bool = False) -> None:
    """Load a reference state dict into `model` strictly: every key and shape must match."""
    converted = convert_pycls_state_dict(state, bgr_to_rgb)
    ours = model.state_dict()
    bad = [k for k, v in converted.items() if k in ours and ours[k].shape != v.shape]
    if bad:
        k = bad[0]
        raise ValueError(f"shape mismatch for {k}: reference {tuple(converted[k].shape)}, "
                         f"model {tuple(ours[k].shape)} ({len(bad)} mismatched in all)")
    model.load_state_dict(converted, strict=True)
