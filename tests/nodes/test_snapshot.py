import h5py
import numpy as np
import pytest
import zarr

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GT")


def pipeline_and_request():
    raw = array_source(RAW, position_data((10, 12, 12)), voxel_size=(4, 2, 2), offset=(8, 4, 0))
    gt = array_source(GT, (position_data((10, 12, 12)) % 5).astype(np.uint64),
                      voxel_size=(4, 2, 2), offset=(8, 4, 0))
    request = gp.BatchRequest(random_seed=1)
    request.add(RAW, (16, 8, 8))
    request[RAW].roi = request[RAW].roi.shift(gp.Coordinate(12, 8, 4))
    return (raw, gt) + gp.MergeProvider(), request


def test_snapshot_of_lazy_batches_writes_zarr_with_world_metadata(tmp_path):
    pipeline, request = pipeline_and_request()
    extra = gp.BatchRequest()
    extra[GT] = gp.ArraySpec(roi=request[RAW].roi)
    snapshot = gp.Snapshot({RAW: "volumes/raw", GT: "volumes/labels"}, output_dir=str(tmp_path),
                           output_filename="{iteration}.zarr", every=2,
                           additional_request=extra, dataset_dtypes={RAW: np.float32},
                           store_value_range=True)
    with gp.build(pipeline + snapshot, scheduler="threads") as p:
        lazy = p.request_lazy_batch(request)
        assert len(lazy.side_effects) == 1, "the write is a task of the batch's graph"
        assert not (tmp_path / "0.zarr").exists(), "building the graph writes nothing"
        batch = lazy.compute(scheduler="threads")
        assert GT not in batch, "additional keys are only for the snapshot"
        p.request_batch(request)  # batch 1: not saved (every=2)
        p.request_batch(request)  # batch 2: saved
    assert sorted(f.name for f in tmp_path.iterdir()) == ["0.zarr", "2.zarr"]
    root = zarr.open_group(str(tmp_path / "0.zarr"), mode="r")
    raw = root["volumes/raw"]
    np.testing.assert_array_equal(raw[...], batch[RAW].data.astype(np.float32))
    assert raw.dtype == np.float32
    assert raw.attrs["resolution"] == [4, 2, 2]
    assert raw.attrs["offset"] == [12, 8, 4]
    as_written = batch[RAW].data.astype(np.float32)
    assert raw.attrs["value_range"] == [float(as_written.min()), float(as_written.max())]
    entries = {e["name"]: e for e in root["volumes"].attrs["multiscales"]}
    transforms = entries["raw"]["datasets"][0]["coordinateTransformations"]
    assert transforms == [{"type": "scale", "scale": [4.0, 2.0, 2.0]},
                          {"type": "translation", "translation": [12.0, 8.0, 4.0]}]
    assert root["volumes/labels"].dtype == np.uint64

    # read back through daskgp: the ROI and voxel size survive the round trip
    source = gp.ZarrSource(str(tmp_path / "0.zarr"), {RAW: "volumes/raw"})
    with gp.build(source, scheduler="sync") as p:
        assert source.spec[RAW].roi == request[RAW].roi
        assert source.spec[RAW].voxel_size == gp.Coordinate(4, 2, 2)
        back = p.request_batch(request)
    np.testing.assert_array_equal(back[RAW].data, as_written)


def test_snapshot_after_a_materialization_boundary_writes_hdf5_in_background(tmp_path):
    pipeline, request = pipeline_and_request()
    request.random_seed = None
    snapshot = gp.Snapshot({RAW: "raw"}, output_dir=str(tmp_path),
                           output_filename="batch_{iteration}.hdf", every=1,
                           compression_type="gzip")
    with gp.build(pipeline + gp.PreCache(cache_size=2, num_workers=1) + snapshot,
                  scheduler="threads", seed=3) as p:
        batches = [p.request_lazy_batch(request) for _ in range(3)]
    assert not any(batch.side_effects for batch in batches), "written in the background"
    for i, batch in enumerate(batches):
        with h5py.File(tmp_path / f"batch_{i}.hdf", "r") as f:
            np.testing.assert_array_equal(f["raw"][...], batch[RAW].data)
            assert list(f["raw"].attrs["resolution"]) == [4, 2, 2]
            assert f["raw"].compression == "gzip"


def test_failed_background_write_is_reported(tmp_path):
    pipeline, request = pipeline_and_request()
    request.random_seed = None
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output folder should be")
    snapshot = gp.Snapshot({RAW: "raw"}, output_dir=str(blocker), output_filename="x.hdf")
    with pytest.raises(gp.TaskError, match="Snapshot: a task failed with FileExistsError"):
        with gp.build(pipeline + gp.PreCache(cache_size=1, num_workers=1) + snapshot,
                      scheduler="sync", seed=3) as p:
            p.request_batch(request)


def test_snapshot_writes_graphs_in_gunpowders_layout(tmp_path):
    from daskgp.io.graph_io import read_graph

    raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
    graph = gp.Graph.from_arrays([5, 6, 7], [[1.5, 1.5, 1.5], [2.5, 3.5, 4.5], [9.0, 9.0, 9.0]],
                                 [[5, 6], [6, 7]],
                                 gp.GraphSpec(roi=gp.Roi((0, 0, 0), (10, 10, 10))))
    source = (gp.ArraySource(raw, np.ones((10, 10, 10), np.float32)),
              gp.GraphSource(points, graph)) + gp.MergeProvider()
    for name in ("0.zarr", "0.hdf"):
        snapshot = gp.Snapshot({raw: "volumes/raw", points: "points"}, output_dir=str(tmp_path),
                               output_filename=name)
        request = gp.BatchRequest(random_seed=0)
        request[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (5, 5, 5)))
        request[points] = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (5, 5, 5)))
        with gp.build(source + snapshot, scheduler="sync") as p:
            batch = p.request_batch(request)
        written = read_graph(str(tmp_path / name), "points")
        assert written == batch[points]
        # 7 lies outside but dangles on the edge (6, 7), as Graph.crop keeps it
        assert written.ids.tolist() == [5, 6, 7] and written.num_edges() == 2
        assert written.spec.roi == request[points].roi


def test_write_if_filters_the_selected_batches(tmp_path):
    """gunpowder's hook: a subclass's ``write_if(batch)`` decides, per batch that ``every``
    selected, whether it is written; downstream of PreCache it sees numpy data."""
    seen = []

    class BrightOnly(gp.Snapshot):
        def write_if(self, batch):
            data = batch[RAW].data
            seen.append(type(data))
            return bool(data.mean() > 2000)

    pipeline, request = pipeline_and_request()
    request.random_seed = None
    snapshot = BrightOnly({RAW: "raw"}, output_dir=str(tmp_path),
                          output_filename="batch_{iteration}.hdf", every=2)

    class Shift(gp.BatchFilter):  # batch i is all 1000 * i
        def __init__(self):
            self.n = 0

        def process(self, batch, request):
            batch[RAW].data = np.full_like(batch[RAW].data, 1000.0 * self.n)
            self.n += 1

    with gp.build(pipeline + Shift() + gp.PreCache(cache_size=1, num_workers=1)
                  + snapshot, scheduler="sync", seed=3) as p:
        means = [float(p.request_batch(request)[RAW].data.mean()) for _ in range(6)]
    assert seen == [np.ndarray] * 3, "asked for batches 0, 2 and 4 only, as numpy"
    written = sorted(f.name for f in tmp_path.iterdir())
    assert written == [f"batch_{i}.hdf" for i in (0, 2, 4) if means[i] > 2000]
    assert written == ["batch_4.hdf"], means
