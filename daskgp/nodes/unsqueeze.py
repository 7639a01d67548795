"""``Unsqueeze``: inserts a channel axis of length one into arrays, chunk by chunk."""

from __future__ import annotations

import numpy as np
from dask.array import Array as DaskArray
from dask.base import tokenize

from ..batch import Array
from ..errors import PipelineRequestError
from ..keys import ArrayKey
from ..names import task_prefix
from ._channel_axis import ChannelAxisFilter


class Unsqueeze(ChannelAxisFilter):
    """Unsqueeze arrays at a given (channel) axis.

    The new axis must go before the spatial axes (anywhere in a nonspatial array).

    Args:
        arrays (list of ArrayKey): the arrays to unsqueeze.
        axis (int): position where the new axis of length one is placed (default 0); a
            negative axis counts from the end of the result, as in ``numpy.expand_dims``.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.zeros((4, 4)))
        >>> request = gp.BatchRequest()
        >>> request.add(raw, (4, 4))
        >>> with gp.build(source + gp.Unsqueeze([raw]), scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.shape
        (1, 4, 4)
    """

    action = "unsqueeze"

    def change(self, key: ArrayKey, array: Array) -> DaskArray:
        data = array.data
        spatial = self.spatial_dims(array)
        # numpy's (and gunpowder's) rule: a negative axis counts from the end of the result.
        axis = self.axis + data.ndim + 1 if self.axis < 0 else self.axis
        if not 0 <= axis <= data.ndim - spatial:
            raise PipelineRequestError(
                f"{self.name()}: cannot insert axis {self.axis} into {key} with shape "
                f"{data.shape} (ROI {array.spec.roi}): new axes go before the {spatial} "
                "spatial axes"
            )
        name = f"{task_prefix(self.name())}-{tokenize(data.name, axis)}"
        data = data.map_blocks(np.expand_dims, axis=axis, new_axis=axis, name=name)
        return data
