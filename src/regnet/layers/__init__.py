"""Building blocks shared by every family: conv+BN+act, squeeze-excitation, shortcuts."""
from .conv import ConvBnAct, conv_nd, bn_nd, pool_nd, create_act
from .se import SqueezeExcite
from .stem import Stem, STEMS
from .shortcut import make_shortcut, ProjectionShortcut, PadShortcut, SHORTCUTS

__all__ = [
    "ConvBnAct", "conv_nd", "bn_nd", "pool_nd", "create_act", "SqueezeExcite",
    "make_shortcut", "ProjectionShortcut", "PadShortcut", "SHORTCUTS", "Stem", "STEMS",
]
