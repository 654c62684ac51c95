"""Model registry: one line per named variant, `name -> (builder, frozen config)`.

Builders have the signature `build(cfg, num_classes) -> Net`; `create_model` applies overrides to
the frozen config with `dataclasses.replace`, so every architecture knob is reachable by name and
a misspelt knob is an error that lists the valid ones.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn as nn

__all__ = ["ModelEntry", "UnknownModelError", "UnknownOptionError", "register_model",
           "create_model", "list_models", "get_entry", "normalize_name"]


class UnknownModelError(KeyError):
    """An unknown model name; the message names the closest registered names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownOptionError(TypeError):
    """An override that is not a field of the model's config; the message lists the valid ones."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[Any, int], nn.Module]
    cfg: Any
    num_classes: int
    input_size: tuple[int, ...]
    family: str
    paper: str = ""
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def normalize_name(name: str) -> str:
    """'RegNetX-1.6GF' -> 'regnetx_1_6gf': lower case, '-', '.' and spaces become '_'."""
    return re.sub(r"[-. ]+", "_", name.strip().lower())


def register_model(name: str, build: Callable[[Any, int], nn.Module], cfg: Any, *,
                   num_classes: int, input_size: tuple[int, ...], family: str, paper: str = "",
                   aliases: tuple[str, ...] = ()) -> ModelEntry:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    if not dataclasses.is_dataclass(cfg) or not cfg.__dataclass_params__.frozen:
        raise TypeError(f"{name}: the config must be a frozen dataclass, got {type(cfg).__name__}")
    entry = ModelEntry(name, build, cfg, num_classes, tuple(input_size), family, paper,
                       tuple(aliases))
    _REGISTRY[name] = entry
    for alias in aliases:
        _ALIASES[normalize_name(alias)] = name
    return entry


def _ensure_loaded() -> None:
    # The families register themselves on import; importing here keeps `regnet.registry`
    # usable on its own (e.g. from the CLI) without a circular import at package load.
    import regnet.models  # noqa: F401


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    key = normalize_name(name)
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    candidates = list(_REGISTRY) + list(_ALIASES)
    # Always name the nearest few, even when none is close: a one-line error should help.
    close = (difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
             or difflib.get_close_matches(key, candidates, n=3, cutoff=0.0))
    close = list(dict.fromkeys(_ALIASES.get(c, c) for c in close))
    raise UnknownModelError(f"unknown model {name!r}; closest: {', '.join(close)} "
                            f"(`regnet list` shows all {len(_REGISTRY)})")


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered names, sorted; `pattern` is a shell glob ('regnetx_*') or a substring."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if family:
        names = [n for n in names if _REGISTRY[n].family == family]
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, normalize_name(glob))]
    return names


def create_model(name: str, num_classes: int | None = None, *, features_only: bool = False,
                 out_indices=None, grad_checkpointing: bool = False, **overrides) -> nn.Module:
    """Build a registered network.

    `overrides` replace fields of the variant's frozen config (e.g. `shortcut="A"`,
    `drop_rate=0.2`). `features_only=True` returns a backbone giving the stage outputs at
    `out_indices`.
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
    if grad_checkpointing:
        model.set_grad_checkpointing(True)
    if features_only:
        from regnet.models.net import FeatureNet
        model = FeatureNet(model, out_indices)
        model.cfg = cfg
    return model
