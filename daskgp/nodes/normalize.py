"""``Normalize``: scales an intensity array to floats in [0, 1], chunk by chunk.

The factor follows the dtype as in gunpowder; the spec's dtype becomes the output dtype.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..transforms import Normalization, mark_normalized


class Normalize(BatchFilter):
    """Normalize the values of an array to floats between 0 and 1, based on its dtype.

    Without ``factor``: uint8 is scaled by 1/255, uint16 by 1/65535, and floats by 1 (they
    must already lie in [0, 1]); other dtypes need a ``factor``. The result is
    ``data.astype(dtype) * factor``, computed lazily with ``map_blocks``.

    Difference from gunpowder: the [0, 1] check of float data runs inside each chunk's task
    (an error at compute time that names the node and the key), instead of reading the
    array's min and max while the graph is built; all float dtypes are accepted, not only
    float32.

    Args:
        array (ArrayKey): the array to normalize.
        factor (float, optional): the factor to multiply with; by default chosen from the
            dtype as above.
        dtype (numpy dtype): the dtype of the normalized array (default ``np.float32``).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.array([0, 51, 255], dtype=np.uint8))
        >>> request = gp.BatchRequest()
        >>> request.add(raw, (3,))
        >>> with gp.build(source + gp.Normalize(raw), scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.round(4)
        array([0. , 0.2, 1. ], dtype=float32)
    """

    lazy = True

    def __init__(self, array: ArrayKey, factor: float | None = None,
                 dtype=np.float32) -> None:
        self.array = array
        self.factor = factor
        self.dtype = np.dtype(dtype)

    def setup(self) -> None:
        spec = self.upstream_spec(self.array, "normalize")
        if spec.dtype is not None and self.factor is None:
            self._factor(spec.dtype, PipelineSetupError)  # fail early on unknown dtypes
        spec.dtype = self.dtype
        self.updates(self.array, spec)

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.array not in request:
            return None
        # Upstream has the input dtype; changed in place (BatchFilter would keep ours).
        request[self.array].dtype = None
        return request

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.array not in batch.arrays:
            return None
        array = batch[self.array]
        factor = self.factor
        check_range = False
        if factor is None:
            factor = self._factor(array.data.dtype, PipelineRequestError)
            check_range = array.data.dtype.kind == "f"
        where = f"{self.name()}: {self.array} (ROI {array.spec.roi})"
        name = f"{task_prefix(self.name())}-{tokenize(array.data.name, factor, self.dtype)}"
        data = da.map_blocks(_normalize_block, array.data, factor, self.dtype, check_range,
                             where, dtype=self.dtype, name=name)
        if not check_range:
            # A warp downstream (ElasticAugment, DeformAugment) may read array.data instead
            # and normalize each section as it interpolates: the same bits, one pass less.
            data = mark_normalized(data, array.data, Normalization(factor, self.dtype))
        spec = array.spec.copy()
        spec.dtype = self.dtype
        outputs = Batch()
        outputs[self.array] = Array(data, spec, array.attrs)
        return outputs

    def _factor(self, dtype: np.dtype, error: type) -> float:
        dtype = np.dtype(dtype)
        if dtype == np.uint8:
            return 1.0 / 255
        if dtype == np.uint16:
            return 1.0 / (256 * 256 - 1)
        if dtype.kind == "f":
            return 1.0
        raise error(
            f"{self.name()}: automatic normalization of {self.array} with dtype {dtype} is "
            "not implemented; please provide a factor"
        )


def _normalize_block(block: np.ndarray, factor: float, dtype: np.dtype, check_range: bool,
                     where: str) -> np.ndarray:
    if check_range and block.size and (block.min() < 0 or block.max() > 1):
        raise PipelineRequestError(
            f"{where}: values are float but not in [0, 1] (found {block.min()} to "
            f"{block.max()}), so Normalize does not know how to scale them; please provide a "
            "factor"
        )
    # One pass and one allocation; the same rounding as ``(block.astype(dtype) * factor)``.
    out = block.astype(dtype)
    return np.multiply(out, factor, out=out, casting="unsafe")
