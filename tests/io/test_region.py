"""Lazy region reads: tasks of whole storage chunks within a byte budget (one for a batch-sized
region), axes moved lazily."""

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


def test_a_region_within_the_read_budget_is_one_read_call():
    data = position_data((20, 30, 40))
    reader = RecordingReader(data, (8, 16, 16))
    region = read_region(reader, (3, 10, 0), (19, 30, 33), (0, 1, 2), data.dtype,
                         reader.chunks, "zarr-source")

    assert reader.reads == []  # building reads nothing
    np.testing.assert_array_equal(region.compute(scheduler="sync"), data[3:19, 10:30, 0:33])
    assert region.chunks == ((16,), (20,), (33,))
    assert reader.reads == [(slice(3, 19), slice(10, 30), slice(0, 33))]
    (optimized,) = dask.optimize(region)
    assert len(dict(optimized.__dask_graph__())) == 1


def _read_chunk_indices(selection, chunks):
    first = [s.start // c for s, c in zip(selection, chunks, strict=True)]
    last = [(s.stop - 1) // c for s, c in zip(selection, chunks, strict=True)]
    return list(itertools.product(*(range(f, la + 1) for f, la in zip(first, last,
                                                                       strict=True))))


@pytest.mark.parametrize("budget", [1, 16 * 16 * 8 * 8, 16 * 32 * 8 * 8])
def test_larger_regions_are_read_in_tasks_of_whole_storage_chunks_within_the_budget(
        monkeypatch, budget):
    from daskgp.io import region as region_module

    monkeypatch.setattr(region_module, "_READ_BYTES", budget)
    monkeypatch.setattr(region_module.grouped_chunks, "__defaults__", (budget,))
    data = position_data((20, 30, 40))
    reader = RecordingReader(data, (8, 16, 16))
    region = read_region(reader, (3, 10, 0), (19, 30, 33), (0, 1, 2), data.dtype,
                         reader.chunks, "zarr-source")

    np.testing.assert_array_equal(region.compute(scheduler="sync"), data[3:19, 10:30, 0:33])
    assert len(reader.reads) == region.npartitions > 1
    read_chunks = []
    for selection in reader.reads:
        shape = [s.stop - s.start for s in selection]
        # Within the budget, or a single storage chunk (the smallest task there is).
        indices = _read_chunk_indices(selection, (8, 16, 16))
        assert np.prod(shape) * data.itemsize <= budget or len(indices) == 1
        read_chunks += indices
    assert sorted(read_chunks) == sorted(set(read_chunks))  # no storage chunk read twice
    assert len(read_chunks) == 3 * 2 * 3  # the storage chunks the region overlaps
    if budget == 1:
        assert region.chunks == ((5, 8, 3), (6, 14), (16, 16, 1))  # one task per chunk


def test_axes_permutation_moves_trailing_channels_first():
    data = np.arange(4 * 6 * 3).reshape(4, 6, 3)  # (y, x, c) in storage
    reader = RecordingReader(data, (2, 4, 3))
    region = read_region(reader, (1, 2, 0), (4, 6, 3), (2, 0, 1), data.dtype, reader.chunks,
                         "hdf5-source")
    assert region.shape == (3, 3, 4)
    assert region.chunks == ((3,), (3,), (4,))  # the whole region in one task
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
