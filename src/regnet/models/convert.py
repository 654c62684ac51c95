"""Load state dicts of reference implementations into our networks, strictly.

Sources (`SOURCES`; `detect_source` tells them apart by their keys, `convert_state_dict`
converts any of them, `load_weights` reads a file of any supported format):
- "pycls" (RegNetX / RegNetY / AnyNet), `convert_pycls_state_dict`, below;
- "resnet_layout": torchvision's ResNet layout, shared by torchvision's and timm's ResNets /
  ResNeXts and the iResNet authors' code (iResNet, ResStage, ResGroup(Fix), iResGroup(Fix));
- "timm_regnet": timm's RegNetX / RegNetY;
- "torchvision_regnet": torchvision's RegNetX / RegNetY;
- "regnet": this library's own names (its checkpoints and safetensors exports).

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
from typing import Callable

import torch

__all__ = ["PYCLS_KEY_MAP", "pycls_key_to_ours", "convert_pycls_state_dict", "load_pycls",
           "RESNET_LAYOUT_MAP", "convert_resnet_layout_state_dict", "load_resnet_layout",
           "TIMM_REGNET_MAP", "TORCHVISION_REGNET_MAP", "SOURCES", "detect_source",
           "convert_state_dict", "read_state_dict", "load_weights", "load_strict"]

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
    raise KeyError(f"no mapping for key {key!r} of a pycls state dict (see "
                   "regnet.models.convert)")


def rename_keys(state: dict, rename: Callable[[str], str | None], what: str) -> dict:
    """`state` under the names `rename(key)` gives (tensors shared, not copied); a key it maps
    to None, or two keys mapped to one name, is an error naming the key."""
    out = {}
    for key, value in state.items():
        new = rename(key)
        if new is None:
            raise KeyError(f"no mapping for key {key!r} of a {what} state dict (see "
                           "regnet.models.convert)")
        if new in out:
            raise KeyError(f"two keys of the {what} state dict map to {new!r}")
        out[new] = value
    return out


def convert_pycls_state_dict(state: dict, bgr_to_rgb: bool = False) -> dict:
    """A reference (pycls) state dict -> ours, keys renamed, tensors shared (not copied)."""
    out = rename_keys(_unwrap(state), pycls_key_to_ours, "pycls")
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
    state = _unwrap(state)
    # A max-pool first in `downsample` shifts the conv and BN to indices 1 and 2.
    pooled = {m.group(1, 2) for k in state if (m := _LAYER.match(k))
              and (d := _DOWNSAMPLE.match(m.group(3))) and d.group(1) == "2"}

    def rename(key: str) -> str | None:
        m = _LAYER.match(key)
        if not m:
            return _by_rules(key, RESNET_LAYOUT_MAP)
        stage, index, rest = m.groups()
        prefix = f"s{stage}.b{int(index) + 1}."
        if _BRANCH.match(rest):
            return prefix + rest
        d = _DOWNSAMPLE.match(rest)
        if d:
            first = 1 if (stage, index) in pooled else 0
            part = {first: "conv", first + 1: "bn"}.get(int(d.group(1)))
            return prefix + f"shortcut.{part}.{d.group(2)}" if part else None
        return None

    return rename_keys(state, rename, "torchvision-layout")


def load_resnet_layout(model: torch.nn.Module, state: dict) -> None:
    """Load a torchvision-layout state dict into `model` strictly."""
    load_strict(model, convert_resnet_layout_state_dict(state), "torchvision-layout")


# timm's RegNet: ConvNormAct modules hold `.conv` and `.bn`; the SE and the head already match.
TIMM_REGNET_MAP = (
    (r"^(s\d+\.b\d+)\.conv(\d)\.conv\.", r"\1.conv\2."),
    (r"^(s\d+\.b\d+)\.conv(\d)\.bn\.", r"\1.bn\2."),
    (r"^(s\d+\.b\d+)\.downsample\.conv\.", r"\1.shortcut.conv."),
    (r"^(s\d+\.b\d+)\.downsample\.bn\.", r"\1.shortcut.bn."),
    (r"^(s\d+\.b\d+\.se\.fc[12]\.|stem\.(conv|bn)\.|head\.fc\.)", r"\1"),
)
# torchvision's RegNet: Conv2dNormActivation = (conv, BN) as `.0` / `.1`; the stages are
# `trunk_output.block{i}` holding `block{i}-{j}` (j from 0); the block's layers are pycls's
# `f.a`, `f.b`, `f.se`, `f.c` and `proj`.
TORCHVISION_REGNET_MAP = (
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.bn."),
    (r"^fc\.", "head.fc."),
)
_TV_BLOCK = re.compile(r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.(.*)$")
_TV_PARTS = {"f.a.0.": "conv1.", "f.a.1.": "bn1.", "f.b.0.": "conv2.", "f.b.1.": "bn2.",
             "f.c.0.": "conv3.", "f.c.1.": "bn3.", "f.se.fc1.": "se.fc1.", "f.se.fc2.": "se.fc2.",
             "proj.0.": "shortcut.conv.", "proj.1.": "shortcut.bn."}


def _by_rules(key: str, rules) -> str | None:
    """The first (pattern, replacement) rule that matches `key`, applied; None if none does."""
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def convert_timm_regnet_state_dict(state: dict) -> dict:
    return rename_keys(_unwrap(state), lambda k: _by_rules(k, TIMM_REGNET_MAP), "timm RegNet")


def convert_torchvision_regnet_state_dict(state: dict) -> dict:
    def rename(key: str) -> str | None:
        m = _TV_BLOCK.match(key)
        if not m:
            return _by_rules(key, TORCHVISION_REGNET_MAP)
        stage, index, rest = m.groups()
        part = next((p for p in _TV_PARTS if rest.startswith(p)), None)
        return None if part is None else \
            f"s{stage}.b{int(index) + 1}.{_TV_PARTS[part]}{rest[len(part):]}"

    return rename_keys(_unwrap(state), rename, "torchvision RegNet")


SOURCES = ("regnet", "pycls", "resnet_layout", "timm_regnet", "torchvision_regnet")
_CONVERTERS = {"regnet": dict, "pycls": convert_pycls_state_dict,
               "resnet_layout": convert_resnet_layout_state_dict,
               "timm_regnet": convert_timm_regnet_state_dict,
               "torchvision_regnet": convert_torchvision_regnet_state_dict}


def _unwrap(state: dict) -> dict:
    """The tensors of a checkpoint: nested under model_state / state_dict / model, DataParallel's
    `module.` prefix dropped."""
    for nest in ("model_state", "state_dict", "model"):
        if nest in state and isinstance(state[nest], dict):
            state = state[nest]
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_source(state: dict) -> str:
    """Which implementation's names `state` uses (see `SOURCES`)."""
    keys = list(_unwrap(state))
    if any(k.startswith("trunk_output.") for k in keys):
        return "torchvision_regnet"
    if any(re.match(r"^s\d+\.b\d+\.f\.[abc]", k) for k in keys):
        return "pycls"
    if any(re.match(r"^s\d+\.b\d+\.conv\d\.conv\.", k) for k in keys):
        return "timm_regnet"
    if any(re.match(r"^layer\d+\.\d+\.", k) for k in keys):
        return "resnet_layout"
    if any(k.startswith("stem.") for k in keys) and any(k.startswith("head.") for k in keys):
        return "regnet"
    raise ValueError(f"cannot tell which implementation these weights come from (first keys: "
                     f"{', '.join(keys[:3]) or 'none'}); give the source: one of "
                     f"{', '.join(SOURCES)}")


