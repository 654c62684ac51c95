"""The self-regulated paper's analyses (its Fig. 1): what consecutive blocks output, with and
without a memory, and how much a linear classifier can read from each block's output."""
from .blocks import BlockRecord, block_outputs, image_tensor, last_blocks
from .features import plot_features
from .probe import ProbeResult, plot_probe, probe_blocks

__all__ = ["BlockRecord", "block_outputs", "image_tensor", "last_blocks", "plot_features",
           "ProbeResult", "probe_blocks", "plot_probe"]
