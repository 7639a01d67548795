"""``ZarrSource``: serves arrays of a zarr container (format 2 or 3), lazily, chunk by chunk."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

from zarr.abc.store import Store

from ..errors import PipelineSetupError
from ..io.dataset_source import DatasetSource
from ..io.zarr_reader import ZarrReader
from ..keys import ArrayKey
from ..specs import ArraySpec


class ZarrSource(DatasetSource):
    """A `zarr <https://zarr.dev>`_ data source (zarr format 2 or 3), as gunpowder's.

    Provides arrays from zarr datasets. The voxel size and offset (world units, one value per
    spatial axis) come from the dataset's ``resolution`` and ``offset`` attributes, else from
    OME-NGFF ``multiscales`` metadata of the dataset's group (0.4, or 0.5 under ``"ome"``;
    ``scale`` and ``translation`` of the spatial axes); without either, voxel size 1 and
    offset 0. Leading axes beyond the voxel size's dimensions are channels.

    Each request builds a dask array over the requested region only, in read tasks of whole
    storage chunks of up to 16 MiB (a batch-sized region: one task, one zarr call; named
    ``zarr-source-…``; each storage chunk is read by one task): the cost of a batch follows
    the batch, not the volume, and a task reads nothing outside the request's chunks.
    ``dask_array(key)`` gives the whole dataset lazily.

    Args:
        store (str, os.PathLike or zarr Store): path or URL of the zarr container, or a zarr
            ``Store`` object. A ``Store`` object is pickled into each read task: with the
            ``"processes"`` or ``distributed`` schedulers it must be picklable and mean the
            same data in the workers; otherwise use it with ``"sync"`` or ``"threads"``.
        datasets (dict, ArrayKey -> str): the dataset (array path) that provides each key.
        array_specs (dict, ArrayKey -> ArraySpec, optional): override what the metadata
            says, e.g. a missing ``voxel_size``; only fields that are not None are used.
        channels_first (bool): channel axes lead in storage (default). With False, channels
            are the trailing axes of the stored array and are moved first, lazily.
        filename (str, optional): deprecated name of ``store`` (gunpowder compatibility).

    Example:
        >>> raw, gt = ArrayKey("RAW"), ArrayKey("GT")
        >>> source = gp.ZarrSource("sample.zarr", {raw: "volumes/raw",
        ...                                        gt: "volumes/labels/neuron_ids"},
        ...                        {gt: ArraySpec(interpolatable=False)})
        >>> with gp.build(source) as p:  # doctest: +SKIP
        ...     batch = p.request_batch(request)
    """

    def __init__(
        self,
        store: str | os.PathLike | Store | None = None,
        datasets: Mapping[ArrayKey, str] | None = None,
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
        filename: str | os.PathLike | None = None,
    ) -> None:
        if filename is not None:
            if store is not None:
                raise PipelineSetupError("ZarrSource: give 'store' or 'filename', not both")
            warnings.warn("ZarrSource: 'filename' is deprecated, use 'store'",
                          DeprecationWarning, stacklevel=2)
            store = filename
        if store is None:
            raise PipelineSetupError("ZarrSource: 'store' (a path or zarr Store) is required")
        super().__init__(datasets, array_specs, channels_first)
        self.store = store

    def _make_reader(self, dataset: str) -> ZarrReader:
        return ZarrReader(self.store, dataset)
