"""PrecomputedSource: serves the precomputed batches in order, reading only each batch's chunk."""

import os
import shutil

import numpy as np
import pytest
import zarr

import daskgp as gp
from daskgp.precompute import COMPLETED, precompute
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("LABELS")
NUM_BATCHES = 4


def make_request(raw_shape=(8, 6, 6)):
    request = gp.BatchRequest()
    request.add(RAW, raw_shape)
    request.add(LABELS, (4, 4, 4))
    return request


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A precompute output of 4 batches and the batches of the pipeline that made it."""
    raw = position_data((20, 20, 20))
    pipeline = (
        (array_source(RAW, raw, voxel_size=(2, 1, 1)),
         array_source(LABELS, (raw % 251).astype(np.uint8), voxel_size=(2, 1, 1)))
        + gp.MergeProvider() + gp.RandomLocation()
    )
    path = str(tmp_path_factory.mktemp("precomputed") / "batches.zarr")
    precompute(pipeline, make_request(), path, NUM_BATCHES, seed=3, scheduler="threads",
               progress=False)
    with gp.build(pipeline, scheduler="sync", seed=3) as p:
        batches = [p.request_batch(make_request()) for _ in range(NUM_BATCHES)]
    return path, batches


def assert_batches_equal(batch, expected):
    for key in (RAW, LABELS):
        np.testing.assert_array_equal(batch[key].data, expected[key].data)
        assert batch[key].spec.roi == expected[key].spec.roi
        assert batch[key].spec.voxel_size == expected[key].spec.voxel_size
        assert batch[key].data.dtype == expected[key].data.dtype


def test_pipeline_yields_the_precomputed_batches_in_order(stored, scheduler):
    path, batches = stored
    pipeline = gp.PrecomputedSource(path) + gp.IntensityScaleShift(RAW, 2, 1)
    # dask's "processes" scheduler spawns a pool for every batch: keep that one short.
    count = 2 if scheduler == "processes" else NUM_BATCHES + 1
    with gp.build(pipeline, scheduler=scheduler, seed=99) as p:
        served = [p.request_batch(make_request()) for _ in range(count)]
    for i, batch in enumerate(served):
        expected = batches[i % NUM_BATCHES]
        np.testing.assert_array_equal(batch[RAW].data, expected[RAW].data * 2 + 1)
        np.testing.assert_array_equal(batch[LABELS].data, expected[LABELS].data)
    assert not np.array_equal(served[0][RAW].data, served[1][RAW].data)


def test_same_order_through_pre_cache(stored):
    path, batches = stored
    pipeline = gp.PrecomputedSource(path) + gp.PreCache(cache_size=3, num_workers=2)
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        for i in range(NUM_BATCHES + 1):
            assert_batches_equal(p.request_batch(make_request()), batches[i % NUM_BATCHES])


def test_provides_the_stored_specs(stored):
    path, batches = stored
    source = gp.PrecomputedSource(path)
    with gp.build(source):
        for key in (RAW, LABELS):
            spec = source.spec[key]
            assert spec.roi == batches[0][key].spec.roi
            assert spec.voxel_size == gp.Coordinate(2, 1, 1)
            assert spec.dtype == batches[0][key].data.dtype


def test_a_request_with_its_own_seed_gets_batch_seed_mod_n(stored):
    path, batches = stored
    with gp.build(gp.PrecomputedSource(path), scheduler="sync") as p:
        for seed in (2, 5, 4):
            request = make_request()
            request.random_seed = seed
            assert_batches_equal(p.request_batch(request), batches[seed % NUM_BATCHES])


def test_reads_only_the_chunk_of_the_requested_batch(stored, tmp_path):
    path, batches = stored
    copy = str(tmp_path / "copy.zarr")
    shutil.copytree(path, copy)
    # Remove every chunk but those of batch 2: reading any other would give fill values.
    for key in (RAW, LABELS):
        for index in range(NUM_BATCHES):
            if index != 2:
                shutil.rmtree(os.path.join(copy, key.identifier, "c", str(index)))
    request = make_request()
    request.random_seed = 2
    with gp.build(gp.PrecomputedSource(copy), scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)
        graph = dict(lazy[RAW].data.__dask_graph__())
        reads = [k for k in graph if str(k[0] if isinstance(k, tuple) else k)
                 .startswith("precomputed-source")]
        assert len(reads) == 1
        assert len(graph) <= 2, "one read task, one task dropping the batch axis"
        assert_batches_equal(lazy.compute(scheduler="sync"), batches[2])


def test_requested_rois_must_equal_the_stored_ones(stored):
    path, batches = stored
    request = make_request()
    request[RAW].roi = gp.Roi((2, 1, 1), (4, 4, 4))  # inside the stored ROI, but not it
    with gp.build(gp.PrecomputedSource(path), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError) as error:
            p.request_batch(request)
    message = str(error.value)
    assert "PrecomputedSource" in message and "RAW" in message
    assert str(request[RAW].roi) in message and str(batches[0][RAW].spec.roi) in message


def test_incomplete_output_fails_setup(stored, tmp_path):
    path, _ = stored
    copy = str(tmp_path / "copy.zarr")
    shutil.copytree(path, copy)
    zarr.open_array(copy, path=COMPLETED, mode="r+")[1] = 0
    with pytest.raises(gp.SourceError, match=r"1 of the 4 batches .* not written yet"):
        with gp.build(gp.PrecomputedSource(copy)):
            pass


def test_missing_or_foreign_path_fails_setup(tmp_path):
    with pytest.raises(gp.SourceError, match="does not exist"):
        with gp.build(gp.PrecomputedSource(tmp_path / "missing.zarr")):
            pass
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w").create_array(
        "RAW", shape=(2,), dtype=np.uint8)
    with pytest.raises(gp.SourceError, match="not a precompute output"):
        with gp.build(gp.PrecomputedSource(tmp_path / "foreign.zarr")):
            pass


def damaged_copy(stored, tmp_path):
    path, _ = stored
    copy = str(tmp_path / "copy.zarr")
    shutil.copytree(path, copy)
    return copy


def test_a_deleted_chunk_raises_naming_it(stored, tmp_path):
    copy = damaged_copy(stored, tmp_path)
    os.remove(os.path.join(copy, "LABELS", "c", "2", "0", "0", "0"))
    with gp.build(gp.PrecomputedSource(copy), scheduler="sync") as p:
        for _ in range(2):
            p.request_batch(make_request())  # batches 0 and 1 are intact
        with pytest.raises(gp.SourceError) as error:
            p.request_batch(make_request())
    message = str(error.value)
    assert "batch 2 of array 'LABELS'" in message and copy in message
    assert "chunk LABELS/c/2/0/0/0 is missing" in message


def test_data_that_differs_from_its_checksum_raises(stored, tmp_path):
    copy = damaged_copy(stored, tmp_path)
    raw = zarr.open_array(copy, path="RAW", mode="r+")
    raw[1, 0, 0, 0] = raw[1, 0, 0, 0] + 1  # decodes fine, but is not what was written
    with gp.build(gp.PrecomputedSource(copy), scheduler="sync") as p:
        p.request_batch(make_request())
        with pytest.raises(gp.SourceError, match=r"batch 1 of array 'RAW' .* differs from the "
                                                 r"checksum .* RAW/c/1/0/0/0 is damaged"):
            p.request_batch(make_request())
