"""Training and evaluation: `TrainConfig`, `train(cfg) -> summary`, `load_recipe(name)`.

    from regnet.train import TrainConfig, train, load_recipe
    cfg = TrainConfig.from_dict({**load_recipe("demo"), "model": "resnet20", "out": "runs/x"})
    summary = train(cfg)
"""
from .checkpoint import load_model
from .config import TrainConfig
from .engine import NonFiniteLossError, evaluate
from .recipes import list_recipes, load_recipe
from .trainer import RunDirError, train

__all__ = ["TrainConfig", "train", "load_recipe", "list_recipes", "load_model", "evaluate",
           "NonFiniteLossError", "RunDirError"]
