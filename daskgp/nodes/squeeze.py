"""``Squeeze``: removes a channel axis of length one from arrays, chunk by chunk."""

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


class Squeeze(BatchFilter):
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

    lazy = True

    def __init__(self, arrays: Sequence[ArrayKey], axis: int = 0) -> None:
        self.arrays = list(arrays)
        self.axis = axis

    def setup(self) -> None:
        self.enable_autoskip()
        for array in self.arrays:
            self.updates(array, self.upstream_spec(array, "squeeze"))

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
            axis = self.axis + data.ndim if self.axis < 0 else self.axis
            if not 0 <= axis < data.ndim - spatial or data.shape[axis] != 1:
                raise PipelineRequestError(
                    f"{self.name()}: cannot squeeze axis {self.axis} of {key} with shape "
                    f"{data.shape} (ROI {array.spec.roi}): only channel axes of length 1, "
                    f"before the {spatial} spatial axes, can be removed"
                )
            name = f"{task_prefix(self.name())}-{tokenize(data.name, axis)}"
            data = data.map_blocks(np.squeeze, axis=axis, drop_axis=axis, name=name)
            outputs[key] = Array(data, array.spec, array.attrs)
        return outputs
