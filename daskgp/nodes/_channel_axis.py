"""The part ``Squeeze`` and ``Unsqueeze`` share: a lazy filter that changes one channel axis of
some arrays, chunk by chunk, and leaves their specs and ROIs alone."""

from __future__ import annotations

from collections.abc import Sequence

from dask.array import Array as DaskArray

from ..batch import Array, Batch
from ..keys import ArrayKey
from ..provider import BatchFilter
from ..request import BatchRequest


class ChannelAxisFilter(BatchFilter):
    """Base of the channel-axis nodes: subclasses name their action (for error messages) and
    implement :meth:`change`, which gets each requested array's dask data and returns the new
    data.

    Example:
        >>> class Same(ChannelAxisFilter):
        ...     action = "keep"
        ...     def change(self, key, array):
        ...         return array.data
    """

    lazy = True
    action = "change"

    def __init__(self, arrays: Sequence[ArrayKey], axis: int = 0) -> None:
        self.arrays = list(arrays)
        self.axis = axis

    def setup(self) -> None:
        self.enable_autoskip()
        for array in self.arrays:
            self.updates(array, self.upstream_spec(array, self.action))

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
            outputs[key] = Array(self.change(key, array), array.spec, array.attrs)
        return outputs

    def change(self, key: ArrayKey, array: Array) -> DaskArray:
        """The new data of ``array`` (the batch's array under ``key``)."""
        raise NotImplementedError

    @staticmethod
    def spatial_dims(array: Array) -> int:
        """How many trailing axes of ``array`` are spatial (none for a nonspatial array)."""
        return 0 if array.spec.nonspatial else array.spec.roi.dims
