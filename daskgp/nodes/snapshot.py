"""``Snapshot``: saves selected arrays of every n-th batch to zarr or HDF5, off the main path."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import dask
import numpy as np

from ..batch import Batch
from ..io.graph_io import write_snapshot
from ..keys import ArrayKey, GraphKey
from ..names import NodeTask, task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class Snapshot(BatchFilter):
    """Write the arrays named in ``dataset_names`` of every ``every``-th batch to a file.

    A materialization boundary for its own output only: on lazy batches the write is a task of
    the batch's graph (``batch.side_effects``), computed in the same ``dask.compute`` as the
    batch and sharing its inputs; on materialized batches (downstream of ``Train`` or
    ``PreCache``) a background thread writes while training goes on, at most two writes
    queued. Files are zarr (OME-NGFF 0.4 ``multiscales`` plus gunpowder's ``resolution`` and
    ``offset`` attributes, so napari, neuroglancer and gunpowder open them) or HDF5 when the
    file name ends in .hdf, .h5 or .hdf5. A model's singleton batch axis is not stored (a
    (1, 1, z, y, x) prediction is written as (1, z, y, x): OME-NGFF allows one channel axis);
    ``daskgp show`` draws a snapshot's mid-slices.

    Args:
        dataset_names (dict): ``{ArrayKey or GraphKey: dataset path}`` of what to save. A
            graph is saved in gunpowder's layout: ``<path>-ids``, ``<path>-locations`` and
            ``<path>-edges`` (read back with ``daskgp.io.graph_io.read_graph``).
        output_dir (str): folder of the files.
        output_filename (str): file name, formatted with ``iteration`` (``batch.iteration`` if
            set, else the number of batches seen) and ``id`` (the batch id).
        every (int): save every ``every``-th batch; 0 never saves.
        additional_request (BatchRequest, optional): keys requested upstream only for the
            snapshot, on the batches that are saved.
        compression_type (str, optional): a numcodecs (zarr) or h5py codec name, e.g. "gzip".
        dataset_dtypes (dict, optional): ``{ArrayKey: dtype}`` to cast to before writing.
        store_value_range (bool): also store the ``value_range`` (min, max) attribute.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> snapshot = Snapshot({raw: "volumes/raw"}, output_dir="snapshots", every=100)
    """

    lazy = True
    accepts_numpy = True

    def __init__(self, dataset_names: dict, output_dir: str = "snapshots",
                 output_filename: str = "{iteration}.zarr", every: int = 1,
                 additional_request: BatchRequest | None = None,
                 compression_type: str | None = None, dataset_dtypes: dict | None = None,
                 store_value_range: bool = False) -> None:
        self.dataset_names = dict(dataset_names)
        self.output_dir = output_dir
        self.output_filename = output_filename
        self.every = int(every)
        self.additional_request = additional_request
        self.compression_type = compression_type
        self.dataset_dtypes = dict(dataset_dtypes or {})
        self.store_value_range = store_value_range
        self._seen = 0
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future] = []

    def setup(self) -> None:
        self._seen = 0
        self._writes = []

    def prepare(self, request: BatchRequest) -> BatchRequest:
        with self._lock:
            self._record = self.every > 0 and self._seen % self.every == 0
            self._index = self._seen
            self._seen += 1
        deps = request.copy()
        if self._record and self.additional_request is not None:
            deps = deps.update_with(self.additional_request)
        return deps

    def write_if(self, batch: Batch) -> bool:
        """Whether to save this batch (one that ``every`` selected); ``True`` here.

        gunpowder's hook for a data-dependent filter: override it in a subclass. Downstream
        of ``Train`` or ``PreCache`` the batch holds numpy arrays; on a lazy batch they are
        dask arrays, and a test on their values computes what it reads.

        Example:
            >>> class HighLoss(Snapshot):
            ...     def write_if(self, batch):
            ...         return batch.loss is not None and batch.loss > 0.5
        """
        return True

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        if not self._record or not self.write_if(batch):
            return batch
        iteration = batch.iteration if batch.iteration is not None else self._index
        filename = self.output_filename.format(iteration=iteration, id=batch.id)
        path = os.path.join(self.output_dir, filename)
        keys = [k for k in self.dataset_names if isinstance(k, ArrayKey) and k in batch]
        arrays = {}
        for key in keys:
            array = batch[key]
            data = array.data
            if key in self.dataset_dtypes:
                data = data.astype(self.dataset_dtypes[key])
            offset = array.spec.roi.begin if array.spec.roi is not None else ()
            voxel_size = array.spec.voxel_size or ()
            arrays[self.dataset_names[key]] = (data, tuple(voxel_size), tuple(offset))
        graphs = {self.dataset_names[k]: batch[k] for k in self.dataset_names
                  if isinstance(k, GraphKey) and k in batch.graphs}
        write = NodeTask(write_snapshot, self.name())
        if any(isinstance(v[0], dask.array.Array) for v in arrays.values()):
            task = dask.delayed(write, pure=False)(
                path, arrays, graphs, self.compression_type, self.store_value_range,
                dask_key_name=f"{task_prefix(self.name())}-{dask.base.tokenize(path, self._index)}",
            )
            batch.side_effects.append(task)
        else:
            self._write_in_background(path, arrays, graphs)
        return batch

    def _write_in_background(self, path: str, arrays: dict, graphs: dict) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="daskgp-snapshot")
        for write in [w for w in self._writes if w.done()]:
            self._writes.remove(write)
            write.result()  # re-raises a failed write here, where the user sees it
        while len(self._writes) >= 2:
            self._writes.pop(0).result()
        arrays = {name: (np.asarray(d), v, o) for name, (d, v, o) in arrays.items()}
        self._writes.append(self._writer.submit(
            NodeTask(write_snapshot, self.name()), path, arrays, graphs, self.compression_type,
            self.store_value_range))

    def teardown(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for write in self._writes:
            write.result()
        self._writes = []
