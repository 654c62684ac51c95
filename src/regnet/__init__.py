"""regnet: RNN-regulated ResNets, RegNet design spaces and improved residual networks."""
from .complexity import complexity
from .registry import UnknownModelError, create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "complexity", "UnknownModelError", "__version__"]
