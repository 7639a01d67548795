"""How a stored array maps to an ``ArraySpec``: which axes are channels, its ROI and dtype.

Pure functions of the array's shape, dtype and metadata; sources call them once, at setup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import Coordinate, Roi
from ..specs import ArraySpec, guess_interpolatable
from .metadata import MetadataError, SpatialMetadata


@dataclass(frozen=True)
class StorageLayout:
    """Where the spatial and channel axes of a stored array are.

    Attributes:
        shape (tuple of int): the stored shape.
        chunks (tuple of int or None): the storage chunk shape (None: contiguous).
        spatial_dims (int): number of spatial axes (the voxel size's dimensions).
        channels_first (bool): channel axes lead in storage (else they trail).
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...] | None
    spatial_dims: int
    channels_first: bool

    @property
    def channel_shape(self) -> tuple[int, ...]:
        """The shape of the channel axes, in storage order."""
        channels = len(self.shape) - self.spatial_dims
        return self.shape[:channels] if self.channels_first else self.shape[self.spatial_dims:]

    @property
    def spatial_shape(self) -> Coordinate:
        """The shape of the spatial axes, in voxels."""
        channels = len(self.shape) - self.spatial_dims
        if self.channels_first:
            return Coordinate(self.shape[channels:])
        return Coordinate(self.shape[: self.spatial_dims])

    @property
    def axes(self) -> tuple[int, ...]:
        """The storage axis of each axis of the array as served (channels first).

        Example:
            >>> StorageLayout((10, 20, 3), None, 2, channels_first=False).axes
            (2, 0, 1)
        """
        ndim, dims = len(self.shape), self.spatial_dims
        if self.channels_first:
            return tuple(range(ndim))
        return tuple(range(dims, ndim)) + tuple(range(dims))

    def storage_region(
        self, begin: Sequence[int], shape: Sequence[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(start, stop) in storage order of a spatial region in voxels, all channels.

        Example:
            >>> StorageLayout((3, 10, 20), None, 2, True).storage_region((2, 4), (5, 6))
            ((0, 2, 4), (3, 7, 10))
        """
        spatial_start = tuple(int(b) for b in begin)
        spatial_stop = tuple(int(b) + int(s) for b, s in zip(begin, shape, strict=True))
        channel_start = (0,) * len(self.channel_shape)
        if self.channels_first:
            return channel_start + spatial_start, self.channel_shape + spatial_stop
        return spatial_start + channel_start, spatial_stop + self.channel_shape


def _check_spatial_axes(spatial_axes: tuple[bool, ...], dims: int, channels_first: bool) -> None:
    channels = len(spatial_axes) - dims
    expected = (False,) * channels + (True,) * dims
    if not channels_first:
        expected = (True,) * dims + (False,) * channels
    if tuple(spatial_axes) != expected:
        kinds = ["space" if s else "channel/time" for s in spatial_axes]
        raise MetadataError(
            f"the OME-NGFF axes {kinds} do not match {dims} spatial axes with channels "
            f"{'first' if channels_first else 'last'} (channels_first={channels_first})"
        )


def dataset_array_spec(
    shape: Sequence[int],
    dtype: np.dtype,
    chunks: Sequence[int] | None,
    metadata: SpatialMetadata,
    user_spec: ArraySpec | None,
    channels_first: bool,
) -> tuple[ArraySpec, StorageLayout]:
    """The ``ArraySpec`` a source provides for a stored array, and the array's layout.

    Fields set in ``user_spec`` win (as gunpowder's ``array_specs``); then metadata; then voxel
    size 1 on every axis not known to be a channel, and offset 0. Raises ``MetadataError`` for
    a voxel size with more dimensions than the array, an offset that is not a multiple of the
    voxel size, channels last without a channel axis, or a dtype other than the stored one.

    Example:
        >>> spec, layout = dataset_array_spec(
        ...     (2, 10, 20), np.dtype("float32"), (1, 5, 5),
        ...     SpatialMetadata(voxel_size=Coordinate(4, 2), offset=Coordinate(8, 0)),
        ...     None, channels_first=True)
        >>> spec.roi, layout.channel_shape
        ([8:48, 0:40] (40, 40), (2,))
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    spec = ArraySpec() if user_spec is None else user_spec.copy()

    if spec.voxel_size is None:
        if metadata.voxel_size is not None:
            spec.voxel_size = metadata.voxel_size
        else:
            spatial = metadata.spatial_axes or (True,) * ndim
            spec.voxel_size = Coordinate((1,) * sum(spatial))
    dims = spec.voxel_size.dims
    if dims > ndim:
        raise MetadataError(
            f"wrong number of dimensions: voxel size {spec.voxel_size} has {dims} dimensions, "
            f"but the array has only {ndim} (shape {shape})"
        )
    if not channels_first and dims == ndim:
        raise MetadataError(
            f"channels_first=False, but the array of shape {shape} has no channel axis "
            f"(voxel size {spec.voxel_size} covers all {ndim} axes)"
        )
    if metadata.spatial_axes is not None:
        _check_spatial_axes(metadata.spatial_axes, dims, channels_first)
    layout = StorageLayout(shape, None if chunks is None else tuple(chunks), dims,
                           channels_first)

    if spec.roi is None:
        offset = metadata.offset if metadata.offset is not None else Coordinate((0,) * dims)
        if offset.dims != dims:
            raise MetadataError(
                f"offset {offset} has {offset.dims} dimensions, but voxel size "
                f"{spec.voxel_size} has {dims}"
            )
        spec.roi = Roi(offset, layout.spatial_shape * spec.voxel_size)
    elif not spec.roi.shape.is_multiple_of(spec.voxel_size) or any(
        s > a for s, a in zip(spec.roi.shape / spec.voxel_size, layout.spatial_shape, strict=True)
    ):
        raise MetadataError(
            f"the ROI {spec.roi} given in array_specs does not fit the array: its shape must "
            f"be a multiple of the voxel size {spec.voxel_size} and at most "
            f"{layout.spatial_shape * spec.voxel_size}"
        )
    if not spec.roi.begin.is_multiple_of(spec.voxel_size):
        raise MetadataError(
            f"offset {spec.roi.begin} is not a multiple of the voxel size {spec.voxel_size}"
        )

    if spec.dtype is not None and np.dtype(spec.dtype) != np.dtype(dtype):
        raise MetadataError(
            f"dtype {spec.dtype} given in array_specs, but the array is {np.dtype(dtype)}"
        )
    spec.dtype = np.dtype(dtype)
    if spec.interpolatable is None:
        spec.interpolatable = guess_interpolatable(spec.dtype)
    return spec, layout
