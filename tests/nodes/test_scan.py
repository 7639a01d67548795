"""Scan: a scanned prediction equals the whole-volume reference, lazily, on every scheduler."""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback
from scipy import ndimage

import daskgp as gp

RAW = gp.ArrayKey("RAW")
PRED = gp.ArrayKey("PRED")
VOXEL_SIZE = gp.Coordinate(2, 1, 1)
OFFSET = gp.Coordinate(10, -3, 0)
SHAPE = (22, 27, 25)  # PRED is 20 x 23 x 23 voxels: no multiple of the tile size (8 x 8 x 8)
OUTPUT_TILE = gp.Coordinate(8, 8, 8)


def convolve_block(block: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return ndimage.convolve(block, kernel, mode="constant")


class Convolve(gp.BatchFilter):
    """A deterministic lazy model: a fixed 3D convolution that needs context (its input ROI is
    the output ROI grown by half the kernel); ``channels=2`` outputs (conv, -conv)."""

    lazy = True

    def __init__(self, raw, pred, kernel, channels: int = 0) -> None:
        self.raw, self.pred = raw, pred
        self.kernel = np.asarray(kernel)
        self.context = gp.Coordinate(k // 2 for k in self.kernel.shape)
        self.channels = channels

    def setup(self) -> None:
        spec = self.spec[self.raw].copy()
        context = self.context * spec.voxel_size
        spec.roi = spec.roi.grow(-context, -context)
        self.provides(self.pred, spec)

    def prepare(self, request):
        context = self.context * self.spec[self.raw].voxel_size
        deps = gp.BatchRequest()
        deps[self.raw] = gp.ArraySpec(roi=request[self.pred].roi.grow(context, context))
        return deps

    def process(self, batch, request):
        raw = batch[self.raw].data
        out = raw.map_overlap(convolve_block, depth=tuple(self.context), boundary="none",
                              kernel=self.kernel, dtype=raw.dtype)
        out = out[tuple(slice(c, s - c) for c, s in zip(self.context, raw.shape, strict=True))]
        if self.channels:
            out = da.stack([out, -out])
        spec = self.spec[self.pred].copy()
        spec.roi = request[self.pred].roi
        result = gp.Batch()
        result[self.pred] = gp.Array(out, spec)
        return result


class TileValue(gp.BatchFilter):
    """Fills PRED with one random value per request, drawn from the request's seed."""

    lazy = True

    def __init__(self, raw, pred) -> None:
        self.raw, self.pred = raw, pred

    def setup(self) -> None:
        self.provides(self.pred, self.spec[self.raw].copy())

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.raw] = request[self.pred].copy()
        return deps

    def process(self, batch, request):
        value = self.rng(request, "value").random()
        spec = self.spec[self.pred].copy()
        spec.roi = request[self.pred].roi
        result = gp.Batch()
        result[self.pred] = gp.Array(da.full_like(batch[self.raw].data, value), spec)
        return result


def volume():
    """Raw data, kernel, the whole-volume reference prediction, and the scan's reference."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 10, SHAPE).astype(np.float64)  # integers: sums are exact
    kernel = rng.integers(-2, 3, (3, 5, 3)).astype(np.float64)
    context = tuple(k // 2 for k in kernel.shape)
    expected = ndimage.convolve(raw, kernel, mode="constant")[
        tuple(slice(c, s - c) for c, s in zip(context, SHAPE, strict=True))]
    reference = gp.BatchRequest()
    reference.add(RAW, (OUTPUT_TILE + gp.Coordinate(context) * 2) * VOXEL_SIZE)
    reference.add(PRED, OUTPUT_TILE * VOXEL_SIZE)
    return raw, kernel, expected, reference


def raw_source(raw):
    spec = gp.ArraySpec(roi=gp.Roi(OFFSET, gp.Coordinate(raw.shape) * VOXEL_SIZE),
                        voxel_size=VOXEL_SIZE)
    return gp.ArraySource(RAW, raw, spec)


def pred_roi(raw) -> gp.Roi:
    """The world ROI of the valid prediction (RAW shrunk by the kernel's context)."""
    context = gp.Coordinate(1, 2, 1) * VOXEL_SIZE
    return gp.Roi(OFFSET, gp.Coordinate(raw.shape) * VOXEL_SIZE).grow(-context, -context)


def request_for(roi: gp.Roi) -> gp.BatchRequest:
    request = gp.BatchRequest()
    request[PRED] = gp.ArraySpec(roi=roi)
    return request


def test_scanned_prediction_equals_whole_volume_reference(scheduler):
    raw, kernel, expected, reference = volume()
    pipeline = raw_source(raw) + Convolve(RAW, PRED, kernel) + gp.Scan(reference)
    with gp.build(pipeline, scheduler=scheduler) as p:
        batch = p.request_batch(request_for(pred_roi(raw)))
    assert batch[PRED].spec.roi == pred_roi(raw)
    assert batch[PRED].spec.voxel_size == VOXEL_SIZE
    np.testing.assert_array_equal(batch[PRED].data, expected)


def test_sub_roi_with_channels_and_clamped_last_tiles():
    raw, kernel, expected, reference = volume()
    pipeline = raw_source(raw) + Convolve(RAW, PRED, kernel, channels=2) + gp.Scan(reference)
    roi = gp.Roi(pred_roi(raw).begin + gp.Coordinate(4, 3, 1) * VOXEL_SIZE,
                 gp.Coordinate(13, 19, 9) * VOXEL_SIZE)  # 2, 3 and 2 tiles, last ones clamped
    with gp.build(pipeline, scheduler="threads") as p:
        batch = p.request_batch(request_for(roi))
    part = expected[4:17, 3:22, 1:10]
    np.testing.assert_array_equal(batch[PRED].data, np.stack([part, -part]))


def test_plans_and_builds_without_computing():
    raw, kernel, _, reference = volume()
    started = []
    pipeline = raw_source(raw) + Convolve(RAW, PRED, kernel) + gp.Scan(reference)
    with gp.build(pipeline, scheduler="sync") as p:
        with Callback(start=lambda dsk: started.append(len(dsk))):
            lazy = p.request_lazy_batch(request_for(pred_roi(raw)))
    assert started == [], "planning a scan computes nothing"
    assert lazy[PRED].is_lazy
    # 3 x 3 x 3 tiles, each a block of the output: the graph follows the tiles.
    assert [len(c) for c in lazy[PRED].data.chunks] == [3, 3, 3]
    assert [c[-1] for c in lazy[PRED].data.chunks] == [4, 7, 7], "last blocks: what remains"


def test_tiles_have_distinct_deterministic_seeds():
    raw = np.zeros((16, 24, 24))
    reference = gp.BatchRequest()
    reference.add(PRED, OUTPUT_TILE * VOXEL_SIZE)
    pipeline = raw_source(raw) + TileValue(RAW, PRED) + gp.Scan(reference)
    roi = gp.Roi(OFFSET, gp.Coordinate(raw.shape) * VOXEL_SIZE)
    request = request_for(roi)
    request.random_seed = 5
    with gp.build(pipeline, scheduler="threads") as p:
        first, again = p.request_batch(request), p.request_batch(request)
        request.random_seed = 6
        other = p.request_batch(request)
    np.testing.assert_array_equal(first[PRED].data, again[PRED].data)
    blocks = first[PRED].data.reshape(2, 8, 3, 8, 3, 8)
    values = blocks[:, 0, :, 0, :, 0]
    assert np.all(blocks == values[:, None, :, None, :, None]), "one value per tile"
    assert len(np.unique(values)) == 18, "every tile has its own seed"
    assert not np.array_equal(first[PRED].data, other[PRED].data)


@pytest.mark.parametrize("scheduler_name", ["threads", "distributed"])
def test_progress_callback_counts_tiles(request, tmp_path, scheduler_name):
    scheduler = (request.getfixturevalue("cluster_client") if scheduler_name == "distributed"
                 else scheduler_name)
    raw, kernel, expected, reference = volume()
    calls = []
    scan = gp.Scan(reference, progress_callback=lambda done, total: calls.append((done, total)))
    write = gp.ZarrWrite({PRED: "pred"}, store=str(tmp_path / "out.zarr"))
    with gp.build(raw_source(raw) + Convolve(RAW, PRED, kernel) + write + scan,
                  scheduler=scheduler) as p:
        batch = p.request_batch(gp.BatchRequest())
        deadline = time.monotonic() + 10
        while len(calls) < 27 and time.monotonic() < deadline:
            time.sleep(0.05)  # distributed: events reach the client asynchronously
    assert len(batch) == 0
    assert sorted(calls) == [(i, 27) for i in range(1, 28)]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), path="pred")[...],
                                  expected)


