"""``PrecomputedSource``: serves the batches written by ``daskgp precompute``, lazily."""

from __future__ import annotations

import os

from ..batch import Array, Batch
from ..errors import BatchRequestError, SourceError
from ..io.region import read_region
from ..io.zarr_reader import ZarrReader
from ..keys import ArrayKey
from ..names import task_prefix
from ..precompute import LayoutError, PrecomputeLayout, read_completed, read_layout
from ..provider import BatchProvider
from ..request import BatchRequest


class PrecomputedSource(BatchProvider):
    """Provide the stored batches of a ``daskgp precompute`` output, one per request.

    Provides every stored key with the ROI, voxel size and dtype it was stored with. A request
    that is batch *i* of a pipeline's sequence (``gp.build(pipeline, seed=...)`` numbers its
    requests) gets stored batch ``i % N``, so a pipeline on this source yields the precomputed
    batches in order and then starts over; a request with a seed of its own gets batch
    ``random_seed % N``. Each request builds a dask array that reads only its batch's chunk
    (one task per key, named ``precomputed-source-…``).

    Requested ROIs must equal the stored ones: the batches were cut for one request, and this
    source neither crops nor pads them. Setup fails unless every batch has been written.

    Args:
        path (str or os.PathLike): the zarr group written by ``daskgp precompute``.

    Example:
        >>> source = PrecomputedSource("batches.zarr")  # doctest: +SKIP
        >>> with gp.build(source + gp.tensorflow.Train(...), seed=0) as p:  # doctest: +SKIP
        ...     batch = p.request_batch(request)   # stored batch 0, then 1, 2, ...
    """

    lazy = True
    remove_placeholders = True

    def __init__(self, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        self.path = path if "://" in path else os.path.abspath(path)
        self._layout: PrecomputeLayout | None = None
        self._readers: dict[ArrayKey, ZarrReader] = {}

    def setup(self) -> None:
        try:
            layout = read_layout(self.path)
        except LayoutError as error:
            raise SourceError(f"{self.name()}: {error}") from error
        if layout is None:
            raise SourceError(f"{self.name()}: {self.path} does not exist")
        missing = (~read_completed(self.path, layout.num_batches)).nonzero()[0]
        if len(missing):
            raise SourceError(
                f"{self.name()}: {len(missing)} of the {layout.num_batches} batches in "
                f"{self.path} are not written yet (first: batch {missing[0]}); rerun "
                "`daskgp precompute` to finish them"
            )
        self._layout = layout
        self._readers = {}
        for stored in layout.arrays:
            key = ArrayKey(stored.name)
            self._readers[key] = ZarrReader(self.path, stored.name)
            self.provides(key, stored.spec())

    def provide(self, request: BatchRequest) -> Batch:
        index = self.batch_index(request)
        stored_arrays = {stored.name: stored for stored in self._layout.arrays}
        batch = Batch()
        for key, request_spec in request.array_specs.items():
            stored = stored_arrays[key.identifier]
            if not stored.nonspatial and request_spec.roi not in (None, stored.roi):
                raise BatchRequestError(
                    f"{self.name()}: {key} requested with ROI {request_spec.roi}, but "
                    f"{self.path} stores it with ROI {stored.roi}; a precomputed batch is "
                    "served as stored, request the ROIs of the precompute request"
                )
            shape = stored.shape
            data = read_region(
                self._readers[key], (index, *(0,) * len(shape)), (index + 1, *shape),
                range(len(shape) + 1), stored.dtype, (1, *shape), task_prefix(self.name()),
            )[0]
            batch[key] = Array(data, stored.spec())
        return batch

    def batch_index(self, request: BatchRequest) -> int:
        """The stored batch served for ``request``."""
        num_batches = self._layout.num_batches
        if request.sequence is not None:
            return request.sequence[1] % num_batches
        return (request.random_seed or 0) % num_batches
