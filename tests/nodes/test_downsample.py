"""DownSample: equal to gunpowder 1.5.0 (int and tuple factors), chunking-invariant, lazy."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, input_array, run_case


@pytest.mark.parametrize("chunks", [None, (7, 9, 11)])
@pytest.mark.parametrize("name", ["downsample", "downsample_tuple"])
def test_equals_gunpowder_for_any_chunking(name, chunks):
    info = case(name)
    factor = info["params"]["factor"]
    factor = tuple(factor) if isinstance(factor, list) else factor
    source = next(iter(info["arrays"]))
    outputs, expected = run_case(name, lambda k: gp.DownSample(k[source], factor, k["target"]),
                                 chunks=chunks)
    assert outputs["target"].dtype == expected["target"].dtype
    np.testing.assert_array_equal(outputs["target"], expected["target"])
    if source == "labels":
        assert set(np.unique(outputs["target"])) <= set(np.unique(input_array("labels")))


def test_voxel_size_and_errors():
    raw, coarse = gp.ArrayKey("RAW"), gp.ArrayKey("COARSE")
    source = gp.ArraySource(raw, np.zeros((4, 8)), gp.ArraySpec(voxel_size=(2, 1)))
    with gp.build(source + gp.DownSample(raw, (1, 4), coarse), scheduler="sync") as p:
        assert p.spec[coarse].voxel_size == gp.Coordinate(2, 4)
        assert p.spec[coarse].roi == p.spec[raw].roi
    with pytest.raises(gp.PipelineSetupError, match="factor=0 for COARSE"):
        gp.DownSample(raw, 0, coarse)
    with pytest.raises(gp.PipelineSetupError, match="3 entries"):
        with gp.build(source + gp.DownSample(raw, (1, 2, 2), coarse)):
            pass
