"""``DatasetSource``: what ``ZarrSource`` and ``Hdf5Source`` share (gunpowder's Hdf5LikeSource).

Setup reads metadata once, in the driver; ``provide`` touches no file and builds a dask array
over just the requested region, one task per storage chunk it overlaps.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping

import dask.array as da

from ..batch import Array, Batch
from ..errors import PipelineSetupError, SourceError
from ..geometry import Coordinate
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchProvider
from ..request import BatchRequest
from ..specs import ArraySpec
from .layout import StorageLayout, dataset_array_spec
from .metadata import MetadataError, read_spatial_metadata
from .region import WorldGeometry, read_region

logger = logging.getLogger(__name__)


class DatasetSource(BatchProvider):
    """Base of sources that serve datasets of a chunked file; subclasses make the readers.

    Args:
        datasets (dict, ArrayKey -> str): the dataset path of each key.
        array_specs (dict, ArrayKey -> ArraySpec, optional): fields that override what the
            metadata says (only fields that are not None are used).
        channels_first (bool): channel axes lead in storage; with False they trail and are
            moved first (lazily, inside each read task).
    """

    lazy = True
    remove_placeholders = True
    #: Its reads follow a tile's translation (``daskgp predict`` plans one tile, runs many).
    translatable = True

    def __init__(
        self,
        datasets: Mapping[ArrayKey, str],
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
    ) -> None:
        if not isinstance(datasets, Mapping) or not datasets:
            raise PipelineSetupError(
                f"{self.name()}: datasets must be a non-empty dict ArrayKey -> dataset path, "
                f"got {datasets!r}"
            )
        for key, dataset in datasets.items():
            if not isinstance(key, ArrayKey) or not isinstance(dataset, str):
                raise PipelineSetupError(
                    f"{self.name()}: datasets must map ArrayKey -> str, got {key!r}: {dataset!r}"
                )
        self.datasets = dict(datasets)
        self.array_specs = dict(array_specs or {})
        self.channels_first = bool(channels_first)
        self._readers: dict = {}
        self._layouts: dict[ArrayKey, StorageLayout] = {}

    def _make_reader(self, dataset: str):
        """A picklable reader of ``dataset`` (``ZarrReader``, ``Hdf5Reader``)."""
        raise NotImplementedError

    def setup(self) -> None:
        self._readers, self._layouts = {}, {}
        for key, dataset in self.datasets.items():
            reader = self._make_reader(dataset)
            try:
                shape = reader.shape
                metadata = read_spatial_metadata(
                    reader.attrs, reader.parent_attrs, posixpath.basename(reader.dataset),
                    len(shape),
                )
                spec, layout = dataset_array_spec(
                    shape, reader.dtype, reader.chunks, metadata, self.array_specs.get(key),
                    self.channels_first,
                )
            except MetadataError as error:
                raise SourceError(
                    f"{self.name()}: {key} (dataset {reader.dataset!r} in {reader.location}): "
                    f"{error}"
                ) from error
            except SourceError as error:
                raise SourceError(f"{self.name()}: {key}: {error}") from error
            user_spec = self.array_specs.get(key)
            if metadata.voxel_size is None and (user_spec is None or user_spec.voxel_size is None):
                logger.warning(
                    "%s: %s (dataset %r in %s) has no resolution metadata; voxel size set to %s",
                    self.name(), key, reader.dataset, reader.location, spec.voxel_size,
                )
            self._readers[key] = reader
            self._layouts[key] = layout
            self.provides(key, spec)

    def provide(self, request: BatchRequest) -> Batch:
        batch = Batch()
        for key, request_spec in request.array_specs.items():
            provided = self.spec[key]
            roi = provided.roi if request_spec.roi is None else request_spec.roi
            spec = provided.copy()
            spec.roi = roi
            batch[key] = Array(self._read(key, roi.begin - provided.roi.begin, roi.shape), spec)
        return batch

    def _read(self, key: ArrayKey, begin, shape) -> da.Array:
        """Lazy read of ``key`` at ``begin`` (world units from the ROI's start) of ``shape``."""
        voxel_size = self.spec[key].voxel_size
        layout = self._layouts[key]
        start, stop = layout.storage_region(begin / voxel_size, shape / voxel_size)
        ndim, dims = len(layout.shape), layout.spatial_dims
        spatial_axes = tuple(range(ndim - dims, ndim)) if layout.channels_first else tuple(
            range(dims))
        geometry = WorldGeometry(spatial_axes, tuple(voxel_size),
                                 tuple(self.spec[key].roi.begin))
        return read_region(
            self._readers[key], start, stop, layout.axes, self.spec[key].dtype, layout.chunks,
            task_prefix(self.name()), geometry,
        )

    def dask_array(self, key: ArrayKey) -> da.Array:
        """The whole dataset of ``key`` as a lazy dask array, chunked like its storage.

        Channels come first. For users (``da.to_zarr``, statistics); ``provide`` never builds
        it, since slicing a whole-volume graph costs time that grows with the volume.
        """
        if key not in self._layouts:
            raise SourceError(
                f"{self.name()}: {key} is not set up; it provides {list(self._layouts)} "
                "(call dask_array inside `with gp.build(...)`)"
            )
        roi = self.spec[key].roi
        return self._read(key, Coordinate((0,) * roi.dims), roi.shape)

    def teardown(self) -> None:
        for reader in self._readers.values():
            reader.close()
