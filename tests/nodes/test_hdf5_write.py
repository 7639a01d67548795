"""Hdf5Write under Scan: the scanned prediction in an HDF5 file equals the whole-volume
reference on every scheduler (writes serialised per file); bad outputs fail untouched."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import zarr

import daskgp as gp
from tests.nodes.test_scan import (
    OUTPUT_TILE,
    PRED,
    RAW,
    VOXEL_SIZE,
    Convolve,
    pred_roi,
    raw_source,
    request_for,
    volume,
)


def scan_pipeline(raw, kernel, reference, write):
    return raw_source(raw) + Convolve(RAW, PRED, kernel) + write + gp.Scan(reference)


def test_empty_request_writes_the_whole_prediction(tmp_path, scheduler):
    raw, kernel, expected, reference = volume()
    write = gp.Hdf5Write({PRED: "volumes/pred", RAW: "volumes/raw"},
                         output_dir=str(tmp_path / "sub"), output_filename="prediction.hdf",
                         compression_type="gzip")
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler=scheduler) as p:
        batch = p.request_batch(gp.BatchRequest())
    assert len(batch) == 0
    with h5py.File(tmp_path / "sub" / "prediction.hdf", "r") as file:
        pred = file["volumes/pred"]
        np.testing.assert_array_equal(pred[...], expected)
        np.testing.assert_array_equal(file["volumes/raw"][...], raw)
        assert pred.chunks == tuple(OUTPUT_TILE)
        assert pred.compression == "gzip"
        assert list(pred.attrs["resolution"]) == list(VOXEL_SIZE)
        assert list(pred.attrs["offset"]) == list(pred_roi(raw).begin)


def test_non_empty_request_with_channels_and_dtype(tmp_path):
    raw, kernel, expected, reference = volume()
    roi = gp.Roi(pred_roi(raw).begin + gp.Coordinate(8, 0, 8) * VOXEL_SIZE,
                 gp.Coordinate(12, 23, 10) * VOXEL_SIZE)
    write = gp.Hdf5Write({PRED: "pred"}, store=str(tmp_path / "out.h5"),
                         dataset_dtypes={PRED: np.float32})
    pipeline = (raw_source(raw) + Convolve(RAW, PRED, kernel, channels=2) + write
                + gp.Scan(reference))
    with gp.build(pipeline, scheduler="threads") as p:
        batch = p.request_batch(request_for(roi))
    part = expected[8:20, :, 8:18]
    np.testing.assert_array_equal(batch[PRED].data, np.stack([part, -part]))
    with h5py.File(tmp_path / "out.h5", "r") as file:
        assert file["pred"].dtype == np.float32 and file["pred"].chunks == (2, 8, 8, 8)
        np.testing.assert_array_equal(file["pred"][...], np.stack([part, -part]))


def test_existing_dataset_of_another_dtype_is_an_error_and_untouched(tmp_path):
    raw, kernel, _, reference = volume()
    path = tmp_path / "out.hdf"
    with h5py.File(path, "w") as file:
        file.create_dataset("pred", data=np.full((20, 23, 23), 7, dtype=np.uint8))
    write = gp.Hdf5Write({PRED: "pred"}, store=str(path))
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="threads") as p:
        with pytest.raises(gp.PipelineSetupError,
                           match=r"Hdf5Write: PRED: dataset 'pred' in .*out.hdf exists with shape "
                                 r"\(20, 23, 23\), dtype uint8.*needs .* dtype float64"):
            p.request_batch(gp.BatchRequest())
    with h5py.File(path, "r") as file:
        assert np.all(file["pred"][...] == 7)


def test_write_roi_off_the_chunk_grid_is_an_error(tmp_path):
    raw, kernel, expected, _ = volume()
    write = gp.Hdf5Write({PRED: "pred"}, store=str(tmp_path / "out.hdf"))
    begin = pred_roi(raw).begin
    with gp.build(raw_source(raw) + Convolve(RAW, PRED, kernel) + write, scheduler="sync") as p:
        p.request_batch(request_for(gp.Roi(begin, OUTPUT_TILE * VOXEL_SIZE)))
        shifted = gp.Roi(begin + VOXEL_SIZE, OUTPUT_TILE * VOXEL_SIZE)
        with pytest.raises(gp.BatchRequestError,
                           match=r"Hdf5Write: PRED's write ROI \[14:30, 0:8, 2:10\] .* not "
                                 r"aligned to the chunk grid of dataset 'pred' in .*out.hdf"):
            p.request_lazy_batch(request_for(shifted))
    with h5py.File(tmp_path / "out.hdf", "r") as file:
        np.testing.assert_array_equal(file["pred"][:8, :8, :8], expected[:8, :8, :8])


def test_store_must_be_a_path():
    with pytest.raises(gp.PipelineSetupError, match="Hdf5Write: store must be the path"):
        gp.Hdf5Write({PRED: "pred"}, store=object())


def test_chained_zarr_and_hdf5_writers_write_the_same(tmp_path):
    raw, kernel, expected, reference = volume()
    writes = (gp.ZarrWrite({PRED: "pred"}, store=str(tmp_path / "out.zarr"))
              + gp.Hdf5Write({PRED: "pred"}, store=str(tmp_path / "out.hdf")))
    with gp.build(scan_pipeline(raw, kernel, reference, writes), scheduler="threads") as p:
        lazy = p.request_lazy_batch(gp.BatchRequest())
        assert len(lazy.side_effects) == 2 * 27, "both writers' tasks, each once"
        lazy.compute(scheduler="threads")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), path="pred")[...],
                                  expected)
    with h5py.File(tmp_path / "out.hdf", "r") as file:
        np.testing.assert_array_equal(file["pred"][...], expected)
