"""Squeeze: drops a length-one channel axis, never a spatial one."""

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


def test_squeeze_channel_axes():
    position = position_data((3, 3, 4))
    data = np.stack([position, 2 * position, 3 * position])[None, :, None]  # channels (1, 3, 1)
    with gp.build(array_source(RAW, data) + gp.Squeeze([RAW], axis=2), scheduler="sync") as p:
        lazy = p.request_lazy_batch(_request())[RAW]
        squeezed = p.request_batch(_request())[RAW].data
    assert lazy.data.name.startswith("squeeze-")
    assert squeezed.shape == (1, 3, 2, 3, 4)
    np.testing.assert_array_equal(squeezed, data[:, :, 0, 1:3])
    with gp.build(array_source(RAW, data) + gp.Squeeze([RAW]), scheduler="sync") as p:
        np.testing.assert_array_equal(p.request_batch(_request())[RAW].data, data[0, :, :, 1:3])


@pytest.mark.parametrize("axis", [1, 3, -1])
def test_squeeze_refuses_spatial_or_long_axes(axis):
    data = np.stack([position_data((3, 3, 4))] * 2)[None]  # channels (1, 2)
    with gp.build(array_source(RAW, data) + gp.Squeeze([RAW], axis), scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match=f"cannot squeeze axis {axis} of RAW"):
            p.request_batch(_request())
