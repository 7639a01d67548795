"""``Unsqueeze``: inserts a channel axis of length one into arrays, chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class Unsqueeze(BatchFilter):
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

    lazy = True

    def __init__(self, arrays: Sequence[ArrayKey], axis: int = 0) -> None:
        self.arrays = list(arrays)
        self.axis = axis

    def setup(self) -> None:
        self.enable_autoskip()
        for array in self.arrays:
            self.updates(array, self.upstream_spec(array, "unsqueeze"))

    def prepare(self, request: BatchRequest) -> BatchRequest:
        dependencies = BatchRequest()
        for array in self.arrays:
            if array in request:
                dependencies[array] = request[array].copy()
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        outputs = Batch()
        for key in self.arrays:
            if key not in batch.arrays or key not in request:
                continue
            array = batch[key]
            data = array.data
            spatial = 0 if array.spec.nonspatial else array.spec.roi.dims
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
            outputs[key] = Array(data, array.spec, array.attrs)
        return outputs
