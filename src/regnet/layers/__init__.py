"""Layers shared by every family: conv (+ BN + ReLU), squeeze-excitation, shortcuts, stems."""
from .conv import ConvBnAct, conv2d
from .se import SqueezeExcite
from .shortcut import SHORTCUTS, PadShortcut, ProjectionShortcut, make_shortcut
from .stem import STEMS, Stem

__all__ = ["ConvBnAct", "conv2d", "SqueezeExcite", "make_shortcut", "ProjectionShortcut",
           "PadShortcut", "SHORTCUTS", "Stem", "STEMS"]
