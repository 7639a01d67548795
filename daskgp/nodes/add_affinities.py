"""``AddAffinities``: affinities of a label array for any neighbourhood, chunk by chunk.

Each edge of the neighbourhood is one ``map_overlap`` with the halo that edge needs.
"""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest

logger = logging.getLogger(__name__)


class AddAffinities(BatchFilter):
    """Add an array with affinities for a label array and a neighbourhood to the batch.

    For each voxel ``v`` and each offset ``n`` of the neighbourhood (in voxels), the
    affinity is 1 iff ``labels[v]`` and ``labels[v + n]`` are equal and both greater than 0
    (the channel axis of ``affinities`` runs over the neighbourhood). The upstream request
    for ``labels`` (and ``labels_mask``, ``unlabelled``) grows by the neighbourhood's extent,
    and the provided ROI of ``affinities`` shrinks by it, exactly as in gunpowder.

    The result is lazy: for each offset, one ``map_overlap`` over the labels' chunks with a
    halo of ``|n|`` voxels per axis computes that channel, so the output is the same for
    any chunking of the labels. Long-range neighbourhoods only grow the halo.

    Differences from gunpowder: labels are compared in their own dtype (gunpowder casts
    them to int32 first, which merges ids that differ only beyond 32 bits and turns ids of
    2**31 and more into background); ``batch.affinity_neighborhood`` is not set (the
    neighbourhood is this node's ``affinity_neighborhood``).

    Args:
        affinity_neighborhood (list of array-like): offsets (in voxels) to the neighbours
            of each voxel, one per output channel; 2 or 3 dimensions.
        labels (ArrayKey): the label array to read.
        affinities (ArrayKey): the affinity array to create.
        labels_mask (ArrayKey, optional): a mask of ``labels``; affinities that connect at
            least one masked-out (0) voxel are masked out in ``affinities_mask``. Without it
            ``affinities_mask`` is all ones.
        unlabelled (ArrayKey, optional): a binary array that is 0 in unlabelled areas;
            affinities between two unlabelled voxels are masked out in ``affinities_mask``.
        affinities_mask (ArrayKey, optional): the affinity mask to create.
        dtype (numpy dtype): the dtype of ``affinities`` and ``affinities_mask`` (uint8).

    Example:
        >>> labels, affs = ArrayKey("LABELS"), ArrayKey("AFFS")
        >>> source = gp.ArraySource(labels, np.array([[1, 1, 2, 0]]))
        >>> pipeline = source + gp.AddAffinities([[0, -1]], labels, affs)
        >>> request = gp.BatchRequest()
        >>> request[affs] = ArraySpec(roi=Roi((0, 1), (1, 3)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[affs].data
        array([[[1, 0, 0]]], dtype=uint8)
    """

    lazy = True

    def __init__(
        self,
        affinity_neighborhood,
        labels: ArrayKey,
        affinities: ArrayKey,
        labels_mask: ArrayKey | None = None,
        unlabelled: ArrayKey | None = None,
        affinities_mask: ArrayKey | None = None,
        dtype=np.uint8,
    ) -> None:
        neighborhood = np.asarray(affinity_neighborhood)
        if neighborhood.ndim != 2 or neighborhood.shape[1] not in (2, 3):
            raise PipelineSetupError(
                f"{type(self).__name__}: affinity_neighborhood for {affinities} must be a list "
                f"of 2D or 3D offsets, got shape {neighborhood.shape}"
            )
        if neighborhood.dtype.kind not in "iu":
            raise PipelineSetupError(
                f"{type(self).__name__}: affinity_neighborhood for {affinities} must hold "
                f"whole voxel offsets, got {neighborhood.tolist()}"
            )
        self.affinity_neighborhood = neighborhood
        self.labels = labels
        self.unlabelled = unlabelled
        self.labels_mask = labels_mask
        self.affinities = affinities
        self.affinities_mask = affinities_mask
        self.dtype = np.dtype(dtype)

    def setup(self) -> None:
        spec = self.upstream_spec(self.labels, "compute affinities from")
        for key in (self.labels_mask, self.unlabelled):
            if key is not None:
                self.upstream_spec(key, "mask affinities with")
        dims = self.affinity_neighborhood.shape[1]
        if spec.roi is not None and spec.roi.dims != dims:
            raise PipelineSetupError(
                f"{self.name()}: {self.labels} has {spec.roi.dims} spatial dimensions, the "
                f"neighbourhood of {self.affinities} has {dims}"
            )
        voxel_size = spec.voxel_size or Coordinate((1,) * dims)
        self.padding_neg = Coordinate(
            min([0] + [int(a[d]) for a in self.affinity_neighborhood]) for d in range(dims)
        ) * voxel_size
        self.padding_pos = Coordinate(
            max([0] + [int(a[d]) for a in self.affinity_neighborhood]) for d in range(dims)
        ) * voxel_size
        if spec.roi is not None:
            spec.roi = spec.roi.grow(self.padding_neg, -self.padding_pos)
        spec.dtype = self.dtype
        self.provides(self.affinities, spec)
        if self.affinities_mask is not None:
            self.provides(self.affinities_mask, spec)
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest:
        output = self._requested_output(request)
        deps = BatchRequest()
        spec = request[output].copy()
        spec.roi = spec.roi.grow(-self.padding_neg, self.padding_pos)
        spec.dtype = None
        deps[self.labels] = spec
        for key in (self.labels_mask, self.unlabelled):
            if key is not None:
                deps[key] = spec.copy()
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        output = self._requested_output(request)
        roi = request[output].roi
        labels = batch[self.labels]
        if labels.data.ndim != roi.dims:
            raise PipelineRequestError(
                f"{self.name()}: {self.labels} must have no channel axes to compute "
                f"{self.affinities}, its data has shape {labels.data.shape} for ROI "
                f"{labels.spec.roi}"
            )
        voxel_size = labels.spec.voxel_size
        # The part of the labels' voxels that the affinities cover.
        crop = tuple(
            slice(int(b), int(b + s))
            for b, s in zip(-self.padding_neg / voxel_size, roi.shape / voxel_size, strict=True)
        )
        spec = self.spec[output].copy()
        spec.roi = roi
        outputs = Batch()
        affinities = self._affinities(labels.data, crop, _labels_affinity)
        if self.affinities in request:
            outputs[self.affinities] = Array(affinities.astype(self.dtype), spec)
        if self.affinities_mask is not None and self.affinities_mask in request:
            if self.labels_mask is not None:
                mask = self._affinities(batch[self.labels_mask].data, crop, _labels_affinity)
            else:
                mask = da.ones_like(affinities, dtype=bool)
            if self.unlabelled is not None:
                both_unlabelled = self._affinities(batch[self.unlabelled].data, crop,
                                                   _unlabelled_affinity)
                mask = mask & ~both_unlabelled
            outputs[self.affinities_mask] = Array(mask.astype(self.dtype), spec)
        elif self.labels_mask is not None:
            logger.warning("%s: %s has a mask, but %s is not requested", self.name(),
                           self.labels, self.affinities_mask)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _requested_output(self, request: BatchRequest) -> ArrayKey:
        for key in (self.affinities, self.affinities_mask):
            if key is not None and key in request:
                return key
        raise PipelineRequestError(
            f"{self.name()}: neither {self.affinities} nor {self.affinities_mask} is requested"
        )

    def _affinities(self, data: da.Array, crop: tuple, kernel) -> da.Array:
        """Boolean affinities (edges, *crop) of ``data``: one overlap with the halo of the
        longest offset per axis, one task per chunk for all edges."""
        offsets = [tuple(int(o) for o in offset) for offset in self.affinity_neighborhood]
        depth = {axis: max(abs(o[axis]) for o in offsets) for axis in range(data.ndim)}
        # Chunks at least as deep as the halo, so each chunk's halo comes from its
        # neighbours only.
        data = data.rechunk(tuple(
            _at_least(chunks, depth[axis]) for axis, chunks in enumerate(data.chunks)))
        grown = da.overlap.overlap(data, depth=depth, boundary="none")
        name = f"{task_prefix(self.name())}-{tokenize(grown.name, offsets, kernel.__name__)}"
        edges = grown.map_blocks(kernel, offsets=offsets, new_axis=0, dtype=bool, name=name,
                                 chunks=((len(offsets),), *grown.chunks))
        edges = da.overlap.trim_internal(edges, {0: 0, **{a + 1: d for a, d in depth.items()}},
                                         boundary="none")
        return edges[(slice(None), *crop)]


