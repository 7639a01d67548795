"""``ArraySource``: serves an in-memory numpy or dask array in world coordinates."""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..batch import Array, Batch
from ..geometry import Coordinate, Roi, roi_to_voxel_slices
from ..keys import ArrayKey
from ..provider import BatchProvider
from ..request import BatchRequest
from ..specs import ArraySpec, guess_interpolatable


class ArraySource(BatchProvider):
    """Provide ``array`` (numpy or dask) under ``key``.

    Args:
        key (ArrayKey): the key to provide.
        array (numpy.ndarray, dask.array.Array or Array): the data; leading axes beyond the
            spec's ROI dimensions are channels.
        spec (ArraySpec, optional): ROI and voxel size in world units; by default voxel size 1
            in every axis and the ROI starts at 0. dtype and ``interpolatable`` are filled in.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = ArraySource(raw, np.zeros((10, 20)),
        ...                      ArraySpec(roi=Roi((0, 0), (40, 80)), voxel_size=(4, 4)))
    """

    lazy = True

    def __init__(self, key: ArrayKey, array, spec: ArraySpec | None = None) -> None:
        if isinstance(array, Array):
            array, spec = array.data, (array.spec if spec is None else spec)
        if not isinstance(array, (np.ndarray, da.Array)):
            array = np.asarray(array)
        spec = ArraySpec() if spec is None else spec.copy()
        if spec.voxel_size is None:
            dims = spec.roi.dims if spec.roi is not None else array.ndim
            spec.voxel_size = Coordinate((1,) * dims)
        if spec.roi is None:
            shape = Coordinate(array.shape[array.ndim - spec.voxel_size.dims:])
            spec.roi = Roi((0,) * shape.dims, shape * spec.voxel_size)
        spec.dtype = array.dtype
        if spec.interpolatable is None:
            spec.interpolatable = guess_interpolatable(array.dtype)
        Array(array, spec)  # validates shape against ROI and voxel size
        self.key = key
        self.array = array
        self.array_spec = spec

    def setup(self) -> None:
        self.provides(self.key, self.array_spec)

    def provide(self, request: BatchRequest) -> Batch:
        batch = Batch()
        roi = request[self.key].roi
        spec = self.array_spec.copy()
        spec.roi = roi
        slices = roi_to_voxel_slices(roi, self.array_spec.roi, spec.voxel_size)
        channels = (slice(None),) * (self.array.ndim - roi.dims)
        data = self.array[channels + slices]
        if isinstance(data, np.ndarray):
            data = da.from_array(data, chunks=data.shape, name=False)
        batch[self.key] = Array(data, spec)
        return batch
