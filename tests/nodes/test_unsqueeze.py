"""Unsqueeze: inserts a length-one channel axis, never among the spatial axes."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")


def _request():
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((1, 0, 0), (2, 3, 4)))
    return request


@pytest.mark.parametrize("axis", [0, 1])
def test_unsqueeze_before_the_spatial_axes(axis):
    data = np.stack([position_data((3, 3, 4)), -position_data((3, 3, 4))])  # one channel axis
    node = gp.Unsqueeze([RAW], axis)
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        lazy = p.request_lazy_batch(_request())[RAW]
        values = p.request_batch(_request())[RAW].data
    assert lazy.data.name.startswith("unsqueeze-")
    np.testing.assert_array_equal(values, np.expand_dims(data[:, 1:3], axis))


@pytest.mark.parametrize("axis", [-5, -4])
def test_negative_axes_count_from_the_end_of_the_result_as_in_gunpowder(axis):
    data = np.stack([position_data((3, 3, 4)), -position_data((3, 3, 4))])
    with gp.build(array_source(RAW, data) + gp.Unsqueeze([RAW], axis), scheduler="sync") as p:
        values = p.request_batch(_request())[RAW].data
    np.testing.assert_array_equal(values, np.expand_dims(data[:, 1:3], axis))


def test_unsqueeze_refuses_spatial_positions():
    data = position_data((3, 3, 4))
    with gp.build(array_source(RAW, data) + gp.Unsqueeze([RAW], 1), scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match="cannot insert axis 1 into RAW"):
            p.request_batch(_request())
