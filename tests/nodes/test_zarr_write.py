"""ZarrWrite under Scan: the scanned prediction on disk equals the whole-volume reference; each
chunk is written by one task; misaligned writes and mismatching outputs fail untouched."""

from __future__ import annotations

import collections
import re
import threading

import numpy as np
import pytest
import zarr
import zarr.storage

import daskgp as gp
from tests.nodes.test_scan import (
    OFFSET,
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


class CountingStore(zarr.storage.LocalStore):
    """A local zarr store that counts how often each key is written (threads only)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.writes: collections.Counter = collections.Counter()
        self._count_lock = threading.Lock()

    async def set(self, key, value) -> None:
        with self._count_lock:
            self.writes[key] += 1
        await super().set(key, value)

    def chunk_writes(self) -> dict[str, int]:
        return {k: n for k, n in self.writes.items() if not k.rsplit("/", 1)[-1].startswith(".")}


def scan_pipeline(raw, kernel, reference, write):
    return raw_source(raw) + Convolve(RAW, PRED, kernel) + write + gp.Scan(reference)


def test_empty_request_writes_the_whole_prediction(tmp_path, scheduler):
    raw, kernel, expected, reference = volume()
    write = gp.ZarrWrite({PRED: "volumes/pred"}, output_dir=str(tmp_path),
                         output_filename="prediction.zarr")
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler=scheduler) as p:
        batch = p.request_batch(gp.BatchRequest())
    assert len(batch) == 0
    root = zarr.open_group(str(tmp_path / "prediction.zarr"), mode="r")
    pred = root["volumes/pred"]
    np.testing.assert_array_equal(pred[...], expected)
    assert pred.chunks == tuple(OUTPUT_TILE), "chunks are the scan's write blocks"
    begin = pred_roi(raw).begin
    assert pred.attrs["resolution"] == list(VOXEL_SIZE)
    assert pred.attrs["offset"] == list(begin)
    (entry,) = root["volumes"].attrs["multiscales"]
    assert entry["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [float(v) for v in VOXEL_SIZE]},
        {"type": "translation", "translation": [float(o) for o in begin]},
    ]


def test_each_chunk_is_written_once_by_one_task(tmp_path):
    """Tiles overlap (clamped last tiles, and RAW is larger than the stride), yet every chunk
    of both datasets is stored exactly once, with the right values, by parallel threads."""
    raw, kernel, expected, reference = volume()
    store = CountingStore(tmp_path / "out.zarr")
    write = gp.ZarrWrite({PRED: "pred", RAW: "raw"}, store=store)
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="threads") as p:
        lazy = p.request_lazy_batch(gp.BatchRequest())
        assert store.chunk_writes() == {}, "building the graph writes no chunk"
        assert len(lazy.side_effects) == 2 * 27, "one write per key and tile"
        lazy.compute(scheduler="threads")
    writes = store.chunk_writes()
    # PRED: 20 x 23 x 23 voxels in chunks of 8: 3 x 3 x 3 chunks; RAW: 22 x 27 x 25: 3 x 4 x 4.
    assert sum(k.startswith("pred/") for k in writes) == 27
    assert sum(k.startswith("raw/") for k in writes) == 48
    assert set(writes.values()) == {1}
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(root["pred"][...], expected)
    np.testing.assert_array_equal(root["raw"][...], raw)
    assert root["raw"].attrs["offset"] == list(OFFSET)


def test_non_empty_request_returns_and_writes_the_same(tmp_path):
    raw, kernel, expected, reference = volume()
    roi = gp.Roi(pred_roi(raw).begin + gp.Coordinate(4, 3, 1) * VOXEL_SIZE,
                 gp.Coordinate(13, 19, 9) * VOXEL_SIZE)
    write = gp.ZarrWrite({PRED: "pred"}, store=str(tmp_path / "out.zarr"),
                         dataset_dtypes={PRED: np.float32}, compression_type="gzip")
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="threads") as p:
        batch = p.request_batch(request_for(roi))
    part = expected[4:17, 3:22, 1:10]
    np.testing.assert_array_equal(batch[PRED].data, part)
    assert batch[PRED].data.dtype == np.float64, "the batch keeps its dtype"
    stored = zarr.open_array(str(tmp_path / "out.zarr"), path="pred", mode="r")
    assert stored.dtype == np.float32 and stored.attrs["offset"] == list(roi.begin)
    assert stored.compressors[0].codec_id == "gzip"
    np.testing.assert_array_equal(stored[...], part.astype(np.float32))


def test_rerun_into_a_matching_output_rewrites_it(tmp_path):
    raw, kernel, expected, reference = volume()
    path = str(tmp_path / "out.zarr")
    zarr.open_group(path, mode="a", zarr_format=2)  # an existing container
    for _ in range(2):
        write = gp.ZarrWrite({PRED: "pred"}, store=path)
        with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="threads") as p:
            p.request_batch(gp.BatchRequest())
        np.testing.assert_array_equal(zarr.open_array(path, path="pred")[...], expected)


def test_write_roi_off_the_chunk_grid_is_an_error(tmp_path):
    raw, kernel, expected, _ = volume()
    path = str(tmp_path / "out.zarr")
    write = gp.ZarrWrite({PRED: "pred"}, store=path)
    begin = pred_roi(raw).begin
    with gp.build(raw_source(raw) + Convolve(RAW, PRED, kernel) + write, scheduler="sync") as p:
        # Without a Scan, chunks have the first batch's shape, from the upstream ROI's start.
        p.request_batch(request_for(gp.Roi(begin, OUTPUT_TILE * VOXEL_SIZE)))
        shifted = gp.Roi(begin + VOXEL_SIZE * gp.Coordinate(0, 1, 0), OUTPUT_TILE * VOXEL_SIZE)
        with pytest.raises(gp.BatchRequestError,
                           match=r"ZarrWrite: PRED's write ROI \[12:28, 0:8, 1:9\] .* is not "
                                 r"aligned to the chunk grid of dataset 'pred' in .*out.zarr"):
            p.request_lazy_batch(request_for(shifted))
    stored = zarr.open_array(path, path="pred", mode="r")
    np.testing.assert_array_equal(stored[:8, :8, :8], expected[:8, :8, :8])
    assert np.all(stored[8:, :, :] == 0) and np.all(stored[:, 8:, :] == 0)


def test_existing_output_chunked_off_the_scan_grid_is_an_error(tmp_path):
    raw, kernel, _, reference = volume()
    path = str(tmp_path / "out.zarr")
    root = zarr.open_group(path, mode="a", zarr_format=2)
    existing = root.create_array("pred", shape=(20, 23, 23), dtype=np.float64, chunks=(5, 5, 5))
    existing[...] = 7
    write = gp.ZarrWrite({PRED: "pred"}, store=path)
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match=r"ZarrWrite: PRED's write ROI .* not "
                                                       r"aligned to the chunk grid"):
            p.request_batch(gp.BatchRequest())
    assert np.all(zarr.open_array(path, path="pred")[...] == 7), "left untouched"


@pytest.mark.parametrize("shape, dtype", [((4, 4, 4), np.float64), ((20, 23, 23), np.int32)])
def test_existing_output_of_another_shape_or_dtype_is_an_error(tmp_path, shape, dtype):
    raw, kernel, _, reference = volume()
    path = str(tmp_path / "out.zarr")
    root = zarr.open_group(path, mode="a", zarr_format=2)
    existing = root.create_array("volumes/pred", shape=shape, dtype=dtype, chunks=(4, 4, 4))
    existing[...] = 7
    write = gp.ZarrWrite({RAW: "volumes/raw", PRED: "volumes/pred"}, store=path)
    with gp.build(scan_pipeline(raw, kernel, reference, write), scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError,
                           match=rf"ZarrWrite: PRED: dataset 'volumes/pred' in .*out.zarr exists "
                                 rf"with shape {re.escape(str(shape))}, dtype {np.dtype(dtype)}.* "
                                 r"needs shape \(20, 23, 23\), dtype float64.*left untouched"):
            p.request_batch(gp.BatchRequest())
    root = zarr.open_group(path, mode="r")
    assert np.all(root["volumes/pred"][...] == 7)
    assert "volumes/raw" not in root, "no dataset is created when one of them is wrong"


def test_writing_a_key_not_provided_upstream_is_a_setup_error(tmp_path):
    raw, kernel, _, reference = volume()
    write = gp.ZarrWrite({gp.ArrayKey("AFFS"): "affs"}, store=str(tmp_path / "out.zarr"))
    with pytest.raises(gp.PipelineSetupError, match="ZarrWrite: asked to write AFFS"):
        with gp.build(scan_pipeline(raw, kernel, reference, write)):
            pass
