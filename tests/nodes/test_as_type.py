"""AsType: numpy casts in place or into a new key, lazily, with the dtype in the spec."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
CAST = gp.ArrayKey("CAST")
ROI = gp.Roi((0, 1, 1), (2, 2, 3))


def _data():
    return position_data((3, 4, 5)).astype(np.float64) + 0.75


def test_cast_in_place():
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=ROI)
    with gp.build(array_source(RAW, _data()) + gp.AsType(RAW, "int64"), scheduler="sync") as p:
        assert p.spec[RAW].dtype == np.int64
        lazy = p.request_lazy_batch(request)[RAW]
    assert lazy.data.name.startswith("as-type-")
    np.testing.assert_array_equal(lazy.data.compute(), position_data((2, 2, 3), (0, 1, 1)))


def test_cast_into_a_new_key_keeps_the_source():
    node = gp.AsType(RAW, np.float32, CAST)
    with gp.build(array_source(RAW, _data()) + node, scheduler="sync") as p:
        assert p.spec[CAST].dtype == np.float32 and p.spec[RAW].dtype == np.float64
        both = gp.BatchRequest()
        both[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (3, 4, 5)))
        both[CAST] = gp.ArraySpec(roi=ROI)
        batch = p.request_batch(both)
        only_cast = gp.BatchRequest()
        only_cast[CAST] = gp.ArraySpec(roi=ROI)
        alone = p.request_batch(only_cast)
    np.testing.assert_array_equal(batch[RAW].data, _data())
    assert batch[CAST].spec.roi == ROI and batch[CAST].data.dtype == np.float32
    np.testing.assert_array_equal(batch[CAST].data, _data()[0:2, 1:3, 1:4].astype(np.float32))
    assert list(alone.arrays) == [CAST]
    np.testing.assert_array_equal(alone[CAST].data, batch[CAST].data)


def test_keys_must_be_array_keys():
    with pytest.raises(gp.PipelineSetupError, match="ArrayKeys"):
        gp.AsType("RAW", np.float32)
