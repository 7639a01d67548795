"""``ZarrWrite``: writes arrays of passing batches into one zarr container, chunk by chunk."""

from __future__ import annotations

from ..io.array_writer import ZarrArrayWriter
from ..io.dataset_writer import DatasetWrite


class ZarrWrite(DatasetWrite):
    """Write the arrays named in ``dataset_names`` into a zarr container, as gunpowder's.

    Placed between a model and a ``Scan``, it assembles the scan's output on disk: each
    dataset covers what the whole scan covers of its key (world ``resolution``/``offset``
    attributes and OME-NGFF 0.4 ``multiscales`` metadata), with chunks of the scan's stride,
    and each tile writes the block it owns. Writes are tasks of the batch's graph
    (``batch.side_effects``), one task per stored chunk, so no two tasks ever write the same
    chunk (gunpowder's ZarrWrite after a multi-worker Scan races on shared chunks). Without a
    ``Scan``, a dataset covers its key's upstream ROI with chunks of the first batch's shape,
    and every batch's ROI must lie on that chunk grid.

    Datasets are created in the driver when the first batch is built. A dataset that already
    exists is reused if its shape, dtype, resolution and offset are the ones needed; otherwise
    a ``PipelineSetupError`` names it and nothing is written. A write ROI that is not on the
    dataset's chunk grid raises ``BatchRequestError`` before anything is written.

    Args:
        dataset_names (dict, ArrayKey -> str): the dataset to write each key into.
        output_dir (str): folder of the container (used when ``store`` is None).
        output_filename (str): name of the container (used when ``store`` is None).
        compression_type (str or int, optional): a numcodecs codec id ("gzip", "zstd",
            "blosc", ...) or an int for gzip at that level; default: zarr's default.
        dataset_dtypes (dict, ArrayKey -> dtype, optional): store these keys with this dtype;
            the batch's arrays are unchanged.
        store (str, os.PathLike or zarr Store, optional): the container; by default
            ``output_dir/output_filename``. A ``Store`` object must be picklable for the
            ``"processes"`` and distributed schedulers.

    Example:
        >>> raw, pred = ArrayKey("RAW"), ArrayKey("PRED")
        >>> reference = gp.BatchRequest()
        >>> reference.add(raw, (40, 40, 40))
        >>> reference.add(pred, (20, 20, 20))
        >>> write = gp.ZarrWrite({pred: "volumes/pred"}, output_dir="out",
        ...                      output_filename="prediction.zarr")
        >>> # pipeline = source + model + write + gp.Scan(reference)
        >>> # with gp.build(pipeline) as p: p.request_batch(gp.BatchRequest())
    """

    def __init__(self, dataset_names, output_dir: str = ".",
                 output_filename: str = "output.zarr", compression_type=None,
                 dataset_dtypes=None, store=None) -> None:
        super().__init__(dataset_names, output_dir, output_filename, compression_type,
                         dataset_dtypes, store)

    def _make_writer(self, dataset: str) -> ZarrArrayWriter:
        return ZarrArrayWriter(self.store, dataset)