def convert_state_dict(state: dict, source: str | None = None) -> dict:
    """Any supported source's state dict in our names; `source` None: detected from the keys."""
    source = source or detect_source(state)
    if source not in _CONVERTERS:
        raise ValueError(f"unknown weights source {source!r}; expected one of {', '.join(SOURCES)}")
    return _CONVERTERS[source](_unwrap(state))


def read_state_dict(path: str) -> dict:
    """The tensors of a weights file: .safetensors, or a torch file (our checkpoints, pycls
    `.pyth`, torchvision / timm / iResNet `.pth`), loaded with weights_only=True."""
    import os
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which and why, in one line
        raise ValueError(f"cannot read weights file {path}: {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def load_weights(model: torch.nn.Module, path: str, source: str | None = None) -> list[str]:
    """Load a weights file of any supported source into `model` strictly. A classifier of
    another class count is left as the model built it; returns the keys so re-initialised."""
    raw = read_state_dict(path)
    source = source or detect_source(raw)
    state = convert_state_dict(raw, source)
    ours = model.state_dict()
    head = [k for k in ("head.fc.weight", "head.fc.bias")
            if k in state and k in ours and state[k].shape != ours[k].shape]
    for k in head:
        state[k] = ours[k]
    load_strict(model, state, f"{source} ({path})")
    return head


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
