"""Chunk-wise warp of a dask array: one task per output chunk, reading its own source box.

Each task evaluates the transform for its own voxels, a few output sections at a time, and
interpolates (``_kernels``) from the source blocks that its box (computed halo) overlaps,
read section by section (``SourceBlocks``: no copy of the box where sections suffice). A
batch-sized output is one chunk (``output_chunk_shape``); more are assembled with
``da.block``. ``sample`` is the scipy reference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy import ndimage

from ..batch import mark_own_chunk
from ..errors import BatchError
from ..names import NodeTask
from ._elastic import (
    CoordinateSlabs,
    ElasticTransform,
    source_box,
    source_coordinates,
    tight_source_box,
)
from ._kernels import (
    bilinear,
    bilinear_integer_section,
    lane_sum,
    nearest,
    nearest_section,
    remappable,
    row_sums,
    scale_shift_in_place,
    trilinear,
    trilinear_integer,
)


def sample(data: np.ndarray, coordinates: np.ndarray, order: int) -> np.ndarray:
    """Interpolate ``data`` at ``coordinates`` (``(dims, *shape)``, within ``data``'s extent).

    ``scipy.ndimage.map_coordinates`` with ``mode="constant"`` and ``cval=0``, output in
    ``data``'s dtype. For nearest-neighbour (``order=0``) sampling of 64-bit integers the
    voxel is picked directly (``floor(y + 0.5)``, the index map_coordinates rounds to), since
    map_coordinates goes through float64 and would corrupt labels above 2**53.

    Example:
        >>> sample(np.array([2**60 + 1, 2**60 + 3], np.uint64), np.array([[0.4, 0.6]]), 0)
        array([1152921504606846977, 1152921504606846979], dtype=uint64)
    """
    if order == 0 and data.dtype.kind in "iu" and data.dtype.itemsize == 8:
        inside = np.ones(coordinates.shape[1:], dtype=bool)
        flat = np.zeros(coordinates.shape[1:], dtype=np.intp)
        for d, size in enumerate(data.shape):
            index = np.floor(coordinates[d].astype(np.float64) + 0.5)
            inside &= (coordinates[d] >= 0) & (coordinates[d] <= size - 1)
            flat *= size
            flat += np.clip(index, 0, size - 1).astype(np.intp)
        values = data.ravel().take(flat)
        values[~inside] = 0
        return values
    if order == 1 and data.ndim > 1:
        sliced = _sample_slices(data, coordinates)
        if sliced is not None:
            return sliced
    return ndimage.map_coordinates(
        data, coordinates, output=data.dtype, order=order, mode="constant", cval=0,
        prefilter=False,
    )


def _sample_slices(data: np.ndarray, coordinates: np.ndarray) -> np.ndarray | None:
    """Linear interpolation one output slice at a time, when every output slice (first axis)
    samples one whole source slice: the usual case of transforms that only move voxels within
    sections (rotation in y, x; jitter 0 along z; scale 1). Then each slice is a 2D
    interpolation, about a third cheaper than 3D, with identical results (the second z
    neighbour's weight is exactly 0). Returns None when the first coordinate varies within a
    slice or is not a whole number.
    """
    first = coordinates[0]
    per_slice = first.reshape(first.shape[0], -1)[:, :1]
    if not (np.array_equal(first.reshape(first.shape[0], -1),
                           np.broadcast_to(per_slice, (first.shape[0], first[0].size)))
            and np.array_equal(per_slice, np.floor(per_slice))):
        return None
    out = np.zeros(first.shape, dtype=data.dtype)
    for i, z in enumerate(per_slice[:, 0].astype(np.int64)):
        if 0 <= z < data.shape[0]:
            ndimage.map_coordinates(data[z], coordinates[1:, i], output=out[i], order=1,
                                    mode="constant", cval=0, prefilter=False)
    return out


class Normalization(NamedTuple):
    """A ``Normalize`` fused into the warp: source values become ``value.astype(dtype) *
    factor`` (the same arithmetic, section by section, so the same bits as normalizing the
    whole source first)."""

    factor: float
    dtype: np.dtype

    def in_kernel(self, values: np.ndarray) -> bool:
        """Whether the trilinear kernel can normalize ``values`` itself (integers to float32
        by a Python float: ``float32(value) * float32(factor)``, ``apply``'s bits)."""
        return (type(self.factor) is float and np.dtype(self.dtype) == np.float32
                and values.dtype.kind in "iu" and values.dtype.itemsize <= 2)

    def apply(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``values.astype(dtype) * factor`` (into ``out`` if given)."""
        dtype = np.dtype(self.dtype)
        if type(self.factor) is float and dtype.kind == "f":
            # A Python float is cast to dtype first (NEP 50): one pass, the same bits.
            if out is None:
                out = np.empty(values.shape, dtype=dtype)
            return np.multiply(values, dtype.type(self.factor), out=out, dtype=dtype,
                               casting="unsafe")
        if out is None:
            out = values.astype(dtype)
        else:
            out[...] = values
        return np.multiply(out, self.factor, out=out, casting="unsafe")


_FUSED = "_daskgp_normalized_from"


def mark_normalized(normalized: da.Array, source: da.Array,
                    normalization: Normalization) -> da.Array:
    """Record on ``normalized`` (the dask array ``Normalize`` made from ``source``) how to
    recompute it, so that a warp downstream can read ``source`` and normalize on the fly.

    The record lives on this very array object: any operation in between makes a new array
    without it, and the warp then reads ``normalized`` as usual.
    """
    setattr(normalized, _FUSED, (source, normalization))
    return normalized


def fused_source(data: da.Array) -> tuple[da.Array, Normalization | None]:
    """The array to read for ``data`` and the normalization to apply on the fly: ``data``'s
    source if ``mark_normalized`` recorded one, else ``data`` itself.

    Example:
        >>> source = da.zeros(4, dtype=np.uint8)
        >>> normalized = mark_normalized(source.astype(np.float32) / 255, source,
        ...                              Normalization(1 / 255, np.dtype(np.float32)))
        >>> fused_source(normalized)[0] is source, fused_source(source)[1]
        (True, None)
    """
    record = getattr(data, _FUSED, None)
    return (data, None) if record is None else record


def section_sums(values: np.ndarray) -> np.ndarray:
    """The float64 sums (``lane_sum``) of the sections of the C-contiguous ``values``: of each
    ``values[index]`` over the last two axes, for every index of the others (one section for
    fewer than three axes), in C order."""
    rows = values.reshape(math.prod(values.shape[:-2]), -1)
    sums = np.empty(rows.shape[0], dtype=np.float64)
    row_sums(rows, sums)
    return sums


def sectioned_mean(values: np.ndarray, sums: np.ndarray | None = None) -> float:
    """The float64 mean of the C-contiguous ``values``: its ``section_sums`` (or ``sums``,
    those sums already taken) added in order, over its size; a fixed summation order, so the
    same bits for the same values in the same layout (IntensityAugment's mean).

    Example:
        >>> sectioned_mean(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
        11.5
    """
    if values.size == 0:
        return 0.0
    if sums is None:
        sums = section_sums(values)
    total = 0.0
    for value in sums.tolist():
        total += value
    return total / values.size


class ScaleShift(NamedTuple):
    """An ``IntensityAugment`` fused into the warp's output: the task's (whole, one-chunk)
    output becomes ``mean + (out - mean) * scale + shift`` in place, ``mean`` its
    ``sectioned_mean`` (a planar warp sums each section as it writes it) and everything
    else in the output's precision, clipped to [0, 1] with ``clip`` (values outside [0, 1]
    before then raise ``BatchError(error)``). The same arithmetic, in the same order, as
    IntensityAugment's own task on the warp's output, so the same bits; but no second
    full-size array, no pass of its own for the mean and no task of its own.

    Example:
        >>> out = np.array([0.2, 0.4, 0.6], np.float32)
        >>> ScaleShift(2.0, 0.1, True, "outside [0, 1]").apply(out)
        >>> out.round(3)
        array([0.1, 0.5, 0.9], dtype=float32)
    """

    scale: float
    shift: float
    clip: bool
    error: str

    def apply(self, out: np.ndarray, sums: np.ndarray | None = None) -> None:
        """Scale and shift ``out`` (C-contiguous float32 or float64) in place (``sums``: its
        ``section_sums`` if already taken)."""
        if out.size == 0:
            return
        number = out.dtype.type
        mean = sectioned_mean(out, sums)
        if not scale_shift_in_place(out.reshape(-1), number(mean), number(self.scale),
                                    number(self.shift), bool(self.clip)):
            raise BatchError(self.error)


_REBUILD = "_daskgp_warp_rebuild"


def mark_warp_output(array: da.Array, rebuild: Callable[[ScaleShift], da.Array]) -> da.Array:
    """Record on ``array`` (a one-chunk warp output, or a view of one such as SimpleAugment's)
    how to make it again with a ``ScaleShift`` fused into the warp's task: ``rebuild(post)``
    is then the same array with ``post`` applied. As with ``mark_normalized``, the record lives
    on this very array object: any other operation in between makes an array without it."""
    setattr(array, _REBUILD, rebuild)
    return array


def warp_rebuild(array: da.Array) -> Callable[[ScaleShift], da.Array] | None:
    """The ``rebuild`` that ``mark_warp_output`` recorded on ``array``, else None.

    Example:
        >>> warp_rebuild(da.zeros(3)) is None
        True
    """
    return getattr(array, _REBUILD, None)


# Dtypes the compiled kernels take (others fall back to map_coordinates).
_KERNEL_KINDS = "biuf"
# Output voxels whose coordinates are evaluated at once (2 x 1 MiB of float32).
_GROUP_VOXELS = 2**17


class SourceBlocks:
    """The source box ``[box_begin, box_end)`` of a warp task, as the blocks that hold it.

    ``blocks`` lists the blocks of a grid in C order over the spatial block axes (leading
    axes whole); ``block_begins[d]`` gives the first voxel of each block along ``d`` (in any
    common frame, e.g. grid voxels). The warp reads the blocks directly, one source section at
    a time (``section``: a view where the section lies in one block, else its parts gathered,
    normalized on the way), and assembles the whole box (``box``) only where it samples in 3D.

    Example:
        >>> blocks = [np.arange(6).reshape(2, 3), np.arange(6, 12).reshape(2, 3)]
        >>> SourceBlocks(blocks, [[0], [0, 3]], (0, 1), (2, 5)).box()
        array([[ 1,  2,  6,  7],
               [ 4,  5,  9, 10]])
    """

    def __init__(self, blocks: Sequence[np.ndarray], block_begins: Sequence[Sequence[int]],
                 box_begin: Sequence[int], box_end: Sequence[int]) -> None:
        self.dims = len(box_begin)
        grid = np.empty(len(blocks), dtype=object)
        grid[:] = list(blocks)
        self.grid = grid.reshape([len(b) for b in block_begins])
        self.block_begins = [list(b) for b in block_begins]
        self.box_begin = tuple(int(b) for b in box_begin)
        self.box_end = tuple(int(e) for e in box_end)
        first = self.grid.flat[0]
        self.dtype = first.dtype
        self.leading = first.shape[: first.ndim - self.dims]
        self.shape = self.leading + tuple(e - b for b, e in zip(self.box_begin, self.box_end,
                                                                strict=True))
        # Per spatial axis and block: (slice in the block, slice in the box) of the overlap.
        self._parts = []
        for d in range(self.dims):
            parts = []
            for i, begin in enumerate(self.block_begins[d]):
                index = [0] * self.dims
                index[d] = i
                end = begin + self.grid[tuple(index)].shape[len(self.leading) + d]
                low, high = max(begin, self.box_begin[d]), min(end, self.box_end[d])
                parts.append((slice(low - begin, high - begin),
                              slice(low - self.box_begin[d], high - self.box_begin[d])))
            self._parts.append(parts)

    @classmethod
    def of(cls, source: np.ndarray, dims: int) -> SourceBlocks:
        """One block: the whole of ``source`` (its last ``dims`` axes spatial)."""
        return cls([source], [[0]] * dims, (0,) * dims, source.shape[source.ndim - dims:])

    def box(self) -> np.ndarray:
        """The whole box: a view if it lies in one block, else its parts copied together."""
        if self.grid.size == 1:
            return self.grid.flat[0][(Ellipsis, *(p[0][0] for p in self._parts))]
        box = np.empty(self.shape, dtype=self.dtype)
        for index in itertools.product(*(range(len(p)) for p in self._parts)):
            block = self.grid[index]
            parts = [self._parts[d][i] for d, i in enumerate(index)]
            box[(Ellipsis, *(p[1] for p in parts))] = block[(Ellipsis, *(p[0] for p in parts))]
        return box

    def section(self, channel: int, z: int, normalization: Normalization | None = None,
                buffer: np.ndarray | None = None) -> np.ndarray:
        """Section ``z`` (of the box, first spatial axis) of a 3-axis box, in ``channel``
        (index into the flattened leading axes): a view of its block when it lies in one and
        is not normalized; else its parts normalized or copied into ``buffer`` (of the
        section's shape and the output dtype; allocated if None)."""
        first = np.searchsorted(self.block_begins[0], self.box_begin[0] + z, side="right") - 1
        offset = self.box_begin[0] + z - self.block_begins[0][first]
        channel_index = np.unravel_index(channel, self.leading) if self.leading else ()
        rows, columns = self._parts[1], self._parts[2]
        if normalization is None and len(rows) == 1 and len(columns) == 1:
            block = self.grid[first, 0, 0]
            return block[(*channel_index, offset, rows[0][0], columns[0][0])]
        if buffer is None:
            dtype = self.dtype if normalization is None else np.dtype(normalization.dtype)
            buffer = np.empty(self.shape[-2:], dtype=dtype)
        for i, (block_rows, box_rows) in enumerate(rows):
            for j, (block_columns, box_columns) in enumerate(columns):
                part = self.grid[first, i, j][(*channel_index, offset, block_rows,
                                               block_columns)]
                if normalization is None:
                    buffer[box_rows, box_columns] = part
                else:
                    normalization.apply(part, buffer[box_rows, box_columns])
        return buffer


def warp_block(
    source: np.ndarray | SourceBlocks,
    transform: ElasticTransform,
    out_begin: Sequence[int],
    out_shape: Sequence[int],
    source_begin: Sequence[int],
    order: int,
    normalization: Normalization | None = None,
    scale_shift: ScaleShift | None = None,
) -> np.ndarray:
    """Warp one block: the output voxels ``[out_begin, out_begin + out_shape)`` of the grid.

    ``source`` (an array, or the ``SourceBlocks`` that hold it) holds the source voxels from
    ``source_begin`` (grid voxels) on; leading axes (channels) share the transform.
    ``normalization`` scales the source values on the fly (a fused ``Normalize``),
    ``scale_shift`` the output values in place afterwards (a fused ``IntensityAugment``). The
    coordinates are evaluated a few output sections at a time (``CoordinateSlabs``), never
    for the whole block; where a section samples one source section (rotation in the last two
    axes, no jitter or scale in the first) it is one 2D interpolation of that section, read
    from its blocks directly (OpenCV's ``remap`` for order 1), else the compiled trilinear
    kernel samples the assembled box; order 0 picks the nearest voxel exactly for any dtype.
    Equal to ``sample`` (scipy's ``map_coordinates``) on ``source_coordinates``: exactly for
    order 0, to float32 rounding for order 1.

    Example:
        >>> t = ElasticTransform((3, 3), rotation=np.pi / 2)
        >>> warp_block(np.arange(9.0).reshape(3, 3), t, (0, 0), (3, 3), (0, 0), 1).round(6)
        array([[2., 5., 8.],
               [1., 4., 7.],
               [0., 3., 6.]])
    """
    # The section sums of the mean, where the warp takes them as it writes each section.
    sums = None if scale_shift is None else []
    out = _warped(source, transform, out_begin, out_shape, source_begin, order, normalization,
                  sums)
    if scale_shift is not None:
        scale_shift.apply(out, np.asarray(sums, dtype=np.float64) if sums else None)
    return out


def _warped(source, transform, out_begin, out_shape, source_begin, order, normalization,
            sums: list | None = None) -> np.ndarray:
    """``warp_block`` without its ``scale_shift``; a planar warp appends the ``section_sums``
    of its output to ``sums`` (if given) as it writes them."""
    dims = transform.dims
    if not isinstance(source, SourceBlocks):
        source = SourceBlocks.of(source, dims)
    out_shape = tuple(int(s) for s in out_shape)
    leading = source.leading
    dtype = source.dtype if normalization is None else np.dtype(normalization.dtype)
    out = np.empty((math.prod(leading), *out_shape), dtype=dtype)
    if dims == 3 and source.dtype.kind in _KERNEL_KINDS:
        slabs = CoordinateSlabs(transform, out_begin, out_shape, source_begin)
        if slabs.planar:
            planar_sums = None if sums is None else np.empty(out.shape[:2], np.float64)
            _warp_planar(source, slabs, out_shape, order, normalization, out, planar_sums)
            if sums is not None:
                sums.extend(planar_sums.ravel().tolist())
        else:
            _warp_volume(source.box(), slabs, out_shape, order, normalization, out)
        return out.reshape(leading + out_shape)
    channels = source.box()
    channels = channels.reshape((-1,) + channels.shape[channels.ndim - dims:])
    if dims == 2 and source.dtype.kind in _KERNEL_KINDS:
        # One section: (2, 1, rows, columns) coordinates, as _sample_section takes them.
        slabs = CoordinateSlabs(transform, out_begin, out_shape, source_begin)
        coordinates = slabs.evaluate(0, out_shape[0])[:, None]
        for c in range(channels.shape[0]):
            image = channels[c]
            if normalization is not None and order == 1:
                image = normalization.apply(image)
            _sample_section(image, coordinates[0, 0], coordinates[1, 0], out[c], order,
                            None if order == 1 else normalization)
        return out.reshape(leading + out_shape)
    coordinates = source_coordinates(transform, out_begin, out_shape, relative_to=source_begin)
    for c in range(channels.shape[0]):
        values = channels[c] if normalization is None else normalization.apply(channels[c])
        out[c] = sample(values, coordinates, order)
    return out.reshape(leading + out_shape)


def _warp_planar(source: SourceBlocks, slabs: CoordinateSlabs, out_shape, order,
                 normalization, out, sums=None) -> None:
    """``warp_block`` of a ``planar`` 3-axis box: each output section from one source section
    (read from the blocks, normalized once per section for order 1), or, where its section
    coordinate is fractional (scale), from two. With ``sums`` (channels, sections), each
    section's ``lane_sum`` goes there right after it is written (while it is in cache)."""
    sections = source.shape[-3]
    # Sections in groups of about _GROUP_VOXELS: few kernel calls, a cache-sized buffer.
    group = max(1, min(out_shape[0], _GROUP_VOXELS // max(1, out_shape[1] * out_shape[2])))
    planar = np.empty((2, group, *out_shape[1:]), dtype=np.float32)
    buffer = None
    if order == 1 and normalization is not None:
        buffer = np.empty(source.shape[-2:], dtype=np.dtype(normalization.dtype))
    source_sections = slabs.sections()
    volume = None
    for first in range(0, out_shape[0], group):
        count = min(group, out_shape[0] - first)
        slabs.planar_slab(first, planar[:, :count])
        for j in range(count):
            i, z = first + j, float(source_sections[first + j])
            if not z.is_integer():
                # A fractional section coordinate (scale): interpolate between two sections.
                if volume is None:
                    volume = source.box()
                    volume = volume.reshape((-1,) + volume.shape[volume.ndim - 3:])
                _sample_volume(volume, slabs.evaluate(i, 1), out[:, i:i + 1], order,
                               normalization)
            else:
                z = int(z)
                for c in range(out.shape[0]):
                    if not 0 <= z < sections:
                        out[c, i] = 0
                    elif order == 1:
                        image = source.section(c, z, normalization, buffer)
                        _sample_section(image, planar[0, j], planar[1, j], out[c, i], 1, None)
                    else:
                        _sample_section(source.section(c, z), planar[0, j], planar[1, j],
                                        out[c, i], 0, normalization)
            if sums is not None:
                for c in range(out.shape[0]):
                    sums[c, i] = lane_sum(out[c, i].reshape(-1))


def _warp_volume(box: np.ndarray, slabs: CoordinateSlabs, out_shape, order, normalization,
                 out) -> None:
    """``warp_block`` of a 3-axis box whose sections sample several source sections: the
    trilinear or nearest kernel on the assembled box, a group of sections at a time."""
    volumes = box.reshape((-1,) + box.shape[box.ndim - 3:])
    group = max(1, min(out_shape[0], _GROUP_VOXELS // max(1, out_shape[1] * out_shape[2])))
    coordinates = np.empty((3, group, *out_shape[1:]), dtype=np.float32)
    if normalization is not None and order == 1 and not normalization.in_kernel(volumes):
        # Sections are read in any order: normalize the box once.
        volumes = normalization.apply(volumes)
        normalization = None
    for first in range(0, out_shape[0], group):
        count = min(group, out_shape[0] - first)
        slabs.evaluate(first, count, coordinates[:, :count])
        _sample_volume(volumes, coordinates[:, :count], out[:, first:first + count], order,
                       normalization)


def _sample_section(image, rows, columns, out, order, normalization) -> None:
    """One output section from one source section (2D ``image``); ``rows`` and ``columns``
    (float32, of ``out``'s shape) are the coordinates. For order 1 ``image`` comes
    normalized (``normalization`` None); order 0 normalizes the picked values."""
    if order == 0:
        if normalization is None:
            nearest_section(image, rows, columns, out)
        else:
            picked = np.empty(out.shape, dtype=image.dtype)
            nearest_section(image, rows, columns, picked)
            normalization.apply(picked, out)
        return
    if remappable(image):
        bilinear(image, rows, columns, out)
    elif image.dtype.kind in "iu" and out.dtype == image.dtype:
        bilinear_integer_section(image, rows, columns, out)
    else:
        ndimage.map_coordinates(image, np.stack([rows, columns]), output=out, order=1,
                                mode="constant", cval=0, prefilter=False)


def _sample_volume(volumes, coordinates, out, order, normalization) -> None:
    """Output sections (``out``: channels, sections, rows, columns) from the whole source."""
    for c in range(volumes.shape[0]):
        if order == 0:
            if normalization is None:
                nearest(volumes[c], coordinates, out[c])
            else:
                picked = np.empty(out.shape[1:], dtype=volumes.dtype)
                nearest(volumes[c], coordinates, picked)
                normalization.apply(picked, out[c])
            continue
        if normalization is not None and normalization.in_kernel(volumes):
            trilinear(volumes[c], coordinates, out[c], np.float32(normalization.factor), True)
            continue
        volume = volumes[c] if normalization is None else normalization.apply(volumes[c])
        if volume.dtype.kind == "f" and volume.dtype.itemsize >= 4:
            trilinear(volume, coordinates, out[c])
        elif volume.dtype.kind in "iu" and out.dtype == volume.dtype:
            trilinear_integer(volume, coordinates, out[c])
        else:
            ndimage.map_coordinates(volume, coordinates, output=out[c], order=1,
                                    mode="constant", cval=0, prefilter=False)


def _chunk_ranges(begin: int, size: int, chunk: int) -> list[tuple[int, int]]:
    return [(b, min(chunk, begin + size - b)) for b in range(begin, begin + size, chunk)]


def _block_span(starts: np.ndarray, begin: int, end: int) -> tuple[int, int]:
    """First and last index of the blocks (starting at ``starts``) that ``[begin, end)``
    overlaps."""
    first = int(np.searchsorted(starts, begin, side="right")) - 1
    last = int(np.searchsorted(starts, end, side="left")) - 1
    return first, last


def _warp_from_blocks(block_begins, box_begin, box_end, transform, out_begin, out_shape, order,
                      normalization, scale_shift, *blocks):
    source = SourceBlocks(blocks, block_begins, box_begin, box_end)
    return warp_block(source, transform, out_begin, out_shape, box_begin, order, normalization,
                      scale_shift)


# Outputs of up to this many voxels are warped by one task (the seed's raw, 84x268x268, has
# 6M): no output chunks to assemble, each source section read and normalized once, few tasks.
# Larger outputs go in chunks of _CHUNK voxels per axis.
_BLOCK_VOXELS = 1 << 23
_CHUNK = 128


def output_chunk_shape(chunk_shape: Sequence[int] | int | None,
                       out_shape: Sequence[int]) -> tuple[int, ...]:
    """The output chunks of a warp of ``out_shape`` voxels: ``chunk_shape`` per axis if
    given (an int for every axis), else the whole output up to ``_BLOCK_VOXELS`` voxels and
    ``_CHUNK`` voxels per axis beyond.

    Example:
        >>> output_chunk_shape(None, (84, 268, 268)), output_chunk_shape(None, (300, 300, 300))
        ((84, 268, 268), (128, 128, 128))
        >>> output_chunk_shape(16, (84, 268, 268))
        (16, 16, 16)
    """
    dims = len(out_shape)
    if chunk_shape is None:
        if math.prod(out_shape) <= _BLOCK_VOXELS:
            return tuple(max(1, int(s)) for s in out_shape)
        chunk_shape = _CHUNK
    if isinstance(chunk_shape, (int, np.integer)):
        chunk_shape = (int(chunk_shape),) * dims
    return tuple(int(c) for c in chunk_shape)


def chunked_warp(
    source: da.Array,
    source_begin: Sequence[int],
    transform: ElasticTransform,
    out_begin: Sequence[int],
    out_shape: Sequence[int],
    order: int,
    chunk_shape: Sequence[int] | int | None = None,
    name: str = "warp",
    node_name: str | None = None,
    normalization: Normalization | None = None,
) -> da.Array:
    """Lazily warp ``source`` with ``transform``: a dask array of ``out_shape`` voxels.

    Like ``scipy.ndimage.map_coordinates`` applied to the coordinates ``source_coordinates``
    gives for the box ``[out_begin, out_begin + out_shape)``, but split into chunks of
    ``chunk_shape``: the task of a chunk computes only that chunk's coordinates and reads only
    ``source_box`` of that chunk (from the source blocks that box overlaps), and interpolates
    with the compiled kernels (``warp_block``): equal to map_coordinates to float32 rounding
    (order 1) or exactly (order 0), and bit-identical for any ``chunk_shape``.

    Args:
        source (dask.array.Array): the source, its last ``transform.dims`` axes spatial; it
            must cover ``tight_source_box(transform, out_begin, out_shape)``. Leading axes
            (channels) share the transform.
        source_begin (tuple of int): grid voxel of ``source``'s first spatial voxel.
        transform (ElasticTransform): the transform.
        out_begin (tuple of int): first output voxel, in grid voxels.
        out_shape (tuple of int): output voxels per spatial axis.
        order (int): 1 (linear) or 0 (nearest).
        chunk_shape (int or tuple of int, optional): output chunk size per spatial axis;
            None: one chunk up to ``_BLOCK_VOXELS`` voxels (``output_chunk_shape``).
        name (str): prefix of the task names.
        node_name (str, optional): name of the node, for errors raised inside tasks.
        normalization (Normalization, optional): a ``Normalize`` of the source fused into
            the warp (the output has its dtype).

    A one-chunk output is marked (``mark_warp_output``) with how to build its task again with
    a ``ScaleShift`` at its end, so that an ``IntensityAugment`` downstream can fuse into it,
    and as owning its chunk (``mark_own_chunk``: ``Batch.compute`` returns it uncopied).

    Example:
        >>> t = ElasticTransform((4, 4), rotation=np.pi)
        >>> source = da.from_array(np.arange(16.0).reshape(4, 4), chunks=2)
        >>> chunked_warp(source, (0, 0), t, (0, 0), (4, 4), 1, chunk_shape=3).compute()[0]
        array([15., 14., 13., 12.])
    """
    dims = transform.dims
    out_begin = tuple(int(b) for b in out_begin)
    out_shape = tuple(int(s) for s in out_shape)
    source_begin = tuple(int(b) for b in source_begin)
    chunk_shape = output_chunk_shape(chunk_shape, out_shape)
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order}")
    if len(chunk_shape) != dims or min(chunk_shape) < 1:
        raise ValueError(f"chunk_shape must be {dims} positive ints, got {chunk_shape}")
    if source.ndim < dims:
        raise ValueError(f"source has {source.ndim} axes, fewer than the transform's {dims}")
    leading_axes = source.ndim - dims
    leading = source.shape[:leading_axes]
    if any(len(c) > 1 for c in source.chunks[:leading_axes]):
        source = source.rechunk({axis: -1 for axis in range(leading_axes)})
    source_end = tuple(b + s for b, s in zip(source_begin, source.shape[leading_axes:],
                                             strict=True))
    # Grid voxel where each source block starts, per spatial axis.
    block_starts = [
        np.concatenate([[b], b + np.cumsum(c)]) for b, c in zip(source_begin,
                                                                source.chunks[leading_axes:],
                                                                strict=True)
    ]
    # The compute optimizes the whole graph once; optimizing the source here too costs
    # ~1 ms per chunk of the batch and changes no key the tasks read.
    source_blocks = source.to_delayed(optimize_graph=False)
    source_blocks = source_blocks.reshape(source_blocks.shape[leading_axes:])
    token = tokenize(source.name, source_begin, transform, out_begin, out_shape, order,
                     chunk_shape, normalization)
    dtype = source.dtype if normalization is None else np.dtype(normalization.dtype)
    function = _warp_from_blocks if node_name is None else NodeTask(_warp_from_blocks,
                                                                    node_name)
    transform_task = dask.delayed(transform, name=f"{name}-transform-{token}")
    ranges = [_chunk_ranges(b, s, c) for b, s, c in zip(out_begin, out_shape, chunk_shape,
                                                      strict=True)]
    chunks = np.empty([len(r) for r in ranges], dtype=object)

    def chunk_array(number, begins, box_begin, box_end, chunk_begin, chunk_size, blocks,
                    scale_shift=None):
        key = token if scale_shift is None else tokenize(token, scale_shift)
        # Blocks go in as top-level arguments: dask links those without re-optimizing.
        task = dask.delayed(function, pure=True)(
            begins, box_begin, box_end, transform_task, chunk_begin, chunk_size, order,
            normalization, scale_shift, *blocks, dask_key_name=f"{name}-{key}-{number}",
        )
        chunk = da.from_delayed(task, shape=leading + chunk_size, dtype=dtype,
                                name=f"{name}-block-{key}-{number}")
        # warp_block allocates its output on every run: computed, it needs no defensive copy.
        return mark_own_chunk(chunk)

    for number, index in enumerate(itertools.product(*(range(len(r)) for r in ranges))):
        chunk_begin = tuple(ranges[d][i][0] for d, i in enumerate(index))
        chunk_size = tuple(ranges[d][i][1] for d, i in enumerate(index))
        if chunks.size == 1:
            # The whole output: its exact box (planned upstream, cached on the transform).
            box_begin, box_end = tight_source_box(transform, out_begin, out_shape)
        else:
            box_begin, box_end = source_box(transform, chunk_begin, chunk_size)
        if any(b < sb for b, sb in zip(box_begin, source_begin, strict=True)) or any(
            e > se for e, se in zip(box_end, source_end, strict=True)
        ):
            # The chunk's bound may reach past a source cut to the exact box of the whole
            # output, which holds every coordinate of every chunk: then clip to the source.
            box_begin, box_end = tight_source_box(transform, out_begin, out_shape)
        if any(b < sb for b, sb in zip(box_begin, source_begin, strict=True)) or any(
            e > se for e, se in zip(box_end, source_end, strict=True)
        ):
            raise ValueError(
                f"the output chunk at {chunk_begin} of shape {chunk_size} reads the source box "
                f"[{box_begin}, {box_end}), outside the source [{source_begin}, {source_end})"
            )
        box_begin = tuple(max(b, sb) for b, sb in zip(box_begin, source_begin, strict=True))
        box_end = tuple(min(e, se) for e, se in zip(box_end, source_end, strict=True))
        # The source blocks that the chunk's box overlaps, and where each starts.
        spans = [_block_span(block_starts[d], box_begin[d], box_end[d]) for d in range(dims)]
        selected = source_blocks[tuple(slice(first, last + 1) for first, last in spans)]
        begins = [block_starts[d][first:last + 1].tolist() for d, (first, last) in
                  enumerate(spans)]
        parts = (number, begins, box_begin, box_end, chunk_begin, chunk_size,
                 tuple(selected.ravel()))
        chunks[index] = chunk_array(*parts)
    if chunks.size > 1:
        return da.block(chunks.tolist())
    # One chunk: an IntensityAugment downstream may rebuild its task with a ScaleShift.
    return mark_warp_output(chunks.flat[0], lambda post: chunk_array(*parts, post))
