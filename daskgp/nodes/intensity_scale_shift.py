"""``IntensityScaleShift``: ``data * scale + shift`` on an array, chunk by chunk."""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class IntensityScaleShift(BatchFilter):
    """Scale the intensities of an array by ``scale``, then add ``shift``.

    Computed lazily with ``map_blocks``; the dtype follows numpy's rules for
    ``data * scale + shift`` (float32 data stays float32 with Python floats; integer data
    becomes float64 with float parameters), and the spec says so.

    Args:
        array (ArrayKey): the array to modify.
        scale (float): the factor to multiply with.
        shift (float): the value added after scaling.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.array([0.0, 0.5, 1.0], dtype=np.float32))
        >>> request = gp.BatchRequest()
        >>> request.add(raw, (3,))
        >>> with gp.build(source + gp.IntensityScaleShift(raw, 2, -1), scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data
        array([-1.,  0.,  1.], dtype=float32)
    """

    lazy = True

    def __init__(self, array: ArrayKey, scale: float, shift: float) -> None:
        self.array = array
        self.scale = scale
        self.shift = shift

    def setup(self) -> None:
        spec = self.upstream_spec(self.array, "scale and shift")
        if spec.dtype is not None:
            spec.dtype = self._output_dtype(spec.dtype)
        self.updates(self.array, spec)

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.array not in request:
            return None
        # Upstream may have another dtype; changed in place (BatchFilter would keep ours).
        request[self.array].dtype = None
        return request

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.array not in batch.arrays:
            return None
        array = batch[self.array]
        dtype = self._output_dtype(array.data.dtype)
        token = tokenize(array.data.name, self.scale, self.shift)
        data = da.map_blocks(_scale_shift_block, array.data, self.scale, self.shift,
                             dtype=dtype, name=f"{task_prefix(self.name())}-{token}")
        spec = array.spec.copy()
        spec.dtype = dtype
        outputs = Batch()
        outputs[self.array] = Array(data, spec, array.attrs)
        return outputs

    def _output_dtype(self, dtype: np.dtype) -> np.dtype:
        return _scale_shift_block(np.zeros((1,), dtype), self.scale, self.shift).dtype


def _scale_shift_block(block: np.ndarray, scale, shift) -> np.ndarray:
    return block * scale + shift
