"""The cost of a batch follows the batch, never the volume (the issue's "must show").

(a) A request on a 10^12-voxel zarr array builds the same graph, as fast, as on a 10^7-voxel
one. (b) Computing a request reads exactly the storage chunks that overlap it.
"""

from __future__ import annotations

import itertools
import math
import time

import dask
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore, WrapperStore

import daskgp as gp
from tests.helpers import position_data
from tests.io.files import write_zarr

STORAGE_CHUNKS = (64, 128, 128)
BIG_SHAPE = (10_000, 10_000, 10_000)  # 10^12 voxels, never written: metadata only
SMALL_SHAPE = (128, 300, 300)  # ~10^7 voxels
SEED_RAW_SHAPE = (84, 268, 268)


def empty_zarr(path, shape) -> str:
    zarr.create_array(str(path), shape=shape, chunks=STORAGE_CHUNKS, dtype=np.uint8,
                      fill_value=0)
    return str(path)


def seed_request(raw) -> gp.BatchRequest:
    request = gp.BatchRequest()
    request[raw] = gp.ArraySpec(roi=gp.Roi((10, 20, 30), SEED_RAW_SHAPE))
    return request


def build_and_optimize(pipeline, request) -> tuple[float, int, gp.Batch]:
    """Seconds to plan, build and optimize the batch graph, and its number of tasks."""
    start = time.perf_counter()
    batch = pipeline.request_lazy_batch(request)
    (optimized,) = dask.optimize(*(array.data for array in batch.arrays.values()))
    tasks = len(dict(optimized.__dask_graph__()))
    return time.perf_counter() - start, tasks, batch


def overlapping_chunks(begin, end, chunks) -> list[tuple[int, ...]]:
    """Indices of the storage chunks that overlap voxels [begin, end), axis by axis."""
    ranges = [range(b // c, math.ceil(e / c)) for b, e, c in zip(begin, end, chunks, strict=True)]
    return list(itertools.product(*ranges))


def test_graph_cost_does_not_grow_with_the_volume(tmp_path):
    raw = gp.ArrayKey("RAW")
    timings, tasks = {}, {}
    for name, shape in (("small", SMALL_SHAPE), ("big", BIG_SHAPE)):
        source = gp.ZarrSource(empty_zarr(tmp_path / f"{name}.zarr", shape), {raw: ""})
        with gp.build(source, scheduler="sync") as p:
            runs = [build_and_optimize(p, seed_request(raw)) for _ in range(5)]
            timings[name] = min(seconds for seconds, _, _ in runs)
            tasks[name] = {count for _, count, _ in runs}
            data = p.request_batch(seed_request(raw))[raw].data
        assert data.shape == SEED_RAW_SHAPE and not data.any()  # the fill value

    # The request overlaps 18 storage chunks, read by one task (within the read budget).
    overlapped = overlapping_chunks((10, 20, 30), (94, 288, 298), STORAGE_CHUNKS)
    assert len(overlapped) == 18
    assert tasks["small"] == tasks["big"] == {1}
    assert timings["big"] < 3 * timings["small"] + 0.05, timings


class ChunkReadCountingStore(WrapperStore):
    """A zarr store that records the keys of every chunk read (metadata reads are ignored)."""

    def __init__(self, store, chunk_reads: list | None = None) -> None:
        super().__init__(store)
        self.chunk_reads = [] if chunk_reads is None else chunk_reads

    def _with_store(self, store):
        # zarr derives read-only copies of a store; they must count into the same list.
        return type(self)(store, self.chunk_reads)

    def _count(self, key: str) -> None:
        if key.rsplit("/", 1)[-1] not in ("zarr.json", ".zarray", ".zattrs", ".zgroup"):
            self.chunk_reads.append(key)

    async def get(self, key, prototype, byte_range=None):
        self._count(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._count(key)
        return await super().get_partial_values(prototype, key_ranges)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_request_reads_only_the_chunks_it_overlaps(tmp_path, zarr_format):
    shape, chunks = (40, 48, 56), (8, 16, 16)
    voxel_size, offset = gp.Coordinate(4, 2, 2), gp.Coordinate(40, 20, 20)
    data = position_data(shape)
    path = write_zarr(tmp_path / "sample.zarr", "raw", data, chunks, zarr_format,
                      {"resolution": list(voxel_size), "offset": list(offset)})
    store = ChunkReadCountingStore(LocalStore(path))
    raw = gp.ArrayKey("RAW")
    roi = gp.Roi((60, 34, 50), (52, 40, 30))  # voxels [5:18, 7:27, 15:30]

    with gp.build(gp.ZarrSource(store, {raw: "raw"}), scheduler="sync") as p:
        store.chunk_reads.clear()
        batch = p.request_batch(gp.BatchRequest({raw: gp.ArraySpec(roi=roi)}))

    np.testing.assert_array_equal(batch[raw].data, data[5:18, 7:27, 15:30])
    separator = "." if zarr_format == 2 else "/"
    prefix = "raw/" if zarr_format == 2 else "raw/c/"
    expected = {
        prefix + separator.join(str(i) for i in index)
        for index in overlapping_chunks((5, 7, 15), (18, 27, 30), chunks)
    }
    assert len(expected) == 3 * 2 * 2
    assert set(store.chunk_reads) == expected
    assert len(store.chunk_reads) == len(expected)  # and each of them once
