"""Lazy reads of a region of a stored array: one dask task per storage chunk it overlaps.

The graph covers only the region, so its cost follows the request, never the volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..errors import DaskgpError, SourceError
from ..geometry import Coordinate, Roi
from .translation import current_shift, voxel_shift


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


@dataclass(frozen=True)
class WorldGeometry:
    """Where a stored array lies in the world: the storage axes of its spatial dimensions, its
    voxel size and the world offset of its voxel 0. With it a region names its ROI in errors
    and can be translated (``daskgp.io.translation``).

    Example:
        >>> WorldGeometry((1, 2), (2, 1), (10, 0)).roi((0, 4, 8), (3, 6, 10))
        [18:22, 8:10] (4, 2)
    """

    spatial_axes: tuple[int, ...]
    voxel_size: tuple[int, ...]
    offset: tuple[int, ...]

    def roi(self, start: Sequence[int], stop: Sequence[int]) -> Roi:
        """The world ROI of the storage region ``[start, stop)``."""
        voxel_size = Coordinate(self.voxel_size)
        begin = Coordinate(start[a] for a in self.spatial_axes)
        end = Coordinate(stop[a] for a in self.spatial_axes)
        return Roi(Coordinate(self.offset) + begin * voxel_size, (end - begin) * voxel_size)


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
        geometry (WorldGeometry, optional): where the array lies in the world; a read error
            then names the world ROI, and reads follow a tile's translation.

    A failed read raises ``SourceError`` naming the reader's store and dataset, the chunks
    read, the storage region and (with ``geometry``) the world ROIs of the block and of the
    whole region.
    """

    def __init__(self, reader: Reader, start: Sequence[int], stop: Sequence[int],
                 axes: Sequence[int], dtype: np.dtype,
                 geometry: WorldGeometry | None = None) -> None:
        self.reader = reader
        self.geometry = geometry
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
        start, stop = self.start, self.stop
        if self.geometry is not None and current_shift() is not None:
            offsets = voxel_shift(self.ndim, self.geometry.spatial_axes, self.geometry.voxel_size)
            storage = [slice(s.start + o, s.stop + o) for s, o in zip(storage, offsets,
                                                                     strict=True)]
            start = tuple(a + o for a, o in zip(start, offsets, strict=True))
            stop = tuple(b + o for b, o in zip(stop, offsets, strict=True))
        try:
            data = self.reader.read(tuple(storage))
        except DaskgpError:
            raise
        except Exception as error:
            raise self._read_error(tuple(storage), start, stop, error) from error
        return np.transpose(data, self.axes) if self.axes != tuple(range(self.ndim)) else data

    def _read_error(self, storage: tuple[slice, ...], start, stop,
                    error: Exception) -> SourceError:
        damaged = getattr(self.reader, "damaged_chunk_keys", None)
        chunk_keys = getattr(self.reader, "chunk_keys", None)
        try:
            keys = damaged(storage) if damaged else []
            if keys:
                chunks = f"chunk(s) {', '.join(keys)}"
            elif chunk_keys:
                chunks = f"chunk(s) {', '.join(chunk_keys(storage))}"
            else:
                chunks = "chunks ?"
        except Exception:  # the array cannot even be opened: the error below says why
            chunks = "chunks ?"
        where = f"voxels {[(s.start, s.stop) for s in storage]}"
        if self.geometry is not None:
            block = self.geometry.roi([s.start for s in storage], [s.stop for s in storage])
            where += (f" (ROI {block}) of the batch's region ROI "
                      f"{self.geometry.roi(start, stop)}")
        return SourceError(
            f"cannot read dataset {getattr(self.reader, 'dataset', '?')!r} of store "
            f"{getattr(self.reader, 'location', self.reader)!r}: {chunks}, {where}: "
            f"{type(error).__name__}: {error}"
        )

    def __dask_tokenize__(self) -> tuple:
        return (tokenize(self.reader), self.start, self.stop, self.axes, str(self.dtype),
                self.geometry)


# Bytes that one read task reads at most (whole storage chunks, each read by one task): each
# zarr read call costs its event-loop round trip, ~1 ms, whatever it reads, and zarr decodes
# the chunks of one call on its own threads; so a batch's region is best read in one call.
_READ_BYTES = 1 << 24


def grouped_chunks(chunks: tuple[tuple[int, ...], ...], itemsize: int,
                   budget: int = _READ_BYTES) -> tuple[tuple[int, ...], ...]:
    """``chunks`` (storage-aligned, ``storage_aligned_chunks``) with consecutive chunks of each
    axis merged into read tasks of at most ``budget`` bytes (or single storage chunks).

    Every axis starts as one task; while the largest task holds more than ``budget`` bytes,
    the axis along which tasks are longest gets tasks of half as many chunks. A region that
    fits is one task (one read call); each task holds whole chunks of the input.

    Example:
        >>> grouped_chunks(((6, 16, 16, 2), (5,)), itemsize=1)
        ((40,), (5,))
        >>> grouped_chunks(((6, 16, 16, 2), (5,)), itemsize=1, budget=160)
        ((22, 18), (5,))
    """
    groups = [len(axis) for axis in chunks]

    def merged(axis: tuple[int, ...], group: int) -> tuple[int, ...]:
        return tuple(sum(axis[i:i + group]) for i in range(0, len(axis), group))

    def longest(d: int) -> int:
        return max(merged(chunks[d], groups[d]))

    while math.prod(longest(d) for d in range(len(chunks))) * itemsize > budget:
        splittable = [d for d in range(len(chunks)) if groups[d] > 1]
        if not splittable:
            break
        axis = max(splittable, key=longest)
        groups[axis] = -(-groups[axis] // 2)
    return tuple(merged(axis, g) for axis, g in zip(chunks, groups, strict=True))


def read_region(
    reader: Reader,
    start: Sequence[int],
    stop: Sequence[int],
    axes: Sequence[int],
    dtype: np.dtype,
    storage_chunks: Sequence[int] | None,
    prefix: str,
    geometry: WorldGeometry | None = None,
) -> da.Array:
    """A lazy dask array of region ``[start, stop)`` of ``reader``, axes permuted by ``axes``.

    Its chunks are aligned to ``storage_chunks`` (the reader's chunks, read at setup and passed
    in so that no file is touched here; None: one chunk) and group them into read tasks of at
    most ``_READ_BYTES`` (``grouped_chunks``: a batch-sized region is one task, one read
    call), so each task reads whole storage chunks (the region's parts of them) and each
    storage chunk is read by one task only; its tasks are named ``f"{prefix}-{token}"`` with
    a token of (reader, region, axes). Nothing is read until the array is computed. With
    ``geometry``, read errors name world ROIs and the reads follow a tile's translation (see
    ``RegionView``).
    """
    view = RegionView(reader, start, stop, axes, dtype, geometry)
    storage_chunks_of_region = storage_aligned_chunks(view.start, view.stop, storage_chunks)
    if storage_chunks is not None:
        storage_chunks_of_region = grouped_chunks(storage_chunks_of_region, view.dtype.itemsize)
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
