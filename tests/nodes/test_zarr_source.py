"""ZarrSource on real zarr containers (formats 2 and 3): values, metadata, errors, task graph."""

from __future__ import annotations

import dask
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import position_data
from tests.io.files import world_slices, write_zarr

SHAPE = (24, 40, 44)
CHUNKS = (8, 16, 16)
VOXEL_SIZE = gp.Coordinate(4, 2, 2)
OFFSET = gp.Coordinate(8, 10, 6)
# World ROIs: inside one chunk, across chunk borders, one voxel, the whole dataset.
ROIS = [
    gp.Roi((12, 14, 10), (8, 6, 4)),
    gp.Roi((24, 30, 30), (60, 50, 46)),
    gp.Roi((100, 88, 92), (4, 2, 2)),
    gp.Roi(OFFSET, gp.Coordinate(SHAPE) * VOXEL_SIZE),
]
GUNPOWDER_ATTRS = {"resolution": list(VOXEL_SIZE), "offset": list(OFFSET)}


def request_rois(keys, rois) -> gp.BatchRequest:
    request = gp.BatchRequest()
    for key, roi in zip(keys, rois, strict=True):
        request[key] = gp.ArraySpec(roi=roi)
    return request


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_rois_equal_direct_read_on_every_scheduler(tmp_path, scheduler, zarr_format):
    data = position_data(SHAPE)
    channels = np.stack([data, -data, 2 * data])  # (c, z, y, x)
    store = tmp_path / "sample.zarr"
    write_zarr(store, "volumes/raw", data, CHUNKS, zarr_format, GUNPOWDER_ATTRS)
    write_zarr(store, "first", channels, (2, *CHUNKS), zarr_format, GUNPOWDER_ATTRS)
    write_zarr(store, "last", np.moveaxis(channels, 0, -1), (*CHUNKS, 2), zarr_format,
               GUNPOWDER_ATTRS)
    keys = [gp.ArrayKey(f"RAW_{i}") for i in range(len(ROIS))]
    first, last = gp.ArrayKey("FIRST"), gp.ArrayKey("LAST")
    datasets = {key: "volumes/raw" for key in keys} | {first: "first"}
    pipeline = (
        gp.ZarrSource(store, datasets),
        gp.ZarrSource(str(store), {last: "last"}, channels_first=False),
    ) + gp.MergeProvider()
    request = request_rois([*keys, first, last], [*ROIS, ROIS[1], ROIS[1]])

    with gp.build(pipeline, scheduler=scheduler) as p:
        batch = p.request_batch(request)  # one compute: a spawned pool costs ~0.5 s

    for key, roi in zip(keys, ROIS, strict=True):
        array = batch[key]
        np.testing.assert_array_equal(array.data, data[world_slices(roi, OFFSET, VOXEL_SIZE)])
        assert array.spec.roi == roi
        assert array.spec.voxel_size == VOXEL_SIZE
        assert array.spec.dtype == np.int64 and not array.spec.interpolatable
    expected = channels[(slice(None), *world_slices(ROIS[1], OFFSET, VOXEL_SIZE))]
    np.testing.assert_array_equal(batch[first].data, expected)
    np.testing.assert_array_equal(batch[last].data, expected)


def ome_multiscales(scale, translation, axes) -> list:
    return [{
        "version": "0.4",
        "axes": axes,
        "datasets": [
            {"path": "s0", "coordinateTransformations": [
                {"type": "scale", "scale": scale},
                {"type": "translation", "translation": translation}]},
            {"path": "s1", "coordinateTransformations": [
                {"type": "scale", "scale": [s * 2 for s in scale]}]},
        ],
    }]


