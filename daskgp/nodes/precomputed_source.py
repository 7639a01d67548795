"""``PrecomputedSource``: serves the batches written by ``daskgp precompute``, lazily."""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import BatchRequestError, SourceError
from ..io.checksums import data_checksum
from ..io.zarr_reader import ZarrReader
from ..keys import ArrayKey
from ..names import task_prefix
from ..precompute import CHECKSUMS, LayoutError, PrecomputeLayout, count_unwritten, read_layout
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

    A precomputed batch has no fill value: a chunk missing from the store raises
    ``SourceError`` naming the dataset, chunk and batch (zarr would read it as zeros), and a
    batch whose data differs from the checksum ``precompute`` stored with it raises too.

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
        missing, first = count_unwritten(self.path, layout.num_batches)
        if missing:
            raise SourceError(
                f"{self.name()}: {missing} of the {layout.num_batches} batches in "
                f"{self.path} are not written yet (first: batch {first}); rerun "
                "`daskgp precompute` to finish them"
            )
        self._layout = layout
        self._readers = {}
        self._checksums = None
        checksums = ZarrReader(self.path, CHECKSUMS)
        try:
            self._columns = {name: i for i, name in enumerate(checksums.attrs["columns"])}
            self._checksums = checksums
        except (SourceError, KeyError):  # written before precompute stored checksums
            self._columns = {}
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
            read = _ReadBatch(self._readers[key], self._checksums, index, stored,
                              self._columns.get(stored.name), self.name())
            name = f"{task_prefix(self.name())}-{tokenize(read)}"
            data = da.from_delayed(dask.delayed(read, pure=True)(dask_key_name=name),
                                   shape=stored.shape, dtype=np.dtype(stored.dtype),
                                   meta=np.empty((0,) * len(stored.shape), stored.dtype))
            batch[key] = Array(data, stored.spec())
        return batch

    def batch_index(self, request: BatchRequest) -> int:
        """The stored batch served for ``request``."""
        num_batches = self._layout.num_batches
        if request.sequence is not None:
            return request.sequence[1] % num_batches
        return (request.random_seed or 0) % num_batches


class _ReadBatch:
    """Task of ``PrecomputedSource``: read one stored batch of one array, refusing a missing
    chunk and checking the stored checksum."""

    def __init__(self, reader: ZarrReader, checksums: ZarrReader | None, index: int,
                 stored, column: int | None, node_name: str) -> None:
        self.reader, self.checksums, self.index = reader, checksums, index
        self.shape, self.name, self.column = tuple(stored.shape), stored.name, column
        self.node_name = node_name

    def __call__(self) -> np.ndarray:
        where = (f"{self.node_name}: batch {self.index} of array {self.name!r} in "
                 f"{self.reader.location}")
        chunk = (self.index, *(0,) * len(self.shape))
        selection = (slice(self.index, self.index + 1), *(slice(0, n) for n in self.shape))
        try:
            exists = self.reader.chunk_exists(chunk)
            data = self.reader.read(selection)[0] if exists else None
        except SourceError:
            raise
        except Exception as error:
            raise SourceError(
                f"{where}: chunk {', '.join(self.reader.chunk_keys(selection))} cannot be "
                f"read: {type(error).__name__}: {error}"
            ) from error
        if data is None:
            raise SourceError(
                f"{where}: chunk {self.reader.chunk_keys(selection)[0]} is missing from the "
                "store (deleted or never written); a precomputed batch has no fill value. "
                "Run `daskgp verify` on the output, and `daskgp precompute --overwrite`"
            )
        if self.checksums is not None and self.column is not None:
            expected = int(self.checksums.read((slice(self.index, self.index + 1),
                                                slice(self.column, self.column + 1)))[0, 0])
            if data_checksum(data) != expected:
                raise SourceError(
                    f"{where}: the data differs from the checksum stored when it was written "
                    f"({data_checksum(data)} != {expected}): the chunk "
                    f"{self.reader.chunk_keys(selection)[0]} is damaged"
                )
        return data

    def __dask_tokenize__(self) -> tuple:
        return ("_ReadBatch", tokenize(self.reader), self.index, self.column)
