"""``RandomLocation``: shifts each request to a random place inside the upstream ROIs.

The shift is drawn while planning; the data is only relabelled with the requested ROIs.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph_sampling import PointSampler, describe_source, point_shift_range, upstream_points
from ..keys import ArrayKey, GraphKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler, local_get
from ..specs import ArraySpec


class RandomLocation(BatchFilter):
    """Move each request to a uniformly random location inside the upstream provider's ROIs.

    The shift is drawn in ``prepare`` from the request's seeded generator, on the grid of the
    least common multiple of the requested arrays' voxel sizes, such that every requested ROI
    lies inside the ROI provided upstream for its key. The requested ROIs are shifted on
    their way upstream and the arrays that come back are relabelled with the requested ROIs:
    pure slicing, the data is not touched. This node provides every upstream key with an
    unbounded ROI, as gunpowder does.

    With ``min_masked`` and ``mask``, a drawn location is accepted only if the requested
    ``mask`` ROI there holds at least that ratio of masked-in (``> 0``) voxels. This is a
    **materialization boundary**: for every drawn location the node builds a lazy batch of
    only the mask crop upstream and computes its ratio with the pipeline's scheduler (a
    data-dependent "peek"). Unlike gunpowder, the mask is never read as a whole at setup (no
    integral image): the cost is one small read per attempt, and at most ``max_attempts``
    locations are tried before a ``PipelineRequestError`` says so. Subclasses may override
    ``accepts(request)`` for further tests; rejected locations count as attempts.

    With ``ensure_nonempty`` (a ``GraphKey``), all points of that graph in the upstream ROI
    are fetched once at setup (graphs are materialized in the driver); for each request a
    point is drawn (density-balanced with ``point_balance_radius``) and then a shift that
    puts it inside the requested ROI of that graph (at its centre with ``ensure_centered``)
    and every requested ROI inside its upstream ROI. A point that allows no such shift, or
    a location rejected by ``min_masked``/``accepts``, costs an attempt; after
    ``max_attempts`` a ``PipelineRequestError`` names the key. Requested graphs are shifted
    back with the arrays (only their node locations change).

    Args:
        min_masked (float): the smallest accepted ratio of masked-in voxels in the requested
            ``mask`` ROI (0 accepts every location).
        mask (ArrayKey, optional): the array the ratio is measured in; it must be requested.
        ensure_nonempty (GraphKey, optional): draw locations that contain a point of this
            graph (it must be requested).
        p_nonempty (float): probability of applying ``ensure_nonempty`` to a batch;
            otherwise the location is drawn uniformly.
        ensure_centered (bool, optional): with ``ensure_nonempty``, put the drawn point at
            the centre of the requested ROI (snapped to the lcm voxel grid).
        point_balance_radius (int): with ``ensure_nonempty``, points are drawn with
            probability inversely proportional to the number of points within this
            distance (world units); 1 draws uniformly.
        random_shift_key (ArrayKey, optional): if given, provide a nonspatial int64 array with
            the shift applied to this batch (world units).
        p (float): probability of shifting a batch at all; otherwise the request is passed
            upstream unshifted (and ``random_shift_key`` holds zeros).
        max_attempts (int): how many locations to try for ``min_masked``/``accepts``.

    Example:
        >>> raw, shift = ArrayKey("RAW"), ArrayKey("SHIFT")
        >>> source = gp.ArraySource(raw, np.arange(100))
        >>> pipeline = source + gp.RandomLocation(random_shift_key=shift)
        >>> request = gp.BatchRequest(random_seed=3)
        >>> request.add(raw, (10,))
        >>> request[shift] = ArraySpec(nonspatial=True)
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     batch = p.request_batch(request)
        >>> bool(batch[raw].data[0] == batch[shift].data[0])
        True
    """

    lazy = True

    def __init__(
        self,
        min_masked: float = 0,
        mask: ArrayKey | None = None,
        ensure_nonempty=None,
        p_nonempty: float = 1.0,
        ensure_centered: bool | None = None,
        point_balance_radius: int = 1,
        random_shift_key: ArrayKey | None = None,
        p: float = 1.0,
        max_attempts: int = 100,
    ) -> None:
        if ensure_centered and ensure_nonempty is None:
            raise PipelineSetupError(
                f"{type(self).__name__}: ensure_centered needs an ensure_nonempty graph key"
            )
        if not 0 <= min_masked <= 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: min_masked={min_masked} must lie in [0, 1]"
            )
        if min_masked > 0 and mask is None:
            raise PipelineSetupError(
                f"{type(self).__name__}: min_masked={min_masked} needs a mask array key"
            )
        if max_attempts < 1:
            raise PipelineSetupError(
                f"{type(self).__name__}: max_attempts={max_attempts} must be at least 1"
            )
        self.min_masked = min_masked
        self.mask = mask
        self.ensure_nonempty = ensure_nonempty
        self.p_nonempty = p_nonempty
        self.ensure_centered = ensure_centered
        self.point_balance_radius = point_balance_radius
        self.random_shift_key = random_shift_key
        self.p = p
        self.max_attempts = max_attempts

    def setup(self) -> None:
        upstream_spec = self.get_upstream_provider().spec
        if self.mask is not None and self.min_masked > 0 and self.mask not in upstream_spec:
            raise PipelineSetupError(
                f"{self.name()}: the mask {self.mask} is not provided upstream; upstream "
                f"provides {upstream_spec.keys()}"
            )
        # Downstream, any location is possible: offsets and shapes are unbounded.
        for key, spec in upstream_spec.items():
            if spec.roi is None or getattr(spec, "nonspatial", False):
                continue
            spec = spec.copy()
            spec.roi = Roi((None,) * spec.roi.dims, (None,) * spec.roi.dims)
            self.updates(key, spec)
        if self.random_shift_key is not None:
            self.provides(self.random_shift_key, ArraySpec(nonspatial=True, dtype=np.int64))
        self._sampler = None
        if self.ensure_nonempty is not None:
            self._sampler = PointSampler(upstream_points(self, self.ensure_nonempty),
                                         self.point_balance_radius)

    def prepare(self, request: BatchRequest) -> BatchRequest:
        spatial = self._spatial_keys(request)
        if not spatial:
            raise PipelineRequestError(
                f"{self.name()}: the request has no spatial ROI to place at a random "
                f"location:\n{request}"
            )
        dims = request[spatial[0]].roi.dims
        if self.rng(request, "p").random() >= self.p:
            shift = Coordinate((0,) * dims)
        else:
            shift = self._select_shift(request, spatial)
        # Changed in place and returned, like gunpowder: BatchFilter unions the returned
        # ROIs with the request's, which is then this same (shifted) request.
        for key in spatial:
            request[key].roi = request[key].roi.shift(shift)
        return request

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        outputs = Batch()
        shift = None
        for key in self._spatial_keys(request):
            if isinstance(key, GraphKey):
                graph = batch[key].copy()
                graph.shift(request[key].roi.begin - graph.spec.roi.begin)
                graph.spec.roi = request[key].roi
                outputs[key] = graph
                continue
            array = batch[key]
            shift = array.spec.roi.begin - request[key].roi.begin
            spec = array.spec.copy()
            spec.roi = request[key].roi
            outputs[key] = Array(array.data, spec, array.attrs)
        if self.random_shift_key is not None and self.random_shift_key in request:
            if shift is None:
                raise PipelineRequestError(
                    f"{self.name()}: {self.random_shift_key} needs at least one requested "
                    f"spatial array that is not a placeholder:\n{request}"
                )
            values = np.asarray(tuple(shift), dtype=np.int64)
            name = f"{task_prefix(self.name())}-shift-{tokenize(values, self.node_id)}"
            outputs[self.random_shift_key] = Array(
                da.from_array(values, chunks=values.shape, name=name),
                ArraySpec(nonspatial=True, dtype=np.int64),
            )
        return outputs

    def accepts(self, request: BatchRequest) -> bool:
        """Whether the shifted ``request`` is acceptable; override for further tests."""
        return True

    # --- internals -----------------------------------------------------------------------------

    def _spatial_keys(self, request: BatchRequest) -> list:
        upstream_spec = self.get_upstream_provider().spec
        keys = []
        for key, spec in request.items():
            if key == self.random_shift_key or spec.roi is None:
                continue
            if getattr(spec, "nonspatial", False) or key not in upstream_spec:
                continue
            if getattr(upstream_spec[key], "nonspatial", False):
                continue
            keys.append(key)
        return keys

    def _shift_range(self, request: BatchRequest, keys: list) -> tuple[Coordinate, list, list]:
        """(lcm voxel size, lowest, highest) shift in lcm units, per dimension, inclusive."""
        upstream_spec = self.get_upstream_provider().spec
        array_keys = [k for k in keys if isinstance(k, ArrayKey)]
        dims = request[keys[0]].roi.dims
        lcm = self.spec.get_lcm_voxel_size(array_keys) or Coordinate((1,) * dims)
        lowest, highest = [None] * dims, [None] * dims
        for key in keys:
            request_roi, provided_roi = request[key].roi, upstream_spec[key].roi
            if provided_roi is None:
                continue
            for d in range(dims):
                if provided_roi.begin[d] is not None:
                    low = provided_roi.begin[d] - request_roi.begin[d]
                    lowest[d] = low if lowest[d] is None else max(lowest[d], low)
                if provided_roi.end[d] is not None:
                    high = provided_roi.end[d] - request_roi.end[d]
                    highest[d] = high if highest[d] is None else min(highest[d], high)
        rois = "\n".join(
            f"\t{k}: requested {request[k].roi}, provided upstream {upstream_spec[k].roi}"
            for k in keys
        )
        if None in lowest or None in highest:
            raise PipelineRequestError(
                f"{self.name()}: cannot draw a random location, the upstream ROIs are "
                f"unbounded (lowest shift {lowest}, highest {highest}); is there an unbounded "
                f"Pad upstream?\n{rois}"
            )
        lowest = [-(-low // step) for low, step in zip(lowest, lcm, strict=True)]
        highest = [high // step for high, step in zip(highest, lcm, strict=True)]
        if any(low > high for low, high in zip(lowest, highest, strict=True)):
            raise PipelineRequestError(
                f"{self.name()}: no location (on the grid of the lcm voxel size {lcm}) puts "
                f"every requested ROI inside its upstream ROI:\n{rois}"
            )
        return lcm, lowest, highest

    def _select_shift(self, request: BatchRequest, keys: list) -> Coordinate:
        lcm, lowest, highest = self._shift_range(request, keys)
        check_mask = self.mask is not None and self.min_masked > 0
        if check_mask and self.mask not in request:
            raise PipelineRequestError(
                f"{self.name()}: min_masked={self.min_masked} is measured in the requested ROI "
                f"of {self.mask}, but the request does not contain it:\n{request}"
            )
        nonempty = self._sampler is not None and (
            self.rng(request, "p_nonempty").random() < self.p_nonempty)
        if nonempty and self.ensure_nonempty not in request:
            raise PipelineRequestError(
                f"{self.name()}: ensure_nonempty={self.ensure_nonempty} is measured in the "
                f"requested ROI of {self.ensure_nonempty}, but the request does not contain "
                f"it:\n{request}"
            )
        best_ratio, best_roi, placed = None, None, 0
        for attempt in range(self.max_attempts):
            rng = self.rng(request, "shift", attempt)
            ranges = list(zip(lowest, highest, strict=True))
            if nonempty:
                point = self._sampler.choose(rng)
                ranges = point_shift_range(point, request[self.ensure_nonempty].roi, lcm,
                                           lowest, highest, bool(self.ensure_centered))
                if ranges is None:
                    continue
                placed += 1
            shift = Coordinate(
                int(rng.integers(low, high, endpoint=True)) * step
                for (low, high), step in zip(ranges, lcm, strict=True)
            )
            if check_mask:
                mask_roi = request[self.mask].roi.shift(shift)
                ratio = self._masked_ratio(request, mask_roi)
                if best_ratio is None or ratio > best_ratio:
                    best_ratio, best_roi = ratio, mask_roi
                if ratio < self.min_masked:
                    continue
            shifted = request.copy()
            for key in keys:
                shifted[key].roi = shifted[key].roi.shift(shift)
            if self.accepts(shifted):
                return shift
        if nonempty and placed == 0:
            raise PipelineRequestError(
                f"{self.name()}: ensure_nonempty={self.ensure_nonempty}: none of the "
                f"{self.max_attempts} points drawn (of {len(self._sampler.locations)} from "
                f"{describe_source(self.get_upstream_provider(), self.ensure_nonempty)}) can "
                f"be placed inside the requested ROI {request[self.ensure_nonempty].roi} "
                f"while every requested ROI stays inside its upstream ROI:\n{request}"
            )
        if not check_mask:
            raise PipelineRequestError(
                f"{self.name()}: accepts() rejected all {self.max_attempts} locations tried "
                f"for the request:\n{request}"
            )
        raise PipelineRequestError(
            f"{self.name()}: no location with min_masked={self.min_masked} of mask "
            f"{self.mask} in {self.max_attempts} attempts; the best ratio seen was "
            f"{best_ratio:.4f} (mask ROI {best_roi}); requested mask ROI "
            f"{request[self.mask].roi}, upstream mask ROI "
            f"{self.get_upstream_provider().spec[self.mask].roi}"
        )

    def _masked_ratio(self, request: BatchRequest, mask_roi: Roi) -> float:
        """Ratio of masked-in voxels of ``mask`` in ``mask_roi``: computes a small crop."""
        peek = BatchRequest(random_seed=request.random_seed)
        peek[self.mask] = ArraySpec(roi=mask_roi)
        mask = self.get_upstream_provider().request_batch(peek)[self.mask].data
        if mask.size == 0:
            return 0.0
        (masked_in,) = dask.compute((mask > 0).sum(), scheduler=local_get(current_scheduler()))
        return float(masked_in) / mask.size
