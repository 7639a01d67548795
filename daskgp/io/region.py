"""Lazy reads of a region of a stored array: one dask task per storage chunk it overlaps.

The graph covers only the region, so its cost follows the request, never the volume.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

import dask.array as da
import numpy as np
from dask.base import tokenize


class Reader(Protocol):
    """What a region needs from a reader (``ZarrReader``, ``Hdf5Reader``): a picklable object
    with ``read`` and ``__dask_tokenize__``."""

    def read(self, selection: tuple[slice, ...]) -> np.ndarray: ...


def storage_aligned_chunks(
    start: Sequence[int], stop: Sequence[int], storage_chunks: Sequence[int] | None
) -> tuple[tuple[int, ...], ...]:
    """dask chunks for ``[start, stop)`` whose boundaries fall on the storage chunk grid.

    The first and last chunk of each axis may be partial; every other one is a whole storage
    chunk. Without storage chunks (a contiguous HDF5 dataset) the region is one chunk.

    Example:
        >>> storage_aligned_chunks((10, 0), (40, 5), (16, 8))
        ((6, 16, 8), (5,))
        >>> storage_aligned_chunks((10, 3), (40, 5), None)
        ((30,), (2,))
    """
    if storage_chunks is None:
        return tuple((b - a,) for a, b in zip(start, stop, strict=True))
    chunks = []
    for begin, end, size in zip(start, stop, storage_chunks, strict=True):
        if end <= begin:
            chunks.append((0,))
            continue
        first_boundary = (begin // size + 1) * size
        bounds = [begin, *range(first_boundary, end, size), end]
        chunks.append(tuple(b - a for a, b in itertools.pairwise(bounds)))
    return tuple(chunks)


class RegionView:
    """The region ``[start, stop)`` of a reader's array, with its axes permuted by ``axes``.

    Axis ``i`` of the view is storage axis ``axes[i]``. Slicing the view reads just that part of
    the storage; the view is what ``da.from_array`` slices, one task per chunk.

    Args:
        reader (ZarrReader or Hdf5Reader): where the data is.
        start (tuple of int): first voxel of the region, per storage axis.
        stop (tuple of int): end of the region (exclusive), per storage axis.
        axes (tuple of int): storage axis of each view axis.
        dtype (numpy dtype): the stored dtype (read once, in the driver).
    """

    def __init__(self, reader: Reader, start: Sequence[int], stop: Sequence[int],
                 axes: Sequence[int], dtype: np.dtype) -> None:
        self.reader = reader
        self.start = tuple(int(s) for s in start)
        self.stop = tuple(int(s) for s in stop)
        self.axes = tuple(int(a) for a in axes)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(self.stop[a] - self.start[a] for a in self.axes)
        self.ndim = len(self.shape)

    def __getitem__(self, selection: tuple[slice, ...]) -> np.ndarray:
        storage = [slice(None)] * self.ndim
        for view_axis, index in enumerate(selection):
            axis = self.axes[view_axis]
            begin, end, step = index.indices(self.shape[view_axis])
            assert step == 1, "a region is read in contiguous blocks"
            storage[axis] = slice(self.start[axis] + begin, self.start[axis] + end)
        data = self.reader.read(tuple(storage))
        return np.transpose(data, self.axes) if self.axes != tuple(range(self.ndim)) else data

    def __dask_tokenize__(self) -> tuple:
        return (tokenize(self.reader), self.start, self.stop, self.axes, str(self.dtype))


# Storage chunks per axis that one read task takes (whole ones, each read by one task): each
# read call costs zarr's event-loop round trip, ~1 ms, whatever it reads.
_READ_GROUP = 2


def grouped_chunks(chunks: tuple[tuple[int, ...], ...], group: int = _READ_GROUP):
    """``chunks`` with every ``group`` consecutive chunks of an axis merged into one.

    Example:
        >>> grouped_chunks(((6, 16, 16, 2), (5,)))
        ((22, 18), (5,))
    """
    return tuple(tuple(sum(axis[i:i + group]) for i in range(0, len(axis), group))
                 for axis in chunks)


def read_region(
    reader: Reader,
    start: Sequence[int],
    stop: Sequence[int],
    axes: Sequence[int],
    dtype: np.dtype,
    storage_chunks: Sequence[int] | None,
    prefix: str,
) -> da.Array:
    """A lazy dask array of region ``[start, stop)`` of ``reader``, axes permuted by ``axes``.

    Its chunks are aligned to ``storage_chunks`` (the reader's chunks, read at setup and passed
    in so that no file is touched here; None: one chunk) and hold up to ``_READ_GROUP`` of them
    per axis, so each task reads whole storage chunks (the region's parts of them) and each
    storage chunk is read by one task only; its tasks are named ``f"{prefix}-{token}"`` with
    a token of (reader, region, axes). Nothing is read until the array is computed.
    """
    view = RegionView(reader, start, stop, axes, dtype)
    storage_chunks_of_region = grouped_chunks(
        storage_aligned_chunks(view.start, view.stop, storage_chunks))
    chunks = tuple(storage_chunks_of_region[a] for a in view.axes)
    name = f"{prefix}-{tokenize(view)}"
    return da.from_array(
        view,
        chunks=chunks,
        name=name,
        asarray=True,
        lock=False,
        fancy=False,
        inline_array=True,
        meta=np.empty((0,) * view.ndim, dtype=view.dtype),
    )
