"""``Hdf5Write``: writes arrays of passing batches into one HDF5 file, one writer at a time."""

from __future__ import annotations

import os

from ..errors import PipelineSetupError
from ..io.array_writer import Hdf5ArrayWriter
from ..io.dataset_writer import DatasetWrite


class Hdf5Write(DatasetWrite):
    """Write the arrays named in ``dataset_names`` into an HDF5 file, as gunpowder's.

    Like ``ZarrWrite``: under a ``Scan`` each dataset covers what the scan covers of its key,
    with chunks of the scan's stride, ``resolution``/``offset`` attributes (world units), and
    each tile writes the block it owns, as tasks of the batch's graph. h5py cannot write one
    file from several processes at once, so each write task opens the file, writes and closes
    it under a lock per file: a thread lock within a process and an ``flock`` between the
    processes of one host. So any local scheduler (threads, processes) and a
    ``distributed`` cluster on one machine are safe; workers on several machines must not
    share an HDF5 output (use ``ZarrWrite``). HDF5 writes are serialised: for throughput
    on many cores, prefer zarr.

    Args:
        dataset_names (dict, ArrayKey -> str): the dataset to write each key into.
        output_dir (str): folder of the file (used when ``store`` is None).
        output_filename (str): name of the file (used when ``store`` is None).
        compression_type (str or int, optional): h5py compression ("gzip", "lzf") or an int
            for gzip at that level.
        dataset_dtypes (dict, ArrayKey -> dtype, optional): store these keys with this dtype;
            the batch's arrays are unchanged.
        store (str or os.PathLike, optional): the file; by default
            ``output_dir/output_filename``.

    Example:
        >>> pred = ArrayKey("PRED")
        >>> write = gp.Hdf5Write({pred: "pred"}, output_dir="out", output_filename="pred.hdf")
        >>> # pipeline = source + model + write + gp.Scan(reference)
    """

    def __init__(self, dataset_names, output_dir: str = ".",
                 output_filename: str = "output.hdf", compression_type=None,
                 dataset_dtypes=None, store=None) -> None:
        if store is not None and not isinstance(store, (str, os.PathLike)):
            raise PipelineSetupError(
                f"Hdf5Write: store must be the path of an HDF5 file, got {store!r}"
            )
        super().__init__(dataset_names, output_dir, output_filename, compression_type,
                         dataset_dtypes, store)

    def _make_writer(self, dataset: str) -> Hdf5ArrayWriter:
        return Hdf5ArrayWriter(self.store, dataset)
