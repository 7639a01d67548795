"""``AsType``: casts an array to another dtype, in place or into a new key, chunk by chunk."""

from __future__ import annotations

import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..specs import ArraySpec


class AsType(BatchFilter):
    """Cast an array to a different dtype (e.g. ``np.float32`` to ``np.uint8``).

    The cast is numpy's ``astype`` (no rounding or clipping), computed lazily.

    Args:
        source (ArrayKey): the array to cast.
        target_dtype (str or numpy dtype): the dtype to cast to.
        target (ArrayKey, optional): the key to store the cast array under; by default
            ``source`` is replaced. With a new key, ``source`` stays as it is and the target
            has the source's spec (ROI, voxel size) with the new dtype.

    Example:
        >>> raw, raw_int = ArrayKey("RAW"), ArrayKey("RAW_INT")
        >>> source = gp.ArraySource(raw, np.array([0.5, 1.5, 2.5]))
        >>> request = gp.BatchRequest()
        >>> request.add(raw_int, (3,))
        >>> with gp.build(source + gp.AsType(raw, np.uint8, raw_int), scheduler="sync") as p:
        ...     p.request_batch(request)[raw_int].data
        array([0, 1, 2], dtype=uint8)
    """

    lazy = True

    def __init__(self, source: ArrayKey, target_dtype, target: ArrayKey | None = None) -> None:
        if not isinstance(source, ArrayKey) or not isinstance(target, (ArrayKey, type(None))):
            raise PipelineSetupError(
                f"{type(self).__name__}: source {source!r} and target {target!r} must be "
                "ArrayKeys"
            )
        self.source = source
        self.target = source if target is None else target
        self.target_dtype = np.dtype(target_dtype)

    def setup(self) -> None:
        spec = self.upstream_spec(self.source, "cast")
        spec.dtype = self.target_dtype
        if self.target == self.source:
            self.updates(self.source, spec)
        else:
            self.provides(self.target, spec)
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.target not in request:
            return None
        if self.target == self.source:
            # Upstream has the input dtype; changed in place (BatchFilter would keep ours).
            request[self.source].dtype = None
            return request
        dependencies = BatchRequest()
        dependencies[self.source] = ArraySpec(roi=request[self.target].roi)
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.target not in request:
            return None
        source = batch[self.source]
        if source.spec.roi is not None and not source.spec.nonspatial:
            source = source.crop(request[self.target].roi)
        token = tokenize(source.data.name, self.target_dtype)
        data = source.data.map_blocks(_cast_block, self.target_dtype, dtype=self.target_dtype,
                                      name=f"{task_prefix(self.name())}-{token}")
        spec = source.spec.copy()
        spec.dtype = self.target_dtype
        outputs = Batch()
        outputs[self.target] = Array(data, spec, source.attrs)
        return outputs


def _cast_block(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return block.astype(dtype)
