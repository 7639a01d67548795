"""``Squeeze``: removes a channel axis of length one from arrays, chunk by chunk."""

from __future__ import annotations

import numpy as np
from dask.array import Array as DaskArray
from dask.base import tokenize

from ..batch import Array
from ..errors import PipelineRequestError
from ..keys import ArrayKey
from ..names import task_prefix
from ._channel_axis import ChannelAxisFilter


class Squeeze(ChannelAxisFilter):
    """Squeeze arrays at a given (channel) axis.

    Only axes before the spatial ones may be removed (any axis of a nonspatial array); the
    axis must have length one. Negative axes count from the end, as in numpy.

    Args:
        arrays (list of ArrayKey): the arrays to squeeze.
        axis (int): position of the length-one axis to remove (default 0).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.zeros((1, 4, 4)), ArraySpec(voxel_size=(1, 1)))
        >>> request = gp.BatchRequest()
        >>> request.add(raw, (4, 4))
        >>> with gp.build(source + gp.Squeeze([raw]), scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.shape
        (4, 4)
    """

    action = "squeeze"

    def change(self, key: ArrayKey, array: Array) -> DaskArray:
        data = array.data
        spatial = self.spatial_dims(array)
        axis = self.axis + data.ndim if self.axis < 0 else self.axis
        if not 0 <= axis < data.ndim - spatial or data.shape[axis] != 1:
            raise PipelineRequestError(
                f"{self.name()}: cannot squeeze axis {self.axis} of {key} with shape "
                f"{data.shape} (ROI {array.spec.roi}): only channel axes of length 1, "
                f"before the {spatial} spatial axes, can be removed"
            )
        name = f"{task_prefix(self.name())}-{tokenize(data.name, axis)}"
        data = data.map_blocks(np.squeeze, axis=axis, drop_axis=axis, name=name)
        return data
