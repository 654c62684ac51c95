import os

import pytest
import torch

# Two xdist workers share two cores: one intra-op thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "reference")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
