"""``BalanceLabels``: a loss-scale array that balances the classes of a label array per batch
(or per slab): one class-count reduction in the graph, then an elementwise scaling."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class BalanceLabels(BatchFilter):
    """Create a float32 scale array that balances the loss between the classes of ``labels``.

    As in gunpowder: the scale starts at 1, is multiplied by every mask (0 masks a voxel out),
    and then, in the whole batch or in each slab, every voxel of class ``c`` is scaled by
    ``1 / num_classes / f_c``, where ``f_c`` is the fraction of class ``c`` among the
    masked-in voxels, clipped to ``[clipmin, clipmax]``. ``scales`` has the ROI and voxel
    size of ``labels``.

    The class fractions are global over the batch, so they are one reduction in the graph
    (per-chunk class counts, summed) that the scaling tasks depend on; nothing is computed
    while the graph is built. Labels outside ``[0, num_classes)`` raise an error naming the
    key when the batch is computed.

    Differences from gunpowder: the masked-in total is summed in float64 (gunpowder sums the
    float32 scale, which is the same for 0/1 masks below 2**24 voxels per slab).

    Args:
        labels (ArrayKey): binary or integer labels in ``[0, num_classes)``.
        scales (ArrayKey): the scale array to create.
        mask (ArrayKey or list of ArrayKey, optional): masks; voxels where any mask is 0 do
            not count and get scale 0.
        slab (tuple of int, optional): balance in slabs of this shape (voxels); -1 means
            the whole extent of that axis, e.g. ``(2, -1, -1)`` balances every two sections.
        num_classes (int): the number of classes (default 2).
        clipmin (float or None): lower clip of the class fractions (default 0.05).
        clipmax (float or None): upper clip of the class fractions (default 0.95).

    Example:
        >>> labels, scales = ArrayKey("LABELS"), ArrayKey("SCALES")
        >>> source = gp.ArraySource(labels, np.array([0, 0, 0, 1], dtype=np.uint8))
        >>> request = gp.BatchRequest()
        >>> request.add(scales, (4,))
        >>> with gp.build(source + gp.BalanceLabels(labels, scales), scheduler="sync") as p:
        ...     p.request_batch(request)[scales].data.round(3)
        array([0.667, 0.667, 0.667, 2.   ], dtype=float32)
    """

    lazy = True

    def __init__(self, labels: ArrayKey, scales: ArrayKey,
                 mask: ArrayKey | Sequence[ArrayKey] | None = None,
                 slab: Sequence[int] | None = None, num_classes: int = 2,
                 clipmin: float | None = 0.05, clipmax: float | None = 0.95) -> None:
        if num_classes < 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: num_classes={num_classes} for {scales} must be at "
                "least 1"
            )
        self.labels = labels
        self.scales = scales
        if mask is None:
            self.masks = []
        elif not isinstance(mask, Iterable):
            self.masks = [mask]
        else:
            self.masks = list(mask)
        self.slab = None if slab is None else tuple(slab)
        self.num_classes = int(num_classes)
        self.clipmin = clipmin
        self.clipmax = clipmax

    def setup(self) -> None:
        spec = self.upstream_spec(self.labels, "balance the labels of")
        for mask in self.masks:
            self.upstream_spec(mask, "balance labels with the mask")
        spec.dtype = np.dtype(np.float32)
        spec.interpolatable = True
        self.provides(self.scales, spec)
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest:
        deps = BatchRequest()
        spec = request[self.scales].copy()
        spec.dtype = None
        deps[self.labels] = spec
        for mask in self.masks:
            deps[mask] = spec.copy()
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        labels = batch[self.labels]
        scale = da.ones(labels.data.shape, dtype=np.float32, chunks=labels.data.chunks)
        for key in self.masks:
            mask = batch[key].data
            if mask.shape != labels.data.shape:
                raise PipelineRequestError(
                    f"{self.name()}: the mask {key} has shape {mask.shape}, but {self.labels} "
                    f"has {labels.data.shape} (ROI {labels.spec.roi})"
                )
            # As gunpowder's in-place `scale *= mask`: multiply in the promoted type.
            scale = (scale * mask).astype(np.float32)
        where = f"{self.name()}: {self.labels} (ROI {labels.spec.roi})"
        shape = labels.data.shape
        slab = shape if not self.slab else tuple(
            m if s == -1 else s for m, s in zip(shape, self.slab, strict=True))
        starts = [range(0, m, s) for m, s in zip(shape, slab, strict=True)]
        pieces = np.empty([len(r) for r in starts], dtype=object)
        for index in itertools.product(*(range(len(r)) for r in starts)):
            slices = tuple(slice(r[i], r[i] + s) for r, i, s in zip(starts, index, slab,
                                                                     strict=True))
            pieces[index] = self._balance(labels.data[slices], scale[slices], where)
        spec = self.spec[self.scales].copy()
        spec.roi = labels.spec.roi
        outputs = Batch()
        outputs[self.scales] = Array(da.block(pieces.tolist()), spec)
        return outputs

    def _balance(self, labels: da.Array, scale: da.Array, where: str) -> da.Array:
        """``scale`` times the class weights of one slab: a reduction, then elementwise."""
        prefix = task_prefix(self.name())
        token = tokenize(labels.name, scale.name, self.num_classes, self.clipmin, self.clipmax)
        chunk_axes = tuple(range(labels.ndim))
        counts = da.map_blocks(
            _block_counts, labels, scale, num_classes=self.num_classes, where=where,
            new_axis=labels.ndim, dtype=np.float64, name=f"{prefix}-counts-{token}",
            chunks=tuple((1,) * len(c) for c in labels.chunks) + ((self.num_classes + 1,),),
        ).sum(axis=chunk_axes)
        index = "".join(chr(ord("a") + d) for d in chunk_axes)
        return da.blockwise(
            _scale_block, index, labels, index, scale, index, counts, "z",
            num_classes=self.num_classes, clipmin=self.clipmin, clipmax=self.clipmax,
            concatenate=True, dtype=np.float32, name=f"{prefix}-scale-{token}",
        )


def _block_counts(labels: np.ndarray, scale: np.ndarray, *, num_classes: int,
                  where: str) -> np.ndarray:
    """Per-class counts of the masked-in voxels of a chunk, and the sum of its scale."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise PipelineRequestError(
            f"{where}: labels must lie in [0, num_classes={num_classes}), found "
            f"{labels.min()} to {labels.max()}"
        )
    classes = labels.astype(np.int64)[scale != 0]
    counts = np.bincount(classes, minlength=num_classes).astype(np.float64)
    stats = np.append(counts, scale.sum(dtype=np.float64))
    return stats.reshape((1,) * labels.ndim + (num_classes + 1,))


def _scale_block(labels: np.ndarray, scale: np.ndarray, stats: np.ndarray, *,
                 num_classes: int, clipmin, clipmax) -> np.ndarray:
    """gunpowder's ``__balance`` for one chunk, given its slab's counts and masked-in sum."""
    counts, masked_in = stats[:-1], stats[-1]
    present = np.nonzero(counts)[0]
    fracs = counts[present] / masked_in if masked_in > 0 else np.zeros(present.size)
    if clipmin is not None or clipmax is not None:
        np.clip(fracs, clipmin, clipmax, fracs)
    weights = np.zeros(num_classes)
    weights[present] = 1.0 / float(num_classes) / fracs
    return (scale * np.take(weights, labels.astype(np.int64))).astype(np.float32)
