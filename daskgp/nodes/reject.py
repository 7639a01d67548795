"""``Reject``: re-requests upstream, with a new seed each time, until the batch's mask holds
enough masked-in voxels and/or its graph a node; a bounded, seeded loop that computes only the
mask."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..graph_sampling import describe_source, graph_is_nonempty
from ..keys import ArrayKey, GraphKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler, local_get
from ..seeds import derive_seed


class Reject(BatchFilter):
    """Reject batches whose ``mask`` has a mean of at most ``min_masked``, or whose
    ``ensure_nonempty`` graph has no node in its requested ROI, and ask again.

    Place it downstream of ``RandomLocation`` (or ``RandomProvider``): every attempt sends
    the whole request upstream with a new seed (the request's own seed first, then seeds
    derived from it and the attempt number), so upstream nodes draw new locations, and the
    sequence of attempts, hence the batch, is a pure function of the request's seed.

    With both ``mask`` and ``ensure_nonempty``, a batch must pass both tests. The graph test
    is free (graphs live in the driver); the mask test is a **materialization boundary**: for
    each attempt whose graph passes, the node computes only the batch's ``mask`` (with the
    pipeline's scheduler), the "peek"; the accepted batch is returned lazy, with the computed
    mask in it, so the mask is not computed twice. At most ``max_attempts`` batches are tried
    (gunpowder loops forever); then a ``PipelineRequestError`` names the node, the keys, the
    requested ROIs, the best ratio seen and the graph's source.

    With ``reject_probability < 1``, a batch that fails the test is still accepted with
    probability ``1 - reject_probability``, drawn from the request's seeded generator.

    Differences from gunpowder: bounded attempts; seeded draws (gunpowder uses ``random``);
    the mean is taken in float64; ``ensure_nonempty`` counts the nodes inside the requested
    ROI (gunpowder counts the nodes of the delivered graph, the same set unless a node has
    moved out of it), and the mask of a batch without a node is not computed.

    Args:
        mask (ArrayKey, optional): the mask whose mean must exceed ``min_masked``; it must be
            requested.
        min_masked (float): the mean the mask must exceed (default 0.5).
        ensure_nonempty (GraphKey, optional): a graph that must have at least one node in its
            requested ROI; it must be requested.
        reject_probability (float): probability that a failing batch is rejected (default 1).
        max_attempts (int): how many batches to try before giving up (default 100).

    Example:
        >>> mask = ArrayKey("MASK")
        >>> source = gp.ArraySource(mask, np.array([0, 0, 0, 1, 1, 1, 1, 1], np.uint8))
        >>> pipeline = source + gp.RandomLocation() + gp.Reject(mask, min_masked=0.7)
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request.add(mask, (3,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     bool(p.request_batch(request)[mask].data.mean() > 0.7)
        True

        With a graph, only batches with a point in the requested ROI of ``POINTS``:

        >>> points = gp.GraphKey("POINTS")
        >>> graph = gp.Graph.from_arrays([7], [[5.5]], spec=gp.GraphSpec(roi=Roi((0,), (8,))))
        >>> pipeline = (gp.GraphSource(points, graph) + gp.RandomLocation()
        ...             + gp.Reject(ensure_nonempty=points))
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request[points] = gp.GraphSpec(roi=Roi((0,), (2,)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[points].ids.tolist()
        [7]
    """

    lazy = True

    def __init__(self, mask: ArrayKey | None = None, min_masked: float = 0.5,
                 ensure_nonempty: GraphKey | None = None, reject_probability: float = 1.0,
                 max_attempts: int = 100) -> None:
        if ensure_nonempty is not None and not isinstance(ensure_nonempty, GraphKey):
            raise PipelineSetupError(
                f"{type(self).__name__}: ensure_nonempty={ensure_nonempty!r} must be a "
                "GraphKey"
            )
        if not 0 <= reject_probability <= 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: reject_probability={reject_probability} must lie "
                "in [0, 1]"
            )
        if max_attempts < 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: max_attempts={max_attempts} must be at least 1"
            )
        self.mask = mask
        self.min_masked = min_masked
        self.ensure_nonempty = ensure_nonempty
        self.reject_probability = reject_probability
        self.max_attempts = max_attempts

    def setup(self) -> None:
        if self.mask is not None:
            self.upstream_spec(self.mask, "reject batches by the mask")
        if self.ensure_nonempty is not None:
            self.upstream_spec(self.ensure_nonempty, "reject batches without a node of")

    def provide(self, request: BatchRequest) -> Batch:
        keys = [key for key in (self.mask, self.ensure_nonempty) if key is not None]
        if not keys:
            return self.get_upstream_provider().request_batch(request)
        for key in keys:
            if key not in request:
                raise PipelineRequestError(
                    f"{self.name()}: rejects batches by {key}, but the request does not "
                    f"contain it:\n{request}"
                )
        best_ratio, best_roi, num_empty = None, None, 0
        for attempt in range(self.max_attempts):
            attempt_request = request.copy()
            if attempt > 0:
                attempt_request.random_seed = derive_seed(
                    request.random_seed or 0, self.name(), self.node_id, attempt)
            batch = self.get_upstream_provider().request_batch(attempt_request)
            accept, values = True, None
            if self.ensure_nonempty is not None and not graph_is_nonempty(
                    batch, self.ensure_nonempty, request[self.ensure_nonempty].roi):
                accept, num_empty = False, num_empty + 1
            elif self.mask is not None:
                mask = batch[self.mask]
                values = self._compute(mask.data)
                ratio = float(values.mean(dtype=np.float64)) if values.size else 0.0
                if best_ratio is None or ratio > best_ratio:
                    best_ratio, best_roi = ratio, mask.spec.roi
                accept = ratio > self.min_masked
            if not accept and self.reject_probability < 1:
                draw = self.rng(request, "reject", attempt).random()
                accept = draw > self.reject_probability
            if accept:
                if values is not None:
                    name = f"{task_prefix(self.name())}-mask-{tokenize(values)}"
                    batch[self.mask] = Array(
                        da.from_array(values, chunks=values.shape or (), name=name),
                        mask.spec, mask.attrs)
                return batch
        raise PipelineRequestError(self._failure(request, best_ratio, best_roi, num_empty))

    def _failure(self, request: BatchRequest, best_ratio: float | None, best_roi,
                 num_empty: int) -> str:
        """The message for ``max_attempts`` rejected batches: what was asked, what was seen."""
        wanted, seen = [], []
        if self.ensure_nonempty is not None:
            key = self.ensure_nonempty
            wanted.append(f"a node of {key} in the requested ROI {request[key].roi}")
            seen.append(f"{num_empty} had no node of {key} (from "
                        f"{describe_source(self.get_upstream_provider(), key)})")
        if self.mask is not None:
            wanted.append(f"a mean of {self.mask} above min_masked={self.min_masked}")
            seen.append(
                "no mask was computed" if best_ratio is None else
                f"the best ratio seen was {best_ratio:.4f} (at ROI {best_roi}); requested "
                f"ROI {request[self.mask].roi}"
            )
        return (f"{self.name()}: no batch with {' and '.join(wanted)} in {self.max_attempts} "
                f"attempts; {'; '.join(seen)}")

    @staticmethod
    def _compute(data) -> np.ndarray:
        if isinstance(data, da.Array):
            (data,) = dask.compute(data, scheduler=local_get(current_scheduler()))
        return np.asarray(data)
