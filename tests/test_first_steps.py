"""The core issue's must-show: ``source + Normalize(raw) + RandomLocation(random_shift_key=...)``
on real zarr and HDF5 files returns exactly a direct read at the reported shift, on all four
schedulers, and the same seed gives the same bits everywhere."""

import numpy as np
import pytest

import daskgp as gp
from tests.io.files import world_slices, write_hdf5, write_zarr

RAW, GT, SHIFT = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("SHIFT")
VOXEL_SIZE, OFFSET = (4, 2, 2), (40, 20, 0)
ATTRS = {"resolution": list(VOXEL_SIZE), "offset": list(OFFSET)}


def volumes():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(30, 60, 50), dtype=np.uint8)
    gt = rng.integers(0, 1000, size=(30, 60, 50)).astype(np.uint64)
    return raw, gt


@pytest.fixture(scope="module", params=["zarr2", "zarr3", "hdf5"])
def source(request, tmp_path_factory):
    raw, gt = volumes()
    folder = tmp_path_factory.mktemp(request.param)
    datasets = {RAW: "volumes/raw", GT: "volumes/labels/neuron_ids"}
    if request.param == "hdf5":
        path = str(folder / "sample.hdf")
        write_hdf5(path, "volumes/raw", raw, chunks=(8, 16, 16), attrs=ATTRS)
        write_hdf5(path, "volumes/labels/neuron_ids", gt, chunks=(8, 16, 16), attrs=ATTRS)
        return gp.Hdf5Source(path, datasets)
    path = folder / "sample.zarr"
    zarr_format = 2 if request.param == "zarr2" else 3
    write_zarr(path, "volumes/raw", raw, (8, 16, 16), zarr_format, attrs=ATTRS)
    write_zarr(path, "volumes/labels/neuron_ids", gt, (8, 16, 16), zarr_format, attrs=ATTRS)
    return gp.ZarrSource(str(path), datasets)


def make_request():
    request = gp.BatchRequest()
    request.add(RAW, (40, 48, 48))
    request.add(GT, (24, 24, 24))
    request[SHIFT] = gp.ArraySpec(nonspatial=True)
    return request


def requested(key):
    return make_request()[key].roi


def test_batches_equal_direct_reads_at_the_reported_shift(source, scheduler):
    raw, gt = volumes()
    pipeline = source + gp.Normalize(RAW) + gp.RandomLocation(random_shift_key=SHIFT)
    request = make_request()
    with gp.build(pipeline, scheduler=scheduler, seed=42) as p:
        batches = [p.request_batch(request) for _ in range(3)]
    with gp.build(pipeline, scheduler="sync", seed=42) as p:
        reference = [p.request_batch(request) for _ in range(3)]
    shifts = set()
    for batch, ref in zip(batches, reference, strict=True):
        shift = gp.Coordinate(batch[SHIFT].data)
        shifts.add(shift)
        raw_roi = requested(RAW).shift(shift)
        gt_roi = requested(GT).shift(shift)
        expected_raw = raw[world_slices(raw_roi, OFFSET, VOXEL_SIZE)].astype(np.float32) * (1 / 255)
        np.testing.assert_array_equal(batch[RAW].data, expected_raw)
        np.testing.assert_array_equal(batch[GT].data, gt[world_slices(gt_roi, OFFSET, VOXEL_SIZE)])
        assert batch[RAW].spec.roi == requested(RAW), "the shift is undone in the returned ROI"
        for key in (RAW, GT, SHIFT):
            np.testing.assert_array_equal(batch[key].data, ref[key].data)
    assert len(shifts) == 3, "consecutive batches are at different locations"
