"""UpSample: equal to gunpowder 1.5.0 (requests off the source grid, int and Coordinate
factors), chunking-invariant, lazy."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, input_array, run_case


@pytest.mark.parametrize("chunks", [None, (7, 9, 11)])
@pytest.mark.parametrize("name", ["upsample", "upsample_coordinate"])
def test_equals_gunpowder_for_any_chunking(name, chunks):
    info = case(name)
    factor = info["params"]["factor"]
    factor = gp.Coordinate(factor) if isinstance(factor, list) else factor
    source = next(iter(info["arrays"]))
    outputs, expected = run_case(name, lambda k: gp.UpSample(k[source], factor, k["target"]),
                                 chunks=chunks)
    assert outputs["target"].dtype == expected["target"].dtype
    np.testing.assert_array_equal(outputs["target"], expected["target"])
    if source == "labels":
        assert set(np.unique(outputs["target"])) <= set(np.unique(input_array("labels")))


def test_factor_must_divide_the_voxel_size():
    raw, fine = gp.ArrayKey("RAW"), gp.ArrayKey("FINE")
    source = gp.ArraySource(raw, np.zeros((4, 8)), gp.ArraySpec(voxel_size=(2, 3)))
    with pytest.raises(gp.PipelineSetupError, match=r"\(2, 3\) of RAW is not a multiple"):
        with gp.build(source + gp.UpSample(raw, 2, fine)):
            pass
    with gp.build(source + gp.UpSample(raw, (2, 3), fine), scheduler="sync") as p:
        assert p.spec[fine].voxel_size == gp.Coordinate(1, 1)
        request = gp.BatchRequest()
        request.add(fine, (8, 24))
        batch = p.request_lazy_batch(request)
    assert batch[fine].is_lazy and batch[fine].data.shape == (8, 24)