class RecordingCallback(gp.ScanCallback):
    """A gunpowder-style ``ScanCallback`` that records its calls."""

    def __init__(self) -> None:
        self.calls = []

    def start(self, num_total):
        self.calls.append(("start", num_total))

    def update(self, num_processed):
        self.calls.append(("update", num_processed))

    def stop(self):
        self.calls.append(("stop",))


def test_gunpowder_scan_callback_sees_start_updates_and_stop(tmp_path):
    raw, kernel, expected, reference = volume()
    callback = RecordingCallback()
    scan = gp.Scan(reference, progress_callback=callback)
    write = gp.ZarrWrite({PRED: "pred"}, store=str(tmp_path / "out.zarr"))
    with gp.build(raw_source(raw) + Convolve(RAW, PRED, kernel) + write + scan,
                  scheduler="threads") as p:
        p.request_batch(gp.BatchRequest())
    assert callback.calls == [("start", 27), *(("update", i) for i in range(1, 28)), ("stop",)]
    assert gp.nodes.ScanCallback is gp.ScanCallback
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), path="pred")[...],
                                  expected)


def test_empty_request_without_writers_computes_nothing(caplog):
    raw, kernel, _, reference = volume()
    pipeline = raw_source(raw) + Convolve(RAW, PRED, kernel) + gp.Scan(reference)
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_lazy_batch(gp.BatchRequest())
    assert len(batch) == 0 and batch.side_effects == []
    assert "nothing upstream writes" in caplog.text


