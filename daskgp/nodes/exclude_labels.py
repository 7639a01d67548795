"""``ExcludeLabels``: replaces some label ids by a background value, and optionally makes an
ignore mask around what remains; elementwise, and a ``map_overlap`` for the mask."""

from __future__ import annotations

import math
from collections.abc import Iterable

import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy.ndimage import distance_transform_edt

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import roi_to_voxel_slices
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class ExcludeLabels(BatchFilter):
    """Exclude several label ids from a label array: they become ``background_value``.

    With ``ignore_mask``, a uint8 array is provided (with the ROI and voxel size of
    ``labels``) that is 1 where the distance, in world units, to the nearest voxel whose label
    is not excluded is less than ``ignore_mask_erode`` (so the not excluded voxels themselves
    when ``ignore_mask_erode > 0``), and 0 elsewhere. As in gunpowder, the distances are
    measured inside the ROI of ``labels`` in the batch, and the mask is 0 where its requested
    ROI lies outside that ROI.

    Lazy: the relabelling is elementwise; the mask is one ``map_overlap`` whose halo covers
    ``ignore_mask_erode`` (distances beyond it do not change the mask), so the result does not
    depend on the chunking.

    Differences from gunpowder: a voxel counts as excluded by its original label only
    (gunpowder also counts excluded voxels as included when ``background_value`` is a label
    of the batch that is larger than theirs); a batch without any included voxel gets an
    all-zero mask (gunpowder gets scipy's distances to a point outside the array); if
    ``ignore_mask`` is requested without ``labels``, ``labels`` is requested with its ROI.

    Args:
        labels (ArrayKey): the label array.
        exclude (list of int): the label ids to exclude.
        ignore_mask (ArrayKey, optional): the ignore mask to create.
        ignore_mask_erode (float): the distance (world units) around included voxels that
            the mask keeps.
        background_value (int): the value of excluded voxels (default 0).

    Example:
        >>> labels = ArrayKey("LABELS")
        >>> source = gp.ArraySource(labels, np.array([1, 2, 3, 2]))
        >>> request = gp.BatchRequest()
        >>> request.add(labels, (4,))
        >>> with gp.build(source + gp.ExcludeLabels(labels, [2]), scheduler="sync") as p:
        ...     p.request_batch(request)[labels].data
        array([1, 0, 3, 0])
    """

    lazy = True

    def __init__(self, labels: ArrayKey, exclude: Iterable[int],
                 ignore_mask: ArrayKey | None = None, ignore_mask_erode: float = 0,
                 background_value: int = 0) -> None:
        self.labels = labels
        self.exclude = set(exclude)
        self.ignore_mask = ignore_mask
        self.ignore_mask_erode = ignore_mask_erode
        self.background_value = background_value

    def setup(self) -> None:
        spec = self.upstream_spec(self.labels, "exclude labels from")
        self.updates(self.labels, spec)
        if self.ignore_mask is not None:
            mask_spec = spec.copy()
            mask_spec.dtype = np.dtype(np.uint8)
            mask_spec.interpolatable = False
            self.provides(self.ignore_mask, mask_spec)

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.labels in request:
            return None
        if self.ignore_mask is None or self.ignore_mask not in request:
            return None
        deps = BatchRequest()
        deps[self.labels] = request[self.ignore_mask].copy()
        deps[self.labels].dtype = None
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.labels not in batch.arrays:
            return None
        labels = batch[self.labels]
        data = labels.data
        exclude = _as_dtype(self.exclude, data.dtype)
        excluded = da.map_blocks(np.isin, data, exclude, dtype=bool,
                                 name=f"{self._prefix()}-excluded-{tokenize(data.name, exclude)}")
        outputs = Batch()
        background = np.asarray(self.background_value).astype(data.dtype)
        outputs[self.labels] = Array(da.where(excluded, background, data), labels.spec,
                                     labels.attrs)
        if self.ignore_mask is not None and self.ignore_mask in request:
            outputs[self.ignore_mask] = self._ignore_mask(labels, excluded,
                                                          request[self.ignore_mask].roi)
        return outputs

    def _prefix(self) -> str:
        return task_prefix(self.name())

    def _ignore_mask(self, labels: Array, excluded: da.Array, roi) -> Array:
        voxel_size = labels.spec.voxel_size
        if labels.data.ndim != labels.spec.roi.dims:
            raise PipelineRequestError(
                f"{self.name()}: {self.labels} must have no channel axes for {self.ignore_mask}, "
                f"its data has shape {labels.data.shape} for ROI {labels.spec.roi}"
            )
        if self.ignore_mask_erode > 0:
            depth = tuple(min(math.ceil(self.ignore_mask_erode / v), n)
                          for v, n in zip(voxel_size, excluded.shape, strict=True))
            name = f"{self._prefix()}-mask-{tokenize(excluded.name, self.ignore_mask_erode)}"
            near = da.map_overlap(_near_included, excluded, depth=depth, boundary="none",
                                  sampling=tuple(voxel_size), erode=self.ignore_mask_erode,
                                  dtype=np.uint8, name=name)
        else:
            # No distance is below 0 (gunpowder: `distance < ignore_mask_erode`).
            near = da.zeros(excluded.shape, dtype=np.uint8, chunks=excluded.chunks)
        spec = self.spec[self.ignore_mask].copy()
        spec.roi = roi
        common = roi.intersect(labels.spec.roi)
        if common.empty:
            shape = tuple(int(s) for s in roi.shape / voxel_size)
            return Array(da.zeros(shape, dtype=np.uint8), spec)
        inside = near[roi_to_voxel_slices(common, labels.spec.roi, voxel_size)]
        before = (common.begin - roi.begin) / voxel_size
        after = (roi.end - common.end) / voxel_size
        widths = [(int(b), int(a)) for b, a in zip(before, after, strict=True)]
        if any(b or a for b, a in widths):
            inside = da.pad(inside, widths, mode="constant", constant_values=0)
        return Array(inside, spec)


def _as_dtype(values: set, dtype: np.dtype) -> np.ndarray:
    """``values`` as an array of ``dtype``, without those it cannot hold (they match nothing);
    comparing uint64 ids with int64 ones would go through floats."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = [v for v in values if info.min <= v <= info.max]
    return np.array(sorted(values), dtype=dtype)


def _near_included(excluded: np.ndarray, sampling: tuple, erode: float) -> np.ndarray:
    """1 where the distance to the nearest not excluded voxel of the block is below
    ``erode``."""
    if excluded.all():
        return np.zeros(excluded.shape, np.uint8)
    distance = distance_transform_edt(excluded, sampling=sampling)
    return (distance < erode).astype(np.uint8)
