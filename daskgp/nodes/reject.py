"""``Reject``: re-requests upstream, with a new seed each time, until the batch's mask holds
enough masked-in voxels; a bounded, seeded loop that computes only the mask."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler
from ..seeds import derive_seed


class Reject(BatchFilter):
    """Reject batches whose ``mask`` has a mean of at most ``min_masked``, and ask again.

    Place it downstream of ``RandomLocation`` (or ``RandomProvider``): every attempt sends
    the whole request upstream with a new seed (the request's own seed first, then seeds
    derived from it and the attempt number), so upstream nodes draw new locations, and the
    sequence of attempts, hence the batch, is a pure function of the request's seed.

    This is a **materialization boundary**: for each attempt the node builds the lazy batch
    and computes only its ``mask`` (with the pipeline's scheduler), the "peek"; the accepted
    batch is returned lazy, with the computed mask in it, so the mask is not computed twice.
    At most ``max_attempts`` batches are tried (gunpowder loops forever); then a
    ``PipelineRequestError`` names the node, the key, the best ratio seen and its ROI.

    With ``reject_probability < 1``, a batch that fails the test is still accepted with
    probability ``1 - reject_probability``, drawn from the request's seeded generator.

    Differences from gunpowder: bounded attempts; seeded draws (gunpowder uses ``random``);
    the mean is taken in float64. ``ensure_nonempty`` needs graphs, which arrive with
    daskgp's graph support (GraphKey/Graph): until then it raises ``NotImplementedError``.

    Args:
        mask (ArrayKey, optional): the mask whose mean must exceed ``min_masked``; it must be
            requested.
        min_masked (float): the mean the mask must exceed (default 0.5).
        ensure_nonempty (GraphKey, optional): not supported yet (needs graphs).
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
    """

    lazy = True

    def __init__(self, mask: ArrayKey | None = None, min_masked: float = 0.5,
                 ensure_nonempty=None, reject_probability: float = 1.0,
                 max_attempts: int = 100) -> None:
        if ensure_nonempty is not None:
            raise NotImplementedError(
                f"{type(self).__name__}(ensure_nonempty={ensure_nonempty}) needs graphs, "
                "which arrive with daskgp's graph support (GraphKey/Graph); use a mask "
                "array with min_masked until then"
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

    def provide(self, request: BatchRequest) -> Batch:
        if self.mask is None:
            return self.get_upstream_provider().request_batch(request)
        if self.mask not in request:
            raise PipelineRequestError(
                f"{self.name()}: rejects batches by {self.mask}, but the request does not "
                f"contain it:\n{request}"
            )
        best_ratio, best_roi = None, None
        for attempt in range(self.max_attempts):
            attempt_request = request.copy()
            if attempt > 0:
                attempt_request.random_seed = derive_seed(
                    request.random_seed or 0, self.name(), self.node_id, attempt)
            batch = self.get_upstream_provider().request_batch(attempt_request)
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
                name = f"{task_prefix(self.name())}-mask-{tokenize(values)}"
                batch[self.mask] = Array(da.from_array(values, chunks=values.shape or (),
                                                       name=name), mask.spec, mask.attrs)
                return batch
        raise PipelineRequestError(
            f"{self.name()}: no batch with a mean of {self.mask} above "
            f"min_masked={self.min_masked} in {self.max_attempts} attempts; the best ratio "
            f"seen was {best_ratio:.4f} (at ROI {best_roi}); requested ROI "
            f"{request[self.mask].roi}"
        )

    @staticmethod
    def _compute(data) -> np.ndarray:
        if isinstance(data, da.Array):
            (data,) = dask.compute(data, scheduler=current_scheduler())
        return np.asarray(data)
