"""Load state dicts of reference implementations into our networks, strictly.

Two key layouts:
- pycls's (RegNetX / RegNetY / AnyNet), `convert_pycls_state_dict`, below;
- torchvision's ResNet layout, `convert_resnet_layout_state_dict`: torchvision's and timm's
  ResNets / ResNeXts and the iResNet authors' code (iResNet, ResStage, ResGroup(Fix),
  iResGroup(Fix)) name their modules the same way (see `RESNET_LAYOUT_MAP`).

pycls:

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

__all__ = ["PYCLS_KEY_MAP", "pycls_key_to_ours", "convert_pycls_state_dict", "load_pycls",
           "RESNET_LAYOUT_MAP", "convert_resnet_layout_state_dict", "load_resnet_layout",
           "load_strict"]

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
    load_strict(model, convert_pycls_state_dict(state, bgr_to_rgb), "pycls")


# torchvision's layout (left) to ours (right):
#     conv1.* / bn1.*                    -> stem.conv.* / stem.bn.*
#     layer{i}.{j}.conv{k}.*, .bn{k}.*   -> s{i}.b{j+1}.conv{k}.*, .bn{k}.*   (k = 0 .. 3)
#     layer{i}.{j}.downsample.{n}.*      -> s{i}.b{j+1}.shortcut.conv.* / .bn.*: the 1x1 conv and
#                                           its BN, after a parameter-free max-pool when the
#                                           iResNet projection has one (then n = 1, 2; else 0, 1)
#     fc.*                               -> head.fc.*
# The iResNet authors' blocks compute, in the block after each Start block (no BN0),
# ReLU(x) + F(ReLU(x)): their in-place ReLU rectifies the identity too. Our StageBlock does the
# same by default (IResNetCfg.stage_identity="rectified"), so their weights load as they are.
RESNET_LAYOUT_MAP = (
    (r"^conv1\.", "stem.conv."),
    (r"^bn1\.", "stem.bn."),
    (r"^fc\.", "head.fc."),
)
_LAYER = re.compile(r"^layer(\d+)\.(\d+)\.(.*)$")
_BRANCH = re.compile(r"^(conv|bn)[0-3]\.")
_DOWNSAMPLE = re.compile(r"^downsample\.(\d+)\.(.*)$")


def convert_resnet_layout_state_dict(state: dict) -> dict:
    """A torchvision / timm / iResNet-authors state dict -> ours (keys renamed, tensors shared)."""
    for nest in ("state_dict", "model"):
        if nest in state and isinstance(state[nest], dict):
            state = state[nest]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # A max-pool first in `downsample` shifts the conv and BN to indices 1 and 2.
    pooled = {m.group(1, 2) for k in state if (m := _LAYER.match(k))
              and (d := _DOWNSAMPLE.match(m.group(3))) and d.group(1) == "2"}
    out = {}
    for key, value in state.items():
        new = None
        for pattern, ours in RESNET_LAYOUT_MAP:
            if re.match(pattern, key):
                new = re.sub(pattern, ours, key)
        m = _LAYER.match(key)
        if m:
            stage, index, rest = m.groups()
            prefix = f"s{stage}.b{int(index) + 1}."
            d = _DOWNSAMPLE.match(rest)
            if _BRANCH.match(rest):
                new = prefix + rest
            elif d:
                first = 1 if (stage, index) in pooled else 0
                part = {first: "conv", first + 1: "bn"}.get(int(d.group(1)))
                new = prefix + f"shortcut.{part}.{d.group(2)}" if part else None
        if new is None:
            raise KeyError(f"no mapping for key {key!r} of a torchvision-layout state dict "
                           "(see regnet.models.convert.RESNET_LAYOUT_MAP)")
        if new in out:
            raise KeyError(f"two keys map to {new!r}")
        out[new] = value
    return out


def load_resnet_layout(model: torch.nn.Module, state: dict) -> None:
    """Load a torchvision-layout state dict into `model` strictly."""
    load_strict(model, convert_resnet_layout_state_dict(state), "torchvision-layout")


def load_strict(model: torch.nn.Module, converted: dict, source: str) -> None:
    """`load_state_dict(strict=True)` with one error naming every missing, unexpected and
    mis-shaped key, instead of a page of them."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    shapes = [f"{k} {tuple(converted[k].shape)} vs {tuple(ours[k].shape)}"
              for k in sorted(set(ours) & set(converted)) if ours[k].shape != converted[k].shape]
    if missing or unexpected or shapes:
        def few(names):
            return ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        parts = [f"{len(missing)} missing: {few(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {few(unexpected)}" if unexpected else "",
                 f"{len(shapes)} of another shape (file vs model): {few(shapes)}" if shapes else ""]
        name = getattr(model, "model_name", "") or type(model).__name__
        raise ValueError(f"the {source} weights do not fit {name}: "
                         + "; ".join(p for p in parts if p))
    model.load_state_dict(converted, strict=True)
