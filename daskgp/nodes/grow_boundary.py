"""``GrowBoundary``: grows the background between label regions, chunk by chunk.

A ``map_overlap`` with a halo of ``steps`` voxels; the same result as gunpowder's erosions.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy import ndimage

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import roi_to_voxel_slices
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest


class GrowBoundary(BatchFilter):
    """Grow a boundary (of ``background``) between the regions of a label array.

    A voxel keeps its label iff the voxels within ``steps`` voxels of it (city-block
    distance, inside the batch) that are not masked out all carry one label other than
    ``background``; every other voxel becomes ``background``. This is what gunpowder computes
    with one binary erosion (``border_value=1``, masked-out voxels counting as the label)
    per label, so the boundary does not grow at the border of the batch or of the mask.
    With ``mask``, only the part of ``labels`` inside the mask's ROI changes.

    The result is lazy: one ``map_overlap`` with a halo of ``steps`` voxels (none along z
    with ``only_xy``), where each chunk runs ``steps`` minimum and maximum filters instead
    of one erosion per label, so the cost does not grow with the number of labels and the
    output is the same for any chunking.

    Differences from gunpowder: ``steps`` must be at least 1 (scipy erodes ``iterations=0``
    until nothing changes); if ``mask`` is not requested, it is requested with the ROI of
    ``labels`` (gunpowder fails).

    Args:
        labels (ArrayKey): the label array to change.
        mask (ArrayKey, optional): 0 marks unknown regions; boundaries do not grow between
            labelled and unknown regions.
        steps (int): how many voxels (not world units) to grow.
        background (int): the label of boundary voxels.
        only_xy (bool): do not grow along z (the first of three spatial axes).

    Example:
        >>> labels = ArrayKey("LABELS")
        >>> source = gp.ArraySource(labels, np.array([1, 1, 1, 2, 2, 2]))
        >>> request = gp.BatchRequest()
        >>> request.add(labels, (6,))
        >>> with gp.build(source + gp.GrowBoundary(labels), scheduler="sync") as p:
        ...     p.request_batch(request)[labels].data
        array([1, 1, 0, 0, 2, 2])
    """

    lazy = True

    def __init__(self, labels: ArrayKey, mask: ArrayKey | None = None, steps: int = 1,
                 background: int = 0, only_xy: bool = False) -> None:
        if int(steps) != steps or steps < 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: steps={steps} for {labels} must be a whole number "
                "of voxels, at least 1"
            )
        self.labels = labels
        self.mask = mask
        self.steps = int(steps)
        self.background = background
        self.only_xy = only_xy

    def setup(self) -> None:
        spec = self.upstream_spec(self.labels, "grow the boundary of")
        if self.mask is not None:
            self.upstream_spec(self.mask, "grow a boundary with the mask")
        if self.only_xy and spec.roi is not None and spec.roi.dims != 3:
            raise PipelineSetupError(
                f"{self.name()}: only_xy needs 3 spatial dimensions, {self.labels} has "
                f"{spec.roi.dims}"
            )
        self.updates(self.labels, spec)

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.labels not in request:
            return None
        deps = BatchRequest()
        deps[self.labels] = request[self.labels].copy()
        if self.mask is not None:
            if self.mask in request:
                deps[self.mask] = request[self.mask].copy()
            else:
                deps[self.mask] = request[self.labels].copy()
                deps[self.mask].dtype = None
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.labels not in request:
            return None
        labels = batch[self.labels]
        if labels.data.ndim != labels.spec.roi.dims:
            raise PipelineRequestError(
                f"{self.name()}: {self.labels} must have no channel axes, its data has shape "
                f"{labels.data.shape} for ROI {labels.spec.roi}"
            )
        crop, mask = labels.spec.roi, None
        if self.mask is not None:
            mask_array = batch[self.mask]
            crop = mask_array.spec.roi.intersect(labels.spec.roi)
            if crop.empty:
                raise PipelineRequestError(
                    f"{self.name()}: the ROIs of {self.labels} ({labels.spec.roi}) and "
                    f"{self.mask} ({mask_array.spec.roi}) do not intersect"
                )
            mask = mask_array.crop(crop).data
        voxel_size = labels.spec.voxel_size
        slices = roi_to_voxel_slices(crop, labels.spec.roi, voxel_size)
        grown = self._grow(labels.data[slices], mask)
        data = _paste(labels.data, grown, slices)
        outputs = Batch()
        outputs[self.labels] = Array(data, labels.spec, labels.attrs)
        return outputs

    def _grow(self, labels: da.Array, mask: da.Array | None) -> da.Array:
        depth = [self.steps] * labels.ndim
        if self.only_xy:
            depth[0] = 0
        token = tokenize(labels.name, getattr(mask, "name", None), self.steps,
                         self.background, self.only_xy)
        name = f"{task_prefix(self.name())}-{token}"
        args = (labels,) if mask is None else (labels, mask)
        return da.map_overlap(_grow_block, *args, depth=tuple(depth), boundary="none",
                              steps=self.steps, background=self.background,
                              only_xy=self.only_xy, dtype=labels.dtype, name=name)


def _paste(full: da.Array, part: da.Array, slices: tuple) -> da.Array:
    """``full`` with ``part`` in place of ``full[slices]``, lazily."""
    if part.shape == full.shape:
        return part
    widths = [(s.start, n - s.stop) for s, n in zip(slices, full.shape, strict=True)]
    inside = da.pad(da.ones(part.shape, dtype=bool, chunks=part.chunks), widths,
                    mode="constant", constant_values=False)
    return da.where(inside, da.pad(part, widths, mode="constant"), full)


def _grow_block(labels: np.ndarray, mask: np.ndarray | None = None, *, steps: int,
                background, only_xy: bool) -> np.ndarray:
    """Set to ``background`` every voxel whose unmasked neighbours within ``steps`` (city
    block, inside this block) are not all one label other than ``background``."""
    cross = ndimage.generate_binary_structure(labels.ndim, 1)
    if only_xy:
        cross = cross.copy()
        cross[0], cross[2] = False, False
    known = np.ones(labels.shape, bool) if mask is None else mask != 0
    # Filters on dense ranks, not on the ids: scipy's filters pass values through doubles,
    # which would change uint64 ids of 2**53 and more.
    ids, ranks = np.unique(labels, return_inverse=True)
    ranks = ranks.reshape(labels.shape)
    largest = np.where(known, ranks, -1)
    smallest = np.where(known, ranks, len(ids))
    seen = known
    for _ in range(steps):
        # Outside the block counts as masked out (gunpowder erodes with border_value=1):
        # "nearest" repeats a voxel that is already in the footprint, so it changes no
        # extreme (and needs no fill value, which scipy would pass through a float).
        largest = ndimage.maximum_filter(largest, footprint=cross, mode="nearest")
        smallest = ndimage.minimum_filter(smallest, footprint=cross, mode="nearest")
        seen = ndimage.maximum_filter(seen, footprint=cross, mode="nearest")
    is_background = np.zeros(len(ids) + 1, bool)
    is_background[:-1] = ids == background
    keep = ~seen | ((largest == smallest) & ~is_background[largest])
    return np.where(keep, labels, np.asarray(background).astype(labels.dtype))
