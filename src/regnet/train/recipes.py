"""Recipes: YAML files of `TrainConfig` keys, one per paper's schedule, shipped in
`regnet/recipes/`. A recipe is named by file stem (`self_regulated_cifar`) or given as a path."""
from __future__ import annotations

import os
from importlib import resources

import yaml

from .config import TrainConfig


def recipe_dir():
    return resources.files("regnet") / "recipes"


def list_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in recipe_dir().iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> dict:
    """The recipe's keys as a plain dict (validate with `TrainConfig.from_dict`)."""
    if os.path.exists(name_or_path):
        path, text = name_or_path, open(name_or_path).read()
    else:
        res = recipe_dir() / f"{name_or_path}.yaml"
        if not res.is_file():
            raise FileNotFoundError(f"unknown recipe {name_or_path!r}; shipped recipes: "
                                    f"{', '.join(list_recipes())} (or give a YAML path)")
        path, text = str(res), res.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"cannot parse recipe {path}: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping of config keys, got {type(data).__name__}")
    TrainConfig.check_keys(data, f"recipe {path}: ")
    data.setdefault("recipe", os.path.splitext(os.path.basename(path))[0])
    return data
