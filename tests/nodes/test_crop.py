"""Crop: the provided ROI shrinks (by ROI or by face fractions); data passes unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")


def _source():
    # 10 x 20 x 30 voxels of size 2, starting at world (4, 0, -10).
    return array_source(RAW, position_data((10, 20, 30)), (2, 2, 2), (4, 0, -10))


def test_crop_to_roi_restricts_the_spec_and_keeps_values():
    crop_roi = gp.Roi((8, 10, 0), (10, 20, 30))
    with gp.build(_source() + gp.Crop(RAW, crop_roi), scheduler="sync") as p:
        assert p.spec[RAW].roi == crop_roi
        request = gp.BatchRequest()
        request[RAW] = gp.ArraySpec(roi=gp.Roi((8, 12, 20), (4, 6, 10)))
        data = p.request_batch(request)[RAW].data
        # world (8, 12, 20) is voxel (2, 6, 15) of the source
        np.testing.assert_array_equal(data, position_data((2, 3, 5), (2, 6, 15)))
        outside = gp.BatchRequest()
        outside[RAW] = gp.ArraySpec(roi=gp.Roi((4, 10, 0), (4, 4, 4)))
        with pytest.raises(gp.BatchRequestError, match="outside the provided ROI"):
            p.request_batch(outside)


def test_crop_fractions_cut_the_named_faces_on_the_voxel_grid():
    crop = gp.Crop(RAW, fraction_negative=(0.5, 0, 0.25), fraction_positive=(0, 0.26, 0.25))
    with gp.build(_source() + crop, scheduler="sync") as p:
        # voxels: z cuts 5 below; y cuts floor(20 * 0.26) = 5 above; x cuts 7 on each side
        assert p.spec[RAW].roi == gp.Roi((4 + 10, 0, -10 + 14), (10, 30, 32))
    with gp.build(_source() + gp.Crop(RAW, fraction_positive=(0.1, 0, 0)),
                  scheduler="sync") as p:
        assert p.spec[RAW].roi == gp.Roi((4, 0, -10), (18, 40, 60))


def test_crop_errors():
    with pytest.raises(gp.PipelineSetupError, match="together"):
        gp.Crop(RAW, gp.Roi((0, 0, 0), (2, 2, 2)), fraction_negative=(0.1, 0.1, 0.1))
    with pytest.raises(gp.PipelineSetupError, match="either"):
        gp.Crop(RAW)
    with pytest.raises(gp.PipelineSetupError, match="not contained"):
        with gp.build(_source() + gp.Crop(RAW, gp.Roi((0, 0, 0), (10, 10, 10)))):
            pass
    with pytest.raises(gp.PipelineSetupError, match="reach 1"):
        with gp.build(_source() + gp.Crop(RAW, fraction_negative=(0.5, 0, 0),
                                          fraction_positive=(0.5, 0, 0))):
            pass
