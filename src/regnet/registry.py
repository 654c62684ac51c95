"""Model registry: one line per named variant, `name -> (builder, frozen config)`.

A leaf: it imports nothing of the package. The families register their variants when
`regnet.models` is imported (which `import regnet` does); `regnet.models.factory.create_model`
builds an entry. Builders have the signature `build(cfg, num_classes) -> Net`.
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
           "list_models", "get_entry", "normalize_name"]


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


def get_entry(name: str) -> ModelEntry:
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
    names = sorted(_REGISTRY)
    if family:
        names = [n for n in names if _REGISTRY[n].family == family]
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, normalize_name(glob))]
    return names
