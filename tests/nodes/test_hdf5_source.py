"""Hdf5Source on real HDF5 files: values on every scheduler, metadata, errors, file handles."""

from __future__ import annotations

import dask
import h5py
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import position_data
from tests.io.files import world_slices, write_hdf5

SHAPE = (24, 40, 44)
CHUNKS = (8, 16, 16)
VOXEL_SIZE = gp.Coordinate(4, 2, 2)
OFFSET = gp.Coordinate(8, 10, 6)
ROIS = [
    gp.Roi((12, 14, 10), (8, 6, 4)),
    gp.Roi((24, 30, 30), (60, 50, 46)),
    gp.Roi((100, 88, 92), (4, 2, 2)),
    gp.Roi(OFFSET, gp.Coordinate(SHAPE) * VOXEL_SIZE),
]
ATTRS = {"resolution": list(VOXEL_SIZE), "offset": list(OFFSET)}


def request_rois(keys, rois) -> gp.BatchRequest:
    request = gp.BatchRequest()
    for key, roi in zip(keys, rois, strict=True):
        request[key] = gp.ArraySpec(roi=roi)
    return request


def build_source(source):
    with gp.build(source, scheduler="sync"):
        pass


def test_rois_equal_direct_read_on_every_scheduler(tmp_path, scheduler):
    data = position_data(SHAPE)
    channels = np.stack([data, -data])  # (c, z, y, x)
    filename = tmp_path / "sample.hdf"
    write_hdf5(filename, "volumes/raw", data, CHUNKS, ATTRS)
    write_hdf5(filename, "volumes/contiguous", data, None, ATTRS)
    write_hdf5(filename, "first", channels, (1, *CHUNKS), ATTRS)
    write_hdf5(filename, "last", np.moveaxis(channels, 0, -1), (*CHUNKS, 2), ATTRS)
    keys = [gp.ArrayKey(f"RAW_{i}") for i in range(len(ROIS))]
    contiguous, first, last = gp.ArrayKey("CONT"), gp.ArrayKey("FIRST"), gp.ArrayKey("LAST")
    datasets = {key: "volumes/raw" for key in keys}
    datasets |= {contiguous: "volumes/contiguous", first: "first"}
    pipeline = (
        gp.Hdf5Source(filename, datasets),
        gp.Hdf5Source(str(filename), {last: "last"}, channels_first=False),
    ) + gp.MergeProvider()
    request = request_rois([*keys, contiguous, first, last], [*ROIS, *ROIS[1:2] * 3])

    with gp.build(pipeline, scheduler=scheduler) as p:
        batch = p.request_batch(request)  # one compute: a spawned pool costs ~0.5 s

    for key, roi in zip(keys, ROIS, strict=True):
        array = batch[key]
        np.testing.assert_array_equal(array.data, data[world_slices(roi, OFFSET, VOXEL_SIZE)])
        assert array.spec.roi == roi and array.spec.voxel_size == VOXEL_SIZE
    region = world_slices(ROIS[1], OFFSET, VOXEL_SIZE)
    np.testing.assert_array_equal(batch[contiguous].data, data[region])
    np.testing.assert_array_equal(batch[first].data, channels[(slice(None), *region)])
    np.testing.assert_array_equal(batch[last].data, channels[(slice(None), *region)])


def test_tasks_follow_hdf5_chunks(tmp_path):
    data = position_data(SHAPE)
    filename = write_hdf5(tmp_path / "sample.hdf", "chunked", data, CHUNKS, ATTRS)
    write_hdf5(filename, "contiguous", data, None, ATTRS)
    chunked, contiguous = gp.ArrayKey("CHUNKED"), gp.ArrayKey("CONTIGUOUS")
    source = gp.Hdf5Source(filename, {chunked: "chunked", contiguous: "contiguous"})
    with gp.build(source, scheduler="sync") as p:
        batch = p.request_lazy_batch(request_rois([chunked, contiguous], ROIS[1:2] * 2))

    graph = dict(dask.optimize(batch[chunked].data)[0].__dask_graph__())
    # 3 x 3 x 3 HDF5 chunks overlapped, within the read budget: one read task.
    assert len(graph) == 1 and all(key[0].startswith("hdf5-source-") for key in graph)
    assert batch[chunked].data.chunks == ((15,), (25,), (23,))
    assert batch[contiguous].data.numblocks == (1, 1, 1)


