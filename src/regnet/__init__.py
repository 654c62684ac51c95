"""regnet: RNN-regulated ResNets, RegNet design spaces and improved residual networks."""
from . import models  # noqa: F401  (registers every family's variants)
from .complexity import complexity
from .models.factory import create_model
from .pretrained import list_pretrained
from .registry import UnknownModelError, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "list_pretrained", "complexity", "UnknownModelError",
           "__version__"]
