"""Resample: equal to gunpowder 1.5.0 (nearest for labels, linear up/down with anti-aliasing,
cubic in 2D), chunking-invariant; label ids beyond float32 survive."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, input_array, run_case

CASES = ["resample_labels", "resample_labels_up", "resample_raw_up", "resample_raw_down",
         "resample_raw_2d_cubic"]


def _run(name, chunks):
    params = dict(case(name)["params"])
    voxel_size = tuple(params.pop("target_voxel_size"))
    source = next(iter(case(name)["arrays"]))
    return run_case(name, lambda k: gp.Resample(k[source], voxel_size, k["target"], **params),
                    chunks=chunks)


@pytest.mark.parametrize("chunks", [None, (7, 9, 11)])
@pytest.mark.parametrize("name", CASES)
def test_equals_gunpowder_for_any_chunking(name, chunks):
    outputs, expected = _run(name, chunks)
    result, reference = outputs["target"], expected["target"]
    assert result.dtype == reference.dtype and result.shape == reference.shape
    if name.startswith("resample_labels"):
        # gunpowder resamples labels through float32, which changes the id 2**40 + 3;
        # everywhere else the nearest voxels are the same.
        big = np.uint64(2**40 + 3)
        assert (result == big).any()
        as_gunpowder = np.where(result == big, np.float32(big).astype(np.uint64), result)
        np.testing.assert_array_equal(as_gunpowder, reference)
        assert set(np.unique(result)) <= set(np.unique(input_array("labels")))
    else:
        np.testing.assert_allclose(result, reference, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(result, reference)


def test_nearest_path_is_chunk_wise_and_interpolation_is_one_task():
    labels, raw, target = gp.ArrayKey("LABELS"), gp.ArrayKey("RAW"), gp.ArrayKey("TARGET")
    data = da.from_array(input_array("labels"), chunks=(10, 20, 20))
    spec = gp.ArraySpec(voxel_size=(1, 1, 1), interpolatable=False)
    request = gp.BatchRequest(random_seed=0)
    request.add(target, (16, 32, 32))
    with gp.build(gp.ArraySource(labels, data, spec) + gp.Resample(labels, (1, 2, 2), target),
                  scheduler="sync") as p:
        assert p.spec[target].voxel_size == gp.Coordinate(1, 2, 2)
        lazy = p.request_lazy_batch(request)[target]
    assert lazy.is_lazy and lazy.data.numblocks[0] > 1
    raw_data = da.from_array(input_array("raw"), chunks=(10, 20, 20))
    with gp.build(gp.ArraySource(raw, raw_data) + gp.Resample(raw, (2, 2, 2), target),
                  scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)[target]
    assert lazy.is_lazy and lazy.data.numblocks == (1, 1, 1)


def test_bad_order_and_dimensions_fail_clearly():
    raw, target = gp.ArrayKey("RAW"), gp.ArrayKey("TARGET")
    with pytest.raises(gp.PipelineSetupError, match="interp_order=7 for TARGET"):
        gp.Resample(raw, (2, 2), target, interp_order=7)
    source = gp.ArraySource(raw, np.zeros((4, 4), np.float32))
    with pytest.raises(gp.PipelineSetupError, match="differ in dimensions"):
        with gp.build(source + gp.Resample(raw, (2, 2, 2), target)):
            pass