OME_AXES = [{"name": "c", "type": "channel"}, {"name": "z", "type": "space"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]


@pytest.mark.parametrize("zarr_format, ome_version", [(2, "0.4"), (3, "0.5")])
def test_ome_ngff_metadata(tmp_path, zarr_format, ome_version):
    data = np.stack([position_data(SHAPE), position_data(SHAPE) + 1]).astype(np.float32)
    multiscales = ome_multiscales([1, *VOXEL_SIZE], [0, *OFFSET], OME_AXES)
    if ome_version == "0.5":
        group_attrs = {"ome": {"version": "0.5", "multiscales": multiscales}}
    else:
        group_attrs = {"multiscales": multiscales}
    store = write_zarr(tmp_path / "ome.zarr", "raw/s0", data, (1, *CHUNKS), zarr_format,
                       group_attrs=group_attrs)
    raw = gp.ArrayKey("RAW")
    source = gp.ZarrSource(store, {raw: "raw/s0"})
    roi = ROIS[1]

    with gp.build(source, scheduler="sync") as p:
        spec = p.spec[raw]
        batch = p.request_batch(request_rois([raw], [roi]))

    assert spec.voxel_size == VOXEL_SIZE
    assert spec.roi == gp.Roi(OFFSET, gp.Coordinate(SHAPE) * VOXEL_SIZE)
    assert spec.dtype == np.float32 and spec.interpolatable
    expected = data[(slice(None), *world_slices(roi, OFFSET, VOXEL_SIZE))]
    np.testing.assert_array_equal(batch[raw].data, expected)


def test_metadata_defaults_and_array_specs_override(tmp_path):
    data = position_data(SHAPE, dtype=np.uint64)
    store = write_zarr(tmp_path / "plain.zarr", "raw", data, CHUNKS)
    default, given = gp.ArrayKey("DEFAULT"), gp.ArrayKey("GIVEN")
    given_spec = gp.ArraySpec(voxel_size=VOXEL_SIZE, interpolatable=True)
    source = gp.ZarrSource(store, {default: "raw", given: "raw"}, {given: given_spec})
    roi = gp.Roi((4, 8, 12), (16, 16, 8))

    with gp.build(source, scheduler="sync") as p:
        assert p.spec[default].voxel_size == (1, 1, 1)
        assert p.spec[default].roi == gp.Roi((0, 0, 0), SHAPE)
        assert not p.spec[default].interpolatable  # guessed from uint64
        assert p.spec[given].roi == gp.Roi((0, 0, 0), gp.Coordinate(SHAPE) * VOXEL_SIZE)
        assert p.spec[given].interpolatable
        batch = p.request_batch(request_rois([default, given], [roi, roi]))

    np.testing.assert_array_equal(batch[default].data, data[4:20, 8:24, 12:20])
    np.testing.assert_array_equal(batch[given].data,
                                  data[world_slices(roi, (0, 0, 0), VOXEL_SIZE)])


@pytest.mark.parametrize("budget", [None, 1])
def test_read_tasks_of_whole_storage_chunks_with_node_name(tmp_path, monkeypatch, budget):
    if budget is not None:  # a tiny read budget: one task per storage chunk
        from daskgp.io import region

        monkeypatch.setattr(region.grouped_chunks, "__defaults__", (budget,))
    data = position_data(SHAPE)
    store = write_zarr(tmp_path / "sample.zarr", "raw", data, CHUNKS, 3, GUNPOWDER_ATTRS)
    raw = gp.ArrayKey("RAW")
    source = gp.ZarrSource(store, {raw: "raw"})
    roi = ROIS[1]  # voxels [4:19, 10:35, 12:35] -> chunks z 0..2, y 0..2, x 0..2

    with gp.build(source, scheduler="sync") as p:
        first = p.request_lazy_batch(request_rois([raw], [roi]))[raw].data
        again = p.request_lazy_batch(request_rois([raw], [roi]))[raw].data
        other = p.request_lazy_batch(request_rois([raw], [ROIS[0]]))[raw].data
        whole = source.dask_array(raw)

    (optimized,) = dask.optimize(first)
    graph = dict(optimized.__dask_graph__())
    # 3 x 3 x 3 storage chunks overlapped: within the read budget, one read task.
    if budget is None:
        assert len(graph) == 1
        assert first.chunks == ((15,), (25,), (23,))
        assert whole.numblocks == (1, 1, 1)
    else:
        assert len(graph) == 3 * 3 * 3
        assert first.chunks == ((4, 8, 3), (6, 16, 3), (4, 16, 3))
        assert whole.chunks[0] == (8, 8, 8) and whole.numblocks == (3, 3, 3)
    assert all(key[0].startswith("zarr-source-") for key in graph)
    assert first.name == again.name != other.name  # deterministic, region-specific tokens
    np.testing.assert_array_equal(whole.compute(scheduler="sync"), data)


def test_request_outside_dataset_names_key_and_rois(tmp_path):
    store = write_zarr(tmp_path / "sample.zarr", "raw", position_data(SHAPE), CHUNKS, 3,
                       GUNPOWDER_ATTRS)
    raw = gp.ArrayKey("RAW")
    outside = gp.Roi((0, 10, 6), (16, 4, 4))  # starts before the offset (8, 10, 6)
    with gp.build(gp.ZarrSource(store, {raw: "raw"}), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError) as error:
            p.request_batch(request_rois([raw], [outside]))
    message = str(error.value)
    assert "RAW" in message and str(outside) in message
    assert str(gp.Roi(OFFSET, gp.Coordinate(SHAPE) * VOXEL_SIZE)) in message


def build_source(source):
    with gp.build(source, scheduler="sync"):
        pass


@pytest.mark.parametrize(
    "attrs, options, expected",
    [
        ({"resolution": [1, 4, 2, 2]}, {}, "wrong number of dimensions"),
        ({"resolution": [4, 2, 2], "offset": [6, 10, 6]}, {}, "not a multiple of the voxel"),
        ({"resolution": [4, 2, 2]}, {"channels_first": False}, "no channel axis"),
        ({"resolution": [4.5, 2, 2]}, {}, "not integer"),
        ({"resolution": [4, 2, 2], "offset": [8, 10]}, {}, "dimensions"),
    ],
)
def test_metadata_errors_name_file_and_dataset(tmp_path, attrs, options, expected):
    store = write_zarr(tmp_path / "bad.zarr", "volumes/raw", position_data(SHAPE), CHUNKS, 3,
                       attrs)
    source = gp.ZarrSource(store, {gp.ArrayKey("RAW"): "volumes/raw"}, **options)
    with pytest.raises(gp.SourceError, match=expected) as error:
        build_source(source)
    assert "bad.zarr" in str(error.value) and "volumes/raw" in str(error.value)


def test_dtype_in_array_specs_must_match(tmp_path):
    store = write_zarr(tmp_path / "bad.zarr", "raw", position_data(SHAPE), CHUNKS)
    raw = gp.ArrayKey("RAW")
    source = gp.ZarrSource(store, {raw: "raw"}, {raw: gp.ArraySpec(dtype=np.float32)})
    with pytest.raises(gp.SourceError, match=r"float32.*int64"):
        build_source(source)


def test_missing_store_or_dataset(tmp_path):
    raw = gp.ArrayKey("RAW")
    missing = tmp_path / "missing.zarr"
    with pytest.raises(gp.SourceError, match=r"missing.zarr.*does not exist") as error:
        build_source(gp.ZarrSource(missing, {raw: "volumes/raw"}))
    assert "volumes/raw" in str(error.value)

    store = write_zarr(tmp_path / "sample.zarr", "volumes/raw", position_data(SHAPE), CHUNKS)
    for dataset in ("volumes/labels", "volumes"):  # absent, and a group
        with pytest.raises(gp.SourceError, match=rf"'{dataset}'.*sample.zarr"):
            build_source(gp.ZarrSource(store, {raw: dataset}))


def test_gunpowder_filename_argument_and_bad_datasets(tmp_path):
    data = position_data(SHAPE)
    store = write_zarr(tmp_path / "sample.zarr", "raw", data, CHUNKS, 3, GUNPOWDER_ATTRS)
    raw = gp.ArrayKey("RAW")
    with pytest.warns(DeprecationWarning, match="store"):
        source = gp.ZarrSource(filename=store, datasets={raw: "raw"})
    with gp.build(source, scheduler="sync") as p:
        batch = p.request_batch(request_rois([raw], ROIS[:1]))
    np.testing.assert_array_equal(batch[raw].data,
                                  data[world_slices(ROIS[0], OFFSET, VOXEL_SIZE)])
    with pytest.raises(gp.PipelineSetupError, match="not both"):
        gp.ZarrSource(store, {raw: "raw"}, filename=store)
    with pytest.raises(gp.PipelineSetupError, match="ArrayKey -> str"):
        gp.ZarrSource(store, {"RAW": "raw"})


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_corrupt_chunk_raises_source_error_naming_store_dataset_chunk_and_roi(tmp_path,
                                                                             zarr_format):
    import os

    path = str(tmp_path / "raw.zarr")
    write_zarr(path, "volumes/raw", position_data(SHAPE), CHUNKS, zarr_format, GUNPOWDER_ATTRS)
    chunk = ("volumes/raw/1.0.1" if zarr_format == 2 else "volumes/raw/c/1/0/1")
    with open(os.path.join(path, chunk), "wb") as damaged:
        damaged.write(b"\x00 not a compressed chunk \x00" * 4)
    raw = gp.ArrayKey("RAW")
    roi = gp.Roi((12, 14, 10), (40, 20, 40))  # voxels 1:11, 2:12, 2:22: chunks 0-1, 0, 0-1
    with gp.build(gp.ZarrSource(path, {raw: "volumes/raw"}), scheduler="sync") as p:
        with pytest.raises(gp.SourceError) as error:
            p.request_batch(request_rois([raw], [roi]))
    message = str(error.value)
    assert path in message and "'volumes/raw'" in message and f"chunk(s) {chunk}" in message
    assert f"of the batch's region ROI {roi}" in message
