"""``ElasticAugment``: random elastic deformation, rotation, scale and section misalignment.

Planned from control points and ROI corners; built as a chunk-wise warp (``chunked_warp``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..batch import Array, Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..names import task_prefix
from ..plans import RequestPlans, planned_arrays
from ..provider import BatchFilter
from ..request import BatchRequest
from ..specs import guess_interpolatable
from ..transforms import (
    ElasticTransform,
    chunked_warp,
    control_point_counts,
    fused_source,
    section_shifts,
    spline_coefficients,
    tight_source_box,
    warp_locations,
)

_PLAN_CACHE_SIZE = 16


class ElasticAugment(BatchFilter):
    """Elastically deform, rotate, scale and misalign a batch, as gunpowder's ``ElasticAugment``.

    One transform, drawn from the request's seeded generators, covers the total requested ROI
    and is shared by all requested arrays, which stay aligned. Each output voxel ``x`` (in
    voxels from the centre ``c`` of that ROI) samples the source at
    ``c + scale * R(x - c) + spline(x) + shift(section)``: ``R`` rotates the last two axes,
    ``spline`` is the cubic spline through control points jittered with ``jitter_sigma``,
    ``shift`` the misalignment of the voxel's section. Upstream, each array is requested on
    the bounding box of its source coordinates plus interpolation support, computed from the
    control points and the ROI corners. The output is a dask array in chunks of
    ``chunk_shape`` voxels; each chunk's task (``elastic-augment-…``) evaluates the transform
    for its own voxels and reads only its own source box. Interpolatable arrays are
    interpolated linearly, others (labels) take the nearest voxel; outside the source: 0.
    Leading (channel) axes share the transform. Requested graphs are transformed with it:
    each point goes where its image content goes (``transforms.warp_locations``: Newton
    iterations invert the transform at the point, instead of gunpowder's full-grid argmin);
    points that leave the requested ROI are dropped.

    Args:
        control_point_spacing (int or tuple of int): distance between control points, in
            voxels per spatial axis.
        jitter_sigma (float or tuple of float): standard deviation of the control-point
            jitter, in voxels per spatial axis.
        rotation_interval (tuple of two float): interval of the rotation angle (radians) in
            the last two spatial axes, drawn uniformly.
        scale_interval (tuple of two float): interval of the scale, drawn uniformly; > 1
            shows more of the source (content gets smaller). Applied about the ROI centre.
        prob_slip (float): probability of a section (index of the first spatial axis) to slip:
            it alone moves in the last two axes.
        prob_shift (float): probability of a section and all following ones to move.
        max_misalign (int): largest slip or shift, in voxels, drawn uniformly per axis.
        subsample (int): evaluate the elastic field on every ``subsample``-th voxel only and
            interpolate linearly in between.
        spatial_dims (int): number of trailing spatial axes to deform (at most those of the
            ROIs); leading ROI axes are treated like channels.
        use_fast_points_transform (bool): gunpowder's option for graphs; accepted, no effect
            (points are always inverted exactly).
        recompute_missing_points (bool): likewise.
        p (float): probability of augmenting a batch at all.
        chunk_shape (int or tuple of int, optional): output chunk size in voxels per spatial
            axis (default: an output of up to 8M voxels, such as the seed's 84x268x268 raw, in
            one chunk, one task per array; larger ones in chunks of 128 voxels per axis).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.arange(64, dtype=np.float32).reshape(8, 8))
        >>> pipeline = source + gp.ElasticAugment([4, 4], [0, 0], [np.pi / 2] * 2,
        ...                                       spatial_dims=2)
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request[raw] = gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data[0].round(3)
        array([21., 29., 37., 45.], dtype=float32)
    """

    lazy = True

    def __init__(
        self,
        control_point_spacing: int | Sequence[int],
        jitter_sigma: float | Sequence[float],
        rotation_interval: Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        prob_slip: float = 0,
        prob_shift: float = 0,
        max_misalign: int = 0,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        p: float = 1.0,
        chunk_shape: int | Sequence[int] | None = None,
    ) -> None:
        if len(rotation_interval) != 2 or len(scale_interval) != 2:
            raise PipelineSetupError(
                f"ElasticAugment: rotation_interval {rotation_interval} and scale_interval "
                f"{scale_interval} must be (min, max) pairs"
            )
        if not min(scale_interval) > 0:
            raise PipelineSetupError(
                f"ElasticAugment: scale_interval {scale_interval} must be positive"
            )
        if int(subsample) < 1 or int(spatial_dims) < 1:
            raise PipelineSetupError(
                f"ElasticAugment: subsample ({subsample}) and spatial_dims ({spatial_dims}) "
                "must be at least 1"
            )
        self.control_point_spacing = control_point_spacing
        self.jitter_sigma = jitter_sigma
        self.rotation_start = float(rotation_interval[0])
        self.rotation_max_amount = float(rotation_interval[1]) - float(rotation_interval[0])
        self.scale_min = float(scale_interval[0])
        self.scale_max = float(scale_interval[1])
        self.prob_slip = float(prob_slip)
        self.prob_shift = float(prob_shift)
        self.max_misalign = int(max_misalign)
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.p = float(p)
        self.chunk_shape = chunk_shape

    def setup(self) -> None:
        self._plans = None  # upstream specs may differ from an earlier build

    def skip_node(self, request: BatchRequest) -> bool:
        return self.rng(request, "skip").random() > self.p

    def prepare(self, request: BatchRequest) -> BatchRequest:
        plan = self._plan(request)
        dependencies = BatchRequest()
        for key, spec in request.array_specs.items():
            dependencies[key] = spec.copy()
            if not plan.covers(key, spec):
                continue
            upstream_roi = plan.upstream_roi(spec.roi)
            provided = self.spec[key].roi
            if provided is not None and not provided.contains(upstream_roi):
                raise BatchRequestError(
                    f"{self.name()}: {key}'s requested ROI {spec.roi} needs the upstream ROI "
                    f"{upstream_roi} (grown by rotation, scale, jitter and misalignment), "
                    f"which is not inside the provided ROI {provided}; request a smaller ROI "
                    "or add a Pad upstream"
                )
            dependencies[key].roi = upstream_roi
        for key, spec in request.graph_specs.items():
            dependencies[key] = spec.copy()
            dependencies[key].roi = plan.graph_upstream_roi(self, key, spec.roi)
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        plan = self._plan(request)
        outputs = Batch()
        for key in plan.keys:
            array = batch[key]
            spec = array.spec.copy()
            spec.roi = request[key].roi
            out_begin, out_shape = plan.grid_box(spec.roi)
            source_begin, _ = plan.grid_box(array.spec.roi)
            interpolatable = self.spec[key].interpolatable
            if interpolatable is None:
                interpolatable = guess_interpolatable(array.data.dtype)
            # A Normalize right upstream is fused: read its input, normalize in the warp.
            source, normalization = fused_source(array.data)
            data = chunked_warp(
                source, source_begin, plan.transform, out_begin, out_shape,
                order=1 if interpolatable else 0, chunk_shape=self.chunk_shape,
                name=task_prefix(self.name()), node_name=self.name(), normalization=normalization,
            )
            outputs[key] = Array(data, spec, array.attrs)
        for key in request.graph_specs:
            outputs[key] = plan.warp_graph(batch[key], request[key].roi)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _plan(self, request: BatchRequest) -> _Plan:
        plans = self.__dict__.get("_plans")
        if plans is None:  # first use, or unpickled on a worker
            plans = self._plans = RequestPlans(lambda r: _Plan(self, r), _PLAN_CACHE_SIZE)
        return plans.get(request)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_plans", None)
        return state

    def _per_axis(self, value, dims: int, what: str) -> tuple[float, ...]:
        values = (value,) * dims if np.ndim(value) == 0 else tuple(np.ravel(value))
        if len(values) != dims:
            raise BatchRequestError(
                f"{self.name()}: {what}={value} has {len(values)} entries, but the request has "
                f"{dims} spatial dimensions"
            )
        return tuple(float(v) for v in values)

    def _draw_transform(self, request: BatchRequest, grid_shape: tuple[int, ...]):
        dims = len(grid_shape)
        spacing = self._per_axis(self.control_point_spacing, dims, "control_point_spacing")
        sigma = self._per_axis(self.jitter_sigma, dims, "jitter_sigma")
        coefficients = None
        if any(s > 0 for s in sigma):
            counts = control_point_counts(grid_shape, spacing)
            jitter = self.rng(request, "jitter")
            values = np.zeros((dims, *counts))
            for d in range(dims):
                if sigma[d] > 0:
                    values[d] = jitter.normal(scale=sigma[d], size=counts)
            coefficients = spline_coefficients(values)
        rotation = self.rotation_start
        if self.rotation_max_amount != 0:
            rotation += self.rng(request, "rotation").random() * self.rotation_max_amount
        scale = self.scale_min
        if self.scale_max != self.scale_min:
            scale += self.rng(request, "scale").random() * (self.scale_max - self.scale_min)
        shifts = None
        if self.prob_slip + self.prob_shift > 0:
            if dims != 3:
                raise BatchRequestError(
                    f"{self.name()}: misalignment (prob_slip, prob_shift) needs 3 spatial "
                    f"dimensions, the request has {dims}"
                )
            misalign = self.rng(request, "misalign")
            draws = misalign.random(grid_shape[0])
            offsets = misalign.integers(
                -self.max_misalign, self.max_misalign + 1, size=(grid_shape[0], 2)
            )
            shifts = section_shifts(draws, offsets, self.prob_slip, self.prob_shift)
        return ElasticTransform(grid_shape, coefficients, rotation, scale, shifts,
                                self.subsample)


class _Plan:
    """The transform of one request and the grid (total requested ROI) it lives on."""

    def __init__(self, node: ElasticAugment, request: BatchRequest) -> None:
        specs, keys = planned_arrays(node, request, graphs=True)
        self.keys = keys or list(specs)
        self.transform = None
        if not self.keys:
            return
        dims = min(node.spatial_dims, min(specs[key].roi.dims for key in self.keys))
        self.dims = dims
        voxel_size = None
        for key in self.keys:
            provided = node.spec[key].voxel_size
            if provided is None:
                raise BatchRequestError(f"{node.name()}: {key} has no voxel size upstream")
            provided = Coordinate(provided[-dims:])
            if voxel_size is not None and provided != voxel_size:
                raise BatchRequestError(
                    f"{node.name()}: all arrays need the same voxel size, but {key} has "
                    f"{provided} and {self.keys[0]} has {voxel_size}"
                )
            voxel_size = provided
        self.voxel_size = voxel_size
        grid_roi = None
        for key in self.keys:
            roi = self._spatial(specs[key].roi)
            grid_roi = roi if grid_roi is None else grid_roi.union(roi)
        for key in self.keys:
            offset = self._spatial(specs[key].roi).begin - grid_roi.begin
            if not offset.is_multiple_of(voxel_size):
                raise BatchRequestError(
                    f"{node.name()}: {key}'s ROI {specs[key].roi} is not on the voxel grid "
                    f"(voxel size {voxel_size}) of the total ROI {grid_roi}"
                )
        self.grid_roi = grid_roi
        for spec in request.graph_specs.values():
            # As gunpowder, the transform covers the total ROI, graphs included.
            grid_roi = grid_roi.union(self._snapped(self._spatial(spec.roi)))
        self.grid_roi = grid_roi
        grid_shape = tuple(grid_roi.shape / voxel_size)
        self.transform = node._draw_transform(request, grid_shape)

    def covers(self, key: ArrayKey, spec) -> bool:
        """Whether ``key`` is warped: a spatial array on the grid (placeholders too, if on it)."""
        if self.transform is None or spec.nonspatial or spec.roi is None:
            return False
        return key in self.keys or self.grid_roi.contains(self._spatial(spec.roi))

    def _spatial(self, roi: Roi) -> Roi:
        return Roi(roi.begin[-self.dims:], roi.shape[-self.dims:])

    def grid_box(self, roi: Roi) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``roi``'s spatial part as (first voxel, voxels per axis) on the grid."""
        spatial = self._spatial(roi)
        begin = (spatial.begin - self.grid_roi.begin) / self.voxel_size
        return tuple(int(b) for b in begin), tuple(int(s) for s in spatial.shape / self.voxel_size)

    def _snapped(self, roi: Roi) -> Roi:
        """``roi`` (spatial) grown to whole voxels of the grid."""
        origin, step = self.grid_roi.begin, self.voxel_size
        begin = Coordinate(o + math.floor((b - o) / v) * v
                           for b, o, v in zip(roi.begin, origin, step, strict=True))
        end = Coordinate(o + math.ceil((e - o) / v) * v
                         for e, o, v in zip(roi.end, origin, step, strict=True))
        return Roi(begin, end - begin)

    def graph_upstream_roi(self, node: ElasticAugment, key, roi: Roi) -> Roi:
        """The ROI of the graph ``key`` whose points can land in ``roi``: the source box of
        ``roi``'s voxels, a voxel wider (points sit anywhere in a voxel), within what is
        provided."""
        if self.transform is None:
            raise BatchRequestError(
                f"{node.name()}: {key} is requested without any spatial array; the transform "
                "lives on the voxel grid of the requested arrays, request one with it"
            )
        leading = roi.dims - self.dims
        upstream = self.upstream_roi(Roi(
            tuple(roi.begin[:leading]) + tuple(self._snapped(self._spatial(roi)).begin),
            tuple(roi.shape[:leading]) + tuple(self._snapped(self._spatial(roi)).shape)))
        grow = Coordinate((0,) * leading + tuple(self.voxel_size))
        upstream = upstream.grow(grow, grow)
        provided = node.spec[key].roi
        return upstream if provided is None else upstream.intersect(provided)

    def warp_graph(self, graph, roi: Roi):
        """``graph`` with each point moved where the transform moves its image content;
        points that cannot follow (or leave ``roi``) are dropped by the final crop."""
        locations = warp_locations(self.transform, graph.locations, self.grid_roi.begin,
                                   self.voxel_size)
        return graph.with_locations(locations, roi)

    def upstream_roi(self, roi: Roi) -> Roi:
        """The ROI whose source voxels the output voxels of ``roi`` read."""
        begin, shape = self.grid_box(roi)
        # Exact, as gunpowder's (which reads its whole transformation): no larger than needed.
        box_begin, box_end = tight_source_box(self.transform, begin, shape)
        spatial_begin = self.grid_roi.begin + Coordinate(box_begin) * self.voxel_size
        spatial_shape = (Coordinate(box_end) - Coordinate(box_begin)) * self.voxel_size
        leading = roi.dims - self.dims
        return Roi(
            tuple(roi.begin[:leading]) + tuple(spatial_begin),
            tuple(roi.shape[:leading]) + tuple(spatial_shape),
        )


__all__ = ["ElasticAugment"]
