"""Design spaces (AnyNetX_A..E, RegNet) as samplers, analytic complexity, population studies."""
from .complexity import anynet_complexity, regnet_complexity
from .spaces import SPACES, Constraints, DesignSpace, get_space, sample_space

__all__ = ["anynet_complexity", "regnet_complexity", "SPACES", "Constraints", "DesignSpace",
           "get_space", "sample_space"]
