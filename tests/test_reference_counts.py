"""Parameters, FLOPs and activations against the reference tables, row by row.

Every row's model must be registered: an unknown name fails the row (with the close matches).
"""
import filecmp
import os

import pytest

import regnet
from regnet.registry import UnknownModelError, get_entry

from reference_tables import HERE, iresnet_rows, self_regulated_rows, zoo_rows

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")


@pytest.mark.parametrize("name,classes,params,flops,acts", self_regulated_rows(),
                         ids=lambda v: str(v))
def test_self_regulated_table(name, classes, params, flops, acts):
    got = regnet.complexity(name, num_classes=classes)
    assert (got["params"], got["flops"], got["acts"]) == (params, flops, acts)


@pytest.mark.parametrize("name,classes,params,flops,acts,row", zoo_rows(), ids=lambda v: str(v)
                         if not isinstance(v, dict) else "")
def test_model_zoo_table(name, classes, params, flops, acts, row):
    model = regnet.create_model(name)
    got = regnet.complexity(model)
    assert (got["params"], got["flops"], got["acts"]) == (params, flops, acts)
    depths = [len(s.blocks()) for s in model.stages()]
    widths = [info["num_chs"] for info in model.feature_info[1:]]
    assert depths == [int(v) for v in row["stage_depths"].split(",")]
    assert widths == [int(v) for v in row["stage_widths"].split(",")]


@pytest.mark.parametrize("name,classes,params,gmacs", iresnet_rows(), ids=lambda v: str(v))
def test_iresnet_table(name, classes, params, gmacs):
    got = regnet.complexity(name, num_classes=classes)
    assert got["params"] == params
    # The table rounds to 1e5 MACs; the library's exact `macs` must round to the same figure.
    assert round(got["macs"] / 1e9, 4) == pytest.approx(gmacs, abs=1e-9)


def test_every_reference_row_is_registered():
    names = {r[0] for r in self_regulated_rows()} | {r[0] for r in zoo_rows()} \
        | {r[0] for r in iresnet_rows()}
    missing = []
    for name in sorted(names):
        try:
            get_entry(name)
        except UnknownModelError:
            missing.append(name)
    assert not missing, f"reference rows without a registered model: {missing}"


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/reference not present")
def test_reference_copies_are_current():
    for f in sorted(os.listdir(HERE)):
        assert filecmp.cmp(os.path.join(HERE, f), os.path.join(SHARED, f), shallow=False), f
