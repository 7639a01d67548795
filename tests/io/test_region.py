"""Lazy region reads: chunks aligned to storage (2 per axis a task), axes moved lazily."""

from __future__ import annotations

import itertools

import dask
import numpy as np
import pytest

from daskgp.io.region import RegionView, read_region, storage_aligned_chunks
from tests.helpers import position_data


class RecordingReader:
    """An in-memory reader that records every selection it is asked for."""

    def __init__(self, data: np.ndarray, chunks) -> None:
        self.data = data
        self.shape, self.dtype, self.chunks = data.shape, data.dtype, chunks
        self.reads: list[tuple[slice, ...]] = []

    def read(self, selection):
        self.reads.append(selection)
        return self.data[selection].copy()

    def __dask_tokenize__(self):
        return ("RecordingReader", id(self))


@pytest.mark.parametrize(
    "start, stop, chunks, expected",
    [
        ((0,), (32,), (16,), ((16, 16),)),
        ((3,), (35,), (16,), ((13, 16, 3),)),
        ((17,), (20,), (16,), ((3,),)),
        ((16,), (32,), (16,), ((16,),)),
        ((5, 5), (5, 9), (4, 4), ((0,), (3, 1))),
    ],
)
def test_storage_aligned_chunks(start, stop, chunks, expected):
    assert storage_aligned_chunks(start, stop, chunks) == expected


def test_each_storage_chunk_is_read_by_one_task_of_up_to_two_per_axis():
    data = position_data((20, 30, 40))
    reader = RecordingReader(data, (8, 16, 16))
    start, stop = (3, 10, 0), (19, 30, 33)
    region = read_region(reader, start, stop, (0, 1, 2), data.dtype, reader.chunks,
                         "zarr-source")

    assert reader.reads == []  # building reads nothing
    np.testing.assert_array_equal(region.compute(scheduler="sync"), data[3:19, 10:30, 0:33])
    # Storage chunks overlapped: 3 x 2 x 3, read in tasks of up to 2 per axis: 2 x 1 x 2.
    assert region.chunks == ((13, 3), (20,), (32, 1))
    assert len(reader.reads) == region.npartitions == 2 * 1 * 2
    read_chunks = []
    for selection in reader.reads:
        first_chunk = [s.start // c for s, c in zip(selection, (8, 16, 16), strict=True)]
        last_chunk = [(s.stop - 1) // c for s, c in zip(selection, (8, 16, 16), strict=True)]
        assert all(last - first < 2 for first, last in zip(first_chunk, last_chunk,
                                                           strict=True))
        read_chunks += itertools.product(*(range(first, last + 1) for first, last in
                                           zip(first_chunk, last_chunk, strict=True)))
    assert sorted(read_chunks) == sorted(set(read_chunks))  # no storage chunk read twice
    assert len(read_chunks) == 3 * 2 * 3
    assert region.name.startswith("zarr-source-")
    (optimized,) = dask.optimize(region)
    assert len(dict(optimized.__dask_graph__())) == 4


def test_axes_permutation_moves_trailing_channels_first():
    data = np.arange(4 * 6 * 3).reshape(4, 6, 3)  # (y, x, c) in storage
    reader = RecordingReader(data, (2, 4, 3))
    region = read_region(reader, (1, 2, 0), (4, 6, 3), (2, 0, 1), data.dtype, reader.chunks,
                         "hdf5-source")
    assert region.shape == (3, 3, 4)
    assert region.chunks == ((3,), (3,), (4,))  # 2 storage chunks per axis in one task
    np.testing.assert_array_equal(region.compute(scheduler="sync"),
                                  np.moveaxis(data[1:4, 2:6], -1, 0))


def test_region_view_maps_view_slices_to_storage():
    data = position_data((6, 8), (0, 0))
    view = RegionView(RecordingReader(data, None), (2, 3), (6, 8), (1, 0), data.dtype)
    assert view.shape == (5, 4)
    np.testing.assert_array_equal(view[1:3, 0:2], data[2:4, 4:6].T)


def test_names_are_deterministic_and_region_specific():
    data = position_data((10, 10), (0, 0))
    reader = RecordingReader(data, (4, 4))
    a = read_region(reader, (0, 0), (5, 5), (0, 1), data.dtype, (4, 4), "zarr-source")
    b = read_region(reader, (0, 0), (5, 5), (0, 1), data.dtype, (4, 4), "zarr-source")
    c = read_region(reader, (0, 1), (5, 6), (0, 1), data.dtype, (4, 4), "zarr-source")
    assert a.name == b.name != c.name
