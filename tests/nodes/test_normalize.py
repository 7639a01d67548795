"""Normalize: dtype-dependent factors, lazy map_blocks named after the node, spec dtype."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW = gp.ArrayKey("RAW")


def _run(data, node, lazy=False):
    request = gp.BatchRequest(random_seed=0)
    request.add(RAW, data.shape)
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        spec = p.spec[RAW]
        batch = p.request_lazy_batch(request) if lazy else p.request_batch(request)
    return batch[RAW], spec


@pytest.mark.parametrize("dtype, factor", [(np.uint8, 1 / 255), (np.uint16, 1 / 65535)])
def test_integer_dtypes_are_scaled_to_unit_range(dtype, factor):
    data = np.arange(24).reshape(2, 3, 4).astype(dtype) * (np.iinfo(dtype).max // 23)
    array, spec = _run(data, gp.Normalize(RAW))
    assert spec.dtype == np.float32 and array.data.dtype == np.float32
    np.testing.assert_array_equal(array.data, data.astype(np.float32) * factor)
    assert array.data.max() <= 1 and array.data.min() == 0


def test_float_data_in_unit_range_is_unchanged_and_out_of_range_fails_at_compute():
    data = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    array, _ = _run(data, gp.Normalize(RAW))
    np.testing.assert_array_equal(array.data, data)
    with pytest.raises(gp.PipelineRequestError, match=r"Normalize: RAW.*not in \[0, 1\]"):
        _run(data * 2, gp.Normalize(RAW))


def test_explicit_factor_and_dtype_and_lazy_graph():
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    array, spec = _run(data, gp.Normalize(RAW, factor=0.5, dtype=np.float64), lazy=True)
    assert array.is_lazy and array.data.name.startswith("normalize-")
    assert spec.dtype == np.float64
    np.testing.assert_array_equal(array.data.compute(), data * 0.5)


def test_unknown_dtype_without_factor_fails_at_setup():
    with pytest.raises(gp.PipelineSetupError, match=r"int32.*provide a factor"):
        _run(np.zeros((2, 2, 2), np.int32), gp.Normalize(RAW))


@pytest.mark.parametrize("warp", [
    lambda: gp.ElasticAugment([4, 10, 10], [0, 2, 2], [0, np.pi / 2]),
    lambda: gp.DeformAugment([10, 10, 10], [1, 1, 1], rotate=True),
])
def test_a_warp_downstream_reads_the_input_and_normalizes_as_it_interpolates(warp):
    """Normalize + warp is fused (no Normalize task is computed) and gives the bits of
    warping the normalized array."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (60, 60, 60)).astype(np.uint8)
    request = gp.BatchRequest()
    request.add(RAW, (12, 30, 30))
    request[RAW].roi = gp.Roi((24, 15, 15), (12, 30, 30))
    fused_pipeline = array_source(RAW, data) + gp.Normalize(RAW) + warp()
    # Float input: Normalize checks the range in its own tasks, so nothing is fused.
    plain_pipeline = (array_source(RAW, data.astype(np.float32) * (1 / 255))
                      + gp.Normalize(RAW) + warp())
    with gp.build(fused_pipeline, scheduler="sync", seed=3) as p:
        lazy = p.request_lazy_batch(request)
        fused = p.request_batch(request)[RAW].data
    with gp.build(plain_pipeline, scheduler="sync", seed=3) as p:
        plain_lazy = p.request_lazy_batch(request)
        plain = p.request_batch(request)[RAW].data
    def names(batch):
        return {str(k[0] if isinstance(k, tuple) else k).split("-")[0]
                for k in dict(batch[RAW].data.__dask_graph__())}

    assert "normalize" not in names(lazy)
    assert "normalize" in names(plain_lazy)
    assert fused.dtype == np.float32
    assert np.array_equal(fused, plain)
    assert 0 < fused.mean() < 1


def test_an_operation_in_between_keeps_the_normalized_array():
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    array, _ = _run(data, gp.Normalize(RAW), lazy=True)
    from daskgp.transforms import fused_source

    source, normalization = fused_source(array.data)
    assert normalization is not None and source.dtype == np.uint8
    assert fused_source(array.data + 0)[1] is None
