"""``RenumberConnectedComponents``: gives each connected region of one label a new id; one
task per batch (the numbering is global over the batch)."""

from __future__ import annotations

import numpy as np
from dask.base import tokenize
from scipy import ndimage

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class RenumberConnectedComponents(BatchFilter):
    """Find the connected components of equal, non-zero labels and give each a new label.

    Voxels are connected through their faces (6-connectivity in 3D). Background (0) stays 0;
    components are numbered 1, 2, ... in the order of their first voxel (C order), in the
    dtype of ``labels``.

    The relabelling is global over the batch, so it **materializes the batch's labels in one
    task** (``scipy.ndimage.label`` on each label's bounding box): the graph stays lazy, but
    that task sees the whole requested ROI.

    Differences from gunpowder: gunpowder goes through malis' affinity graph and connected
    components, whose numbering differs (and which gunpowder 1.5 no longer ships); here the
    numbering is the first-voxel order above, and a batch with more components than the
    dtype holds is an error instead of wrapping around.

    Args:
        labels (ArrayKey): the label array to renumber.

    Example:
        >>> labels = ArrayKey("LABELS")
        >>> source = gp.ArraySource(labels, np.array([5, 5, 0, 5, 7, 7]))
        >>> request = gp.BatchRequest()
        >>> request.add(labels, (6,))
        >>> pipeline = source + gp.RenumberConnectedComponents(labels)
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[labels].data
        array([1, 1, 0, 2, 3, 3])
    """

    lazy = True

    def __init__(self, labels: ArrayKey) -> None:
        self.labels = labels

    def setup(self) -> None:
        self.updates(self.labels, self.upstream_spec(self.labels, "renumber"))

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.labels not in request:
            return None
        labels = batch[self.labels]
        data = labels.data
        if data.ndim != labels.spec.roi.dims:
            raise PipelineRequestError(
                f"{self.name()}: {self.labels} must have no channel axes, its data has shape "
                f"{data.shape} for ROI {labels.spec.roi}"
            )
        where = f"{self.name()}: {self.labels} (ROI {labels.spec.roi})"
        name = f"{task_prefix(self.name())}-{tokenize(data.name)}"
        whole = data.rechunk(data.shape)
        renumbered = whole.map_blocks(_renumber, where=where, dtype=data.dtype, name=name)
        outputs = Batch()
        outputs[self.labels] = Array(renumbered, labels.spec, labels.attrs)
        return outputs


def _renumber(labels: np.ndarray, where: str) -> np.ndarray:
    """Connected components of equal non-zero labels, numbered by their first voxel."""
    ids, dense = np.unique(labels, return_inverse=True)
    dense = dense.reshape(labels.shape) + 1
    components = np.zeros(labels.shape, np.int64)
    count = 0
    for rank, box in enumerate(ndimage.find_objects(dense), start=1):
        if box is None or ids[rank - 1] == 0:
            continue
        found, n = ndimage.label(dense[box] == rank)
        inside = found > 0
        components[box][inside] = found[inside] + count
        count += n
    if count == 0:
        return np.zeros_like(labels)
    if labels.dtype.kind in "iu" and count > np.iinfo(labels.dtype).max:
        raise PipelineRequestError(
            f"{where}: {count} connected components do not fit in {labels.dtype}"
        )
    # Number the components by their first voxel in C order.
    values, first = np.unique(components.ravel(), return_index=True)
    values, first = values[values > 0], first[values > 0]
    order = np.zeros(count + 1, np.int64)
    order[values[np.argsort(first)]] = np.arange(1, count + 1)
    return order[components].astype(labels.dtype)
