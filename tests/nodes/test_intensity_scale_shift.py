"""IntensityScaleShift: data * scale + shift, lazily, with numpy's result dtype in the spec."""

from __future__ import annotations

import numpy as np

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")


def _run(data, node):
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((1, 0, 2), (2, 3, 2)))
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)[RAW]
        return lazy, p.spec[RAW], lazy.data.compute()


def test_float_data_is_scaled_and_shifted():
    data = position_data((3, 4, 5)).astype(np.float32) / 1e8
    lazy, spec, values = _run(data, gp.IntensityScaleShift(RAW, 2.0, -0.5))
    assert lazy.data.name.startswith("intensity-scale-shift-")
    assert spec.dtype == np.float32 and values.dtype == np.float32
    np.testing.assert_array_equal(values, data[1:3, 0:3, 2:4] * 2.0 - 0.5)


def test_integer_data_with_float_parameters_becomes_float64():
    data = position_data((3, 4, 5), dtype=np.uint8)
    lazy, spec, values = _run(data, gp.IntensityScaleShift(RAW, 0.5, 1))
    assert spec.dtype == np.float64 and lazy.spec.dtype == np.float64
    np.testing.assert_array_equal(values, data[1:3, 0:3, 2:4] * 0.5 + 1)