def _at_least(chunks: tuple, size: int) -> tuple:
    """``chunks`` merged until each (but a lone one) has at least ``size`` voxels."""
    if size == 0 or min(chunks) >= size:
        return chunks
    merged: list[int] = []
    for chunk in chunks:
        if merged and merged[-1] < size:
            merged[-1] += chunk
        else:
            merged.append(chunk)
    if len(merged) > 1 and merged[-1] < size:
        merged[-2] += merged.pop()
    return tuple(merged)


def _shifted_pair(block: np.ndarray, offset: tuple) -> tuple[tuple, tuple]:
    """Slices of ``block`` for the voxels ``v`` whose neighbour ``v + offset`` is inside it,
    and for those neighbours."""
    source = tuple(slice(max(0, -o), min(s, s - o)) for o, s in zip(offset, block.shape,
                                                                    strict=True))
    target = tuple(slice(max(0, o), min(s, s + o)) for o, s in zip(offset, block.shape,
                                                                   strict=True))
    return source, target


def _labels_affinity(block: np.ndarray, offsets: list) -> np.ndarray:
    """gunpowder's ``seg_to_affgraph``: per offset, equal and both foreground (> 0); 0 where
    the neighbour is outside the block."""
    out = np.zeros((len(offsets), *block.shape), bool)
    foreground = block > 0
    for edge, offset in enumerate(offsets):
        source, target = _shifted_pair(block, offset)
        out[(edge, *source)] = ((block[source] == block[target]) & foreground[source]
                                & foreground[target])
    return out


def _unlabelled_affinity(block: np.ndarray, offsets: list) -> np.ndarray:
    """1 for affinities between two unlabelled (0) voxels, computed as gunpowder does."""
    return _labels_affinity((1 - block).astype(np.int32), offsets)
