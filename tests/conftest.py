import os

import pytest
import torch

# Two xdist workers share two cores: one intra-op thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
# The Ray backend test starts a local cluster: CI has no internet, so no usage reporting.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "reference")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