def test_no_warning_when_a_computing_node_sits_between_the_writer_and_the_scan(tmp_path,
                                                                               caplog):
    raw, kernel, expected, reference = volume()
    pipeline = (raw_source(raw) + Convolve(RAW, PRED, kernel)
                + gp.ZarrWrite({PRED: "pred"}, store=str(tmp_path / "out.zarr"))
                + gp.PrintProfilingStats(every=100) + gp.Scan(reference))
    with gp.build(pipeline, scheduler="sync") as p:
        p.request_batch(gp.BatchRequest())
    assert "nothing upstream writes" not in caplog.text
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), path="pred")[...],
                                  expected)


def test_errors_name_the_node_the_key_and_the_rois():
    raw, kernel, _, reference = volume()
    model = Convolve(RAW, PRED, kernel)
    with gp.build(raw_source(raw) + model + gp.Scan(reference), scheduler="sync") as p:
        small = gp.Roi(pred_roi(raw).begin, gp.Coordinate(4, 8, 8) * VOXEL_SIZE)
        with pytest.raises(gp.BatchRequestError, match=r"Scan: reference PRED with ROI .* "
                                                       r"does not fit into the scanned ROI"):
            p.request_lazy_batch(request_for(small))
    only_pred = gp.BatchRequest()
    only_pred.add(PRED, OUTPUT_TILE * VOXEL_SIZE)
    raw_request = gp.BatchRequest()
    raw_request[RAW] = gp.ArraySpec(roi=pred_roi(raw))
    with gp.build(raw_source(raw) + model + gp.Scan(only_pred), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match="Scan: RAW is requested but not in"):
            p.request_lazy_batch(raw_request)
    odd = gp.BatchRequest()
    odd.add(PRED, (3, 8, 8))
    with gp.build(raw_source(raw) + model + gp.Scan(odd), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match=r"stride \(3, 8, 8\).* not a multiple"):
            p.request_lazy_batch(request_for(pred_roi(raw)))
    with pytest.raises(gp.PipelineSetupError, match="num_workers and cache_size"):
        gp.Scan(reference, num_workers=0)


def test_requested_roi_the_tiles_cannot_cover_is_an_error():
    raw, kernel, _, reference = volume()
    pipeline = raw_source(raw) + Convolve(RAW, PRED, kernel) + gp.Scan(reference)
    request = request_for(pred_roi(raw))
    request[RAW] = gp.ArraySpec(roi=gp.Roi(OFFSET, gp.Coordinate(14, 27, 25) * VOXEL_SIZE))
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError,
                           match=r"Scan: PRED is requested with ROI .* but the tiles"):
            p.request_lazy_batch(request)
