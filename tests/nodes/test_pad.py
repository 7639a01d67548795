"""Pad: constant and reflect padding against numpy's ``np.pad`` on the whole source array."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")


def _request(roi):
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=roi)
    return request


def _crop(reference, reference_roi, roi, voxel_size):
    """The part of ``reference`` (covering ``reference_roi``) under ``roi``."""
    begin = (roi.begin - reference_roi.begin) / voxel_size
    shape = roi.shape / voxel_size
    spatial = tuple(slice(b, b + s) for b, s in zip(begin, shape, strict=True))
    return reference[(slice(None),) * (reference.ndim - len(spatial)) + spatial]


def test_constant_padding_matches_np_pad():
    voxel_size, offset = gp.Coordinate(2, 2, 2), gp.Coordinate(4, 4, 4)
    data = position_data((10, 10, 10))
    size = gp.Coordinate(4, 6, 2)
    pipeline = array_source(RAW, data, voxel_size, offset) + gp.Pad(RAW, size, value=-1)
    widths = [(s, s) for s in size / voxel_size]
    reference = np.pad(data, widths, constant_values=-1)
    provided = gp.Roi(offset - size, gp.Coordinate(20, 20, 20) + size * 2)
    rois = [
        gp.Roi((0, -2, 10), (12, 12, 16)),  # across the lower faces
        gp.Roi((10, 20, 4), (14, 10, 22)),  # across the upper faces
        gp.Roi((8, 8, 8), (6, 6, 6)),  # inside: no padding
        gp.Roi((0, -2, 2), (4, 6, 2)),  # entirely in the padding
        provided,
    ]
    with gp.build(pipeline, scheduler="sync") as p:
        assert p.spec[RAW].roi == provided
        for roi in rois:
            batch = p.request_batch(_request(roi))
            assert batch[RAW].spec.roi == roi
            assert batch[RAW].data.dtype == data.dtype
            np.testing.assert_array_equal(batch[RAW].data,
                                          _crop(reference, provided, roi, voxel_size))


def test_default_value_is_zero_and_channels_are_kept():
    data = np.stack([position_data((4, 5, 6)), -position_data((4, 5, 6))]).astype(np.int32)
    pipeline = array_source(RAW, data) + gp.Pad(RAW, gp.Coordinate(3, 3, 3))
    reference = np.pad(data, [(0, 0)] + [(3, 3)] * 3)
    provided = gp.Roi((-3, -3, -3), (10, 11, 12))
    with gp.build(pipeline, scheduler="sync") as p:
        for roi in (gp.Roi((-3, -3, -3), (5, 5, 5)), gp.Roi((-3, 0, 6), (2, 3, 3))):
            batch = p.request_batch(_request(roi))
            assert batch[RAW].data.shape[0] == 2 and batch[RAW].data.dtype == np.int32
            np.testing.assert_array_equal(batch[RAW].data,
                                          _crop(reference, provided, roi, gp.Coordinate(1, 1, 1)))


def test_unbounded_padding():
    data = position_data((4, 4, 4))
    pipeline = array_source(RAW, data) + gp.Pad(RAW, None, value=7)
    with gp.build(pipeline, scheduler="sync") as p:
        assert p.spec[RAW].roi.unbounded
        far = p.request_batch(_request(gp.Roi((100, -50, 0), (2, 3, 4))))[RAW].data
        np.testing.assert_array_equal(far, np.full((2, 3, 4), 7))
        near = p.request_batch(_request(gp.Roi((-1, 0, 2), (3, 4, 4))))[RAW].data
    expected = np.full((3, 4, 4), 7)
    expected[1:, :, :2] = data[:2, :, 2:]
    np.testing.assert_array_equal(near, expected)


@pytest.mark.parametrize("shape, voxel_size", [((6, 7, 5), (1, 1, 1)), ((1, 4, 3), (1, 2, 1))])
def test_reflect_matches_np_pad_for_narrow_and_wide_borders(shape, voxel_size):
    voxel_size = gp.Coordinate(voxel_size)
    offset = gp.Coordinate(0, 4, -3) * voxel_size
    data = position_data(shape)
    size = gp.Coordinate(20, 20, 20) * voxel_size
    pipeline = array_source(RAW, data, voxel_size, offset) + gp.Pad(RAW, size, "reflect")
    reference = np.pad(data, 20, mode="reflect")
    provided = gp.Roi(offset - size, (gp.Coordinate(shape) + gp.Coordinate(40, 40, 40))
                      * voxel_size)
    rois_in_voxels = [
        ((-2, -3, -1), (5, 6, 4)),  # narrow borders below: width < data length
        ((3, 4, 2), (6, 7, 6)),  # narrow borders above
        ((-15, 2, -12), (4, 3, 20)),  # wide borders: reflected more than once
        ((-20, -20, -20), (46, 47, 45)),  # everything
        ((-9, 10, 8), (3, 3, 3)),  # entirely outside the data
        ((1, 1, 1), (2, 2, 2)),  # inside
    ]
    with gp.build(pipeline, scheduler="sync") as p:
        for begin, roi_shape in rois_in_voxels:
            roi = gp.Roi(offset + gp.Coordinate(begin) * voxel_size,
                         gp.Coordinate(roi_shape) * voxel_size)
            roi = roi.intersect(provided)
            batch = p.request_batch(_request(roi))
            np.testing.assert_array_equal(batch[RAW].data,
                                          _crop(reference, provided, roi, voxel_size))


def test_graph_is_lazy_and_reads_only_what_it_needs():
    pipeline = array_source(RAW, position_data((4, 4, 4))) + gp.Pad(RAW, gp.Coordinate(2, 2, 2))
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_lazy_batch(_request(gp.Roi((-2, -2, -2), (8, 8, 8))))
        outside = p.request_lazy_batch(_request(gp.Roi((-2, -2, -2), (1, 1, 1))))
    assert batch[RAW].is_lazy and outside[RAW].is_lazy
    # Entirely in the padding: a fill named after the node, no data read.
    assert outside[RAW].data.name.startswith("pad-")
    assert len(outside[RAW].data.__dask_graph__()) == 1


def test_setup_errors():
    source = array_source(RAW, position_data((4, 4, 4)), voxel_size=(2, 2, 2))
    with pytest.raises(gp.PipelineSetupError, match="multiple"):
        with gp.build(source + gp.Pad(RAW, gp.Coordinate(3, 2, 2))):
            pass
    with pytest.raises(gp.PipelineSetupError, match="not provided"):
        with gp.build(source + gp.Pad(gp.ArrayKey("OTHER"), gp.Coordinate(2, 2, 2))):
            pass
    with pytest.raises(gp.PipelineSetupError, match="mode"):
        gp.Pad(RAW, gp.Coordinate(2, 2, 2), mode="wrap")


def test_random_location_samples_the_padded_roi():
    data = position_data((6, 6, 6))
    shift_key = gp.ArrayKey("SHIFT")
    pipeline = (array_source(RAW, data) + gp.Pad(RAW, gp.Coordinate(3, 3, 3), value=-1)
                + gp.RandomLocation(random_shift_key=shift_key))
    reference = np.pad(data, 3, constant_values=-1)
    provided = gp.Roi((-3, -3, -3), (12, 12, 12))
    roi = gp.Roi((0, 0, 0), (5, 5, 5))
    shifts = set()
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(20):
            request = _request(roi)
            request.random_seed = seed
            request[shift_key] = gp.ArraySpec(nonspatial=True)
            batch = p.request_batch(request)
            shift = gp.Coordinate(batch[shift_key].data)
            assert provided.contains(roi.shift(shift))
            expected = _crop(reference, provided, roi.shift(shift), gp.Coordinate(1, 1, 1))
            np.testing.assert_array_equal(batch[RAW].data, expected)
            shifts.add(shift)
    assert any(min(s) < 0 for s in shifts) and len(shifts) > 10
