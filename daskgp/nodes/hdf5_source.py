"""``Hdf5Source``: serves datasets of an HDF5 file, lazily, chunk by chunk, on any scheduler."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..io.dataset_source import DatasetSource
from ..io.hdf5_reader import Hdf5Reader
from ..keys import ArrayKey
from ..specs import ArraySpec


class Hdf5Source(DatasetSource):
    """An HDF5 data source, as gunpowder's.

    Provides arrays from HDF5 datasets. The voxel size and offset (world units, one value per
    spatial axis) come from the dataset's ``resolution`` and ``offset`` attributes; without
    them, voxel size 1 and offset 0. Leading axes beyond the voxel size's dimensions are
    channels.

    Each request builds a dask array over the requested region only, in read tasks of whole
    HDF5 chunks of up to 16 MiB (a batch-sized region: one task; one task for a contiguous
    dataset), named ``hdf5-source-…``. Tasks carry the
    file name, not an h5py object: each process opens the file once (read-only), so the
    source works with the ``"sync"``, ``"threads"``, ``"processes"`` and ``distributed``
    schedulers. h5py serialises reads within a process; use processes for parallel reads.

    Args:
        filename (str or os.PathLike): the HDF5 file.
        datasets (dict, ArrayKey -> str): the dataset path that provides each key.
        array_specs (dict, ArrayKey -> ArraySpec, optional): override what the metadata
            says, e.g. a missing ``voxel_size``; only fields that are not None are used.
        channels_first (bool): channel axes lead in storage (default). With False, channels
            are the trailing axes of the stored array and are moved first, lazily.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.Hdf5Source("sample.hdf", {raw: "volumes/raw"},
        ...                        {raw: ArraySpec(voxel_size=(40, 4, 4))})
        >>> with gp.build(source) as p:  # doctest: +SKIP
        ...     batch = p.request_batch(request)
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        datasets: Mapping[ArrayKey, str],
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
    ) -> None:
        super().__init__(datasets, array_specs, channels_first)
        self.filename = filename

    def _make_reader(self, dataset: str) -> Hdf5Reader:
        return Hdf5Reader(self.filename, dataset)
