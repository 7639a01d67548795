"""GPArraySource: serves a daskgp Array at its spec's ROI, as gunpowder's GPArraySource."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp

RAW = gp.ArrayKey("RAW")


def test_serves_the_requested_roi_of_the_array_with_its_spec():
    data = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    spec = gp.ArraySpec(roi=gp.Roi((10, 20), (12, 32)), voxel_size=(2, 4), interpolatable=True)
    source = gp.GPArraySource(RAW, gp.Array(data, spec))
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((14, 28), (4, 12)))
    with gp.build(source) as pipeline:
        lazy = pipeline.request_lazy_batch(request)
        assert isinstance(lazy[RAW].data, da.Array)
        batch = pipeline.request_batch(request)
    np.testing.assert_array_equal(batch[RAW].data, data[2:4, 2:5])
    assert batch[RAW].spec.roi == gp.Roi((14, 28), (4, 12))
    assert batch[RAW].spec.voxel_size == gp.Coordinate(2, 4)
    assert batch[RAW].spec.interpolatable is True
    assert batch[RAW].spec.dtype == np.float32


def test_a_bare_numpy_array_is_refused_with_arraysource_named():
    with pytest.raises(gp.PipelineSetupError, match=r"GPArraySource\(RAW\).*ArraySource\(key"):
        gp.GPArraySource(RAW, np.zeros((4, 4)))