def test_resolution_defaults_and_array_specs(tmp_path):
    data = position_data(SHAPE).astype(np.float32)
    filename = write_hdf5(tmp_path / "plain.hdf", "raw", data, CHUNKS)
    default, given = gp.ArrayKey("DEFAULT"), gp.ArrayKey("GIVEN")
    source = gp.Hdf5Source(filename, {default: "raw", given: "raw"},
                           {given: gp.ArraySpec(voxel_size=VOXEL_SIZE, interpolatable=False)})
    roi = gp.Roi((4, 8, 12), (16, 16, 8))
    with gp.build(source, scheduler="sync") as p:
        assert p.spec[default].roi == gp.Roi((0, 0, 0), SHAPE)
        assert p.spec[default].voxel_size == (1, 1, 1) and p.spec[default].interpolatable
        assert not p.spec[given].interpolatable
        batch = p.request_batch(request_rois([default, given], [roi, roi]))
    np.testing.assert_array_equal(batch[default].data, data[4:20, 8:24, 12:20])
    np.testing.assert_array_equal(batch[given].data,
                                  data[world_slices(roi, (0, 0, 0), VOXEL_SIZE)])


def test_teardown_closes_the_file_for_writing(tmp_path):
    filename = write_hdf5(tmp_path / "sample.hdf", "raw", position_data(SHAPE), CHUNKS, ATTRS)
    raw = gp.ArrayKey("RAW")
    with gp.build(gp.Hdf5Source(filename, {raw: "raw"}), scheduler="sync") as p:
        before = p.request_batch(request_rois([raw], ROIS[:1]))[raw].data
    with h5py.File(filename, "r+") as file:  # fails while a read handle is open
        file["raw"][...] = 7
    with gp.build(gp.Hdf5Source(filename, {raw: "raw"}), scheduler="sync") as p:
        after = p.request_batch(request_rois([raw], ROIS[:1]))[raw].data
    assert before.min() > 7 and np.all(after == 7)


def test_request_outside_dataset_names_key_and_rois(tmp_path):
    filename = write_hdf5(tmp_path / "sample.hdf", "raw", position_data(SHAPE), CHUNKS, ATTRS)
    raw = gp.ArrayKey("RAW")
    outside = gp.Roi((96, 10, 6), (16, 4, 4))  # ends past the dataset's end at z = 104
    with gp.build(gp.Hdf5Source(filename, {raw: "raw"}), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError) as error:
            p.request_batch(request_rois([raw], [outside]))
    message = str(error.value)
    assert "RAW" in message and str(outside) in message
    assert str(gp.Roi(OFFSET, gp.Coordinate(SHAPE) * VOXEL_SIZE)) in message


@pytest.mark.parametrize(
    "attrs, options, expected",
    [
        ({"resolution": [1, 4, 2, 2]}, {}, "wrong number of dimensions"),
        ({"resolution": [4, 2, 2], "offset": [8, 9, 6]}, {}, "not a multiple of the voxel"),
        ({}, {"channels_first": False}, "no channel axis"),
    ],
)
def test_metadata_errors_name_file_and_dataset(tmp_path, attrs, options, expected):
    filename = write_hdf5(tmp_path / "bad.hdf", "volumes/raw", position_data(SHAPE), CHUNKS,
                          attrs)
    source = gp.Hdf5Source(filename, {gp.ArrayKey("RAW"): "volumes/raw"}, **options)
    with pytest.raises(gp.SourceError, match=expected) as error:
        build_source(source)
    assert "bad.hdf" in str(error.value) and "volumes/raw" in str(error.value)


def test_missing_file_or_dataset(tmp_path):
    raw = gp.ArrayKey("RAW")
    with pytest.raises(gp.SourceError, match=r"missing.hdf does not exist.*'volumes/raw'"):
        build_source(gp.Hdf5Source(tmp_path / "missing.hdf", {raw: "volumes/raw"}))
    filename = write_hdf5(tmp_path / "sample.hdf", "volumes/raw", position_data(SHAPE))
    with pytest.raises(gp.SourceError, match=r"'volumes/labels' does not exist.*sample.hdf"):
        build_source(gp.Hdf5Source(filename, {raw: "volumes/labels"}))
    with pytest.raises(gp.SourceError, match=r"'volumes' is a Group.*sample.hdf"):
        build_source(gp.Hdf5Source(filename, {raw: "volumes"}))
    (tmp_path / "not_hdf5.hdf").write_text("plain text")
    with pytest.raises(gp.SourceError, match=r"cannot open HDF5 file.*not_hdf5.hdf"):
        build_source(gp.Hdf5Source(tmp_path / "not_hdf5.hdf", {raw: "volumes/raw"}))
