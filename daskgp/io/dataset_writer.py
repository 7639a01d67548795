"""``DatasetWrite``: what ``ZarrWrite`` and ``Hdf5Write`` share (gunpowder's Hdf5LikeWrite).

Datasets are created in the driver when the first batch is built; the writes themselves are
tasks of the batch's graph (``batch.side_effects``), one per output chunk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np

from ..batch import Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from .array_writer import DatasetLayout, mismatch_error, write_blocks
from .blocks import WriteBlocks, current_write_blocks
from .metadata import ome_ngff_shape

logger = logging.getLogger(__name__)


class DatasetWrite(BatchFilter):
    """Base of nodes that write arrays of passing batches into datasets of one file.

    Each dataset covers the total ROI the writer will see: under a ``Scan`` the ROI the
    whole scan covers of that key, with chunks of the scan's stride, so that the block each
    tile owns is a whole number of chunks; without a ``Scan`` the key's upstream ROI, with
    chunks of the first batch's ROI shape. Each batch writes the block it owns (under a
    ``Scan``) or its whole ROI, which must lie on the dataset's chunk grid: then every chunk is
    written by exactly one task and parallel writers never race.

    Args:
        dataset_names (dict, ArrayKey -> str): the dataset to write each key into.
        output_dir (str): folder of the output file (used when ``store`` is None).
        output_filename (str): name of the output file (used when ``store`` is None).
        compression_type (str or int, optional): codec name (zarr: a numcodecs id such as
            "gzip" or "zstd"; HDF5: "gzip", "lzf"), or an int for gzip at that level.
        dataset_dtypes (dict, ArrayKey -> dtype, optional): store these keys with this dtype;
            the batch's arrays are unchanged.
        store (str, os.PathLike or zarr Store, optional): the output; by default
            ``output_dir/output_filename``.
    """

    lazy = True
    #: Its writes follow a tile's translation (``daskgp predict`` plans one tile, runs many).
    translatable = True

    def __init__(self, dataset_names: Mapping[ArrayKey, str], output_dir: str = ".",
                 output_filename: str = "output.zarr", compression_type: str | int | None = None,
                 dataset_dtypes: Mapping[ArrayKey, object] | None = None, store=None) -> None:
        if not isinstance(dataset_names, Mapping) or not dataset_names:
            raise PipelineSetupError(
                f"{self.name()}: dataset_names must be a non-empty dict ArrayKey -> dataset "
                f"name, got {dataset_names!r}"
            )
        for key, dataset in dataset_names.items():
            if not isinstance(key, ArrayKey) or not isinstance(dataset, str):
                raise PipelineSetupError(
                    f"{self.name()}: dataset_names must map ArrayKey -> str, got "
                    f"{key!r}: {dataset!r}"
                )
        self.dataset_names = dict(dataset_names)
        self.store = store if store is not None else os.path.join(output_dir, output_filename)
        self.compression_type = compression_type
        self.dataset_dtypes = {k: np.dtype(v) for k, v in (dataset_dtypes or {}).items()}
        self._layouts: dict[ArrayKey, DatasetLayout] = {}
        self._scan_id: int | None = None
        self._writers: dict = {}

    def _make_writer(self, dataset: str):
        """A picklable writer of ``dataset`` (``ZarrArrayWriter``, ``Hdf5ArrayWriter``)."""
        raise NotImplementedError

    def setup(self) -> None:
        for key in self.dataset_names:
            if key not in self.spec:
                raise PipelineSetupError(
                    f"{self.name()}: asked to write {key}, which is not provided upstream; "
                    f"upstream provides {self.spec.keys()}"
                )
            self.updates(key, self.spec[key])
        self.enable_autoskip()
        self._writers = {k: self._make_writer(d) for k, d in self.dataset_names.items()}
        self._layouts = {}
        self._scan_id = None

    def prepare(self, request: BatchRequest) -> BatchRequest:
        missing = [key for key in self.dataset_names if key not in request]
        if missing:
            raise BatchRequestError(
                f"{self.name()}: writes {missing}, but the request does not ask for them (add "
                f"them to the request, or to Scan's reference); it asks for {request.keys()}"
            )
        deps = BatchRequest()
        for key in self.dataset_names:
            deps[key] = request[key].copy()
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        blocks = current_write_blocks()
        self._require_datasets(batch, blocks)
        for key in self.dataset_names:
            array = batch[key]
            layout = self._layouts[key]
            write_roi = array.spec.roi
            if blocks is not None and key in blocks.write_rois:
                write_roi = blocks.write_rois[key]
            self._check_aligned(key, write_roi, layout)
            data = array.crop(write_roi, copy=False).data
            data = data.reshape(ome_ngff_shape(data.shape, write_roi.dims))  # no batch axis
            dtype = self.dataset_dtypes.get(key)
            if dtype is not None and data.dtype != dtype:
                data = data.astype(dtype)
            voxel_size = array.spec.voxel_size
            channels = data.ndim - write_roi.dims
            start = (0,) * channels + tuple((write_roi.begin - Coordinate(layout.offset))
                                            / voxel_size)
            batch.side_effects.append(write_blocks(
                data, self._writers[key], start, layout.chunks, self.name(),
                task_prefix(self.name()), voxel_size,
            ))
        return batch

    def _require_datasets(self, batch: Batch, blocks: WriteBlocks | None) -> None:
        """Create (or check) every dataset once per scan, or once per build without one."""
        scan_id = None if blocks is None else blocks.scan_id
        if self._layouts and self._scan_id == scan_id:
            return
        wanted = {key: self._wanted_layout(key, batch, blocks) for key in self.dataset_names}
        # Check every existing dataset before creating any: a bad one leaves all untouched.
        for key, layout in wanted.items():
            existing = self._existing(key, layout)
            if existing is not None and existing.mismatch(layout):
                error = mismatch_error(self._location(key), self.dataset_names[key], existing,
                                       layout)
                raise PipelineSetupError(f"{self.name()}: {key}: {error}")
        layouts = {}
        for key, layout in wanted.items():
            try:
                layouts[key] = self._writers[key].require(layout, self.compression_type)
            except PipelineSetupError as error:
                raise PipelineSetupError(f"{self.name()}: {key}: {error}") from error
            logger.debug("%s: %s written to %s (%s)", self.name(), key,
                         self._writers[key], layouts[key].describe())
        self._layouts, self._scan_id = layouts, scan_id

    def _existing(self, key: ArrayKey, layout: DatasetLayout) -> DatasetLayout | None:
        try:
            return self._writers[key].existing(layout)
        except PipelineSetupError as error:
            raise PipelineSetupError(f"{self.name()}: {key}: {error}") from error

    def _wanted_layout(self, key: ArrayKey, batch: Batch,
                       blocks: WriteBlocks | None) -> DatasetLayout:
        array = batch[key]
        voxel_size = array.spec.voxel_size
        if blocks is not None and key in blocks.total_rois:
            total_roi, chunk_shape = blocks.total_rois[key], blocks.block_shape
        else:
            total_roi, chunk_shape = self.spec[key].roi, array.spec.roi.shape
            if total_roi is None or total_roi.unbounded:
                raise PipelineSetupError(
                    f"{self.name()}: {key} has no bounded upstream ROI ({total_roi}), so the "
                    f"size of dataset {self.dataset_names[key]!r} in {self._location(key)} is "
                    "unknown; write it under a Scan"
                )
        shape = ome_ngff_shape(array.data.shape, total_roi.dims)  # without the batch axis
        channels = tuple(shape[: len(shape) - total_roi.dims])
        return DatasetLayout(
            shape=channels + tuple(total_roi.shape / voxel_size),
            dtype=self.dataset_dtypes.get(key, array.data.dtype),
            chunks=channels + tuple(chunk_shape / voxel_size),
            voxel_size=tuple(voxel_size),
            offset=tuple(total_roi.begin),
        )

    def _check_aligned(self, key: ArrayKey, write_roi: Roi, layout: DatasetLayout) -> None:
        voxel_size = Coordinate(layout.voxel_size)
        dims = write_roi.dims
        dataset_roi = Roi(layout.offset, Coordinate(layout.shape[-dims:]) * voxel_size)
        where = (f"dataset {self.dataset_names[key]!r} in {self._location(key)} (ROI "
                 f"{dataset_roi})")
        if not dataset_roi.contains(write_roi):
            raise BatchRequestError(
                f"{self.name()}: {key}'s write ROI {write_roi} is not inside {where}"
            )
        if layout.chunks is None:
            return  # a contiguous HDF5 dataset: writes are serialised by the file lock
        chunk = Coordinate(layout.chunks[-dims:]) * voxel_size
        begin = write_roi.begin - dataset_roi.begin
        end = write_roi.end - dataset_roi.begin
        aligned = all(
            b % c == 0 and (e % c == 0 or w_end == d_end)
            for b, e, c, w_end, d_end in zip(begin, end, chunk, write_roi.end, dataset_roi.end,
                                             strict=True)
        )
        if not aligned:
            raise BatchRequestError(
                f"{self.name()}: {key}'s write ROI {write_roi} is not aligned to the chunk grid "
                f"of {where}, chunks of {chunk} world units: two tasks could write the same "
                "chunk. Write under a Scan whose stride is a multiple of the chunk shape, or "
                "request ROIs on the chunk grid"
            )

    def _location(self, key: ArrayKey) -> str:
        return self._writers[key].location
