"""``GPArraySource``: serves a daskgp ``Array`` (data and spec together) under a key, as
gunpowder's ``GPArraySource`` serves a gunpowder ``Array``."""

from __future__ import annotations

from ..batch import Array
from ..errors import PipelineSetupError
from ..keys import ArrayKey
from .array_source import ArraySource


class GPArraySource(ArraySource):
    """Provide ``array`` (an ``Array``: numpy or dask data with its ``ArraySpec``) under
    ``key``, at the ROI and voxel size of its spec.

    gunpowder 1.5 renamed its ``Array``-based source to ``GPArraySource`` when ``ArraySource``
    came to take a ``funlib.persistence`` array; in daskgp both are one node, so this is
    ``ArraySource(key, array)`` that insists on an ``Array``. The data stays lazy: a request
    slices it instead of deep-copying a crop.

    Args:
        key (ArrayKey): the key to provide.
        array (Array): the data and its spec (ROI, voxel size, interpolatable).

    Example:
        >>> import numpy as np
        >>> from daskgp import Array, ArrayKey, ArraySpec, Roi
        >>> raw = ArrayKey("RAW")
        >>> spec = ArraySpec(roi=Roi((0, 0), (20, 40)), voxel_size=(2, 2))
        >>> source = GPArraySource(raw, Array(np.zeros((10, 20), np.uint8), spec))
    """

    def __init__(self, key: ArrayKey, array: Array) -> None:
        if not isinstance(array, Array):
            raise PipelineSetupError(
                f"GPArraySource({key}): array must be a daskgp Array (data and spec), got "
                f"{type(array).__name__}; for a bare numpy or dask array use "
                "ArraySource(key, array, spec)"
            )
        super().__init__(key, array)
